"""The README's depth demo learns: its fine-tune clearly beats predicting the mean depth (default run: 40
iterations on 32 rooms in this process; slow: the demo as shipped, minutes)."""

import contextlib
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from nf_plugins.cli import main

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _model_and_mean_depth_rms(out: str, work) -> tuple[float, float]:
    """The demo's printed model rms, and the mean-depth baseline's recomputed here from the written
    annotations (16-bit mm PNGs), not taken from the script."""
    model_rms = float(re.search(r"test rms \(pooled over all test pixels\): model ([\d.]+) m", out).group(1))

    def depths(split):
        files = sorted((work / "nyu_synthetic" / "annotations" / split).glob("*.png"))
        return [cv2.imread(str(f), cv2.IMREAD_UNCHANGED).astype(np.float64) / 1000 for f in files]

    mean = np.concatenate([d[d > 0].ravel() for d in depths("train")]).mean()
    test = np.concatenate([d[d > 0].ravel() for d in depths("test")])  # pooled, as the headline metric
    return model_rms, np.sqrt(np.mean((test - mean) ** 2))


def test_demo_depth_learns_in_40_iterations(tmp_path, capsys):
    """The demo's own main (rendered rooms, shipped config, NYUDepthMetric) cut to 40 iterations on 32
    rooms: training starts at the mean-depth baseline (the head's bias), and 40 steps already take a
    quarter off its rms (measured ratio 0.76; the shipped demo's 1000 steps reach 0.37)."""
    pytest.importorskip("mmseg")
    args = ["--train", "32", "--test", "8", "--iters", "40", "--batch", "4", "--work-dir", str(tmp_path)]
    with contextlib.suppress(SystemExit):  # exits 1 here: its pass mark is the full demo's ratio 0.5
        main(["demo-depth", *args])
    out = capsys.readouterr().out
    model_rms, base_rms = _model_and_mean_depth_rms(out, tmp_path)
    assert model_rms <= 0.85 * base_rms, out
    # its picture: the first four 96x64 test rooms at 3x, four panels and two colour bars per row
    png = tmp_path / "depth_demo.png"
    assert f"first test rooms): {png}" in out
    assert Image.open(png).size == (8 + 4 * (3 * 96 + 8) + 2 * (10 + 60), 22 + 4 * (22 + 3 * 64) + 8)


@pytest.mark.slow
def test_demo_depth_beats_mean_depth(tmp_path):
    out = subprocess.run(
        [sys.executable, osp.join(ROOT, "tools/demo_depth.py"), "--work-dir", str(tmp_path)],
        capture_output=True, text=True, check=True, timeout=3600,
    ).stdout  # fmt: skip
    model_rms, base_rms = _model_and_mean_depth_rms(out, tmp_path)
    assert model_rms <= 0.5 * base_rms, out

"""The README's segmentation demo learns: fine-tuned mIoU far above the untrained model's and above the
all-background baseline (default run: 30 iterations in this process; slow: the demo as shipped)."""

import importlib
import os.path as osp
import re
import subprocess
import sys
import time

import pytest
from PIL import Image

from nf_plugins.cli import COMMANDS, main

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _miou_rows(out: str) -> tuple[float, float]:
    rows = dict(re.findall(r"^\| (untrained|fine-tuned) \| \d+ \| [-\d]+ \| ([\d.]+) \|", out, re.M))
    return float(rows["untrained"]), float(rows["fine-tuned"])


def test_demo_segmentation_learns_in_30_iterations(tmp_path, capsys):
    """The demo's own main (data, shipped config, mmseg's IoUMetric) with 30 instead of 200 iterations:
    already far above predicting all background, whose mIoU is at most 100 / 6 (6 classes in val)."""
    pytest.importorskip("mmseg")
    assert main(["demo-segmentation", "--iters", "30", "--work-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    before, after = _miou_rows(out)
    assert before < 10.0 and after > 30.0, out  # measured: 0.17 before, 50.9 after
    # its picture: four val images (about 96x72) as image | truth | prediction at 3x, path printed
    png = tmp_path / "segmentation_demo.png"
    assert f"picture (image | ground truth | prediction, first val images): {png}" in out
    width, height = Image.open(png).size
    assert width >= 3 * 3 * 96 and height >= 4 * 3 * 72


@pytest.mark.slow
def test_demo_segmentation_finetune_learns(tmp_path):
    out = subprocess.run(
        [sys.executable, osp.join(ROOT, "tools/demo_segmentation.py"), "--work-dir", str(tmp_path)],
        capture_output=True, text=True, check=True, timeout=3600,
    ).stdout  # fmt: skip
    before, after = _miou_rows(out)
    # 6 classes in the val set (background + 5 shapes); predicting all background gives mIoU <= 100 / 6
    assert before < 10.0 and after > 40.0, out


@pytest.mark.parametrize("name", ["demo-segmentation", "demo-depth"])
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--work-dir", "{blocker}/work"], "is not a folder"),
        (["--iters", "0"], "--iters must be at least 1"),
        (["--lr", "nan"], "--lr must be a positive number"),
    ],
)
def test_demos_refuse_bad_arguments_before_any_work(tmp_path, capsys, name, args, says):
    """Issue 15: a demo answers an unwritable --work-dir or a bad value at once (exit 2, < 2 s), creating
    nothing, instead of after minutes of data generation and training."""
    pytest.importorskip("mmseg")
    importlib.import_module(COMMANDS[name][0])  # imported before the clock starts, as a tool's own imports
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    before = sorted(tmp_path.rglob("*"))
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exit_:
        main([name, *(a.format(blocker=blocker) for a in args)])
    assert exit_.value.code == 2 and time.perf_counter() - start < 2
    assert says in capsys.readouterr().err
    assert sorted(tmp_path.rglob("*")) == before

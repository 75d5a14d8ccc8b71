"""Data preparation runs where mmseg, mmcv and mmengine cannot be imported (issue 18): the two tools, i.e.
``nf-plugins prepare-voc`` / ``prepare-nyu``, convert small releases in the real formats (VOC tar + SBD
tgz, the official NYU .mat + splits.mat, mmseg's NYU zip) in one subprocess whose import system refuses
those packages, and never even try to import them."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from nf_plugins.data.synthetic_voc import make_synthetic_voc

h5py = pytest.importorskip("h5py")
scipy_io = pytest.importorskip("scipy.io")

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("mmseg", "mmcv", "mmengine")

# Imports every module of nf_plugins.data, then runs each (tool, argv) of the JSON list in argv[1] as
# `python tools/<tool> ARGV` would, in one interpreter whose first meta-path finder refuses BLOCKED; prints
# the refused import attempts and what of BLOCKED and nf_plugins.downstream got loaded.
RUNNER = f"""
import importlib, importlib.abc, json, pkgutil, runpy, sys

attempts = []

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            attempts.append(name)
            raise ModuleNotFoundError(f"{{name}} is blocked in this test", name=name)
        return None

sys.meta_path.insert(0, Refuse())
import nf_plugins.data
for module in pkgutil.iter_modules(nf_plugins.data.__path__):
    importlib.import_module("nf_plugins.data." + module.name)
for tool, argv in json.loads(sys.argv[1]):
    sys.argv = [tool, *argv]
    try:
        runpy.run_path(tool, run_name="__main__")
    except SystemExit as e:
        if e.code:
            raise
print("refused imports:", sorted(set(attempts)))
print("loaded:", sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r} or "downstream" in m))
"""


def _scene(i: int, h: int = 24, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    depth = 1.0 + 4.0 * xx / w + 2.0 * yy / h + 0.5 * i  # metres
    rgb = np.stack([255 * xx / w, 255 * yy / h, np.full_like(xx, 40.0 * i)], -1)
    return rgb.astype(np.uint8), depth


def _nyu_mat(raw: Path) -> list[np.ndarray]:
    """nyu_depth_v2_labeled.mat (MATLAB v7.3: h5py sees (N, 3, W, H) / (N, W, H)) + splits.mat."""
    scenes = [_scene(i) for i in range(4)]
    with h5py.File(raw / "labeled.mat", "w") as f:
        f.create_dataset("images", data=np.stack([rgb.transpose(2, 1, 0) for rgb, _ in scenes]))
        f.create_dataset("depths", data=np.stack([d.T for _, d in scenes]))
    scipy_io.savemat(raw / "splits.mat", {"trainNdxs": [[1.0], [3.0], [4.0]], "testNdxs": [[2.0]]})
    return [d for _, d in scenes]


def _nyu_zip(path: Path) -> None:
    """mmseg's NYU zip: nyu/nyu_{train,test}.txt listing '/<scene>/rgb_X.jpg /<scene>/sync_depth_X.png f'."""
    with zipfile.ZipFile(path, "w") as zf:
        for split, ids in (("train", [1, 2]), ("test", [3])):
            lines = []
            for i in ids:
                rgb, depth = _scene(i)
                scene = f"bedroom_{i:04d}"
                zf.writestr(f"nyu/{scene}/rgb_{i:05d}.jpg", cv2.imencode(".jpg", rgb)[1].tobytes())
                mm = np.round(depth * 1000).astype(np.uint16)
                zf.writestr(f"nyu/{scene}/sync_depth_{i:05d}.png", cv2.imencode(".png", mm)[1].tobytes())
                lines.append(f"/{scene}/rgb_{i:05d}.jpg /{scene}/sync_depth_{i:05d}.png 518.8579")
            zf.writestr(f"nyu/nyu_{split}.txt", "\n".join(lines) + "\n")


def test_prepare_voc_and_nyu_run_without_mmseg_mmcv_mmengine(tmp_path):
    src, raw, out = tmp_path / "src", tmp_path / "raw", tmp_path / "out"
    counts = make_synthetic_voc(str(src), n_train=4, n_val=2, n_sbd_extra=3, size=(48, 40))
    raw.mkdir()
    with tarfile.open(raw / "VOCtrainval_11-May-2012.tar", "w") as t:
        t.add(src / "VOCdevkit", arcname="VOCdevkit")
    with tarfile.open(raw / "benchmark.tgz", "w:gz") as t:
        t.add(src / "benchmark_RELEASE", arcname="benchmark_RELEASE")
    depths = _nyu_mat(raw)
    _nyu_zip(raw / "nyu.zip")
    runs = [
        (
            "tools/prepare_voc.py",
            [
                "--voc-tar",
                str(raw / "VOCtrainval_11-May-2012.tar"),
                "--sbd-tar",
                str(raw / "benchmark.tgz"),
                "--out",
                str(out / "voc"),
                "--expect-trainaug",
                str(counts["trainaug"]),
                "--expect-val",
                str(counts["val"]),
            ],
        ),  # fmt: skip
        (
            "tools/prepare_nyu.py",
            [str(raw / "labeled.mat"), "--splits", str(raw / "splits.mat"), "-o", str(out / "l")],
        ),
        ("tools/prepare_nyu.py", [str(raw / "nyu.zip"), "-o", str(out / "dense")]),
    ]
    res = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(runs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert "refused imports: []" in res.stdout and "loaded: []" in res.stdout, res.stdout
    voc = out / "voc/VOCdevkit/VOC2012"
    trainaug = (voc / "ImageSets/Segmentation/trainaug.txt").read_text().split()
    assert (
        len(trainaug) == counts["trainaug"] and len(list((voc / "SegmentationClassAug").glob("*.png"))) == 3
    )
    assert "NYU layout OK at " + str(out / "l") + ": train 3 images, test 1 images" in res.stdout
    assert "NYU layout OK at " + str(out / "dense") + ": train 2 images, test 1 images" in res.stdout
    with Image.open(out / "l/annotations/test/nyu_0002.png") as im:  # 1-based index 2 = scene 1
        np.testing.assert_allclose(np.asarray(im, dtype=np.float64) / 1000, depths[1], atol=0.0005 + 1e-9)
    names = sorted(p.name for p in (out / "dense/images/train").iterdir())
    assert names == ["bedroom_0001_00001.jpg", "bedroom_0002_00002.jpg"]  # mmseg's names: '/rgb' dropped


def test_the_blocker_blocks():
    """The runner's finder does refuse: importing mmengine there fails (else the test above proves
    nothing)."""
    code = RUNNER.split("for tool, argv")[0] + "import mmengine\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "mmengine is blocked in this test" in res.stderr

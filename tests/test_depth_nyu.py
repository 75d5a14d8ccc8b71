"""NYUv2 data path end to end: official-format .mat + splits.mat -> prepare_nyu.py -> train -> test.py.

The fixtures are written in the official on-disk formats (HDF5 v7.3 labeled file through h5py, MATLAB v5
splits through scipy), so a transposition or index-base mistake in the converter shows up here.
"""

import contextlib
import io
import json
import pickle
import runpy
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
scipy_io = pytest.importorskip("scipy.io")
pytest.importorskip("mmseg")

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/depth/uproj_nf-resnet50_8xb32-7.5k_nyu-304x228.py"
H, W = 480, 640  # the labeled set's resolution


from nf_plugins.cli import main as nf_plugins_main  # noqa: E402
from nf_plugins.data import nyu as prepare_nyu  # noqa: E402


def make_scene(i: int, h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image (h, w, 3) and depth in metres (h, w) that are asymmetric in x and y."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    depth = 1.0 + 4.0 * xx / w + 2.0 * yy / h + 0.5 * i  # 1..7.5 m, different gradient per axis
    rgb = np.stack([255 * xx / w, 255 * yy / h, np.full_like(xx, 40.0 * i)], -1)
    return rgb.astype(np.uint8), depth.astype(np.float32)


def write_labeled_mat(path: Path, scenes: list, hole: bool = True) -> None:
    """Like nyu_depth_v2_labeled.mat: MATLAB (H, W, 3, N) / (H, W, N) arrays, which h5py sees reversed."""
    images = np.stack([rgb.transpose(2, 1, 0) for rgb, _ in scenes])  # (N, 3, W, H)
    depths = np.stack([d.T for _, d in scenes])  # (N, W, H)
    if hole:
        depths[0, :10, :10] = 0.0  # a patch without depth
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("depths", data=depths)
        f.create_dataset("rawDepths", data=depths)


def write_splits(path: Path, train, test) -> None:
    scipy_io.savemat(
        path,
        {
            "trainNdxs": np.asarray(train, float).reshape(-1, 1),
            "testNdxs": np.asarray(test, float).reshape(-1, 1),
        },
    )


@pytest.fixture(scope="module")
def nyu_sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("nyu_raw")
    scenes = [make_scene(i) for i in range(6)]
    write_labeled_mat(d / "nyu_depth_v2_labeled.mat", scenes)
    write_splits(d / "splits.mat", train=[1, 3, 4, 6], test=[2, 5])  # 1-based, as the official file
    return d, scenes


def _prepare_nyu(*args) -> subprocess.CompletedProcess:
    """``nf-plugins prepare-nyu ARGS`` (what tools/prepare_nyu.py runs) in this process, with its exit
    status and output as a finished process would give them: a subprocess would import torch again (about
    9 s a call); the tool's own process is run by test_data_prep_without_mm.py."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = nf_plugins_main(["prepare-nyu", *map(str, args)])
        except SystemExit as e:
            code = e.code
    return subprocess.CompletedProcess(["prepare-nyu", *args], code, out.getvalue(), err.getvalue())


# ---------------------------------------------------------------- converter
def test_prepare_nyu_converts_official_format_exactly(nyu_sources, tmp_path):
    raw, scenes = nyu_sources
    mat, splits = raw / "nyu_depth_v2_labeled.mat", raw / "splits.mat"
    res = _prepare_nyu(mat, "--splits", splits, "-o", tmp_path / "nyu")
    assert res.returncode == 0, res.stderr
    assert "NYU layout OK" in res.stdout and "train 4 images, test 2 images" in res.stdout
    assert "NYUv2 labeled -> mmseg layout" in res.stderr  # tqdm progress bar
    names = {p.name for p in (tmp_path / "nyu/images/test").iterdir()}
    assert names == {"nyu_0002.jpg", "nyu_0005.jpg"}  # 1-based MATLAB indices
    for idx in (1, 2):  # index 1 = scene 0 (train, with the hole), index 2 = scene 1 (test)
        split = "train" if idx == 1 else "test"
        rgb, depth = scenes[idx - 1]
        png = cv2.imread(str(tmp_path / f"nyu/annotations/{split}/nyu_{idx:04d}.png"), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint16 and png.shape == (H, W)
        expected = np.round(depth.astype(np.float64) * 1000).astype(np.uint16)
        if idx == 1:
            expected[:10, :10] = 0
        np.testing.assert_array_equal(png, expected)
        jpg = cv2.imread(str(tmp_path / f"nyu/images/{split}/nyu_{idx:04d}.jpg"))[..., ::-1]
        assert np.abs(jpg.astype(int) - rgb.astype(int)).mean() < 2.0  # JPEG q95, same orientation


def test_prepare_nyu_refuses_to_overwrite(nyu_sources, tmp_path):
    raw, _ = nyu_sources
    (tmp_path / "nyu/images/train").mkdir(parents=True)
    (tmp_path / "nyu/images/train/mine.jpg").write_bytes(b"user data")
    with pytest.raises(FileExistsError, match="not empty"):
        prepare_nyu.convert_labeled_mat(
            raw / "nyu_depth_v2_labeled.mat", raw / "splits.mat", tmp_path / "nyu"
        )
    assert (tmp_path / "nyu/images/train/mine.jpg").read_bytes() == b"user data"


def test_prepare_nyu_rejects_mat_without_expected_datasets(tmp_path):
    bad = tmp_path / "not_labeled.mat"
    with h5py.File(bad, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 3, 8, 6), np.uint8))
        f.create_dataset("accelData", data=np.zeros((2, 4)))
    write_splits(tmp_path / "splits.mat", [1], [2])
    res = _prepare_nyu(bad, "--splits", tmp_path / "splits.mat", "-o", tmp_path / "o")
    assert res.returncode == 2  # the CLI's one-line error (the tool returned 1 before it became a wrapper)
    assert "not_labeled.mat: missing dataset(s) ['depths']" in res.stderr and "accelData" in res.stderr
    v5 = tmp_path / "v5.mat"  # an old-style (non-HDF5) .mat
    scipy_io.savemat(v5, {"images": np.zeros(3)})
    with pytest.raises(prepare_nyu.NYUFormatError, match=r"v5\.mat: not an HDF5 \(MATLAB v7\.3\) file"):
        prepare_nyu.convert_labeled_mat(v5, tmp_path / "splits.mat", tmp_path / "o2")


@pytest.mark.parametrize(
    ("train", "test", "message"),
    [
        ([1, 2, 7], [3], r"trainNdxs has indices \[7\] outside 1\.\.6"),
        ([0, 1], [2], r"trainNdxs has indices \[0\] outside 1\.\.6, .*1-based"),
        ([1, 2], [2, 3], r"indices \[2\] are in both trainNdxs and testNdxs"),
    ],
)
def test_prepare_nyu_rejects_mismatched_split_indices(nyu_sources, tmp_path, train, test, message):
    raw, _ = nyu_sources
    write_splits(tmp_path / "my_splits.mat", train, test)
    with pytest.raises(prepare_nyu.NYUFormatError, match=r"my_splits\.mat: " + message):
        prepare_nyu.convert_labeled_mat(
            raw / "nyu_depth_v2_labeled.mat", tmp_path / "my_splits.mat", tmp_path / "o"
        )
    assert not (tmp_path / "o").exists()  # nothing written before the check


def test_prepare_nyu_rejects_splits_without_keys(nyu_sources, tmp_path):
    raw, _ = nyu_sources
    scipy_io.savemat(tmp_path / "splits.mat", {"train": np.ones((2, 1))})
    with pytest.raises(prepare_nyu.NYUFormatError, match=r"splits\.mat: missing \['trainNdxs', 'testNdxs'\]"):
        prepare_nyu.convert_labeled_mat(
            raw / "nyu_depth_v2_labeled.mat", tmp_path / "splits.mat", tmp_path / "o"
        )


def _mmseg_zip(path: Path, depth_dtype=np.uint16) -> None:
    """mmseg's NYU zip: nyu/nyu_{train,test}.txt listing '<scene>/rgb_X.jpg <scene>/sync_depth_X.png f'."""
    with zipfile.ZipFile(path, "w") as zf:
        for split, ids in (("train", [1, 2]), ("test", [3])):
            lines = []
            for i in ids:
                rgb, depth = make_scene(i, 24, 32)
                scene = f"bedroom_{i:04d}"
                d = (
                    (depth * 1000).astype(np.uint16)
                    if depth_dtype == np.uint16
                    else depth.astype(depth_dtype)
                )
                zf.writestr(f"nyu/{scene}/rgb_{i:05d}.jpg", cv2.imencode(".jpg", rgb)[1].tobytes())
                zf.writestr(f"nyu/{scene}/sync_depth_{i:05d}.png", cv2.imencode(".png", d)[1].tobytes())
                lines.append(f"/{scene}/rgb_{i:05d}.jpg /{scene}/sync_depth_{i:05d}.png 518.8579")
            zf.writestr(f"nyu/nyu_{split}.txt", "\n".join(lines) + "\n")


def test_prepare_nyu_accepts_mmseg_zip_layout(tmp_path):
    _mmseg_zip(tmp_path / "nyu.zip")
    res = _prepare_nyu(tmp_path / "nyu.zip", "-o", tmp_path / "nyu")
    assert res.returncode == 0, res.stderr
    assert "train 2 images, test 1 images" in res.stdout
    assert (tmp_path / "nyu/annotations/test/bedroom_0003_00003.png").is_file()  # mmseg's own naming


def test_mmseg_zip_reorganized_exactly_as_mmseg_own_converter(tmp_path):
    """prepare-nyu's ``reorganize`` (ours: mmseg's script imports mmengine, which data preparation must not
    need) gives the tree mmseg's ``tools/dataset_converters/nyu.py`` gives on the same zip: same paths, same
    bytes. mmseg's script is run as shipped (its ``reorganize`` on the extracted ``nyu/``)."""
    import importlib.util

    _mmseg_zip(tmp_path / "nyu.zip")
    mmseg_dir = Path(importlib.util.find_spec("mmseg").submodule_search_locations[0])
    script = runpy.run_path(str(mmseg_dir / ".mim/tools/dataset_converters/nyu.py"), run_name="mmseg_nyu")
    with zipfile.ZipFile(tmp_path / "nyu.zip") as zf:
        zf.extractall(tmp_path / "raw")
    theirs = tmp_path / "theirs"
    for sub in ("images/train", "images/test", "annotations/train", "annotations/test"):
        (theirs / sub).mkdir(parents=True)  # what its main() makes before reorganize
    script["reorganize"](str(tmp_path / "raw/nyu"), str(theirs))
    prepare_nyu.convert_mmseg_zip(tmp_path / "nyu.zip", tmp_path / "ours")

    def tree(root: Path) -> dict[str, bytes]:
        return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}

    assert len(tree(theirs)) == 6 and tree(tmp_path / "ours") == tree(theirs)


# ---------------------------------------------------------------- training sets in the config
def test_paper_config_trains_on_dense_frames_and_tests_on_labeled_ground_truth():
    from mmengine.config import Config

    cfg = Config.fromfile(CONFIG)
    train, test = cfg.train_dataloader.dataset, cfg.test_dataloader.dataset
    assert (train.data_root, train.train_set) == ("data/nyu", "dense")
    assert train.data_prefix == dict(img_path="images/train", depth_map_path="annotations/train")
    assert test.data_root == "data/nyu_labeled" and "train_set" not in test  # the 654 with filled-in depth
    assert cfg.val_dataloader.dataset.data_root == "data/nyu_labeled"
    # Laina's evaluateNYU.m: input downsampled by 2 and centre-cropped to 304x228, as in training; the
    # ground truth is loaded after resize and crop, so it stays the full 640x480 frame; no Eigen crop.
    steps = [t["type"] for t in cfg.test_pipeline]
    assert steps == [
        "LoadImageFromFile",
        "Resize",
        "DepthCenterCrop",
        "LoadCheckedDepthAnnotation",
        "PackSegInputs",
    ]
    assert cfg.test_pipeline[1]["scale"] == (320, 240) and cfg.test_pipeline[2]["crop_size"] == (304, 228)
    for ev in (cfg.val_evaluator, cfg.test_evaluator):
        assert ev.type == "NYUDepthMetric" and ev.get("crop_type") is None
        assert (ev.min_depth_eval, ev.max_depth_eval) == (1e-3, 10.0)


def _build_train_set(data_root, **overrides):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    init_default_scope("mmseg")
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({"train_dataloader.dataset.data_root": str(data_root), **overrides})
    return DATASETS.build(cfg.train_dataloader.dataset)


def test_dense_training_set_from_mmseg_zip(tmp_path, monkeypatch):
    """mmseg's nyu.zip (BTS-style lists of raw-sequence frames) -> prepare_nyu -> the default train set."""
    from nf_plugins.downstream.datasets import seg_datasets

    _mmseg_zip(tmp_path / "nyu.zip")
    assert nf_plugins_main(["prepare-nyu", str(tmp_path / "nyu.zip"), "-o", str(tmp_path / "nyu")]) == 0
    with pytest.raises(
        ValueError,
        match=r"(?s)images/train' has 2 images, but train_set='dense'.*\n  "
        r"python tools/prepare_nyu\.py nyu\.zip -o data/nyu\n.*train_set=labeled795",
    ):
        _build_train_set(tmp_path / "nyu")  # 2 frames are not the dense set
    monkeypatch.setitem(seg_datasets.NYU_TRAIN_SETS, "dense", (2, None))
    ds = _build_train_set(tmp_path / "nyu")
    assert [Path(d["img_path"]).name for d in map(ds.get_data_info, range(len(ds)))] == [
        "bedroom_0001_00001.jpg",
        "bedroom_0002_00002.jpg",
    ]
    sample = ds[0]  # through the shipped train pipeline: 2x downsample, 304x228 crop
    assert sample["inputs"].shape == (3, 228, 304)
    assert sample["data_samples"].gt_depth_map.data.shape == (1, 228, 304)
    missing = tmp_path / "absent"
    with pytest.raises(
        FileNotFoundError, match=r"absent.*\n  python tools/prepare_nyu\.py nyu\.zip -o data/nyu"
    ):
        _build_train_set(missing)


def test_labeled_795_switch(nyu_sources, tmp_path, monkeypatch):
    """train_dataloader.dataset.train_set=labeled795 (+ its data_root): the 795 labeled images."""
    from nf_plugins.downstream.datasets import seg_datasets

    raw, _ = nyu_sources
    data = tmp_path / "nyu_labeled"
    prepare_nyu.convert_labeled_mat(raw / "nyu_depth_v2_labeled.mat", raw / "splits.mat", data)
    switch = {"train_dataloader.dataset.train_set": "labeled795"}
    with pytest.raises(
        ValueError, match=r"has 4 images, but train_set='labeled795' expects the 795 .*splits\.mat"
    ):
        _build_train_set(data, **switch)
    with pytest.raises(ValueError, match=r"has 4 images, but train_set='dense'"):  # the default refuses it
        _build_train_set(data)
    monkeypatch.setitem(seg_datasets.NYU_TRAIN_SETS, "labeled795", (4, 4))
    ds = _build_train_set(data, **switch)
    assert [Path(d["img_path"]).name for d in map(ds.get_data_info, range(len(ds)))] == [
        f"nyu_{i:04d}.jpg" for i in (1, 3, 4, 6)
    ]
    with pytest.raises(ValueError, match=r"train_set='all': choose one of \['dense', 'labeled795'\] or None"):
        _build_train_set(data, **{"train_dataloader.dataset.train_set": "all"})


def test_prepare_nyu_rejects_8bit_depth_pngs(tmp_path):
    _mmseg_zip(tmp_path / "nyu8.zip", depth_dtype=np.uint8)
    res = _prepare_nyu(tmp_path / "nyu8.zip", "-o", tmp_path / "nyu")
    assert res.returncode == 2
    assert "bedroom_0001_00001.png: depth PNG is uint8" in res.stderr and "16-bit" in res.stderr


# ---------------------------------------------------------------- end to end
def _numpy_sums(gt: np.ndarray, pred: np.ndarray) -> dict:
    """Per-image sums of the NYU errors over valid pixels, written out independently in numpy."""
    valid = (gt > 1e-3) & (gt < 10.0)  # Laina: whole frame, no Eigen crop
    g, p = gt[valid].astype(np.float64), pred[valid].astype(np.float64)
    ratio = np.maximum(g / p, p / g)
    return {
        "n": g.size,
        "d1": np.sum(ratio < 1.25),
        "abs_rel": np.sum(np.abs(p - g) / g),
        "sq": np.sum((p - g) ** 2),
        "log10": np.sum(np.abs(np.log10(p) - np.log10(g))),
    }


def _run_tool_here(monkeypatch, tool: str, *args) -> None:
    """tools/<tool> run in this process (as test_segmentation_e2e does): no second torch + mmseg import."""
    monkeypatch.setattr(sys, "argv", [tool, *map(str, args)])
    runpy.run_path(str(ROOT / "tools" / tool), run_name="__main__")


def test_nyu_mat_to_trained_model_to_metrics(nyu_sources, tmp_path, monkeypatch, capsys):
    raw, _ = nyu_sources
    data = tmp_path / "nyu"
    mat, splits = raw / "nyu_depth_v2_labeled.mat", raw / "splits.mat"
    res = _prepare_nyu(mat, "--splits", splits, "-o", data)
    assert res.returncode == 0, res.stderr
    small = [
        f"train_dataloader.dataset.data_root={data}", f"val_dataloader.dataset.data_root={data}",
        f"test_dataloader.dataset.data_root={data}", "train_dataloader.batch_size=2",
        "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
        "val_dataloader.num_workers=0", "val_dataloader.persistent_workers=False",
        "test_dataloader.num_workers=0", "test_dataloader.persistent_workers=False",
        # small backbone and decoder width (Laina's decoder is heavy on CPU); structure as shipped
        "model.backbone.model_name=nf_regnet_b0", "model.decode_head.in_channels=960",
        "model.decode_head.channels=32", "optim_wrapper.optimizer.lr=0.01",
        "model.backbone.checkpoint_path=None",  # random weights: no ImageNet checkpoint offline
        "train_dataloader.dataset.train_set=None",  # 4 labeled images: skip the dense-set size check
        "train_cfg.max_iters=2", "train_cfg.val_begin=1000",  # no in-training val: tools/test.py below
        "param_scheduler.0.T_max=2", "param_scheduler.0.end=2", "default_hooks.checkpoint.interval=2",
        "default_hooks.logger.interval=1",
    ]  # fmt: skip
    work = tmp_path / "work"
    _run_tool_here(monkeypatch, "train.py", CONFIG, "--work-dir", work, "--cfg-options", *small)
    ckpt = work / "iter_2.pth"
    assert ckpt.is_file()
    log = "".join(p.read_text() for p in work.glob("*/*.log"))
    assert "loss_berhu" in log
    # tools/test.py with the shipped evaluator, plus mmengine's DumpResults to get the same predictions back.
    dump = tmp_path / "preds.pkl"
    derived = tmp_path / "test_cfg.py"
    derived.write_text(
        f"_base_ = {str(CONFIG)!r}\n"
        "test_evaluator = [dict(type='NYUDepthMetric', min_depth_eval=0.001, max_depth_eval=10.0), "
        f"dict(type='DumpResults', out_file_path={str(dump)!r})]\n"
    )
    capsys.readouterr()
    _run_tool_here(
        monkeypatch, "test.py", derived, ckpt, "--work-dir", tmp_path / "test_work", "--cfg-options", *small
    )
    stdout = capsys.readouterr().out
    metrics = json.loads((tmp_path / "test_work/test_metrics.json").read_text())["metrics"]
    nine = ("d1", "d2", "d3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog")
    assert set(metrics) == set(nine) | {f"per_image/{k}" for k in nine}
    assert all(np.isfinite(v) for v in metrics.values())
    assert "rmse=" in stdout and "per_image/rmse=" in stdout  # printed as well as recorded
    samples = pickle.loads(dump.read_bytes())
    assert sorted(Path(s["img_path"]).name for s in samples) == ["nyu_0002.jpg", "nyu_0005.jpg"]
    sums = []
    for s in samples:
        pred = s["pred_depth_map"]["data"].numpy().squeeze()
        gt_png = Path(s["img_path"].replace("images", "annotations")).with_suffix(".png")
        gt = cv2.imread(str(gt_png), cv2.IMREAD_UNCHANGED).astype(np.float64) / 1000.0  # mm -> m
        assert pred.shape == gt.shape == (H, W)  # the 304x228 crop's prediction covers the full frame
        sums.append(_numpy_sums(gt, pred))
    n = sum(x["n"] for x in sums)
    pooled = {
        "d1": sum(x["d1"] for x in sums) / n,
        "abs_rel": sum(x["abs_rel"] for x in sums) / n,
        "rmse": np.sqrt(sum(x["sq"] for x in sums) / n),
        "log10": sum(x["log10"] for x in sums) / n,
    }
    per_image = {
        "d1": np.mean([x["d1"] / x["n"] for x in sums]),
        "abs_rel": np.mean([x["abs_rel"] / x["n"] for x in sums]),
        "rmse": np.mean([np.sqrt(x["sq"] / x["n"]) for x in sums]),
        "log10": np.mean([x["log10"] / x["n"] for x in sums]),
    }
    for k in pooled:
        assert metrics[k] == pytest.approx(pooled[k], rel=1e-4, abs=1e-6), k
        assert metrics[f"per_image/{k}"] == pytest.approx(per_image[k], rel=1e-4, abs=1e-6), k

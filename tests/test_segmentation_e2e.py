"""VOC2012 + SBD in their real on-disk formats -> prepare_voc.py -> tools/train.py -> tools/test.py,
and the clear errors for bad input."""

import datetime
import json
import os
import os.path as osp
import re
import runpy
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mmseg")
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmseg.registry import DATASETS, MODELS  # noqa: E402
from scipy.io import loadmat, savemat  # noqa: E402

from nf_plugins.cli import main as nf_plugins_main  # noqa: E402
from nf_plugins.data.synthetic_voc import make_synthetic_voc  # noqa: E402
from nf_plugins.downstream.engine.cpu_config import small_run_config  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, "configs/segmentation/fcn_nf-regnet-b0-d16_4xb4-30k_voc12aug-513x513.py")


def _tar(src_dir: str, member: str, out: str) -> str:
    with tarfile.open(out, "w:gz" if out.endswith("gz") else "w") as tar:
        tar.add(osp.join(src_dir, member), arcname=member)
    return out


@pytest.fixture(scope="module")
def voc_release(tmp_path_factory):
    """The two release archives (VOCtrainval tar, SBD benchmark.tgz) built from a synthetic set."""
    src = str(tmp_path_factory.mktemp("release_src"))
    counts = make_synthetic_voc(src, n_train=12, n_val=6, n_sbd_extra=8, size=(80, 64))
    rel = tmp_path_factory.mktemp("release")
    voc_tar = _tar(src, "VOCdevkit", str(rel / "VOCtrainval_11-May-2012.tar"))
    sbd_tar = _tar(src, "benchmark_RELEASE", str(rel / "benchmark.tgz"))
    return voc_tar, sbd_tar, counts


def _prepare_voc_main():
    """``nf-plugins prepare-voc`` (what tools/prepare_voc.py runs) in process, as a function of its arguments
    returning the exit status: 0, or 2 after its one-line error."""

    def run(args: list[str]) -> int:
        try:
            return nf_plugins_main(["prepare-voc", *args])
        except SystemExit as e:
            return e.code

    return run


@pytest.fixture(scope="module")
def prepared(voc_release, tmp_path_factory):
    voc_tar, sbd_tar, counts = voc_release
    out = str(tmp_path_factory.mktemp("data"))
    args = ["--voc-tar", voc_tar, "--sbd-tar", sbd_tar, "--out", out]
    args += ["--expect-trainaug", str(counts["trainaug"]), "--expect-val", str(counts["val"])]
    assert _prepare_voc_main()(args) == 0
    return osp.join(out, "VOCdevkit", "VOC2012"), osp.join(out, "benchmark_RELEASE"), counts


def _ids(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def test_prepare_voc_writes_mmseg_vocaug_layout(prepared):
    voc, sbd, counts = prepared
    splits = osp.join(voc, "ImageSets", "Segmentation")
    train, val, aug = (_ids(osp.join(splits, f"{s}.txt")) for s in ("train", "val", "aug"))
    sbd_ids = _ids(osp.join(sbd, "dataset", "train.txt")) + _ids(osp.join(sbd, "dataset", "val.txt"))
    assert set(aug) == set(sbd_ids) - set(train) - set(val) and len(aug) == counts["aug"]
    assert set(_ids(osp.join(splits, "trainaug.txt"))) == set(train) | set(aug)
    for img_id in aug:  # each aug PNG holds exactly the .mat's GTcls.Segmentation, as a VOC palette PNG
        png = Image.open(osp.join(voc, "SegmentationClassAug", img_id + ".png"))
        mat = loadmat(osp.join(sbd, "dataset", "cls", img_id + ".mat"))["GTcls"]["Segmentation"][0, 0]
        assert png.mode == "P" and png.getpalette()[3:6] == [128, 0, 0]  # VOC colour of class 1
        np.testing.assert_array_equal(np.asarray(png), mat)


def test_train_then_test_gives_checkpoint_and_miou(prepared, tmp_path, monkeypatch):
    voc, _, _ = prepared
    cfg = small_run_config(CONFIG, voc, str(tmp_path / "work"), max_iters=2, batch_size=2)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # tools/test.py evaluates below
    cfg_path = str(tmp_path / "small.py")
    cfg.dump(cfg_path)
    monkeypatch.setattr(sys, "argv", ["train.py", cfg_path])
    runpy.run_path(osp.join(ROOT, "tools/train.py"), run_name="__main__")
    ckpt = tmp_path / "work" / "iter_2.pth"
    assert ckpt.is_file()
    out = tmp_path / "metrics.json"
    monkeypatch.setattr(
        sys, "argv", ["test.py", cfg_path, str(ckpt), "--work-dir", str(tmp_path / "t"), "--out", str(out)]
    )
    runpy.run_path(osp.join(ROOT, "tools/test.py"), run_name="__main__")
    metrics = json.loads(out.read_text())["metrics"]
    record = json.loads((tmp_path / "t" / "test_metrics.json").read_text())
    assert record["metrics"] == metrics
    assert datetime.datetime.fromisoformat(record["date"]).tzinfo is not None  # collect-results' date
    miou, aacc = _miou_and_acc_of_checkpoint(cfg_path, str(ckpt), voc)
    assert metrics["mIoU"] == pytest.approx(miou, abs=0.01) and metrics["aAcc"] == pytest.approx(
        aacc, abs=0.01
    )


def _miou_and_acc_of_checkpoint(cfg_path: str, ckpt: str, voc: str) -> tuple[float, float]:
    """mIoU and pixel accuracy (%) over the val split, counted here in numpy from the checkpoint's
    predictions (mmseg's ``inference_model``) and the VOC PNGs: 255 ignored, classes absent from both
    prediction and ground truth skipped, as in the VOC benchmark."""
    from mmseg.apis import inference_model, init_model

    model = init_model(cfg_path, ckpt, device="cpu")
    # inference_model drops LoadAnnotations (no labels at inference); the label check must go with it
    model.cfg.test_pipeline = [t for t in model.cfg.test_pipeline if t["type"] != "ValidateSegSample"]
    inter, union = np.zeros(21), np.zeros(21)
    correct = labelled = 0
    for img_id in _ids(osp.join(voc, "ImageSets", "Segmentation", "val.txt")):
        pred = (
            inference_model(model, osp.join(voc, "JPEGImages", img_id + ".jpg")).pred_sem_seg.data[0].numpy()
        )
        gt = np.asarray(Image.open(osp.join(voc, "SegmentationClass", img_id + ".png")))
        valid = gt != 255
        p, g = pred[valid], gt[valid]
        correct, labelled = correct + int((p == g).sum()), labelled + int(valid.sum())
        for c in range(21):
            inter[c] += np.sum((p == c) & (g == c))
            union[c] += np.sum((p == c) | (g == c))
    present = union > 0
    return 100 * float(np.mean(inter[present] / union[present])), 100 * correct / labelled


def test_prepare_voc_count_check_and_bad_mat(voc_release, tmp_path, capsys):
    voc_tar, sbd_tar, counts = voc_release
    args = ["--voc-tar", voc_tar, "--sbd-tar", sbd_tar, "--out", str(tmp_path / "a"), "--expect-val", "6"]
    assert _prepare_voc_main()(args) == 2  # the CLI's one-line error (the tool returned 1)
    err = capsys.readouterr().err
    assert "= 20 images, expected 10582: is the SBD release (benchmark.tgz) complete?" in err
    assert re.search(r"extract benchmark.tgz: \d+/\d+ file \(100%\)", err)  # progress (a line off a terminal)
    # a class file with label 40: the error names the .mat file
    from nf_plugins.data.voc import prepare_vocaug

    out = tmp_path / "b"
    for tar in (voc_tar, sbd_tar):
        with tarfile.open(tar) as t:
            t.extractall(out, filter="data")
    aug_id = _ids(out / "benchmark_RELEASE/dataset/train.txt")[0]
    bad = out / "benchmark_RELEASE/dataset/cls" / f"{aug_id}.mat"
    seg = loadmat(str(bad))["GTcls"]["Segmentation"][0, 0].copy()
    seg[0, 0] = 40
    savemat(str(bad), {"GTcls": {"Segmentation": seg}})
    with pytest.raises(ValueError, match=rf"{aug_id}\.mat has labels \[40\] outside 0\.\.20 and 255"):
        prepare_vocaug(
            str(out / "VOCdevkit/VOC2012"), str(out / "benchmark_RELEASE"), counts["trainaug"], counts["val"]
        )


def test_safe_extract_refuses_path_traversal(tmp_path):
    from nf_plugins.data.voc import safe_extract

    evil = tmp_path / "evil.tar"
    payload = tmp_path / "x.txt"
    payload.write_text("x")
    with tarfile.open(evil, "w") as t:
        t.add(payload, arcname="../escaped.txt")
    with pytest.raises(tarfile.FilterError):
        safe_extract(str(evil), str(tmp_path / "dest"))
    assert not (tmp_path / "escaped.txt").exists()


def _dataset(voc: str, split: str = "train"):
    init_default_scope("mmseg")
    cfg = Config.fromfile(CONFIG)
    ds = cfg.val_dataloader.dataset
    ds.data_root, ds.ann_file = voc, f"ImageSets/Segmentation/{split}.txt"
    return DATASETS.build(ds)


def test_missing_data_root_names_prepare_command(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"not found: .*nowhere.*\n  python tools/prepare_voc.py --voc-tar"
    ):
        _dataset(str(tmp_path / "nowhere"))


def test_bad_mask_label_and_size_mismatch_name_the_files(voc_release, tmp_path):
    voc_tar, _, _ = voc_release
    with tarfile.open(voc_tar) as t:
        t.extractall(tmp_path, filter="data")
    voc = str(tmp_path / "VOCdevkit/VOC2012")
    ids = _ids(osp.join(voc, "ImageSets/Segmentation/train.txt"))
    png = osp.join(voc, "SegmentationClass", ids[0] + ".png")
    im = Image.open(png)
    arr = np.asarray(im).copy()
    arr[2, 3] = 30
    bad = Image.fromarray(arr, mode="P")
    bad.putpalette(im.getpalette())
    bad.save(png)
    ds = _dataset(voc)
    with pytest.raises(ValueError, match=rf"mask .*{ids[0]}\.png has labels \[30\] outside 0\.\.20 and 255"):
        ds[0]
    small = osp.join(voc, "SegmentationClass", ids[1] + ".png")
    Image.open(small).resize((10, 10)).save(small)
    with pytest.raises(
        ValueError, match=rf"mask .*{ids[1]}\.png is 10x10 but image .*{ids[1]}\.jpg is \d+x\d+"
    ):
        ds[1]
    assert ds[2]["data_samples"].gt_sem_seg.data.max() <= 255  # good samples still load


def test_unknown_backbone_in_config_names_the_key():
    init_default_scope("mmseg")
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.model_name = "nf_regnet_b9"
    cfg.model.backbone.checkpoint_path = None
    with pytest.raises(KeyError, match=r"model.backbone.model_name='nf_regnet_b9'.*did you mean"):
        MODELS.build(cfg.model)


def test_missing_imagenet_checkpoint_is_an_error_not_random_weights():
    init_default_scope("mmseg")
    cfg = Config.fromfile(CONFIG)
    assert not os.path.exists(cfg.model.backbone.checkpoint_path)
    with pytest.raises(
        FileNotFoundError, match="model.backbone.checkpoint_path='checkpoints/nf_regnet_b0_in1k"
    ):
        MODELS.build(cfg.model)


def test_random_rescale_scales_each_image_by_its_own_size():
    from nf_plugins.downstream import RandomRescale

    img = np.zeros((80, 100, 3), np.uint8)
    seg = np.zeros((80, 100), np.uint8)
    seg[:, 50:] = 7
    for ratio, size in ((0.5, (40, 50)), (2.0, (160, 200))):
        out = RandomRescale((ratio, ratio))(
            dict(img=img.copy(), gt_seg_map=seg.copy(), seg_fields=["gt_seg_map"])
        )
        assert out["img"].shape[:2] == size and out["gt_seg_map"].shape == size
        assert set(np.unique(out["gt_seg_map"]).tolist()) == {0, 7}  # nearest: no invented labels
    np.random.seed(0)
    sides = [RandomRescale((0.5, 2.0))(dict(img=img.copy()))["img"].shape[1] for _ in range(200)]
    assert 50 <= min(sides) < 60 and 190 < max(sides) <= 200

"""Segmentation/depth reliability: corrupt files, empty splits, config typos, NaN losses, atomic
checkpoints and weights_only loading of mmengine's training state, through the real tools."""

from __future__ import annotations

import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("mmseg")
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import HOOKS, init_default_scope  # noqa: E402
from mmseg.registry import DATASETS, MODELS  # noqa: E402
from PIL import Image  # noqa: E402

from nf_plugins.cli import main as nf_plugins_cli  # noqa: E402
from nf_plugins.data.synthetic_voc import make_synthetic_voc  # noqa: E402
from nf_plugins.data.voc import prepare_vocaug  # noqa: E402
from nf_plugins.downstream.engine.checkpoint_io import (  # noqa: E402
    AtomicLocalBackend,
    load_checkpoint_file,
)
from nf_plugins.downstream.engine.config import load_config  # noqa: E402
from nf_plugins.downstream.engine.cpu_config import small_run_config  # noqa: E402
from nf_plugins.models import create_model as nf_plugins_create_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEG_CONFIG = str(ROOT / "configs/segmentation/fcn_nf-regnet-b0-d16_4xb4-30k_voc12aug-513x513.py")
DEPTH_CONFIG = str(ROOT / "configs/depth/uproj_nf-regnet-b0_8xb32-7.5k_nyu-304x228.py")


@pytest.fixture
def voc_src(tmp_path):
    counts = make_synthetic_voc(str(tmp_path), n_train=4, n_val=2, n_sbd_extra=3, size=(48, 40))
    return tmp_path / "VOCdevkit" / "VOC2012", tmp_path / "benchmark_RELEASE", counts


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _first_id(voc: Path, split: str = "train") -> str:
    return (voc / "ImageSets/Segmentation" / f"{split}.txt").read_text().split()[0]


# ---- data preparation: files that do not decode ---------------------------------------------------

VOC_FILE_CASES = {
    "garbage_jpeg": (lambda voc, i: (voc / "JPEGImages" / f"{i}.jpg").write_bytes(b"not a jpeg at all"),
                     r"JPEGImages/{id}\.jpg: not a decodable image \(UnidentifiedImageError"),
    "truncated_jpeg": (lambda voc, i: _truncate(voc / "JPEGImages" / f"{i}.jpg"),
                       r"JPEGImages/{id}\.jpg: not a decodable image \(OSError: image file is truncated"),
    "truncated_png": (lambda voc, i: _truncate(voc / "SegmentationClass" / f"{i}.png"),
                      r"SegmentationClass/{id}\.png: not a decodable image .*corrupt or truncated"),
    "rgb_mask": (lambda voc, i: Image.open(voc / "SegmentationClass" / f"{i}.png").convert("RGB").save(
                     voc / "SegmentationClass" / f"{i}.png"),
                 r"mask .*{id}\.png has 3 channels; expected a palette or 8-bit gray PNG"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(VOC_FILE_CASES))
def test_prepare_voc_names_files_that_do_not_decode(voc_src, case):
    voc, sbd, counts = voc_src
    img_id = _first_id(voc)
    damage, message = VOC_FILE_CASES[case]
    damage(voc, img_id)
    with pytest.raises(ValueError, match=message.format(id=img_id)):
        prepare_vocaug(str(voc), str(sbd), counts["trainaug"], counts["val"])
    assert not (voc / "ImageSets/Segmentation/trainaug.txt").exists()  # nothing half-prepared is listed


def _nyu_layout(root: Path, n: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(
                str(root / "images" / split / f"bedroom_{i:04d}.jpg"),
                rng.integers(0, 255, (24, 32, 3), np.uint8),
            )
            cv2.imwrite(
                str(root / "annotations" / split / f"bedroom_{i:04d}.png"),
                rng.integers(500, 9000, (24, 32), np.uint16),
            )  # noqa: E501
    return root  # fmt: skip


@pytest.mark.parametrize(
    "victim, message",
    [
        ("images/train/bedroom_0001.jpg", r"bedroom_0001\.jpg: not a decodable image \(OSError"),
        (
            "annotations/test/bedroom_0000.png",
            r"bedroom_0000\.png: (not a readable PNG|not a decodable image)",
        ),
    ],
)
def test_prepare_nyu_check_names_truncated_files(tmp_path, victim, message):
    from nf_plugins.data import nyu as prepare_nyu

    root = _nyu_layout(tmp_path / "nyu")
    assert prepare_nyu.check_layout(root) == {"train": 2, "test": 2}
    _truncate(root / victim, 0.6)
    with pytest.raises(prepare_nyu.NYUFormatError, match=message):
        prepare_nyu.check_layout(root)


def test_prepare_nyu_stays_free_of_mmseg_mmcv_mmengine(tmp_path):
    """``tools/prepare_nyu.py --check`` runs its full image check in a fresh interpreter without loading
    mmseg, mmcv or mmengine (data preparation needs none of them; torch comes with ``import nf_plugins``,
    which registers the models into timm)."""
    root = _nyu_layout(tmp_path / "nyu")
    code = (
        "import runpy, sys; sys.argv = ['prepare_nyu.py', '--check', sys.argv[1]]\n"
        "try:\n    runpy.run_path('tools/prepare_nyu.py', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print([m for m in ('mmseg', 'mmcv', 'mmengine') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(root)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines() == [
        f"NYU layout OK at {root}: train 2 images, test 2 images",
        "[]",
    ]


# ---- datasets: missing folders and empty splits --------------------------------------------------


def _dataset(cfg_path: str, **overrides):
    init_default_scope("mmseg")
    cfg = Config.fromfile(cfg_path)
    ds = cfg.val_dataloader.dataset
    ds.update(overrides)
    return DATASETS.build(ds)


def test_empty_voc_split_is_an_error_not_an_endless_loop(voc_src):
    voc, _, _ = voc_src
    (voc / "ImageSets/Segmentation/val.txt").write_text("")
    with pytest.raises(
        ValueError, match=r"Pascal VOC split .*val\.txt.* has no images .*\n  python tools/prepare_voc"
    ):
        _dataset(SEG_CONFIG, data_root=str(voc))


def test_nyu_dataset_missing_and_empty_folders(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"NYUv2 data_root not found: .*nowhere.*\n  python tools/prepare_nyu"
    ):
        _dataset(DEPTH_CONFIG, data_root=str(tmp_path / "nowhere"))
    root = _nyu_layout(tmp_path / "nyu")
    assert len(_dataset(DEPTH_CONFIG, data_root=str(root))) == 2
    for f in (root / "images/test").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match=r"NYUv2 split .*images/test.* has no images"):
        _dataset(DEPTH_CONFIG, data_root=str(root))


# ---- configs: misspelt keys ------------------------------------------------------------------------


def test_misspelt_top_level_config_key_is_refused(tmp_path):
    cfg = tmp_path / "typo.py"
    cfg.write_text(f"_base_ = [{SEG_CONFIG!r}]\ntrain_dataloder = dict(batch_size=2)\n")
    with pytest.raises(
        ValueError,
        match=r"'train_dataloder' is not read by mmengine's Runner; did you mean 'train_dataloader'",
    ):  # noqa: E501
        load_config(str(cfg), None, None, "none")
    with pytest.raises(ValueError, match=r"'optim_wraper'.*did you mean 'optim_wrapper'"):
        load_config(SEG_CONFIG, None, {"optim_wraper": {"type": "OptimWrapper"}}, "none")
    assert load_config(SEG_CONFIG, str(tmp_path / "w"), None, "none").work_dir == str(tmp_path / "w")


def test_unknown_nested_model_key_names_the_class_and_key():
    init_default_scope("mmseg")
    cfg = Config.fromfile(SEG_CONFIG)
    cfg.model.backbone.checkpoint_path = None
    cfg.model.backbone.modle_name = "nf_resnet50"
    with pytest.raises(
        TypeError, match=r"model.backbone got unknown key 'modle_name'; did you mean 'model_name'"
    ):
        MODELS.build(cfg.model)
    del cfg.model.backbone["modle_name"]
    cfg.model.backbone.drop_rat = 0.1  # not a near-miss of ours: timm's model names what it accepts
    with pytest.raises(TypeError, match=r"model.backbone \('nf_regnet_b0'\): NormFreeNet got unexpected "
                       r"keyword arguments \['drop_rat'\]; it accepts .*drop_rate"):  # fmt: skip
        MODELS.build(cfg.model)


# ---- atomic checkpoint writes ----------------------------------------------------------------------


def test_atomic_backend_keeps_the_old_file_when_a_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "iter_2.pth"
    target.write_bytes(b"good checkpoint")

    class Boom(Exception):
        pass

    def failing_fsync(fd):
        raise Boom("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(Boom):
        AtomicLocalBackend().put(b"x" * 1000, target)
    assert target.read_bytes() == b"good checkpoint" and sorted(os.listdir(tmp_path)) == ["iter_2.pth"]


# ---- NaN loss, last good checkpoint, resume with weights_only=True --------------------------------


@HOOKS.register_module()
class _PoisonWeightsHook(Hook):
    """Test fault: sets one backbone weight to NaN before iteration ``at_iter`` (1-based)."""

    def __init__(self, at_iter: int) -> None:
        self.at_iter = at_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter + 1 == self.at_iter:
            model = runner.model.module if hasattr(runner.model, "module") else runner.model
            with torch.no_grad():
                next(model.backbone.parameters()).fill_(float("nan"))


@HOOKS.register_module()
class _RecordItersHook(Hook):
    """Test probe: the 1-based iterations this process trained."""

    seen: list[int] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        _RecordItersHook.seen.append(runner.iter + 1)


def _train(cfg_path: str, monkeypatch, *extra: str) -> None:
    _run_tool("train.py", monkeypatch, cfg_path, *extra)


def test_nan_loss_stops_seg_training_keeps_last_good_checkpoint_and_resumes(voc_src, tmp_path, monkeypatch):
    voc, sbd, counts = voc_src
    prepare_vocaug(str(voc), str(sbd), counts["trainaug"], counts["val"])
    work = tmp_path / "work"
    cfg = small_run_config(SEG_CONFIG, str(voc), str(work), crop=(48, 48), max_iters=4, batch_size=2)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint.interval = 1
    assert cfg.default_hooks.checkpoint.backend_args == dict(backend="atomic_local")
    poisoned = tmp_path / "poisoned.py"
    cfg.custom_hooks = [*cfg.custom_hooks, dict(type="_PoisonWeightsHook", at_iter=3)]
    cfg.dump(str(poisoned))
    with pytest.raises(
        FloatingPointError, match=r"loss is nan at iteration 3; training stopped before saving"
    ):
        _train(str(poisoned), monkeypatch)
    assert sorted(p.name for p in work.glob("*.pth")) == ["iter_1.pth", "iter_2.pth"]
    assert (work / "last_checkpoint").read_text().endswith("iter_2.pth")
    state = load_checkpoint_file(str(work / "iter_2.pth"))  # weights_only=True: mmengine's state is allowed
    assert state["meta"]["iter"] == 2
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    # Resume from the last good checkpoint (weights_only=True load of mmengine's whole training state), even
    # with mmengine's pointer file truncated (it writes it with a plain open(): a kill there empties it).
    (work / "last_checkpoint").write_text("")
    cfg.custom_hooks = [h for h in cfg.custom_hooks if h["type"] != "_PoisonWeightsHook"]
    cfg.custom_hooks.append(dict(type="_RecordItersHook"))
    _RecordItersHook.seen.clear()
    clean = tmp_path / "clean.py"
    cfg.dump(str(clean))
    _train(str(clean), monkeypatch, "--resume")
    final = load_checkpoint_file(str(work / "iter_4.pth"))
    assert _RecordItersHook.seen == [3, 4]  # resumed after iteration 2, not restarted from 0
    assert final["meta"]["iter"] == 4 and (work / "last_checkpoint").read_text().endswith("iter_4.pth")
    assert all(torch.isfinite(v).all() for v in final["state_dict"].values() if v.is_floating_point())
    assert not [p for p in os.listdir(work) if p.endswith(".tmp")]
    assert osp.isfile(work / "iter_3.pth")  # max_keep_ckpts=2 keeps the newest two


class _GetattrGadget:
    """Pickles as ``getattr(numpy.ndarray, 'tofile')``: attribute access on an allowed class, the first
    step of a gadget chain (``numpy.ndarray`` itself is allowed, so only the getattr check stops it)."""

    def __reduce__(self):
        return getattr, (np.ndarray, "tofile")


def test_checkpoint_getattr_is_limited_to_history_buffer_statistics(tmp_path):
    path = tmp_path / "gadget.pth"
    torch.save({"meta": {}, "x": _GetattrGadget()}, path)
    with pytest.raises(ValueError, match=r"getattr\(ndarray, 'tofile'\); only HistoryBuffer's statistics"):
        load_checkpoint_file(str(path))
    from mmengine.logging import HistoryBuffer

    buf = HistoryBuffer()
    buf.update(2.0)
    buf.update(4.0)
    torch.save({"message_hub": {"log_scalars": {"loss": buf}}}, tmp_path / "ok.pth")
    loaded = load_checkpoint_file(str(tmp_path / "ok.pth"))["message_hub"]["log_scalars"]["loss"]
    assert loaded.mean() == 3.0 and loaded.statistics("max") == 4.0


@pytest.mark.parametrize(
    "cfg_path",
    sorted(
        f"configs/{d}/{p.name}"
        for d in ("segmentation", "depth")
        for p in (ROOT / "configs" / d).glob("*.py")
    ),
)
def test_every_shipped_config_has_the_safety_nets(cfg_path):
    """All 32 seg/depth configs (4 of them on timm's weights): NaN stop, atomic checkpoints, checked
    datasets (inherited from two bases)."""
    cfg = Config.fromfile(str(ROOT / cfg_path))
    assert {h["type"] for h in cfg.custom_hooks} >= {"NonFiniteLossHook"}
    assert cfg.default_hooks.checkpoint.backend_args == dict(backend="atomic_local")
    train = cfg.train_dataloader.dataset
    for ds in [*train.get("datasets", [train]), cfg.val_dataloader.dataset, cfg.test_dataloader.dataset]:
        assert ds["type"] in ("CheckedPascalVOCDataset", "CheckedNYUDataset"), ds["type"]


def test_tools_add_the_safety_nets_to_any_config():
    """tools/train.py runs mmseg's own configs too: they get atomic checkpoints and the NaN stop."""
    from nf_plugins.downstream.engine.runner import add_safety_defaults

    cfg = Config(dict(default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=10))))
    add_safety_defaults(cfg)
    assert cfg.default_hooks.checkpoint.backend_args == dict(backend="atomic_local")
    assert [h["type"] for h in cfg.custom_hooks] == ["NonFiniteLossHook"]
    petrel = dict(backend="petrel")  # a storage backend the user chose is kept; the hook is not doubled
    cfg = Config(
        dict(default_hooks=dict(checkpoint=dict(backend_args=petrel)), custom_hooks=cfg.custom_hooks)
    )
    add_safety_defaults(cfg)
    assert cfg.default_hooks.checkpoint.backend_args == petrel and len(cfg.custom_hooks) == 1


def test_misspelt_registry_type_names_the_closest_registered_types(tmp_path, monkeypatch):
    """mmengine says only "NFBackbon is not in the mmseg::model registry"; the tools add the right name."""
    from mmseg.registry import TRANSFORMS

    from nf_plugins.downstream.engine.registry_hints import registry_hints

    cfg = small_run_config(SEG_CONFIG, str(tmp_path / "no_data_needed"), str(tmp_path / "work"))
    cfg.model.backbone.type = "NFBackbon"
    cfg_path = tmp_path / "typo.py"
    cfg.dump(str(cfg_path))
    with pytest.raises(
        KeyError, match=r"type='NFBackbon' is not a registered model .*did you mean 'NFBackbone'"
    ):
        _train(str(cfg_path), monkeypatch)
    init_default_scope("mmseg")
    with pytest.raises(KeyError, match=r"type='RandomFlipp' .* did you mean 'RandomFlip'"), registry_hints():
        TRANSFORMS.build(dict(type="RandomFlipp"))
    with pytest.raises(KeyError, match=r"^'unrelated'$"), registry_hints():  # other KeyErrors pass through
        raise KeyError("unrelated")


# ---- issue 15: tools/test.py scores only weights that loaded; NaN metrics; values and outputs checked --


def _run_tool(tool: str, monkeypatch, *argv: str) -> None:
    """``tools/<tool>``'s command (``nf-plugins train``/``test``) in this process, with ``--debug``: the error
    itself is raised (without it the command prints it on one line and exits 2)."""
    nf_plugins_cli(["train" if tool == "train.py" else "test", "--debug", *argv])


def _model_checkpoint(cfg: Config, path: Path) -> Path:
    """An mmengine-style checkpoint (``state_dict`` + ``meta``) of the model ``cfg`` builds."""
    init_default_scope("mmseg")
    model_cfg = cfg.model.copy()
    model_cfg.backbone.checkpoint_path = None
    torch.save(dict(state_dict=MODELS.build(model_cfg).state_dict(), meta={}), path)
    return path


@pytest.mark.slow  # ~100 s on 2 shared cores; the default run has the key check's unit test below
def test_test_tool_refuses_a_checkpoint_whose_weights_do_not_fit(voc_src, tmp_path, monkeypatch):
    """mmengine loads non-strictly: a checkpoint of another backbone (NF-RegNet-B2 into the B0 config) was
    scored half-loaded, and a train_imagenet checkpoint loaded nothing at all (exit 0); both are errors."""
    from nf_plugins.hub.checkpoint import save_training_checkpoint

    voc, sbd, counts = voc_src
    prepare_vocaug(str(voc), str(sbd), counts["trainaug"], counts["val"])
    cfg = small_run_config(SEG_CONFIG, str(voc), str(tmp_path / "work"), crop=(48, 48))
    cfg_path = tmp_path / "b0.py"
    cfg.dump(str(cfg_path))
    other = cfg.copy()  # the same config with NF-RegNet-B2 (as configs/segmentation/fcn_nf-regnet-b2...)
    other.model.backbone.model_name = "nf_regnet_b2"
    other.model.decode_head.in_channels = nf_plugins_create_model("nf_regnet_b2").feature_info[-1]["num_chs"]
    b2 = _model_checkpoint(other, tmp_path / "b2.pth")
    stem = "backbone.model.stem.conv.weight"
    theirs = list(torch.load(b2, weights_only=True)["state_dict"][stem].shape)
    ours = list(nf_plugins_create_model("nf_regnet_b0").stem.conv.weight.shape)
    message = (
        r"b2\.pth' does not fit the model of this config; "
        r"\d+ unexpected keys: backbone\.model\.stages\.0\.1\..*; "
        rf"\d+ shape mismatches: {re.escape(f'{stem}: checkpoint {theirs}, model {ours}')}"
    )
    with pytest.raises(ValueError, match=message):
        _run_tool("test.py", monkeypatch, str(cfg_path), str(b2))
    imagenet = tmp_path / "last.pth"
    classifier = nf_plugins_create_model("nf_regnet_b0", num_classes=21)
    save_training_checkpoint(dict(model_name="nf_regnet_b0", model=classifier.state_dict(), step=1), imagenet)
    with pytest.raises(ValueError, match=r"written by tools/train_imagenet\.py \(the ImageNet classifier "
                       r"'nf_regnet_b0'\).*holds no weights of the segmentation/depth model"):  # fmt: skip
        _run_tool("test.py", monkeypatch, str(cfg_path), str(imagenet))
    assert not list((tmp_path / "work").rglob("test_metrics.json"))
    # a fitting checkpoint loads and is scored: tests/test_segmentation_e2e.py (train, then tools/test.py)


def test_test_split_without_valid_depth_writes_null_and_exits_non_zero(tmp_path, monkeypatch):
    """mmseg's DepthMetric (any mmseg config) turns a split with no valid depth into NaN metrics; the JSON
    file held bare NaN (not JSON) and the tool exited 0."""
    root = tmp_path / "nyu"
    for split in ("train", "test"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(root / "images" / split / f"room_{i}.jpg"), np.full((480, 640, 3), 99, np.uint8))
            cv2.imwrite(str(root / "annotations" / split / f"room_{i}.png"), np.zeros((480, 640), np.uint16))
    cfg = Config.fromfile(DEPTH_CONFIG)
    cfg.model.decode_head.channels = 32
    cfg.model.backbone.checkpoint_path = None
    cfg.test_dataloader.dataset.data_root = str(root)
    cfg.test_dataloader.num_workers, cfg.test_dataloader.persistent_workers = 0, False
    cfg.test_evaluator = dict(type="DepthMetric", min_depth_eval=1e-3, max_depth_eval=10.0)
    cfg.work_dir = str(tmp_path / "work")
    cfg_path = tmp_path / "depth.py"
    cfg.dump(str(cfg_path))
    ckpt = _model_checkpoint(cfg, tmp_path / "depth.pth")
    with pytest.raises(SystemExit) as exit_info:
        _run_tool("test.py", monkeypatch, str(cfg_path), str(ckpt))
    assert exit_info.value.code == 1
    text = (tmp_path / "work/test_metrics.json").read_text()
    metrics = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in test_metrics.json"))
    assert metrics["metrics"] and all(v is None for v in metrics["metrics"].values())


def test_strict_load_names_every_missing_unexpected_and_misshaped_key():
    from nf_plugins.downstream.engine.checkpoint_fit import check_checkpoint_fits

    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    state = {
        f"module.{k}": v
        for k, v in model.state_dict().items()
        if k not in ("0.bias", "1.num_batches_tracked")
    }
    state["module.0.weight"] = torch.zeros(3, 4)
    state["module.extra"] = torch.zeros(1)
    message = (
        r"'c.pth' does not fit the model of this config; 1 missing keys: 0\.bias; 1 unexpected keys: extra; "
        r"1 shape mismatches: 0\.weight: checkpoint \[3, 4\], model \[3, 2\]\. Testing loads weights strictly"
    )
    with pytest.raises(ValueError, match=message):
        check_checkpoint_fits(model, {"state_dict": state}, "c.pth", [(r"^module\.", "")])
    del state["module.extra"]
    state["module.0.weight"], state["module.0.bias"] = torch.zeros(3, 2), torch.zeros(3)
    check_checkpoint_fits(
        model, {"state_dict": state}, "c.pth", [(r"^module\.", "")]
    )  # BN's counter may be absent


@pytest.mark.parametrize("tool", ["train.py", "test.py"])
@pytest.mark.parametrize(
    "option, message",
    [
        ("train_cfg.max_iters=abc", r"--cfg-options train_cfg.max_iters='abc': the config's value is 30000, "
                                    r"a number; give a number"),
        ("train_cfg.max_iters=2.5", r"train_cfg.max_iters=2.5 must be an integer >= 1"),
        ("train_dataloader.batch_size=0", r"train_dataloader.batch_size=0 must be an integer >= 1"),
        ("train_dataloader.dataset.datasets.0.data_root=7", r"data_root=7: the config's value is .*a str"),
    ],
)  # fmt: skip
def test_cfg_options_of_the_wrong_type_fail_before_any_work(tmp_path, monkeypatch, tool, option, message):
    """Refused when the config loads: the runner (model, data) is never built, nothing is written."""
    from nf_plugins.downstream.engine.runner import NFRunner

    def never(*args, **kwargs):
        raise AssertionError("the runner was built")

    monkeypatch.setattr(NFRunner, "from_cfg", never)
    argv = [SEG_CONFIG, *([str(tmp_path / "unused.pth")] if tool == "test.py" else [])]
    (tmp_path / "unused.pth").write_bytes(b"")
    with pytest.raises(ValueError, match=message):
        _run_tool(tool, monkeypatch, *argv, "--work-dir", str(tmp_path / "w"), "--cfg-options", option)
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    "tool, flag", [("train.py", "--work-dir"), ("test.py", "--work-dir"), ("test.py", "--out")]
)
def test_unwritable_output_of_the_mmseg_tools_fails_at_once_leaving_nothing(
    tmp_path, monkeypatch, tool, flag
):
    (tmp_path / "blocker").write_text("a file, not a folder")
    (tmp_path / "ckpt.pth").write_bytes(b"")
    argv = [SEG_CONFIG, *([str(tmp_path / "ckpt.pth")] if tool == "test.py" else [])]
    outputs = {"--work-dir": str(tmp_path / "work"), flag: str(tmp_path / "blocker" / "sub" / "x.json")}
    before = sorted(tmp_path.rglob("*"))
    start = time.perf_counter()
    with pytest.raises(NotADirectoryError, match=rf"{flag} .*blocker.* is not a folder; choose another path"):
        _run_tool(tool, monkeypatch, *argv, *(x for kv in outputs.items() for x in kv))
    assert time.perf_counter() - start < 2.0
    assert sorted(tmp_path.rglob("*")) == before

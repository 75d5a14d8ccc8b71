"""Fine-tune today: ImageNet weights land bit for bit in the backbone of the shipped configs.

timm's published ``nf_resnet50.ra2_in1k`` / ``nf_regnet_b1.ra2_in1k`` weights are written here in timm's
Hub format (random non-trivial values, ``model.safetensors`` in huggingface_hub's cache layout, offline),
and a user's own paper-exact weights are made by tools/train_imagenet.py + tools/export_hub.py. Each
config is run by tools/train.py itself; a hook copies the backbone when training starts, i.e. after the
runner's ``init_weights`` and before the first step, and every tensor must equal the checkpoint's.
Then 2 iterations of training and tools/test.py on the VOC-format and NYU-format fixtures.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os.path as osp
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import timm
import torch
from PIL import Image

pytest.importorskip("mmseg")
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.model import is_model_wrapper  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import HOOKS, init_default_scope  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from timm.models import save_for_hf  # noqa: E402
from torch import nn  # noqa: E402

from nf_plugins.cli import call  # noqa: E402
from nf_plugins.data import nyu, synthetic_nyu  # noqa: E402
from nf_plugins.data.synthetic_voc import make_synthetic_voc  # noqa: E402
from nf_plugins.data.voc import prepare_vocaug  # noqa: E402
from nf_plugins.downstream.engine.checkpoint_io import load_checkpoint_file  # noqa: E402
from nf_plugins.downstream.engine.cpu_config import small_run_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEG, DEPTH = ROOT / "configs/segmentation", ROOT / "configs/depth"
VOC = "{}-d16_4xb4-30k_voc12aug-513x513.py"
NYU = "{}_8xb32-7.5k_nyu-304x228.py"
# timm-weights config -> (timm's model, the paper-exact config it must equal apart from the backbone)
TIMM_CONFIGS = {
    folder / form.format(f"{task}_timm-{arch}.ra2-in1k"): (name, folder / form.format(f"{task}_{arch}"))
    for folder, form, task in ((SEG, VOC, "fcn"), (DEPTH, NYU, "uproj"))
    for name, arch in (("nf_resnet50", "nf-resnet50"), ("nf_regnet_b1", "nf-regnet-b1"))
}
CLASSIFIER = {"head.fc.weight", "head.fc.bias"}  # the ImageNet classifier, which NFBackbone removes

_LANDED: dict[str, dict] = {}


@HOOKS.register_module(force=True)
class BackboneSnapshotHook(Hook):
    """Copies the backbone's tensors at ``before_train``: mmengine's ``Runner.train`` calls it after
    ``init_weights`` and ``load_or_resume`` and before the first optimizer step. ``stop`` then ends the
    run there (the loop's own ``stop_training`` flag: no step, no checkpoint)."""

    def __init__(self, key: str, stop: bool = False) -> None:
        self.key, self.stop = key, stop

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        tensors = model.backbone.model.state_dict()
        _LANDED[self.key] = dict(
            backbone={k: v.detach().clone() for k, v in tensors.items()},
            head_initialised=model.decode_head.is_init,
        )
        runner.train_loop.stop_training = self.stop


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on these tiny tensors a second OpenMP thread costs more than it gives, and
    on shared cores its spin-waits cost several times the work (measured: 3 NF-RegNet-B0 steps at 32 px,
    batch 4, 0.23 s CPU with one thread against 2.3-7.6 s with two, at load average 14 on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def timm_weights(name: str, hf_cache, tmp_path: Path) -> dict[str, torch.Tensor]:
    """``timm/<name>.ra2_in1k`` in the cache, as timm's ``save_for_hf`` writes it, with random values that
    differ from timm's init in every tensor; returns the tensors read back from the cached file."""
    model = timm.create_model(f"{name}.ra2_in1k")  # timm's architecture (the tag routes to timm's code)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            noise = torch.randn(t.shape, generator=gen)
            t.copy_(1 + 0.2 * noise if key.endswith("gain") else (0.1 if t.ndim <= 1 else 0.05) * noise)
    folder = tmp_path / "timm_repo"
    save_for_hf(model, folder, safe_serialization=True)
    snapshot = hf_cache(f"timm/{name}.ra2_in1k", folder)
    weights = safetensors.torch.load_file(snapshot / "model.safetensors")
    assert set(weights) == set(fresh) and not any(torch.equal(weights[k], fresh[k]) for k in fresh)
    return weights


def assert_landed(key: str, weights: dict[str, torch.Tensor]) -> None:
    """Every backbone tensor, after the runner's init_weights, equals the checkpoint's bit for bit; only
    the classifier is left out; mmengine did initialise the rest of the model."""
    landed = _LANDED.pop(key)
    backbone = landed["backbone"]
    assert set(weights) - set(backbone) == CLASSIFIER and set(backbone) <= set(weights)
    for name, tensor in backbone.items():
        assert tensor.dtype == weights[name].dtype and torch.equal(tensor, weights[name]), (
            f"{name} is not the checkpoint's: re-initialised or not loaded"
        )
    assert landed["head_initialised"]  # init_weights ran (the decode head was initialised by it)


def run_tool(monkeypatch, tool: str, *args) -> None:
    """tools/<tool> in this process (as test_segmentation_e2e does), with these command-line arguments."""
    monkeypatch.setattr(sys, "argv", [tool, *map(str, args)])
    runpy.run_path(str(ROOT / "tools" / tool), run_name="__main__")


def run_train(cfg: Config, key: str, tmp_path: Path, monkeypatch, stop: bool = False) -> Path:
    """tools/train.py on ``cfg`` plus the snapshot hook; returns the work dir."""
    cfg.custom_hooks = [*cfg.get("custom_hooks", []), dict(type="BackboneSnapshotHook", key=key, stop=stop)]
    cfg_path = tmp_path / "small.py"
    cfg.dump(str(cfg_path))
    run_tool(monkeypatch, "train.py", cfg_path, "--work-dir", tmp_path / "work")
    return tmp_path / "work"


@functools.cache
def _parsed(path: Path) -> Config:
    return Config.fromfile(str(path))


def parsed(path: Path) -> Config:
    """The config file as mmengine reads it (parsed once per session: mmseg's bases take ~1 s)."""
    return copy.deepcopy(_parsed(path))


# ---- the configs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", list(TIMM_CONFIGS), ids=lambda p: p.name.split(".ra2")[0])
def test_timm_config_is_the_paper_recipe_on_timm_weights(path):
    """Everything but the backbone's weights source equals the paper-exact config of the same network."""
    name, paper = TIMM_CONFIGS[path]
    ours, theirs = parsed(path).to_dict(), parsed(paper).to_dict()
    bb, paper_bb = ours["model"].pop("backbone"), theirs["model"].pop("backbone")
    assert (bb.pop("model_name"), bb.pop("pretrained"), bb.pop("checkpoint_path")) == (
        f"{name}.ra2_in1k",
        True,
        None,
    )
    assert paper_bb.pop("model_name") == name and paper_bb.pop("checkpoint_path").endswith(".safetensors")
    paper_bb.pop("pretrained", None)
    assert bb == paper_bb  # output stride, out_indices, drop path: the paper's
    assert ours == theirs  # head, data, schedule, optimizer, hooks


@pytest.mark.parametrize("path", list(TIMM_CONFIGS), ids=lambda p: p.name.split(".ra2")[0])
def test_timm_config_decays_only_conv_and_linear_weights(path):
    """Built as the runner builds it (registry, then build_optim_wrapper), on the meta device: in timm's
    architecture too, Scaled WS gains and biases get no weight decay, conv and linear weights do (B.1)."""
    cfg = parsed(path)
    cfg.model.backbone.pretrained = False  # shapes only: no weights needed
    init_default_scope("mmseg")
    with torch.device("meta"):
        model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g["weight_decay"] for g in wrapper.optimizer.param_groups for p in g["params"]}
    assert len(decay) == len(list(model.parameters()))
    for name, p in model.named_parameters():
        module_name, pname = name.rsplit(".", 1)
        conv_or_linear = isinstance(model.get_submodule(module_name), (nn.Conv2d, nn.Linear))
        assert decay[id(p)] == (5e-5 if pname == "weight" and conv_or_linear else 0.0), name


# ---- fixtures in the VOC and NYU formats ---------------------------------------------------------------


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory) -> str:
    """A tiny VOC2012 + SBD release, converted by prepare_voc's code (the builder of the other VOC tests)."""
    root = str(tmp_path_factory.mktemp("voc"))
    counts = make_synthetic_voc(root, n_train=4, n_val=2, n_sbd_extra=2, size=(64, 48))
    voc = osp.join(root, "VOCdevkit", "VOC2012")
    prepare_vocaug(voc, osp.join(root, "benchmark_RELEASE"), counts["trainaug"], counts["val"])
    return voc


def voc_config(path: Path, voc: str, work_dir: Path) -> Config:
    """The shipped config at 64 px crops, batch 2, 2 iterations; the weights source as shipped."""
    cfg = small_run_config(str(path), voc, str(work_dir), max_iters=2, batch_size=2)
    shipped = parsed(path).model.backbone  # small_run_config turns ImageNet weights off; they are the point
    cfg.model.backbone.pretrained = shipped.pretrained
    cfg.model.backbone.checkpoint_path = shipped.checkpoint_path
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # tools/test.py evaluates
    return cfg


@pytest.fixture(scope="module")
def nyu_root(tmp_path_factory) -> Path:
    """4 + 2 ray-cast rooms (96x64) in the NYU layout tools/prepare_nyu.py writes (the depth demo's)."""
    root = tmp_path_factory.mktemp("nyu")
    synthetic_nyu.write_dataset(root, num_train=4, num_test=2)
    nyu.check_layout(root)
    return root


def nyu_config(path: Path, data: Path) -> Config:
    """The shipped config on 96x64 images (uncropped, as the depth demo), batch 2, 2 iterations, a
    32-channel decoder; the weights source as shipped."""
    cfg = parsed(path)
    size = (96, 64)  # (w, h)
    for t in [*cfg.train_dataloader.dataset.pipeline, *cfg.test_dataloader.dataset.pipeline]:
        if t["type"] == "Resize":
            t["scale"] = size
        elif t["type"] == "DepthCenterCrop":
            t["crop_size"] = size
    cfg.model.data_preprocessor.size = size[::-1]
    cfg.model.decode_head.channels = 32
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[loader].dataset.data_root = str(data)
        cfg[loader].num_workers, cfg[loader].persistent_workers = 0, False
    cfg.train_dataloader.dataset.train_set = None  # 4 rooms, not the dense NYU frames
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.max_iters, cfg.train_cfg.val_begin = 2, 1000  # tools/test.py evaluates
    cfg.param_scheduler[0].T_max = cfg.param_scheduler[0].end = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    return cfg


def small_config(case: str, tmp_path: Path, request) -> Config:
    path = CASES[case]
    if case.startswith("voc"):
        return voc_config(path, request.getfixturevalue("voc_root"), tmp_path / "work")
    return nyu_config(path, request.getfixturevalue("nyu_root"))


CASES = {
    "voc-regnet-b1": SEG / VOC.format("fcn_timm-nf-regnet-b1.ra2-in1k"),
    "nyu-resnet50": DEPTH / NYU.format("uproj_timm-nf-resnet50.ra2-in1k"),
    "voc-resnet50": SEG / VOC.format("fcn_timm-nf-resnet50.ra2-in1k"),
    "nyu-regnet-b1": DEPTH / NYU.format("uproj_timm-nf-regnet-b1.ra2-in1k"),
}
# The default run trains and tests one config (VOC, timm's NF-RegNet-B1, output stride 16) and checks the
# landing of another (NYU, timm's NF-ResNet-50, output stride 32): both networks, both tasks, both strides.
# Every config trains and tests under -m slow.
DEFAULT_E2E, DEFAULT_LANDING = "voc-regnet-b1", "nyu-resnet50"


# ---- timm's published weights ------------------------------------------------------------------------


def test_timm_weights_land_bit_for_bit(hf_cache, tmp_path, monkeypatch, request):
    """tools/train.py up to its first step: the backbone holds the Hub file's tensors, after init_weights."""
    case = DEFAULT_LANDING
    weights = timm_weights(TIMM_CONFIGS[CASES[case]][0], hf_cache, tmp_path)
    work = run_train(small_config(case, tmp_path, request), case, tmp_path, monkeypatch, stop=True)
    assert_landed(case, weights)
    assert not list(work.glob("*.pth"))  # stopped before any step


@pytest.mark.parametrize(
    "case", [c if c == DEFAULT_E2E else pytest.param(c, marks=pytest.mark.slow) for c in CASES]
)
def test_timm_weights_land_then_train_and_test(case, hf_cache, tmp_path, monkeypatch, request):
    """The user's two commands on the fixture: train 2 iterations from the landed weights, then test."""
    weights = timm_weights(TIMM_CONFIGS[CASES[case]][0], hf_cache, tmp_path)
    work = run_train(small_config(case, tmp_path, request), case, tmp_path, monkeypatch)
    assert_landed(case, weights)
    ckpt = work / "iter_2.pth"
    state = load_checkpoint_file(str(ckpt), map_location="cpu")["state_dict"]  # weights_only, as tools/
    trained = {
        k.removeprefix("backbone.model."): v for k, v in state.items() if k.startswith("backbone.model.")
    }
    assert set(trained) == set(weights) - CLASSIFIER
    still = [k for k, v in trained.items() if torch.equal(v, weights[k])]
    assert len(still) < 0.1 * len(trained), f"{len(still)} of {len(trained)} backbone tensors did not train"
    run_tool(monkeypatch, "test.py", tmp_path / "small.py", ckpt, "--work-dir", tmp_path / "test")
    metrics = json.loads((tmp_path / "test" / "test_metrics.json").read_text())["metrics"]
    headline = ("mIoU", "aAcc") if case.startswith("voc") else ("rmse", "abs_rel", "d1")
    assert all(math.isfinite(metrics[k]) for k in headline), metrics


# ---- a user's own paper-exact weights ------------------------------------------------------------------

PAPER_VOC = SEG / VOC.format("fcn_nf-regnet-b0")


def test_own_paper_exact_weights_land_bit_for_bit(voc_root, tmp_path, monkeypatch):
    """tools/train_imagenet.py (one epoch of 3 steps on a generated ImageFolder) -> tools/export_hub.py ->
    the file the paper-exact config names (checkpoints/nf_regnet_b0_in1k.safetensors, relative to the
    working directory, as the README's recipe puts it) -> tools/train.py up to its first step."""
    data = tmp_path / "imagenet"
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 1)):
        for c in range(3):
            folder = data / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    run, hub = tmp_path / "run", tmp_path / "hub"
    tiny = ["num_classes=3", "epochs=1", "warmup_epochs=0", "batch_size=4", "train_size=32", "test_size=32"]
    tiny += ["workers=0", "mixup_alpha=0", "cutmix_alpha=0"]
    args = [
        ROOT / "configs/imagenet/nf_regnet_b0.yaml",
        "--data-dir",
        data,
        "--output",
        run,
        "--device",
        "cpu",
    ]
    call("train-imagenet", [*map(str, args), "--set", *tiny])
    call("export-hub", [str(run / "last.pth"), "--out", str(hub), "--tag", "my_in1k", "--no-macs"])
    weights = safetensors.torch.load_file(hub / "model.safetensors")
    # Not one tensor is at its initial value (zero-initialised biases, SkipInit gains and classifier
    # included), so a backbone left at its init, or re-initialised, fails below.
    torch.manual_seed(0)  # train_imagenet's seed: the model it started from
    init = timm.create_model("nf_regnet_b0", num_classes=3).state_dict()
    assert set(weights) == set(init) and not any(torch.equal(weights[k], init[k]) for k in init)

    monkeypatch.chdir(tmp_path)
    documented = Path(parsed(PAPER_VOC).model.backbone.checkpoint_path)
    documented.parent.mkdir(parents=True)
    shutil.copy(hub / "model.safetensors", documented)
    cfg = voc_config(PAPER_VOC, voc_root, tmp_path / "work")
    cfg.model.backbone.num_classes = 3  # this ImageFolder's classes; an ImageNet export has timm's 1000
    run_train(cfg, "paper-exact", tmp_path, monkeypatch, stop=True)
    assert_landed("paper-exact", weights)

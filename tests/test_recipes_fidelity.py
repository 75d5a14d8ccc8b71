"""The shipped recipes against the paper, where a slip only shows on a GPU cluster: which parameters
each optimizer decays, the SyncBN conversion of the BN baselines, checkpoint selection, stochastic-depth
rates, classifier init, the per-process berHu threshold (README "Fidelity" table)."""

import copy
import functools
import glob
import math
import os.path as osp
from pathlib import Path

import pytest
import timm
import torch
from torch import nn

pytest.importorskip("mmseg")
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import MODEL_WRAPPERS, init_default_scope  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from torch.nn.modules.batchnorm import _BatchNorm  # noqa: E402

import nf_plugins.downstream  # noqa: E402,F401
from nf_plugins.downstream.engine.runner import NFRunner  # noqa: E402
from nf_plugins.downstream.engine.sync_bn import convert_sync_bn  # noqa: E402
from nf_plugins.downstream.models.depth_loss import berhu_loss  # noqa: E402
from nf_plugins.models import create_model  # noqa: E402
from nf_plugins.train.recipe import load_config, model_kwargs  # noqa: E402
from nf_plugins.train.trainer import build_optimizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEG_DEPTH = sorted(glob.glob(str(ROOT / "configs/segmentation/fcn_*.py"))) + sorted(
    glob.glob(str(ROOT / "configs/depth/uproj_*.py"))
)
# the 28 paper-exact recipes; the timm-weights configs (README "Fine-tune today") are the same recipes on
# timm's architecture, tested in tests/test_finetune_today.py (weight decay per parameter included)
SEG_DEPTH = [p for p in SEG_DEPTH if "_timm-" not in osp.basename(p)]
IMAGENET = sorted(glob.glob(str(ROOT / "configs/imagenet/*.yaml")))
BN_BASELINES = [p for p in SEG_DEPTH if "resnetv2" in osp.basename(p)]
BN_FAST = [p for p in BN_BASELINES if "fcn_resnetv2-50" in p]  # NYU's BN baselines have no SyncBN


def _id(path: str) -> str:
    return osp.basename(path).split("_8xb32")[0].split("-d16")[0].removesuffix(".yaml")


@functools.cache
def _config(path: str) -> Config:
    return Config.fromfile(path)


def _cfg(path: str) -> Config:
    """The shipped config (parsed once per session: mmseg's bases make each parse take ~1 s)."""
    return copy.deepcopy(_config(path))


def test_every_shipped_config_is_covered():
    assert len(SEG_DEPTH) == 28 and len(IMAGENET) == 12 and len(BN_BASELINES) == 8


# ---- weight decay per parameter ---------------------------------------------------------------------


def _expected_decay(module: nn.Module, pname: str, base: float) -> float:
    """The paper's rule (appendix B.1, applied to every task): conv and linear weights decay; Scaled WS
    gains, SkipInit gains, biases and norm affine parameters do not. Decided from the module type and
    attribute name alone, not from the code under test."""
    if isinstance(module, (_BatchNorm, nn.GroupNorm, nn.LayerNorm)) and pname in ("weight", "bias"):
        return 0.0
    if pname in ("gain", "skipinit_gain", "bias"):
        return 0.0
    if pname == "weight" and isinstance(module, (nn.Conv2d, nn.Linear)):
        return base
    raise AssertionError(f"unclassified parameter {type(module).__name__}.{pname}: extend the rule")


def _assert_decay(model: nn.Module, param_groups: list[dict], base: float) -> dict[str, int]:
    decay = {}
    for group in param_groups:
        for p in group["params"]:
            assert id(p) not in decay, "a parameter is in two optimizer groups"
            decay[id(p)] = group["weight_decay"]
    counts = {"decayed": 0, "gain": 0, "skipinit_gain": 0, "bias": 0, "norm": 0}
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            want = _expected_decay(module, pname, base)
            assert decay.get(id(p)) == want, (
                f"{mname}.{pname}: weight decay {decay.get(id(p))}, expected {want}"
            )
            if want:
                counts["decayed"] += 1
            elif isinstance(module, _BatchNorm):
                counts["norm"] += 1
            else:
                counts[pname] += 1
    assert len(decay) == sum(1 for _ in model.parameters())  # every optimised parameter was checked
    return counts


@pytest.mark.parametrize("path", SEG_DEPTH, ids=_id)
def test_seg_depth_optimizer_decays_only_conv_and_linear_weights(path):
    """Built as mmengine's runner does (registry build of cfg.model, then build_optim_wrapper), on the
    meta device: every shipped config, ResNet-200 included, in well under a second each."""
    cfg = _cfg(path)
    cfg.model.backbone.checkpoint_path = None
    init_default_scope("mmseg")
    with torch.device("meta"):
        model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    base = cfg.optim_wrapper.optimizer.weight_decay
    assert base == 5e-5  # appendix H (VOC); the paper names none for NYU, we keep the same
    counts = _assert_decay(model, wrapper.optimizer.param_groups, base)
    assert counts["decayed"] > 0 and counts["bias"] > 0
    if "resnetv2" in path:
        assert counts["norm"] > 0 and counts["gain"] == counts["skipinit_gain"] == 0
    else:  # NF backbone (and NF head): Scaled WS gains and SkipInit gains present, and not decayed
        assert counts["gain"] > 0 and counts["skipinit_gain"] > 0 and counts["norm"] == 0


@pytest.mark.parametrize("path", IMAGENET, ids=_id)
def test_imagenet_optimizer_decays_only_conv_and_linear_weights(path):
    """Built as nf_plugins.train.trainer does (create_model with the recipe's kwargs, build_optimizer)."""
    cfg = load_config(path, [])
    with torch.device("meta"):
        model = create_model(cfg["model"], **model_kwargs(cfg))
    optimizer = build_optimizer(model, cfg)
    counts = _assert_decay(model, optimizer.param_groups, cfg["weight_decay"])
    assert counts["gain"] > 0 and counts["skipinit_gain"] > 0 and counts["decayed"] > 0
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in optimizer.param_groups)


def test_nf_regnet_weight_decay_is_appendix_d_per_variant():
    """Appendix D's table (2e-5 .. 5e-5 per variant), not appendix C's single 5e-5; NF-ResNets 5e-5
    (section 5.1). Numbers typed from the paper."""
    paper = {"b0": 2e-5, "b1": 2e-5, "b2": 3e-5, "b3": 4e-5, "b4": 4e-5, "b5": 5e-5}
    for path in IMAGENET:
        cfg = load_config(path, [])
        variant = cfg["model"].removeprefix("nf_regnet_")
        assert cfg["weight_decay"] == paper.get(variant, 5e-5), path


# ---- SyncBN of the BN baselines ---------------------------------------------------------------------


@MODEL_WRAPPERS.register_module(name="FidelityTestWrapper", force=True)
class _Wrapper(nn.Module):
    """Stands in for DDP after the runner's conversion: DDP refuses SyncBatchNorm in CPU modules."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


def _runner_wrap(model: nn.Module, sync_bn: str | None) -> nn.Module:
    """``NFRunner.wrap_model`` as ``Runner.__init__`` calls it in a distributed run (conversion, then the
    wrapper); the rest of the Runner, which needs data and a process group, is not built."""
    runner = NFRunner.__new__(NFRunner)
    runner._distributed = True
    runner.cfg = Config(dict(sync_bn=sync_bn))
    runner.logger = MMLogger.get_instance("test_recipes_fidelity")
    wrapped = runner.wrap_model(dict(type="FidelityTestWrapper"), model)
    assert runner.cfg.sync_bn == sync_bn  # the config the runner dumps is unchanged
    return wrapped.module


def _randomize_norms(model: nn.Module) -> None:
    """Non-trivial BN statistics and affine parameters, so that a dropped ReLU changes the output."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)


def _act_calls(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, int]]:
    """Eval-mode output and how often each activation module actually ran."""
    calls: dict[str, int] = {}
    hooks = [
        m.register_forward_hook(lambda *_, n=n: calls.__setitem__(n, calls.get(n, 0) + 1))
        for n, m in model.named_modules()
        if isinstance(m, (nn.ReLU, nn.SiLU, nn.GELU))
    ]
    with torch.no_grad():
        out = model._forward(x)
    for h in hooks:
        h.remove()
    return out, calls


def _bn_model(path: str, device: str = "cpu") -> nn.Module:
    cfg = _cfg(path)
    cfg.model.backbone.checkpoint_path = None
    init_default_scope("mmseg")
    with torch.device(device):
        model = MODELS.build(cfg.model)
    if device != "meta":
        _randomize_norms(model)
    return model.eval()


def _check_conversion(reference: nn.Module, converted: nn.Module, sync_bn: str | None) -> list[str]:
    norm_act = [n for n, m in reference.named_modules() if isinstance(m, timm.layers.BatchNormAct2d)]
    assert norm_act  # timm's resnetv2: every pre-activation is a BatchNormAct2d
    if sync_bn is not None:
        for n, m in converted.named_modules():  # no BatchNorm is left unsynchronised
            assert not isinstance(m, _BatchNorm) or isinstance(m, nn.SyncBatchNorm), n
        for n in norm_act:
            assert isinstance(converted.get_submodule(n), timm.layers.SyncBatchNormAct), n
    return norm_act


@pytest.mark.parametrize("path", BN_BASELINES, ids=_id)
def test_runner_syncbn_keeps_every_activation_running(path, monkeypatch):
    """Every BN baseline, on the meta device (structure and which activations run, no values)."""
    monkeypatch.setattr("mmengine.runner.runner.get_device", lambda: "meta")  # wrap_model moves the model
    sync_bn = _cfg(path).get("sync_bn", None)
    model = _bn_model(path, "meta")
    reference = copy.deepcopy(model)
    converted = _runner_wrap(model, sync_bn).eval()
    x = torch.empty(1, 3, 64, 64, device="meta")
    _, want_calls = _act_calls(reference, x)
    _, got_calls = _act_calls(converted, x)
    norm_act = _check_conversion(reference, converted, sync_bn)
    assert got_calls == want_calls and sum(want_calls.values()) >= len(norm_act)
    if "segmentation" in path:
        assert sync_bn == "timm"  # 4 images per GPU: BN statistics over all GPUs (appendix H batch 16)
    else:
        assert sync_bn is None  # depth: 32 images per GPU, per-GPU BN (docs/gpu_paths.md)


@pytest.mark.parametrize(
    "path", [p if p in BN_FAST else pytest.param(p, marks=pytest.mark.slow) for p in BN_BASELINES], ids=_id
)
def test_runner_syncbn_model_computes_the_same_in_eval(path):
    """Values: with random BN statistics and affine parameters, the converted model's eval output equals
    the unconverted one's (a dropped ReLU changes it by far more than the tolerance)."""
    sync_bn = _cfg(path).get("sync_bn", None)
    model = _bn_model(path)
    reference = copy.deepcopy(model)
    converted = _runner_wrap(model, sync_bn).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    want, want_calls = _act_calls(reference, x)
    got, got_calls = _act_calls(converted, x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert got_calls == want_calls and want.abs().max() > 0
    _check_conversion(reference, converted, sync_bn)


def test_mmengine_torch_syncbn_would_drop_the_relus_and_is_refused():
    """The bug the "timm" value avoids: mmengine's "torch" conversion keeps the ReLU modules as children
    of a plain SyncBatchNorm that never calls them. Our runner refuses it with a message naming the fix."""
    from mmengine.model import convert_sync_batchnorm

    path = next(p for p in BN_BASELINES if "fcn_resnetv2-50" in p)
    model = _bn_model(path)
    reference = copy.deepcopy(model)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    want, want_calls = _act_calls(reference, x)
    broken = convert_sync_batchnorm(copy.deepcopy(model), "torch").eval()
    got, got_calls = _act_calls(broken, x)
    assert sum(got_calls.values()) < sum(want_calls.values())  # the norm-act ReLUs never run
    assert (got - want).abs().max() > 1e-2
    with pytest.raises(ValueError, match=r"sync_bn='torch'.*BatchNormAct2d.*set sync_bn='timm'"):
        _runner_wrap(model, "torch")
    with pytest.raises(ValueError, match="must be one of"):
        convert_sync_bn(model, "apex")


# ---- checkpoint selection ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", SEG_DEPTH, ids=_id)
def test_no_checkpoint_is_selected_on_the_reported_split(path):
    """The paper reports the final iteration. A config may select a checkpoint only on a split that is
    not the one it reports (test_dataloader); the final iteration's checkpoint is always written."""
    cfg = _cfg(path)
    hook = cfg.default_hooks.checkpoint
    if hook.get("save_best"):
        assert cfg.val_dataloader.dataset != cfg.test_dataloader.dataset, "save_best on the test split"
    assert hook.get("save_last", True) or cfg.train_cfg.max_iters % hook.interval == 0


# ---- model-level protocol choices -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "n_blocks"),
    [("nf_resnet50", 16), ("nf_regnet_b0", 16), ("nf_resnet26", 8), ("nf_regnet_b5", 38)],
)
def test_stochastic_depth_rate_is_rate_times_index_over_block_count(name, n_blocks):
    """DeepMind's reference (the authors' code, EfficientNet's rule): block i of n drops with
    0.1 * i / n, so the first block never drops and the last drops with 0.1 * (n - 1) / n."""
    with torch.device("meta"):
        model = timm.create_model(name, drop_path_rate=0.1)
    rates = [b.drop_path_rate for stage in model.stages for b in stage]
    assert len(rates) == n_blocks
    assert rates == pytest.approx([0.1 * i / n_blocks for i in range(n_blocks)], abs=1e-12)
    assert rates[0] == 0.0 and rates[-1] == pytest.approx({16: 0.09375, 8: 0.0875, 38: 0.0973684}[n_blocks])


def test_stochastic_depth_drops_the_last_block_at_its_rate():
    """Behaviour, not the attribute: with the skip gain set, the last block's branch is zeroed for
    a fraction of the samples that matches 0.1 * 7 / 8 (NF-ResNet-26, 8 blocks)."""
    model = timm.create_model("nf_resnet26", drop_path_rate=0.1)
    block = model.stages[-1][-1].train()  # not a transition block: its shortcut is the identity
    with torch.no_grad():
        block.skipinit_gain.fill_(1.0)
        x = torch.randn(8000, block.conv1.in_channels, 1, 1)
        y = block(x)
    dropped = ((y - x).flatten(1).abs().amax(1) == 0).float().mean().item()  # branch zeroed: y == x
    # binomial sd at n=8000: 0.0032; the i / (n - 1) rule's 0.1 lies 4 sd away
    assert dropped == pytest.approx(0.0875, abs=0.0075)


@pytest.mark.parametrize("name", ["nf_resnet26", "nf_regnet_b0"])
def test_classifier_starts_at_zero(name):
    """Appendix D ("Initialize this layer's weight with zeros!"), used for NF-ResNets too."""
    model = timm.create_model(name, num_classes=10)
    fc = model.get_classifier()
    assert torch.count_nonzero(fc.weight) == 0 and torch.count_nonzero(fc.bias) == 0
    model.reset_classifier(5)
    assert torch.count_nonzero(model.get_classifier().weight) == 0


def test_timm_output_stride_keeps_first_block_of_last_stage_undilated():
    """timm's output_stride=16 is timm's convention, not the paper's: the first block of the dilated stage
    keeps dilation 1 (NFBackbone dilates every 3x3 conv there; tests/test_segmentation_backbone.py)."""
    model = timm.create_model("nf_resnet50", output_stride=16)
    dilations = [b.conv2.dilation for b in model.stages[-1]]
    assert dilations == [(1, 1), (2, 2), (2, 2)]


# ---- DDP without the unused-parameter search ----------------------------------------------------------

# the NF up-projection head in the default run (fcn_nf-regnet-b0 trains under 2-process DDP in
# tests/test_segmentation_dist.py); all 28 under -m slow
GRAD_FAST = ("uproj_nf-resnet50",)


@pytest.mark.parametrize(
    "path",
    [p if _id(p) in GRAD_FAST else pytest.param(p, marks=pytest.mark.slow) for p in SEG_DEPTH],
    ids=_id,
)
def test_every_parameter_gets_a_gradient(path):
    """DDP runs with find_unused_parameters=False (mmengine's default): a parameter without a gradient
    stops a multi-GPU run at its second iteration. On CPU, one forward/backward shows none is unused."""
    cfg = _cfg(path)
    cfg.model.backbone.checkpoint_path = None
    assert not cfg.get("find_unused_parameters", False) and cfg.get("model_wrapper_cfg") is None
    init_default_scope("mmseg")
    model = MODELS.build(cfg.model).train()
    model._forward(torch.randn(2, 3, 32, 32)).square().mean().backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, unused


# ---- per-process berHu threshold ------------------------------------------------------------------


def _berhu_by_hand(residuals: list[float], c: float) -> float:
    return sum(abs(r) if abs(r) <= c else (r * r + c * c) / (2 * c) for r in residuals) / len(residuals)


def test_berhu_threshold_is_per_process_batch():
    """Under DDP each GPU computes c = 0.2 x max |residual| over its own 32 images and DDP averages the
    gradients: the loss is the mean of per-GPU berHu losses, not berHu with the batch-256 threshold."""
    target = torch.full((4, 1, 1, 2), 2.0)
    res = [0.1, 0.5, 0.2, 0.3, 4.0, 1.0, 0.3, 0.6]  # GPU 0: the first two images, GPU 1: the last two
    pred = target + torch.tensor(res).view(4, 1, 1, 2)
    per_gpu = [berhu_loss(pred[:2], target[:2]).item(), berhu_loss(pred[2:], target[2:]).item()]
    assert per_gpu[0] == pytest.approx(_berhu_by_hand(res[:4], 0.2 * 0.5))
    assert per_gpu[1] == pytest.approx(_berhu_by_hand(res[4:], 0.2 * 4.0))
    whole = berhu_loss(pred, target).item()
    assert whole == pytest.approx(_berhu_by_hand(res, 0.2 * 4.0))
    assert abs(sum(per_gpu) / 2 - whole) > 0.1  # the per-GPU threshold changes the loss


# ---- CPU torchrun with a BN baseline ------------------------------------------------------------------


@pytest.mark.slow
def test_torchrun_cpu_trains_the_bn_baseline(tmp_path):
    """On CPU (gloo) there is no SyncBN: the runner set-up turns cfg.sync_bn and the head's SyncBN into
    per-process BN (DDP refuses SyncBatchNorm in CPU modules) and two processes train the BN config."""
    import json
    import os
    import subprocess
    import sys

    from nf_plugins.data.synthetic_voc import make_synthetic_voc
    from nf_plugins.data.voc import prepare_vocaug
    from nf_plugins.downstream.engine.cpu_config import small_run_config

    make_synthetic_voc(str(tmp_path), n_train=4, n_val=2, n_sbd_extra=4, size=(64, 56))
    voc = str(tmp_path / "VOCdevkit/VOC2012")
    prepare_vocaug(voc, str(tmp_path / "benchmark_RELEASE"), expect_trainaug=8, expect_val=2)
    path = next(p for p in BN_BASELINES if "fcn_resnetv2-50" in p)
    cfg = small_run_config(path, voc, str(tmp_path / "work"), max_iters=2, batch_size=1)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.custom_hooks = [dict(type="GlobalLossCurveHook", out_file="loss_curve.json")]
    cfg.dump(str(tmp_path / "bn.py"))
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += [str(ROOT / "tools/train.py"), str(tmp_path / "bn.py"), "--launcher", "pytorch"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "SyncBN needs GPUs" in out and "GPU number: 2" in out
    losses = json.loads((tmp_path / "work/loss_curve.json").read_text())["loss"]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)


_NAN_WORKER = """
import sys
from types import SimpleNamespace

import torch
import torch.distributed as dist

from nf_plugins.downstream.engine.hooks import NonFiniteLossHook

rank = int(sys.argv[1])
dist.init_process_group("gloo", init_method="file://" + sys.argv[2], rank=rank, world_size=2)
loss = torch.tensor(float("nan") if rank == 1 else 0.5)
try:
    NonFiniteLossHook().after_train_iter(SimpleNamespace(iter=4), 0, outputs=dict(loss=loss))
    print("continued")
except FloatingPointError as e:
    print("stopped:", e)
"""


@pytest.mark.slow
def test_nan_loss_on_one_process_stops_every_process(tmp_path):
    """A NaN loss on rank 1 only: DDP has already averaged its NaN gradient into rank 0's step, so rank 0
    must stop as well (else its CheckpointHook saves NaN weights as the newest checkpoint)."""
    import subprocess
    import sys

    cmds = [[sys.executable, "-c", _NAN_WORKER, str(r), str(tmp_path / "store")] for r in (0, 1)]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in cmds]
    outs = [p.communicate(timeout=300)[0].strip().splitlines()[-1] for p in procs]
    assert outs[0].startswith("stopped: loss is 0.5 on another process (here finite) at iteration 5"), outs
    assert outs[1].startswith("stopped: loss is nan at iteration 5; training stopped before saving"), outs

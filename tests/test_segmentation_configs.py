"""The shipped VOC configs: paper appendix H recipe, OS16 backbones with a dilated last stage, paper head."""

import glob
import math
import os.path as osp

import pytest
import torch
from torch import nn

pytest.importorskip("mmseg")
from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

import nf_plugins.downstream  # noqa: E402,F401
from nf_plugins.layers import ScaledStdConv2d  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the paper-exact recipes; the timm-weights configs (fcn_timm-*, README "Fine-tune today") are tested in
# tests/test_finetune_today.py against the paper-exact config of the same network
CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, "configs/segmentation/fcn_*.py")) if "fcn_timm-" not in p
)
NAMES = [osp.basename(p) for p in CONFIGS]
# paper appendix C stage-4 widths (before the 0.75 multiplier); final conv is 1280 * w4 / 440 wide
REGNET_W4 = {"b0": 440, "b1": 440, "b2": 488, "b3": 528, "b4": 616, "b5": 704}
FAST = {
    "fcn_nf-resnet50-d16_4xb4-30k_voc12aug-513x513.py",
    "fcn_resnetv2-50-d16_4xb4-30k_voc12aug-513x513.py",
    "fcn_nf-regnet-b0-d16_4xb4-30k_voc12aug-513x513.py",
}


def _expected_backbone(name: str) -> tuple[str, int]:
    arch = name.split("-d16")[0][len("fcn_") :]
    if arch.startswith("nf-resnet"):
        return "nf_resnet" + arch[len("nf-resnet") :], 2048
    if arch.startswith("resnetv2-"):
        return "resnetv2_" + arch[len("resnetv2-") :], 2048
    b = arch[len("nf-regnet-") :]
    return f"nf_regnet_{b}", 1280 * int(REGNET_W4[b] * 0.75) // 440


def test_all_paper_configs_are_shipped():
    depths = ("50", "101", "152", "200")
    expected = {f"fcn_nf-resnet{d}-d16_4xb4-30k_voc12aug-513x513.py" for d in depths}
    expected |= {f"fcn_resnetv2-{d}-d16_4xb4-30k_voc12aug-513x513.py" for d in depths}
    expected |= {f"fcn_nf-regnet-b{i}-d16_4xb4-30k_voc12aug-513x513.py" for i in range(6)}
    assert set(NAMES) == expected


@pytest.mark.parametrize("path", CONFIGS, ids=NAMES)
def test_config_states_the_paper_recipe(path):
    cfg = Config.fromfile(path)
    name = osp.basename(path)
    model_name, width = _expected_backbone(name)
    assert cfg.custom_imports == dict(imports=["nf_plugins.downstream"], allow_failed_imports=False)
    bb, head = cfg.model.backbone, cfg.model.decode_head
    assert (bb.type, bb.model_name, bb.output_stride, bb.drop_path_rate) == (
        "NFBackbone",
        model_name,
        16,
        0.0,
    )
    assert head.in_channels == width and head.num_classes == 21 and cfg.model.auxiliary_head is None
    assert (head.num_convs, head.kernel_size, head.dilation, head.concat_input) == (2, 3, 6, False)
    assert head.type == ("FCNHead" if "resnetv2" in name else "NFFCNHead")
    # 30k steps, batch 16 = 4 GPUs x 4, SGD Nesterov 0.9, lr 0.003 x0.1 at 70% / 90%, wd 5e-5
    assert cfg.train_cfg.max_iters == 30000 and cfg.train_dataloader.batch_size * 4 == 16
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.nesterov, opt.weight_decay) == ("SGD", 0.003, 0.9, True, 5e-5)
    (sched,) = cfg.param_scheduler
    assert (sched.type, sched.milestones, sched.gamma) == ("MultiStepLR", [21000, 27000], 0.1)
    # train: VOC train + SBD aug, rescale [0.5, 2], 513 crop, flip; eval: val2012, single scale padded to 513
    sets = cfg.train_dataloader.dataset.datasets
    assert [d.ann_file for d in sets] == [
        "ImageSets/Segmentation/train.txt",
        "ImageSets/Segmentation/aug.txt",
    ]
    steps = {t.type: t for t in sets[1].pipeline}
    assert steps["RandomRescale"].ratio_range == (0.5, 2.0) and steps["RandomCrop"].crop_size == (513, 513)
    assert steps["RandomFlip"].prob == 0.5 and "PhotoMetricDistortion" not in steps
    assert cfg.val_dataloader.dataset.ann_file == "ImageSets/Segmentation/val.txt"
    assert [t.type for t in cfg.test_dataloader.dataset.pipeline if "Resize" in t.type] == []
    assert cfg.model.data_preprocessor.test_cfg == dict(size=(513, 513))
    assert cfg.test_evaluator.type == "IoUMetric" and cfg.test_evaluator.iou_metrics == ["mIoU"]


def _build(path: str) -> nn.Module:
    init_default_scope("mmseg")
    cfg = Config.fromfile(path)
    cfg.model.backbone.checkpoint_path = None
    return MODELS.build(cfg.model).eval()


@pytest.mark.parametrize(
    "path",
    [p if osp.basename(p) in FAST else pytest.param(p, marks=pytest.mark.slow) for p in CONFIGS],
    ids=NAMES,
)
def test_backbone_runs_at_os16_with_dilated_last_stage_and_paper_head(path):
    model = _build(path)
    last = model.backbone.model.stages[-1]
    convs3 = [m for m in last.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs3 and all(c.dilation == (2, 2) and c.stride == (1, 1) for c in convs3)
    assert all(m.stride == (1, 1) for m in last.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        feats = model.backbone.model.forward_intermediates(torch.randn(1, 3, 64, 64), intermediates_only=True)
    # stem /2, stages /4, /8, /16, and the dilated last stage stays at /16 (64 px -> 4)
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 4]
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64), mode="tensor")
    assert logits.shape == (1, 21, 4, 4)

    head = model.decode_head
    assert len(head.convs) == 2 and not hasattr(head, "conv_cat")
    for cm in head.convs:
        assert cm.conv.kernel_size == (3, 3) and cm.conv.dilation == (6, 6) and cm.conv.out_channels == 256
    assert head.conv_seg.kernel_size == (1, 1) and head.conv_seg.out_channels == 21
    if "resnetv2" in path:
        assert all(isinstance(cm.norm, nn.modules.batchnorm._BatchNorm) for cm in head.convs)
    else:  # no normalization anywhere in the NF network: Scaled WS convs, ReLU * sqrt(2 / (1 - 1/pi))
        assert not any(
            isinstance(m, nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm)
            for m in model.modules()
        )
        for cm in head.convs:
            assert type(cm.conv) is ScaledStdConv2d and cm.norm_name is None
            assert math.isclose(cm.activate.gamma, math.sqrt(2 / (1 - 1 / math.pi)), rel_tol=1e-6)


@pytest.mark.parametrize(
    "name",
    ["fcn_nf-regnet-b0-d16_4xb4-30k_voc12aug-513x513.py", "fcn_resnetv2-50-d16_4xb4-30k_voc12aug-513x513.py"],
)
def test_no_weight_decay_on_gains_biases_and_norms(name):
    path = osp.join(ROOT, "configs/segmentation", name)
    model = _build(path)
    cfg = Config.fromfile(path)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g["weight_decay"] for g in wrapper.optimizer.param_groups for p in g["params"]}
    if "resnetv2" in name:
        no_wd = {n for n, p in model.named_parameters() if p.ndim <= 1}  # BN affine + biases
    else:
        no_wd = {f"backbone.{n}" for n in model.backbone.no_weight_decay()}
        no_wd |= {
            n
            for n, _ in model.decode_head.named_parameters(prefix="decode_head")
            if n.endswith(("gain", "bias"))
        }
        assert any(n.endswith("skipinit_gain") for n in no_wd) and any(n.endswith(".gain") for n in no_wd)
    for n, p in model.named_parameters():
        assert decay[id(p)] == (0.0 if n in no_wd else 5e-5), n

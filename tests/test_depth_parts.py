"""NYUv2 depth parts: berHu loss, up-projection head, depth transforms, every shipped config's shapes."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("mmseg")

from mmengine.config import Config  # noqa: E402
from mmseg.datasets.transforms import LoadDepthAnnotation  # noqa: E402
from mmseg.registry import MODELS, TRANSFORMS  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402

from nf_plugins.downstream.datasets.depth_transforms import DepthCenterCrop, LoadCheckedDepthAnnotation  # noqa: E402
from nf_plugins.downstream.models.depth_head import UpProjection, UpProjectionHead, unpool2x  # noqa: E402
from nf_plugins.downstream.models.depth_loss import BerHuLoss, berhu_loss  # noqa: E402
from nf_plugins.layers import ScaledStdConv2d  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# the paper-exact recipes; uproj_timm-* (timm's weights): tests/test_finetune_today.py
DEPTH_CONFIGS = sorted(p for p in (ROOT / "configs/depth").glob("uproj_*.py") if "uproj_timm-" not in p.name)
register_all_modules()


# ---------------------------------------------------------------- berHu
def test_berhu_matches_closed_form_on_hand_made_tensors():
    # valid residuals -0.5, 0, 2.0 -> c = 0.2 * 2 = 0.4; the 4th pixel has no depth (target 0).
    pred = torch.tensor([[[[1.0, 2.0, 3.0, 10.0]]]])
    target = torch.tensor([[[[1.5, 2.0, 1.0, 0.0]]]])
    # |-0.5| > c: (0.25 + 0.16) / 0.8 = 0.5125; 0 <= c: 0; 2 > c: (4 + 0.16) / 0.8 = 5.2
    expected = (0.5125 + 0.0 + 5.2) / 3
    assert berhu_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)
    # Below the threshold it is plain L1: residuals 0.1, -0.3, 0.5 with c = 0.1 -> only 0.1 is linear.
    pred = torch.tensor([1.1, 0.7, 1.5])
    target = torch.ones(3)
    c = 0.1
    hand = (0.1 + (0.09 + c * c) / (2 * c) + (0.25 + c * c) / (2 * c)) / 3
    assert berhu_loss(pred, target).item() == pytest.approx(hand, rel=1e-5)
    # c = 0.2 * max|r| over the *batch*, not per image: a large residual in image 1 changes image 0's term.
    p = torch.tensor([[[[1.2]]], [[[1.0]]]])
    t = torch.ones(2, 1, 1, 1)
    assert berhu_loss(p, t).item() == pytest.approx((0.04 + 0.0016) / 0.08 / 2, rel=1e-5)  # c = 0.04
    p[1] = 3.0  # r = 2 -> c = 0.4: now 0.2 is linear, 2 is quadratic
    assert berhu_loss(p, t).item() == pytest.approx((0.2 + (4 + 0.16) / 0.8) / 2, rel=1e-6)


def test_berhu_ignores_pixels_without_depth():
    target = torch.tensor([[2.0, 0.0, float("nan"), 3.0]])
    pred = torch.tensor([[2.5, 7.0, 1.0, 2.0]], requires_grad=True)
    loss = berhu_loss(pred, target)
    loss.backward()
    assert pred.grad[0, 1] == 0 and pred.grad[0, 2] == 0
    moved = pred.detach().clone()
    moved[0, 1:3] = torch.tensor([-100.0, 1e6])  # wild predictions where there is no depth
    assert berhu_loss(moved, target).item() == pytest.approx(loss.item())
    assert berhu_loss(pred, torch.zeros_like(target)).item() == 0.0  # no valid pixel at all


def test_berhu_gradient_at_threshold():
    # residuals +1, -1, +5: c = 0.2 * 5 = 1 exactly, so +-1 sit on the threshold.
    target = torch.tensor([1.0, 2.0, 1.0])
    pred = torch.tensor([2.0, 1.0, 6.0], requires_grad=True)
    loss = berhu_loss(pred, target)
    loss.backward()
    # d/dr: sign(r) on the L1 side, r / c on the quadratic side; both are +-1 at |r| = c. c is a constant.
    assert pred.grad.tolist() == pytest.approx([1 / 3, -1 / 3, 5 / 3])
    assert loss.item() == pytest.approx((1 + 1 + (25 + 1) / 2) / 3)
    # value is continuous across the threshold: just above c the quadratic branch gives ~c
    eps = 1e-3
    just_above = berhu_loss(torch.tensor([2.0 + eps, 6.0]), torch.tensor([1.0, 1.0]))
    assert just_above.item() == pytest.approx(((1 + eps) + 13.0) / 2, abs=1e-5)


def test_berhu_module_is_registered_and_zero_residual_is_finite():
    loss = MODELS.build(dict(type="BerHuLoss", loss_weight=2.0))
    assert isinstance(loss, BerHuLoss) and loss.loss_name == "loss_berhu"
    x = torch.ones(1, 1, 2, 2, requires_grad=True)
    out = loss(x, torch.ones(1, 1, 2, 2))  # c = 0: no 0/0 in the value or the gradient
    out.backward()
    assert out.item() == 0.0 and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="shape"):
        loss(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 3))


# ---------------------------------------------------------------- up-projection head
def test_unpool2x_places_values_top_left():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    expected = torch.tensor([[[[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]]], dtype=torch.float32)
    assert torch.equal(unpool2x(x), expected)


@pytest.mark.parametrize("norm_cfg", [None, dict(type="BN")])
def test_up_projection_head_structure(norm_cfg):
    head = UpProjectionHead(in_channels=64, norm_cfg=norm_cfg)
    feats = [torch.randn(2, 64, 5, 6)]
    x = head.reduce(feats[-1])
    assert x.shape == (2, 32, 5, 6)  # 1x1 reduction to in_channels // 2
    for i, block in enumerate(head.up_blocks):
        x = block(x)
        assert x.shape == (2, 32 >> (i + 1), 5 << (i + 1), 6 << (i + 1))  # x2 resolution, /2 width
    assert (
        len(head.up_blocks) == 4 and head.conv_seg.kernel_size == (3, 3) and head.conv_seg.out_channels == 1
    )
    assert head(feats).shape == (2, 1, 80, 96)
    norms = [
        m for m in head.modules() if isinstance(m, torch.nn.modules.batchnorm._NormBase | torch.nn.GroupNorm)
    ]
    ws = [m for m in head.modules() if isinstance(m, ScaledStdConv2d)]
    if norm_cfg is None:  # NF: no normalization layer anywhere, every hidden conv is Scaled WS
        assert norms == [] and len(ws) == 1 + 4 * 3
    else:  # BN baseline: BN after the reduction and each of the 3 convs per block
        assert len(norms) == 1 + 4 * 3 and ws == []


def test_nf_up_projection_keeps_unit_scale():
    torch.manual_seed(0)
    block = UpProjection(128, 64, norm_cfg=None)
    x = torch.randn(8, 128, 16, 16)
    with torch.no_grad():
        y = block(x)
    # gamma-scaled ReLU of ~unit-variance pre-activations: mean square ~ gamma^2 / 2 = 1.47, not exploding
    assert 0.5 < y.pow(2).mean().item() < 3.0


def test_head_clips_predictions_and_rejects_multiscale_input():
    head = UpProjectionHead(in_channels=64, min_depth=1e-3, max_depth=10.0)
    logits = torch.tensor([[[[-5.0, 0.5], [20.0, 3.0]]]])
    out = head.predict_by_feat(logits, [dict(img_shape=(2, 2), pad_shape=(2, 2))])
    assert out.flatten().tolist() == pytest.approx([1e-3, 0.5, 10.0, 3.0])
    with pytest.raises(TypeError, match="last stage only"):
        UpProjectionHead(in_channels=[256, 512])


@pytest.mark.parametrize("cfg_path", DEPTH_CONFIGS, ids=[p.stem.split("_")[1] for p in DEPTH_CONFIGS])
def test_every_shipped_config_gives_full_resolution_depth_at_304x228(cfg_path):
    cfg = Config.fromfile(cfg_path)
    cfg.model.backbone.checkpoint_path = None  # random weights: shapes only
    model = MODELS.build(cfg.model).to("meta")  # real construction; shapes propagated on meta tensors
    with torch.no_grad():
        feats = model.extract_feat(torch.empty(2, 3, 228, 304, device="meta"))
        out = model.decode_head(feats)
        depth = model.decode_head.predict_by_feat(out, [dict(img_shape=(228, 304), pad_shape=(228, 304))])
    assert len(feats) == 1 and feats[0].shape[2:] == (8, 10)  # stride-32 final stage
    assert feats[0].shape[1] == cfg.model.decode_head.in_channels
    assert out.shape == (2, 1, 128, 160)  # four x2 up-projections
    assert depth.shape == (2, 1, 228, 304)  # upsampled to the input size
    head = model.decode_head
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in head.modules())
    assert has_bn == ("resnetv2" in cfg_path.name)  # BN head only for the BN baselines


def test_config_follows_paper_schedule_and_augmentation():
    cfg = Config.fromfile(ROOT / "configs/depth/uproj_nf-resnet50_8xb32-7.5k_nyu-304x228.py")
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.nesterov) == ("SGD", 0.16, 0.9, True)
    assert cfg.train_cfg.max_iters == 7500 and cfg.train_dataloader.batch_size * 8 == 256
    (sched,) = cfg.param_scheduler
    assert sched.type == "CosineAnnealingLR" and sched.T_max == 7500
    steps = {t["type"]: t for t in cfg.train_pipeline}
    assert steps["DepthCenterCrop"]["crop_size"] == (304, 228)
    assert steps["RandomGrayscale"]["prob"] == 0.3 and steps["RandomGrayscale"]["keep_channels"]
    pmd = steps["PhotoMetricDistortion"]
    assert pmd["brightness_delta"] == round(0.1255 * 255) and pmd["saturation_range"] == (0.5, 1.5)
    assert pmd["hue_delta"] == round(0.2 * 180) and pmd["contrast_range"] == (1.0, 1.0)
    assert cfg.val_evaluator.type == "NYUDepthMetric"  # pooled headline + mmseg per-image


# ---------------------------------------------------------------- transforms
def _write_png(path, array):
    assert cv2.imwrite(str(path), array)
    return str(path)


def test_depth_center_crop_keeps_image_and_depth_aligned():
    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx % 256, yy % 256, np.zeros_like(xx)], -1).astype(np.uint8)
    depth = (yy * 1000 + xx).astype(np.float32)  # encodes the pixel position
    res = dict(img=img, img_shape=(h, w), gt_depth_map=depth, seg_fields=["gt_depth_map"])
    out = TRANSFORMS.build(dict(type="DepthCenterCrop", crop_size=(304, 228)))(res)
    y0, x0 = round((h - 228) / 2), round((w - 304) / 2)
    assert out["img"].shape == (228, 304, 3) and out["gt_depth_map"].shape == (228, 304)
    np.testing.assert_array_equal(out["gt_depth_map"], depth[y0 : y0 + 228, x0 : x0 + 304])
    np.testing.assert_array_equal(out["img"], img[y0 : y0 + 228, x0 : x0 + 304])
    assert isinstance(TRANSFORMS.build(dict(type="DepthCenterCrop", crop_size=4)), DepthCenterCrop)


def test_checked_depth_loader_matches_mmseg_and_rejects_8bit(tmp_path):
    depth_mm = np.array([[0, 1000], [2500, 65535]], np.uint16)
    good = _write_png(tmp_path / "good.png", depth_mm)
    ours = LoadCheckedDepthAnnotation(depth_rescale_factor=1e-3)(dict(depth_map_path=good, seg_fields=[]))
    ref = LoadDepthAnnotation(depth_rescale_factor=1e-3)(dict(depth_map_path=good, seg_fields=[]))
    np.testing.assert_array_equal(ours["gt_depth_map"], ref["gt_depth_map"])
    assert ours["gt_depth_map"][1, 0] == pytest.approx(2.5) and ours["seg_fields"] == ["gt_depth_map"]
    bad = _write_png(tmp_path / "bad_8bit.png", np.full((2, 2), 7, np.uint8))
    with pytest.raises(ValueError, match=r"bad_8bit\.png: depth PNG is uint8.*16-bit"):
        LoadCheckedDepthAnnotation()(dict(depth_map_path=bad, seg_fields=[]))
    rgb = _write_png(tmp_path / "rgb16.png", np.zeros((2, 2, 3), np.uint16))
    with pytest.raises(ValueError, match=r"rgb16\.png: .*single-channel"):
        LoadCheckedDepthAnnotation()(dict(depth_map_path=rgb, seg_fields=[]))

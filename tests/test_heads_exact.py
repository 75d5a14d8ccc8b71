"""Depth and segmentation heads against forwards written out here from the paper's appendix H.

Written to kill the mutants that test_depth_parts.py and the config tests leave alive
(docs/mutation.md): every gain, padding, default and branch of the heads on live random weights.
"""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("mmseg")

from mmcv.cnn import ConvModule  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

from nf_plugins.downstream.models.depth_head import UpProjection, UpProjectionHead, unpool2x  # noqa: E402
from nf_plugins.downstream.models.depth_loss import BerHuLoss, berhu_loss  # noqa: E402
from nf_plugins.downstream.models.seg_head import GammaReLU, NFFCNHead  # noqa: E402
from nf_plugins.layers import GAMMA_TABLE, ScaledStdConv2d  # noqa: E402

G = GAMMA_TABLE["relu"]


def _ws(conv: ScaledStdConv2d, x: torch.Tensor) -> torch.Tensor:
    """A Scaled WS conv from paper eq. 3, 'same' padding, independent of the layer's own code."""
    w = conv.weight.detach().double().flatten(1)
    var, mean = torch.var_mean(w, 1, unbiased=False, keepdim=True)
    w = (conv.gain.detach().double().view(-1, 1) * (w - mean) / torch.sqrt(w.shape[1] * var + 1e-4)).view_as(
        conv.weight
    )
    bias = None if conv.bias is None else conv.bias.detach().double()
    k, d = conv.kernel_size[0], conv.dilation[0]
    return F.conv2d(x, w, bias, padding=d * (k - 1) // 2, dilation=d)


def _randomize(module: torch.nn.Module) -> None:
    """Live weights: random gains, biases and BN statistics, so no term of a forward is zero or one."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith(("gain", "bias")) or p.ndim == 1:
                p.uniform_(0.5, 1.5) if name.endswith(("gain", "weight")) else p.uniform_(-0.5, 0.5)
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)


# ---------------------------------------------------------------- depth head
def test_unpool2x_scatters_to_even_rows_and_columns():
    x = torch.randn(2, 3, 2, 5)
    out = unpool2x(x)
    expected = torch.zeros(2, 3, 4, 10)
    expected[:, :, ::2, ::2] = x
    assert torch.equal(out, expected)


@pytest.mark.parametrize("act", ["relu", "silu"])
def test_nf_up_projection_matches_the_written_out_block(act):
    block = UpProjection(6, 4, act_name=act).double()
    _randomize(block)
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    up = torch.zeros(2, 6, 6, 8, dtype=torch.float64)
    up[:, :, ::2, ::2] = 2.0 * x  # x2: the unpooled map keeps the input's mean square
    conv5, conv3 = block.branch[0][0], block.branch[1]

    def nl(t):
        return GAMMA_TABLE[act] * (F.relu(t) if act == "relu" else F.silu(t))

    branch = _ws(conv3, nl(_ws(conv5, up)))
    expected = nl((branch + _ws(block.projection, up)) / math.sqrt(2.0))
    torch.testing.assert_close(block(x), expected)
    assert conv5.kernel_size == (5, 5) and conv3.kernel_size == (3, 3)
    assert UpProjection(4, 2).act.act == "relu"  # the paper's head: ReLU unless told otherwise
    assert block.projection.kernel_size == (5, 5)


def test_bn_up_projection_is_laina_conv_bn_relu():
    block = UpProjection(6, 4, norm_cfg=dict(type="BN")).double().eval()
    _randomize(block)
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    up = torch.zeros(2, 6, 6, 8, dtype=torch.float64)
    up[:, :, ::2, ::2] = x  # no x2 and no 1/sqrt(2): BN re-normalises

    def conv_bn(cm, t):
        return cm.bn(F.conv2d(t, cm.conv.weight, cm.conv.bias, padding=cm.conv.kernel_size[0] // 2))

    branch = conv_bn(block.branch[1], F.relu(conv_bn(block.branch[0], up)))
    expected = F.relu(branch + conv_bn(block.projection, up))
    torch.testing.assert_close(block(x), expected)


def test_head_defaults_and_forward():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        head = UpProjectionHead(in_channels=64).double().eval()
    assert not [w for w in caught if "threshold" in str(w.message)]  # regression: no binary-seg threshold
    assert head.channels == 32 and len(head.up_blocks) == 4 and head.out_channels == head.num_classes == 1
    assert head.conv_seg.out_channels == 1 and head.conv_seg.kernel_size == (3, 3)
    assert head.min_depth == 1e-3 and head.max_depth == 10.0 and head.dropout is None
    assert isinstance(head.loss_decode, BerHuLoss) and head.up_blocks[0].normfree
    assert [b.projection.out_channels for b in head.up_blocks] == [16, 8, 4, 2]
    assert head.reduce.kernel_size == (1, 1) and head.conv_seg.padding == (1, 1)
    _randomize(head)
    x = torch.randn(1, 64, 2, 3, dtype=torch.float64)
    y = head.up_blocks(_ws(head.reduce, x))
    expected = F.conv2d(y, head.conv_seg.weight, head.conv_seg.bias, padding=1)
    assert head([x]).shape == (1, 1, 32, 48)
    torch.testing.assert_close(head([x]), expected)
    with pytest.raises(
        TypeError, match=r"^UpProjectionHead takes the last stage only: in_channels must be int"
    ):
        UpProjectionHead(in_channels=[8, 16])
    silu = UpProjectionHead(in_channels=16, channels=8, num_blocks=2, act_name="silu")
    assert {b.act.act for b in silu.up_blocks} == {b.branch[0][1].act for b in silu.up_blocks} == {"silu"}
    bn = UpProjectionHead(in_channels=16, channels=8, num_blocks=2, norm_cfg=dict(type="BN"))
    assert isinstance(bn.reduce, ConvModule) and bn.reduce.with_norm and not bn.reduce.with_activation
    assert not any(b.normfree for b in bn.up_blocks)
    small = UpProjectionHead(in_channels=16, channels=8, num_blocks=3)
    assert len(small.up_blocks) == 3 and small.channels == 8  # 8 >> 3 == 1: just possible
    with pytest.raises(ValueError, match=r"^UpProjectionHead: channels=8 cannot be halved 4 times$"):
        UpProjectionHead(in_channels=16, channels=8, num_blocks=4)


def _depth_samples(*maps: torch.Tensor) -> list[SegDataSample]:
    out = []
    for m in maps:
        s = SegDataSample()
        s.gt_depth_map = PixelData(data=m)
        out.append(s)
    return out


def test_loss_resizes_to_the_target_and_sums_same_named_losses():
    head = UpProjectionHead(in_channels=16, channels=8, num_blocks=2)
    logits = torch.rand(2, 1, 3, 4) * 4
    gts = [torch.rand(1, 6, 8) * 5 + 0.5, torch.rand(1, 6, 8) * 5 + 0.5]
    pred = F.interpolate(logits, size=(6, 8), mode="bilinear", align_corners=False)
    losses = head.loss_by_feat(logits, _depth_samples(*gts))
    corners = UpProjectionHead(in_channels=16, channels=8, num_blocks=2, align_corners=True)
    pred_c = F.interpolate(logits, size=(6, 8), mode="bilinear", align_corners=True)
    torch.testing.assert_close(
        corners.loss_by_feat(logits, _depth_samples(*gts))["loss_berhu"], berhu_loss(pred_c, torch.stack(gts))
    )
    assert list(losses) == ["loss_berhu"]
    torch.testing.assert_close(losses["loss_berhu"], berhu_loss(pred, torch.stack(gts)))
    twice = UpProjectionHead(
        in_channels=16, channels=8, num_blocks=2, loss_decode=[dict(type="BerHuLoss"), dict(type="BerHuLoss")]
    )
    torch.testing.assert_close(
        twice.loss_by_feat(logits, _depth_samples(*gts))["loss_berhu"], 2 * berhu_loss(pred, torch.stack(gts))
    )
    with pytest.raises(
        KeyError,
        match=r"^'UpProjectionHead\.loss needs `gt_depth_map` in the data samples: load it with "
        r"LoadDepthAnnotation and pack it with PackSegInputs'$",
    ):
        head.loss_by_feat(logits, [SegDataSample()])
    with pytest.raises(KeyError, match="gt_depth_map"):
        head.loss_by_feat(logits, [])


def test_depth_predictions_are_clipped_to_the_default_range():
    head = UpProjectionHead(in_channels=16, channels=8, num_blocks=2)
    logits = torch.tensor([[[[-1.0, 0.0005], [11.0, 2.5]]]])
    out = head.predict_by_feat(logits, [dict(img_shape=(2, 2), pad_shape=(2, 2))])
    assert out.flatten().tolist() == pytest.approx([1e-3, 1e-3, 10.0, 2.5])


# ---------------------------------------------------------------- segmentation head
def test_nf_fcn_head_is_two_dilated_scaled_ws_convs_and_a_classifier():
    head = NFFCNHead(in_channels=6, channels=5, num_classes=3, dropout_ratio=0.0).double().eval()
    convs = [cm.conv for cm in head.convs]
    assert len(convs) == 2 and all(isinstance(c, ScaledStdConv2d) for c in convs)
    assert [(c.kernel_size, c.dilation, c.padding) for c in convs] == [((3, 3), (6, 6), (6, 6))] * 2
    assert all(isinstance(cm.activate, GammaReLU) and cm.norm_cfg is None for cm in head.convs)
    assert not head.concat_input
    _randomize(head)
    x = torch.randn(2, 6, 9, 8, dtype=torch.float64)
    y = G * F.relu(_ws(convs[1], G * F.relu(_ws(convs[0], x))))
    expected = F.conv2d(y, head.conv_seg.weight, head.conv_seg.bias)
    torch.testing.assert_close(head([x]), expected)


def test_nf_fcn_head_keeps_explicit_layers_and_rejects_a_norm():
    head = NFFCNHead(in_channels=4, channels=4, num_classes=2, num_convs=1, kernel_size=1, dilation=1,
                     conv_cfg=dict(type="Conv2d"), act_cfg=dict(type="ReLU"))  # fmt: skip
    assert len(head.convs) == 1 and type(head.convs[0].conv) is torch.nn.Conv2d
    assert head.convs[0].conv.kernel_size == (1, 1) and isinstance(head.convs[0].activate, torch.nn.ReLU)
    with pytest.raises(
        ValueError,
        match=r"^model\.decode_head\.norm_cfg=\{'type': 'BN'\}: NFFCNHead has no normalization layers; "
        r"use mmseg's FCNHead for a BN head$",
    ):
        NFFCNHead(in_channels=4, channels=4, num_classes=2, norm_cfg=dict(type="BN"))


def test_gamma_relu_ignores_inplace_and_scales_by_the_relu_gamma():
    act = GammaReLU(inplace=True)
    x = torch.linspace(-1, 1, 5)
    torch.testing.assert_close(act(x), F.relu(x) * G)
    assert act.act == "relu" and x.min() == -1  # input untouched

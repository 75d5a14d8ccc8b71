"""Output stride 8 and 16 checked by values: a dilated network computes the undilated one densely.

With timm's dilation rule (the block that would stride keeps the previous dilation, later 3x3 convs
dilate by the dropped stride), every conv, pointwise op and zero padding of the dilated network sampled
at every ``r``-th pixel (r = 32 / output_stride) equals the undilated network: the "a trous" identity
(Chen et al., DeepLab). Global pooling (squeeze-excite) and 2x2 avg-pool shortcuts are not pointwise
in space, so the NF-RegNet is checked with SE off and strided-conv shortcuts (the builder's dilation
code is the same). A network that dropped strides without dilating fails this.
"""

from __future__ import annotations

import dataclasses

import pytest
import timm
import torch
from live_weights import make_live

from nf_plugins.models import NormFreeNet
from nf_plugins.models.nf_regnet import model_cfgs as regnet_cfgs

X = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
BUILDERS = {  # timm's entrypoint for the ResNet; the NF-RegNet cfg without the two non-pointwise parts
    "nf_resnet26": lambda os_: timm.create_model("nf_resnet26", output_stride=os_),
    "nf_regnet_b0 (no SE, strided shortcut)": lambda os_: NormFreeNet(
        dataclasses.replace(regnet_cfgs["nf_regnet_b0"], se_ratio=None, shortcut_pool=False),
        output_stride=os_,
    ),
}


def _features(model: NormFreeNet, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return model.eval().forward_intermediates(x, intermediates_only=True)


@pytest.mark.parametrize("output_stride", [8, 16])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_dilated_features_sample_to_the_undilated_ones(name, output_stride):
    ref = make_live(BUILDERS[name](32))
    dilated = BUILDERS[name](output_stride)
    dilated.load_state_dict(ref.state_dict())
    for level, (a, b) in enumerate(zip(_features(dilated, X), _features(ref, X), strict=True)):
        r = max(1, 2 ** (level + 1) // output_stride)  # levels 0-4 have reductions 2, 4, 8, 16, 32
        assert a.shape[-2:] == (b.shape[-2] * r, b.shape[-1] * r), level
        assert b.abs().max() > 0.1
        torch.testing.assert_close(a[..., ::r, ::r], b, rtol=1e-4, atol=1e-4, msg=f"level {level}")


def test_nf_backbone_at_output_stride_8():
    """The mmseg backbone at output stride 8: features at strides 2, 4, 8, 8, 8, equal to the undilated."""
    pytest.importorskip("mmseg")
    from nf_plugins.downstream.models.backbone import NFBackbone

    ref = NFBackbone("nf_resnet26", out_indices=(0, 1, 2, 3, 4), output_stride=32)
    make_live(ref.model)
    bb8 = NFBackbone("nf_resnet26", out_indices=(0, 1, 2, 3, 4), output_stride=8)
    bb8.model.load_state_dict(ref.model.state_dict())
    with torch.no_grad():
        feats8, feats = bb8.eval()(X), ref.eval()(X)
    assert [f.shape[-2:] for f in feats8] == [(32, 48), (16, 24), (8, 12), (8, 12), (8, 12)]
    for level, (a, b) in enumerate(zip(feats8, feats, strict=True)):
        r = max(1, 2 ** (level + 1) // 8)
        torch.testing.assert_close(a[..., ::r, ::r], b, rtol=1e-4, atol=1e-4, msg=f"level {level}")

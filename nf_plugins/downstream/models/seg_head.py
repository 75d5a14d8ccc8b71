"""The paper's FCN head (appendix H, after He et al. 2020) without normalization layers.

Two 3x3 convs dilated by 6, then a 1x1 classifier. For NF backbones the convs are Scaled WS convs
followed by gamma-scaled ReLUs; mmseg's ``FCNHead`` and ``ConvModule`` do the rest, so the NF head
is ``FCNHead`` with those layers swapped in and no norm.
"""

from __future__ import annotations

from typing import Any

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmseg.models.decode_heads import FCNHead
from mmseg.registry import MODELS

from nf_plugins.layers import GammaAct, ScaledStdConv2d

# mmcv's build_conv_layer / build_activation_layer look layers up in mmengine's root registry.
MMENGINE_MODELS.register_module("NFScaledStdConv2d", module=ScaledStdConv2d)


@MMENGINE_MODELS.register_module("NFGammaReLU")
class GammaReLU(GammaAct):
    """ReLU times gamma = sqrt(2 / (1 - 1/pi)); takes (and ignores) mmcv's ``inplace`` argument."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__("relu")


@MODELS.register_module()
class NFFCNHead(FCNHead):
    """FCN head for NF backbones: [Scaled WS 3x3 conv (dilation 6) -> gamma ReLU] x 2 -> 1x1 conv."""

    def __init__(
        self,
        num_convs: int = 2,
        kernel_size: int = 3,
        dilation: int = 6,
        concat_input: bool = False,
        conv_cfg: dict | None = None,
        norm_cfg: dict | None = None,
        act_cfg: dict | None = None,
        **kwargs: Any,
    ) -> None:
        if norm_cfg is not None:
            raise ValueError(
                f"model.decode_head.norm_cfg={norm_cfg!r}: NFFCNHead has no normalization layers; "
                "use mmseg's FCNHead for a BN head"
            )
        super().__init__(
            num_convs=num_convs,
            kernel_size=kernel_size,
            dilation=dilation,
            concat_input=concat_input,
            conv_cfg=conv_cfg or dict(type="NFScaledStdConv2d"),
            norm_cfg=None,
            act_cfg=act_cfg or dict(type="NFGammaReLU"),
            **kwargs,
        )

"""``resnetv2_200``: the pre-activation BN ResNetV2-200 baseline of the paper's Table 6.

timm ships ``resnetv2_50/101/152`` (pre-activation, BatchNorm) but no 200-layer depth; this is the
same builder with the ResNet-200 stage depths [3, 24, 36, 3].
"""

from __future__ import annotations

from typing import Any

from timm.layers import BatchNormAct2d, create_conv2d
from timm.models import generate_default_cfgs, register_model
from timm.models.resnetv2 import ResNetV2, _cfg, _create_resnetv2

default_cfgs = generate_default_cfgs({"resnetv2_200.untrained": _cfg()})


@register_model
def resnetv2_200(pretrained: bool = False, **kwargs: Any) -> ResNetV2:
    """ResNetV2-200 (pre-activation, BatchNorm), no published weights."""
    model_args = dict(layers=[3, 24, 36, 3], conv_layer=create_conv2d, norm_layer=BatchNormAct2d)
    return _create_resnetv2("resnetv2_200", pretrained=pretrained, **dict(model_args, **kwargs))

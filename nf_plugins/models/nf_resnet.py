"""NF-ResNets: pre-activation bottleneck ResNetV2 without normalization (paper section 5.1)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from timm.models import register_model

from ._cfgs import default_cfgs_with_timm_weights, paper_cfg
from ._factory import create_nf
from .normfree import NfCfg, NormFreeNet


def _resnet_cfg(depths: tuple[int, int, int, int]) -> NfCfg:
    return NfCfg(
        depths=depths,
        channels=(256, 512, 1024, 2048),
        stem_type="7x7_pool",
        stem_chs=64,
        stage_strides=(1, 2, 2, 2),
        bottle_ratio=0.25,
        bottle_from="out",
        act="relu",
        alpha=0.2,
    )


model_cfgs: dict[str, NfCfg] = {
    "nf_resnet26": _resnet_cfg((2, 2, 2, 2)),
    "nf_resnet50": _resnet_cfg((3, 4, 6, 3)),
    "nf_resnet101": _resnet_cfg((3, 4, 23, 3)),
    "nf_resnet152": _resnet_cfg((3, 8, 36, 3)),
    "nf_resnet200": _resnet_cfg((3, 24, 36, 3)),
    "nf_resnet288": _resnet_cfg((24, 24, 24, 24)),
}

default_cfgs = default_cfgs_with_timm_weights(
    {name: paper_cfg(cfg, 224, 224) for name, cfg in model_cfgs.items()}
)


def _create(variant: str, pretrained: bool, **kwargs: Any) -> NormFreeNet:
    return create_nf(variant, model_cfgs[variant], pretrained, **kwargs)


def _depths_doc(fn: Callable[..., NormFreeNet]) -> Callable[..., NormFreeNet]:
    """The entrypoint's docstring, from its config in ``model_cfgs``."""
    fn.__doc__ = f"NF-ResNet-{fn.__name__[len('nf_resnet') :]}, depths {model_cfgs[fn.__name__].depths}."
    return fn


with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Overwriting nf_", category=UserWarning)

    @register_model
    @_depths_doc
    def nf_resnet26(pretrained: bool = False, **kwargs: Any) -> NormFreeNet:
        return _create("nf_resnet26", pretrained, **kwargs)

    @register_model
    @_depths_doc
    def nf_resnet50(pretrained: bool = False, **kwargs: Any) -> NormFreeNet:
        return _create("nf_resnet50", pretrained, **kwargs)

    @register_model
    @_depths_doc
    def nf_resnet101(pretrained: bool = False, **kwargs: Any) -> NormFreeNet:
        return _create("nf_resnet101", pretrained, **kwargs)

    @register_model
    @_depths_doc
    def nf_resnet152(pretrained: bool = False, **kwargs: Any) -> NormFreeNet:
        return _create("nf_resnet152", pretrained, **kwargs)

    @register_model
    @_depths_doc
    def nf_resnet200(pretrained: bool = False, **kwargs: Any) -> NormFreeNet:
        return _create("nf_resnet200", pretrained, **kwargs)

    @register_model
    @_depths_doc
    def nf_resnet288(pretrained: bool = False, **kwargs: Any) -> NormFreeNet:
        return _create("nf_resnet288", pretrained, **kwargs)

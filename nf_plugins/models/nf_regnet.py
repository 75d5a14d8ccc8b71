"""NF-RegNets B0-B5 (paper section 5.2, appendices C and D).

RegNetY-400MF base, width multiplier 0.75, group width 8, inverted bottleneck expansion 2.25 of the
block's input width (1 for the network's first block), SE hidden width 0.5 x the expanded width,
SiLU, 2x2 avg-pool + 1x1 conv shortcuts, and a final 1x1 conv to 1280 * w4 / 440 channels.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from timm.models import register_model

from ._cfgs import default_cfgs_with_timm_weights, paper_cfg
from ._factory import create_nf
from .normfree import NfCfg, NormFreeNet

WIDTH_MULTIPLIER = 0.75


@dataclass(frozen=True)
class RegNetVariant:
    """One row of the paper's variant table (appendix D) with its size in Table 3: the one place of both."""

    widths: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    train_px: int
    test_px: int
    drop_rate: float
    params_m: float  # Table 3: parameters, millions
    macs_b: float  # Table 3: "FLOPs", multiply-adds (billions) at test_px


VARIANTS: dict[str, RegNetVariant] = {
    "nf_regnet_b0": RegNetVariant((48, 104, 208, 440), (1, 3, 6, 6), 192, 224, 0.2, 8.6, 0.44),
    "nf_regnet_b1": RegNetVariant((48, 104, 208, 440), (2, 4, 7, 7), 240, 256, 0.2, 10.0, 0.73),
    "nf_regnet_b2": RegNetVariant((56, 112, 232, 488), (2, 4, 8, 8), 240, 272, 0.3, 13.8, 1.10),
    "nf_regnet_b3": RegNetVariant((56, 128, 248, 528), (2, 5, 9, 9), 288, 320, 0.3, 18.1, 2.00),
    "nf_regnet_b4": RegNetVariant((64, 144, 288, 616), (2, 6, 11, 11), 320, 384, 0.4, 29.3, 4.47),
    "nf_regnet_b5": RegNetVariant((80, 168, 336, 704), (3, 7, 14, 14), 384, 456, 0.4, 48.7, 10.56),
}


def _regnet_cfg(v: RegNetVariant) -> NfCfg:
    channels = tuple(int(w * WIDTH_MULTIPLIER) for w in v.widths)
    return NfCfg(
        depths=v.depths,
        channels=channels,
        stem_type="3x3",
        stem_chs=channels[0],
        stage_strides=(2, 2, 2, 2),
        bottle_ratio=2.25,
        bottle_from="in",
        first_block_ratio=1.0,
        group_size=8,
        se_ratio=0.5,
        shortcut_pool=True,
        num_features=1280 * channels[-1] // 440,
        act="silu",
        alpha=0.2,
        drop_rate=v.drop_rate,
    )


model_cfgs: dict[str, NfCfg] = {name: _regnet_cfg(v) for name, v in VARIANTS.items()}

default_cfgs = default_cfgs_with_timm_weights(
    {name: paper_cfg(model_cfgs[name], v.train_px, v.test_px) for name, v in VARIANTS.items()}
)


def _create(variant: str, pretrained: bool, **kwargs: Any) -> NormFreeNet:
    return create_nf(variant, model_cfgs[variant], pretrained, **kwargs)


def _table3_doc(fn: Callable[..., NormFreeNet]) -> Callable[..., NormFreeNet]:
    """The entrypoint's docstring, from its row of ``VARIANTS`` (written once, there)."""
    v = VARIANTS[fn.__name__]
    title = fn.__name__.replace("nf_regnet_b", "NF-RegNet-B")
    fn.__doc__ = f"{title}: {v.params_m}M params, {v.macs_b:.2f}B MACs at {v.test_px} px (paper Table 3)."
    return fn


with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Overwriting nf_", category=UserWarning)

    @register_model
    @_table3_doc
    def nf_regnet_b0(pretrained: bool = False, **kwargs: Any) -> NormFreeNet:
        return _create("nf_regnet_b0", pretrained, **kwargs)

    @register_model
    @_table3_doc
    def nf_regnet_b1(pretrained: bool = False, **kwargs: Any) -> NormFreeNet:
        return _create("nf_regnet_b1", pretrained, **kwargs)

    @register_model
    @_table3_doc
    def nf_regnet_b2(pretrained: bool = False, **kwargs: Any) -> NormFreeNet:
        return _create("nf_regnet_b2", pretrained, **kwargs)

    @register_model
    @_table3_doc
    def nf_regnet_b3(pretrained: bool = False, **kwargs: Any) -> NormFreeNet:
        return _create("nf_regnet_b3", pretrained, **kwargs)

    @register_model
    @_table3_doc
    def nf_regnet_b4(pretrained: bool = False, **kwargs: Any) -> NormFreeNet:
        return _create("nf_regnet_b4", pretrained, **kwargs)

    @register_model
    @_table3_doc
    def nf_regnet_b5(pretrained: bool = False, **kwargs: Any) -> NormFreeNet:
        return _create("nf_regnet_b5", pretrained, **kwargs)

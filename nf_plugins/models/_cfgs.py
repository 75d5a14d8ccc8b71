"""Pretrained-cfg helpers shared by the variant files."""

from __future__ import annotations

from collections import deque
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models._pretrained import DefaultCfg, PretrainedCfg

from ._factory import OUR_TAG, capture_timm_original
from .normfree import NfCfg


def final_feature_size(model_cfg: NfCfg, px: int) -> int:
    """Side of the final feature map for a ``px`` x ``px`` input (timm's ``pool_size``).

    Each stride-s step (stem conv, the ResNet stem's max-pool, each stage's first block) pads so that an
    odd size rounds up: ceil(px / s), e.g. 240 px -> 120, 60, 30, 15, 8 on an NF-RegNet, not 240 // 32 = 7.
    """
    stem_strides = (2, 2) if model_cfg.stem_type == "7x7_pool" else (2,)
    for stride in (*stem_strides, *model_cfg.stage_strides):
        px = -(-px // stride)
    return px


def paper_cfg(model_cfg: NfCfg, train_px: int, test_px: int, **kwargs: Any) -> dict[str, Any]:
    """Our cfg: the paper's train/test resolutions; eval crop pads 32 px as DeepMind's reference does."""
    pool = final_feature_size(model_cfg, train_px)
    return dict(
        url="",
        num_classes=1000,
        input_size=(3, train_px, train_px),
        test_input_size=(3, test_px, test_px),
        pool_size=(pool, pool),
        test_crop_pct=test_px / (test_px + 32),
        crop_pct=train_px / (train_px + 32),
        interpolation="bicubic",
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv="stem.conv",
        classifier="head.fc",
        license="apache-2.0",
        paper_ids="arXiv:2101.08692",
        paper_name="Characterizing signal propagation to close the performance gap in unnormalized ResNets",
        **kwargs,
    )


def default_cfgs_with_timm_weights(ours: dict[str, dict[str, Any]]) -> dict[str, DefaultCfg]:
    """Our cfg as each name's default tag (``untrained``), followed by timm's weighted tags.

    Built as ``DefaultCfg`` directly: ``generate_default_cfgs`` would promote a tag with weights to
    the default, so a plain ``nf_resnet50`` would carry timm's cfg instead of the paper's.
    """
    out: dict[str, DefaultCfg] = {}
    for name, cfg in ours.items():
        cfgs = {OUR_TAG: PretrainedCfg(**cfg)}
        cfgs.update(capture_timm_original(name))
        out[name] = DefaultCfg(tags=deque(cfgs), cfgs=cfgs)
    return out

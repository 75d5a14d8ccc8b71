"""Normalizer-free building blocks: Scaled WS conv, gamma-scaled activations, NF squeeze-excite."""

import torch
from timm.layers import DropPath

from .activations import ACTIVATIONS, GAMMA_TABLE, GammaAct, create_act, estimate_gamma, get_gamma
from .scaled_std_conv import ScaledStdConv2d, he_init_conv2d
from .squeeze_excite import NFSqueezeExcite


def drop_path_keep_mask(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Per-sample 0/1 keep mask of shape (N, 1, ..., 1), *not* rescaled by the keep rate."""
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    return x.new_empty(shape).bernoulli_(1.0 - drop_prob)


def StochasticDepth(drop_prob: float = 0.0) -> DropPath:  # noqa: N802 - reads as a layer
    """Per-sample stochastic depth *without* rescaling by the keep rate (paper appendix C).

    timm's ``DropPath`` already implements this with ``scale_by_keep=False``.
    """
    return DropPath(drop_prob, scale_by_keep=False)


__all__ = [
    "ACTIVATIONS",
    "GAMMA_TABLE",
    "GammaAct",
    "NFSqueezeExcite",
    "ScaledStdConv2d",
    "StochasticDepth",
    "create_act",
    "drop_path_keep_mask",
    "estimate_gamma",
    "get_gamma",
    "he_init_conv2d",
]

"""Weights on which every part of an NF model shows in its outputs (imported by the tests).

At the default init every SkipInit gain and the classifier are 0, so residual branches (grouped conv,
SE, the fused add) and the head add nothing: an equivalence test on such a model compares the skip
path only. ``make_live`` gives random SkipInit gains, Scaled WS gains and biases and a random classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from nf_plugins.layers import ScaledStdConv2d
from nf_plugins.models import NormFreeBlock


@torch.no_grad()
def make_live(model: nn.Module, seed: int = 0) -> nn.Module:
    """Randomise ``model``'s zero-initialised and unit parameters in place; returns ``model``."""
    g = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, lo: float, hi: float) -> None:
        t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)

    def normal(t: torch.Tensor, std: float) -> None:
        t.copy_(torch.randn(t.shape, generator=g) * std)

    for m in model.modules():
        if isinstance(m, NormFreeBlock):
            uniform(m.skipinit_gain, 0.5, 1.5)
        elif isinstance(m, ScaledStdConv2d):
            uniform(m.gain, 0.5, 1.5)
            if m.bias is not None:
                normal(m.bias, 0.1)
    fc = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(fc, nn.Linear):
        normal(fc.weight, 0.1)
        normal(fc.bias, 0.1)
    return model

"""Squeeze-and-excite with the NF correction: the sigmoid gate halves the signal variance on
unit-Gaussian input (paper section 4.4), so the output is multiplied by 2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .activations import GammaAct


class NFSqueezeExcite(nn.Module):
    """``gain * sigmoid(fc2(act(fc1(mean_hw(x))))) * x`` with ``gain = 2`` (1: the unmodified SE).

    ``gamma``: the hidden activation's gamma (None: the activation's own, as ``GammaAct``). ``fc1`` and
    ``fc2`` are 1x1 convs, the layout of timm's and the paper's checkpoints, but run as matrix products
    on the pooled ``(N, C)`` vector: PyTorch sends a 1x1 conv on a 1x1 map at batch 1 to its im2col
    fallback, at several times the cost of the same product through ``F.linear``.
    """

    def __init__(
        self, channels: int, hidden: int, act: str = "silu", gain: float = 2.0, gamma: float | None = None
    ) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.act = GammaAct(act, gamma=gamma)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3))
        s = F.linear(s, self.fc1.weight.flatten(1), self.fc1.bias)
        s = F.linear(self.act(s), self.fc2.weight.flatten(1), self.fc2.bias)
        return x * (torch.sigmoid(s) * self.gain)[:, :, None, None]

    def extra_repr(self) -> str:
        return f"gain={self.gain}"

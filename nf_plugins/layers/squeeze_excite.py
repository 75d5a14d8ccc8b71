"""Squeeze-and-excite with the NF correction: the sigmoid gate halves the signal variance on
unit-Gaussian input (paper section 4.4), so the output is multiplied by 2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .activations import GammaAct


class NFSqueezeExcite(nn.Module):
    """``gain * sigmoid(fc2(act(fc1(mean_hw(x))))) * x`` with ``gain = 2``."""

    def __init__(self, channels: int, hidden: int, act: str = "silu", gain: float = 2.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.act = GammaAct(act)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The 1x1 convs act on a (N, C, 1, 1) tensor: as matrix products (same weights, timm's conv
        # layout kept for checkpoints) they skip the conv dispatch, which at batch 1 costs more than the math.
        s = x.mean(dim=(2, 3))
        s = F.linear(s, self.fc1.weight.flatten(1), self.fc1.bias)
        s = F.linear(self.act(s), self.fc2.weight.flatten(1), self.fc2.bias)
        return x * (torch.sigmoid(s) * self.gain)[:, :, None, None]

    def extra_repr(self) -> str:
        return f"gain={self.gain}"

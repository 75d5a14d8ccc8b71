"""Reverse Huber (berHu) loss for depth regression (Laina et al. 2016; Owen 2007).

``B(r) = |r|`` for ``|r| <= c`` and ``(r^2 + c^2) / (2c)`` above, with ``c = 0.2 * max |r|`` over
the valid pixels of the whole batch. Both pieces have value ``c`` and slope ``sign(r)`` at
``|r| = c``, so the loss is C^1. ``c`` is treated as a constant (no gradient through the max), as in
Laina et al.'s reference implementation. mmseg ships no berHu loss, hence this module.
"""

from __future__ import annotations

import torch
from mmseg.registry import MODELS
from torch import Tensor, nn


def berhu_loss(
    pred: Tensor, target: Tensor, threshold_ratio: float = 0.2, min_depth: float = 0.0, eps: float = 1e-12
) -> Tensor:
    """Mean berHu over pixels whose target depth is finite and above ``min_depth``.

    Pixels without depth (NYU stores them as 0) are ignored; a batch without any valid pixel
    gives a zero loss that still depends on ``pred`` (so distributed training keeps all grads).
    """
    if pred.shape != target.shape:
        raise ValueError(f"berhu_loss: pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    valid = torch.isfinite(target) & (target > min_depth)
    if not bool(valid.any()):
        return pred.sum() * 0.0
    residual = (pred - target)[valid]
    abs_r = residual.abs()
    c = threshold_ratio * abs_r.max().detach()
    quadratic = (residual.square() + c * c) / (2.0 * c.clamp_min(eps))
    return torch.where(abs_r <= c, abs_r, quadratic).mean()


@MODELS.register_module()
class BerHuLoss(nn.Module):
    """mmseg loss wrapper of :func:`berhu_loss` (``loss_name`` must start with ``loss_``)."""

    def __init__(
        self,
        threshold_ratio: float = 0.2,
        min_depth: float = 0.0,
        loss_weight: float = 1.0,
        loss_name: str = "loss_berhu",
    ) -> None:
        super().__init__()
        if not 0.0 < threshold_ratio <= 1.0:
            raise ValueError(f"BerHuLoss: threshold_ratio must be in (0, 1], got {threshold_ratio}")
        self.threshold_ratio = threshold_ratio
        self.min_depth = min_depth
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self, pred: Tensor, target: Tensor, **kwargs) -> Tensor:
        return self.loss_weight * berhu_loss(pred, target, self.threshold_ratio, self.min_depth)

    @property
    def loss_name(self) -> str:
        return self._loss_name

"""Reverse Huber (berHu) loss for depth regression (Laina et al. 2016; Owen 2007).

``B(r) = |r|`` for ``|r| <= c`` and ``(r^2 + c^2) / (2c)`` above, with ``c = 0.2 * max |r|`` over
the valid pixels of the whole batch. Both pieces have value ``c`` and slope ``sign(r)`` at
``|r| = c``, so the loss is C^1. ``c`` is treated as a constant (no gradient through the max), as in
Laina et al.'s reference implementation. mmseg ships no berHu loss, hence this module.
"""

from __future__ import annotations

import torch
from mmseg.models.losses.utils import weight_reduce_loss
from mmseg.registry import MODELS
from torch import Tensor, nn

REDUCTIONS = ("none", "mean", "sum")


def _broadcasts_to(weight: Tensor, pred: Tensor) -> bool:
    """``weight`` has ``pred``'s number of dims and broadcasts to its shape (mmseg only asserts the dims)."""
    try:
        return weight.dim() == pred.dim() and torch.broadcast_shapes(weight.shape, pred.shape) == pred.shape
    except RuntimeError:  # torch's "shape mismatch" for sizes that do not broadcast
        return False


def berhu_loss(
    pred: Tensor,
    target: Tensor,
    threshold_ratio: float = 0.2,
    min_depth: float = 0.0,
    eps: float = 1e-12,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | None = None,
) -> Tensor:
    """berHu over pixels whose target depth is finite and above ``min_depth``, reduced as mmseg's losses.

    The threshold ``c`` comes from the valid pixels' residuals only (``weight`` does not change it). Pixels
    without depth (NYU stores them as 0) have loss 0. ``weight`` (same number of dims as ``pred``,
    broadcastable to it) multiplies the per-pixel loss; then ``reduction`` as mmseg's
    ``weight_reduce_loss``: ``"none"`` (per pixel), ``"sum"``, or ``"mean"``, which divides the sum by
    ``avg_factor`` or, when that is None, by the number of valid pixels (as mmseg's CrossEntropyLoss with
    ``avg_non_ignore=True``). A batch without any valid pixel gives a zero loss that still depends on
    ``pred`` (so distributed training keeps all grads).
    """
    if pred.shape != target.shape:
        raise ValueError(f"berhu_loss: pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"berhu_loss: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if avg_factor is not None and reduction == "sum":
        raise ValueError("berhu_loss: avg_factor divides a mean; it cannot be used with reduction='sum'")
    if weight is not None and not _broadcasts_to(weight, pred):
        raise ValueError(
            f"berhu_loss: weight shape {tuple(weight.shape)} must have pred's {pred.dim()} dims and "
            f"broadcast to its shape {tuple(pred.shape)}"
        )
    valid = torch.isfinite(target) & (target > min_depth)
    residual = torch.where(valid, pred - target, torch.zeros_like(pred))  # 0 (no loss, no grad) elsewhere
    abs_r = residual.abs()
    c = threshold_ratio * abs_r.max().detach()  # the max over the valid pixels (the rest are 0)
    quadratic = (residual.square() + c * c) / (2.0 * c.clamp_min(eps))
    loss = torch.where(abs_r <= c, abs_r, quadratic)
    if reduction == "mean" and avg_factor is None:
        avg_factor = valid.sum().item()
    return weight_reduce_loss(loss, None if weight is None else weight.float(), reduction, avg_factor)


@MODELS.register_module()
class BerHuLoss(nn.Module):
    """mmseg loss wrapper of :func:`berhu_loss` with mmseg's loss interface: ``reduction`` (default
    ``"mean"``), and ``forward(pred, target, weight, avg_factor, reduction_override)`` as SiLogLoss's.
    ``loss_name`` must start with ``loss_``."""

    def __init__(
        self,
        threshold_ratio: float = 0.2,
        min_depth: float = 0.0,
        loss_weight: float = 1.0,
        loss_name: str = "loss_berhu",
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if not 0.0 < threshold_ratio <= 1.0:
            raise ValueError(f"BerHuLoss: threshold_ratio must be in (0, 1], got {threshold_ratio}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"BerHuLoss: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.threshold_ratio = threshold_ratio
        self.min_depth = min_depth
        self.loss_weight = loss_weight
        self.reduction = reduction
        self._loss_name = loss_name

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | None = None,
        reduction_override: str | None = None,
    ) -> Tensor:
        """``loss_weight`` times the berHu loss, reduced by ``reduction_override`` or ``self.reduction``."""
        if reduction_override not in (None, *REDUCTIONS):
            raise ValueError(
                f"BerHuLoss: reduction_override must be None or one of {REDUCTIONS}, "
                f"got {reduction_override!r}"
            )
        reduction = reduction_override or self.reduction
        return self.loss_weight * berhu_loss(
            pred, target, self.threshold_ratio, self.min_depth,
            weight=weight, reduction=reduction, avg_factor=avg_factor,
        )  # fmt: skip

    @property
    def loss_name(self) -> str:
        return self._loss_name

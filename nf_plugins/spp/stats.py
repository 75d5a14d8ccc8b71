"""Signal Propagation Plot statistics (paper section 3, appendix F), streamed block by block.

For every residual block, at its output ``y`` (NCHW), in float64:

- average channel squared mean: ``mean_c(mean_nhw(y) ** 2)``
- average channel variance: ``mean_c(var_nhw(y))`` (population variance, as ``np.var``)
- residual average channel variance: the same variance of the residual branch's output, before it
  is merged with the skip path.

Forward hooks reduce each activation to three numbers as soon as it is produced, under
``torch.no_grad``, so a 600-block network at 512 px never holds more than one block's tensors.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .adapters import BlockSpec, find_blocks


@dataclass
class BlockStats:
    """The three SPP statistics of one residual block."""

    index: int
    stage: int
    stage_end: bool
    avg_channel_squared_mean: float
    avg_channel_variance: float
    residual_avg_channel_variance: float


@dataclass
class SppResult:
    """The SPP of one model: one ``BlockStats`` per residual block, in forward order."""

    model: str
    blocks: list[BlockStats] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The JSON schema: ``{"model": str, "blocks": [{index, stage, stage_end, <3 stats>}]}``."""
        return {"model": self.model, "blocks": [asdict(b) for b in self.blocks]}

    def column(self, key: str) -> list[float]:
        return [getattr(b, key) for b in self.blocks]


def channel_stats(y: torch.Tensor) -> tuple[float, float]:
    """(average channel squared mean, average channel variance) of an NCHW tensor, in float64."""
    if y.ndim < 2:
        raise ValueError(f"expected an (N, C, ...) activation, got shape {tuple(y.shape)}")
    dims = [0, *range(2, y.ndim)]
    var, mean = torch.var_mean(y.detach().double(), dim=dims, unbiased=False)
    return float(mean.square().mean()), float(var.mean())


@contextlib.contextmanager
def batch_statistics_mode(model: nn.Module) -> Iterator[None]:
    """Evaluate ``model`` as at initialisation: eval mode (no dropout / drop-path), except that
    BatchNorm layers normalise with the batch's statistics (as in training) without touching their
    running statistics. Restores every module's mode and momentum afterwards."""
    modes = {m: m.training for m in model.modules()}
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    saved = [
        (m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None)
        for m in bns
    ]
    try:
        model.eval()
        for bn in bns:
            bn.train()
            bn.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
        yield
    finally:
        for m, mode in modes.items():
            m.training = mode
        for bn, (momentum, tracked) in zip(bns, saved, strict=True):
            bn.momentum = momentum
            if tracked is not None:
                bn.num_batches_tracked.copy_(tracked)


def _model_in_chans(model: nn.Module) -> int:
    chans = getattr(model, "in_chans", None)
    if isinstance(chans, int):
        return chans
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    return int(size[0]) if size else 3


def gaussian_input(
    model: nn.Module, img_size: int, batch_size: int, seed: int = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The paper's probe: a batch of N(0, 1) images, reproducible from ``seed``."""
    if img_size < 1 or batch_size < 1:
        raise ValueError(f"img_size and batch_size must be positive, got {img_size} and {batch_size}")
    gen = torch.Generator().manual_seed(seed)
    shape = (batch_size, _model_in_chans(model), img_size, img_size)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)


def _check_finite(value: float, what: str, spec: BlockSpec, model_name: str) -> None:
    if not math.isfinite(value):
        raise FloatingPointError(
            f"{model_name}: {what} at block {spec.index} ({spec.name}, stage {spec.stage}) is {value}: "
            "the signal overflowed the forward dtype. Use a smaller depth or image size, or run the "
            "forward in float64 (dtype=torch.float64 / --dtype float64)."
        )


@torch.no_grad()
def signal_propagation(
    model: nn.Module,
    inputs: torch.Tensor | None = None,
    *,
    name: str | None = None,
    img_size: int = 224,
    batch_size: int = 8,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    on_block: Callable[[BlockStats], None] | None = None,
) -> SppResult:
    """The SPP statistics of ``model`` for ``inputs`` (default: N(0, 1) of ``batch_size`` x ``img_size``).

    BatchNorm uses batch statistics (the network at initialisation), everything else runs in eval
    mode. ``dtype`` casts the model and input for the forward (e.g. float64 for exploding networks;
    the model is cast back afterwards). ``on_block`` is called after each block (progress bars).
    """
    name = name or type(model).__name__
    specs = find_blocks(model)
    param = next(model.parameters(), None)
    orig_dtype = param.dtype if param is not None else torch.float32
    fwd_dtype = dtype or orig_dtype
    if inputs is None:
        inputs = gaussian_input(model, img_size, batch_size, seed, fwd_dtype)
    if not torch.is_floating_point(inputs):
        raise TypeError(f"inputs must be a floating-point tensor, got {inputs.dtype}")
    bad = (~torch.isfinite(inputs)).sum().item()
    if bad:
        raise ValueError(f"inputs contain {bad} NaN/inf values; pass a finite batch of images")
    device = param.device if param is not None else inputs.device
    inputs = inputs.to(device=device, dtype=fwd_dtype)

    residual: dict[int, float] = {}
    result = SppResult(name)

    def branch_hook(spec: BlockSpec):
        def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            _, var = channel_stats(out)
            _check_finite(var, "the residual-branch variance", spec, name)
            residual[spec.index] = var

        return hook

    def block_hook(spec: BlockSpec):
        def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            if spec.index not in residual:
                raise RuntimeError(
                    f"{name}: block {spec.name} returned before its branch end "
                    f"({type(spec.branch_end).__name__}) ran; the adapter for "
                    f"{type(spec.block).__name__} points at the wrong submodule"
                )
            sq_mean, var = channel_stats(out)
            _check_finite(sq_mean, "the squared channel mean", spec, name)
            _check_finite(var, "the channel variance", spec, name)
            stats = BlockStats(spec.index, spec.stage, spec.stage_end, sq_mean, var, residual.pop(spec.index))
            result.blocks.append(stats)
            if on_block is not None:
                on_block(stats)

        return hook

    handles = []
    try:
        for spec in specs:
            handles.append(spec.branch_end.register_forward_hook(branch_hook(spec)))
            handles.append(spec.block.register_forward_hook(block_hook(spec)))
        if fwd_dtype != orig_dtype:
            model.to(fwd_dtype)
        with batch_statistics_mode(model):
            model(inputs)
    finally:
        for h in handles:
            h.remove()
        if fwd_dtype != orig_dtype:
            model.to(orig_dtype)
    if len(result.blocks) != len(specs):
        raise RuntimeError(f"{name}: {len(specs)} blocks found but {len(result.blocks)} ran in forward")
    return result

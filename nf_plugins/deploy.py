"""Deployment: fold Scaled WS into plain convolutions and export to ONNX.

The standardization (a ``var_mean`` over each filter) is a function of the weights only, so at
inference it can be computed once and stored as an ordinary conv weight (paper appendix B.1 places the
gain next to the weight for exactly this). The folded model has no weight-standardization op left,
which is what ONNX exporters and runtimes need.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .atomic import atomic_output
from .layers import ScaledStdConv2d


@torch.no_grad()
def plain_conv_from(conv: ScaledStdConv2d) -> nn.Conv2d:
    """An ``nn.Conv2d`` whose weight is ``conv``'s standardized weight (gain and input scale included)."""
    out = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, conv.bias is not None, device=conv.weight.device, dtype=conv.weight.dtype,
    )  # fmt: skip
    out.weight.copy_(conv.standardized_weight())
    if conv.bias is not None:
        out.bias.copy_(conv.bias)
    return out


def fold_scaled_ws(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) with every ``ScaledStdConv2d`` replaced by its folded conv."""
    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, ScaledStdConv2d):
                setattr(module, name, plain_conv_from(child))
    return folded


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    input_size: tuple[int, int, int] = (3, 224, 224),
    opset: int = 17,
    dynamic: bool = True,
) -> Path:
    """Export ``model`` with Scaled WS folded to an ONNX file (written atomically); returns the path.

    Uses the TorchScript-based exporter (``dynamo=False``): NF models trace to a static conv graph.
    ``dynamic`` makes batch, height and width dynamic axes.
    """
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"ONNX output path must end in .onnx, got {str(path)!r}")
    if len(input_size) != 3 or min(input_size) < 1:
        raise ValueError(f"input_size must be (C, H, W) with positive entries, got {input_size!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"folder {str(path.parent)!r} for the ONNX file does not exist; create it first"
        )
    folded = fold_scaled_ws(model)
    x = torch.randn(1, *input_size)
    axes = {"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}} if dynamic else None
    with atomic_output(path, make_dirs=False) as tmp, warnings.catch_warnings():
        # the entrance checks of the model are constants for a traced graph
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            folded, (x,), str(tmp), dynamo=False, opset_version=opset,
            input_names=["input"], output_names=["logits"], dynamic_axes=axes,
        )  # fmt: skip
    return path

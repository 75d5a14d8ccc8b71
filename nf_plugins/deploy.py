"""Deployment: fold Scaled WS into plain convolutions and export to ONNX.

The standardization (a ``var_mean`` over each filter) is a function of the weights only, so at
inference it can be computed once and stored as an ordinary conv weight (paper appendix B.1 places the
gain next to the weight for exactly this). The folded model has no weight-standardization op left,
which is what ONNX exporters and runtimes need.
"""

from __future__ import annotations

import argparse
import copy
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .atomic import atomic_output
from .layers import ScaledStdConv2d
from .outputs import check_output_file


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


# The smallest image the models take (``check_image_batch``'s 32 px: below it the stride-32 stage has
# no pixel). The traced ONNX graph has no such check, so the contract travels as graph metadata.
MIN_INPUT_SIZE = 32


def check_onnx_output(path: str | os.PathLike) -> Path:
    """An ``.onnx`` path in an existing, writable folder, and not a folder itself: checked before work."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"ONNX output path must end in .onnx, got {str(path)!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"folder {str(path.parent)!r} for the ONNX file does not exist; create it first"
        )
    check_output_file(path, "ONNX output")
    return path


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    input_size: tuple[int, int, int] = (3, 224, 224),
    opset: int = 17,
    dynamic: bool = True,
) -> Path:
    """Export ``model`` with Scaled WS folded to an ONNX file (written atomically); returns the path.

    Uses the TorchScript-based exporter (``dynamo=False``): NF models trace to a static conv graph.
    ``dynamic`` makes batch, height and width dynamic axes. Input contract (the graph itself does not
    check it, unlike the PyTorch model): float32 NCHW, normalized as the model's ``pretrained_cfg``
    says, H and W at least ``MIN_INPUT_SIZE`` (32); smaller inputs give a meaningless output instead of
    an error. It is stored in the file's ``metadata_props`` (``min_input_size``, ``input_contract``).
    """
    path = check_onnx_output(path)
    if len(input_size) != 3 or min(input_size) < 1:
        raise ValueError(f"input_size must be (C, H, W) with positive entries, got {input_size!r}")
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
        _add_input_contract(tmp)
    return path


def _add_input_contract(path: Path) -> None:
    """Write the input contract into the ONNX file's metadata (runtimes expose ``metadata_props``)."""
    import onnx

    graph = onnx.load(str(path))
    contract = {
        "min_input_size": str(MIN_INPUT_SIZE),
        "input_contract": f"float32 NCHW, H and W >= {MIN_INPUT_SIZE}; smaller inputs are not checked and "
        "give meaningless logits",
    }
    for key, value in contract.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(path))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nf-plugins export-onnx`` options."""
    parser.add_argument("model", help="registered model name, e.g. nf_regnet_b0")
    parser.add_argument("--out", required=True, help="output .onnx path")
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="weights: a training checkpoint of train_imagenet.py (model and classes from it) or a "
        "safetensors/.pth state dict",
    )
    parser.add_argument(
        "--weights",
        choices=("ema", "model"),
        default="ema",
        help="from a training checkpoint: EMA (default, as export_hub.py and the paper) or the raw weights",
    )
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--img-size", type=int, default=None, help="default: the model's test resolution")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Path:
    """``nf-plugins export-onnx``: build (or load) the model, fold Scaled WS, write the ONNX file."""
    from .hub.checkpoint import is_training_checkpoint, model_from_training_checkpoint
    from .models import create_model

    check_onnx_output(args.out)  # before building the model and reading weights
    if args.checkpoint and is_training_checkpoint(args.checkpoint):
        model, state = model_from_training_checkpoint(args.checkpoint, weights=args.weights)
        if state["model_name"] != args.model:
            parser.error(f"--checkpoint holds {state['model_name']}, not {args.model}")
    else:
        kwargs = {"checkpoint_path": args.checkpoint} if args.checkpoint else {}
        model = create_model(args.model, num_classes=args.num_classes, **kwargs)
    cfg = model.pretrained_cfg
    size = args.img_size or (cfg.get("test_input_size") or cfg["input_size"])[-1]
    out = export_onnx(model, args.out, input_size=(3, size, size))
    print(f"wrote {out}")
    return out

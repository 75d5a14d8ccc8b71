"""Weights files into the paper's models: never a silent cast, never a non-finite tensor.

timm's loaders (``local-dir:``, ``hf-hub:``, ``pretrained_cfg_overlay(file=...)``, ``checkpoint_path``)
copy each tensor into the model with ``load_state_dict``, which casts silently: an int8 (quantized) or
float16 file loads as float32 with right keys and shapes and gives wrong or degraded numbers. Here
every tensor must have the model's own dtype and finite values; a conversion is the user's explicit
step (the error says how). The other checks turn timm's empty or misleading errors about the weights'
location into messages naming the file and what is wrong with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

# The largest label sets in use (ImageNet-21k: 21,843; JFT-300M: 18,291) are far below this; a config
# asking for more is a typo (10**9 classes would allocate terabytes for the classifier).
MAX_NUM_CLASSES = 1_000_000

# timm's local-dir loader tries these names in this order (timm.models._hub._PREFERRED_FILES)
_LOCAL_DIR_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
    "open_clip_model.safetensors",
)
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive, or a legacy pickle


def check_weights(state_dict: Mapping[str, Any], model: nn.Module, source: str) -> Mapping[str, Any]:
    """Refuse tensors whose dtype differs from the model's, or that hold NaN/inf; returns ``state_dict``.

    Keys the model lacks are left to the strict ``load_state_dict`` that follows (it names them).
    """
    own = model.state_dict()
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor) or key not in own:
            continue
        expected = own[key].dtype
        if value.dtype != expected:
            hint = (
                "it is a quantized tensor: dequantize it with its scales first"
                if not value.is_floating_point() and expected.is_floating_point
                else f"convert the file explicitly, e.g. {{k: v.to({expected}) for k, v in sd.items()}} "
                "saved with safetensors.torch.save_file"
            )
            # ValueError (bad file content), not TypeError: timm's loader retries a filter that raises
            # TypeError with one argument, which would hide this message
            raise ValueError(
                f"{source}: tensor {key!r} has dtype {value.dtype} but the model's is {expected}; "
                f"weights are never cast silently ({hint})"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(
                f"{source}: tensor {key!r} holds {bad} non-finite value(s) (NaN/inf) of {value.numel()}; "
                "the weights are corrupt (e.g. from a diverged run): export them again from a good checkpoint"
            )
    return state_dict


def check_num_classes(num_classes: Any, where: str = "num_classes") -> None:
    """A bound on the classifier size, checked before anything is allocated."""
    if isinstance(num_classes, int) and not isinstance(num_classes, bool) and num_classes > MAX_NUM_CLASSES:
        raise ValueError(
            f"{where}={num_classes} is larger than {MAX_NUM_CLASSES:,} classes (the classifier alone would "
            "need gigabytes or more); check the value"
        )


def check_weights_file(path: str | os.PathLike, what: str, named: str | None = None) -> Path:
    """``path`` must be a readable weights file (safetensors, or torch's zip/pickle); says what is wrong.

    Messages name it ``<what> '<path>'``, or ``named`` (e.g. a config key: ``model.backbone.x='<path>'``).
    """
    path = Path(path)
    named = named or f"{what} {str(path)!r}"
    if path.is_symlink() and not path.exists():
        raise FileNotFoundError(f"{named} is a symlink that resolves nowhere (dangling or a loop)")
    if path.is_dir():
        raise IsADirectoryError(f"{named} is a directory, not a weights file")
    if not path.is_file():
        raise FileNotFoundError(f"{named} does not exist")
    if path.suffix != ".safetensors":  # timm reads every other name with torch.load
        with open(path, "rb") as f:
            head = f.read(4)
        if not head.startswith(_TORCH_MAGIC):
            raise ValueError(
                f"{named} is not a weights file (neither .safetensors nor a torch.save archive; "
                f"it starts with {head!r}); point it at model.safetensors or a .pth state dict"
            )
    return path


def check_local_dir(folder: str | os.PathLike) -> None:
    """The weights file timm will pick in a ``local-dir:`` folder exists and is a file."""
    folder = Path(folder)
    for name in _LOCAL_DIR_FILES:
        candidate = folder / name
        if os.path.lexists(candidate):
            check_weights_file(candidate, "local-dir: weights")
            return
    if folder.is_dir() and not any(folder.glob("*.safetensors")) and not any(folder.glob("*.pth")):
        raise FileNotFoundError(f"local-dir: folder {str(folder)!r} holds no model.safetensors")


def read_local_dir_config(folder: str | os.PathLike) -> dict[str, Any] | None:
    """``<folder>/config.json`` as a dict (None if absent: timm reports that), naming the file when bad."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); export the folder again") from e
    if not isinstance(config, dict):
        raise ValueError(
            f"{path} must hold a JSON object with 'architecture' and 'model_args', "
            f"got {type(config).__name__}"
        )
    args = config.get("model_args") or {}
    if not isinstance(args, dict):
        raise ValueError(f"{path}: 'model_args' must be a JSON object, got {type(args).__name__}")
    for where, value in (
        ("num_classes", config.get("num_classes")),
        ("model_args.num_classes", args.get("num_classes")),
    ):
        check_num_classes(value, f"{path}: {where}")
    return config


def load_checkpoint_checked(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """timm's ``checkpoint_path`` loading, with the dtype/finite checks and a strict load."""
    from timm.models import load_state_dict

    check_weights_file(path, "checkpoint_path")
    state_dict = load_state_dict(str(path), weights_only=True)
    check_weights(state_dict, model, f"checkpoint_path {str(path)!r}")
    model.load_state_dict(state_dict, strict=True)
    return model

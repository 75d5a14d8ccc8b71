"""Training checkpoints of ``tools/train_imagenet.py``: one format, written atomically, read safely.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it is read back with
``torch.load(weights_only=True)``: no pickle from a file ever runs code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from ..atomic import atomic_output
from ..models._weights import check_weights

CHECKPOINT_FORMAT = "nf_plugins.train_checkpoint/1"
_REQUIRED_KEYS = ("format", "model_name", "model_kwargs", "model", "step")


def save_training_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically (temp file in the same folder, then ``os.replace``)."""
    path = Path(path)
    with atomic_output(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    return path


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True`` and check it is one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle with code in it, or not a torch file at all
        raise ValueError(
            f"{path} is not a training checkpoint readable with torch.load(weights_only=True): {e}"
        ) from e
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{path} is not an nf_plugins training checkpoint (format {found!r}, expected "
            f"{CHECKPOINT_FORMAT!r}); for a plain state dict use timm.create_model(..., checkpoint_path=...)"
        )
    missing = [k for k in _REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"training checkpoint {path} lacks keys {missing}")
    return state


def is_training_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is one of our training checkpoints (not a plain state dict); never raises."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a torch zip archive, or not ours: the caller's loader says what it is
        return False
    return isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT


def model_from_training_checkpoint(
    path: str | Path, weights: Literal["ema", "model"] = "ema"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model of a training checkpoint with its EMA (default, what the paper reports) or raw weights.

    Returns ``(model, checkpoint)``; the weights load strictly, so a mismatch names the keys, and a
    tensor of another dtype or with NaN/inf is refused, naming it.
    """
    import timm

    state = load_training_checkpoint(path)
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    state_dict = state.get(weights)
    if state_dict is None:
        raise ValueError(f"training checkpoint {path} holds no {weights!r} weights; use weights='model'")
    model = timm.create_model(state["model_name"], **state["model_kwargs"])
    check_weights(state_dict, model, f"training checkpoint {path} ({weights!r} weights)")
    model.load_state_dict(state_dict, strict=True)
    return model.eval(), state

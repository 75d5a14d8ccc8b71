"""The strict checkpoint check of testing: a checkpoint must hold exactly the model's weights."""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn


def check_checkpoint_fits(model: nn.Module, checkpoint: Any, filename: str, revise_keys: list) -> None:
    """Raise unless ``checkpoint`` holds exactly ``model``'s weights: every missing, unexpected and
    mis-shaped key is named. mmengine loads non-strictly and only warns, so a checkpoint of another
    model would be scored as a random one."""
    if isinstance(checkpoint, dict) and "model_name" in checkpoint and "state_dict" not in checkpoint:
        raise ValueError(
            f"checkpoint {filename!r} was written by tools/train_imagenet.py (the ImageNet classifier "
            f"{checkpoint['model_name']!r}), not by tools/train.py for this config: it holds no weights of "
            "the segmentation/depth model. An ImageNet checkpoint initialises the backbone for training "
            "(model.backbone.checkpoint_path); test the iter_N.pth that training writes"
        )
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint {filename!r} holds no state_dict of tensors")
    for pattern, replacement in revise_keys:
        state = {re.sub(pattern, replacement, k): v for k, v in state.items()}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {list(state[k].shape)}, model {list(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{len(found)} {what}: {', '.join(found)}"
            for what, found in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", shapes),
            )
            if found
        ]
        raise ValueError(
            f"checkpoint {filename!r} does not fit the model of this config; "
            + "; ".join(parts)
            + ". Testing loads weights strictly (a partial load scores random weights): use the checkpoint "
            "this config trained, or the config that trained this checkpoint"
        )

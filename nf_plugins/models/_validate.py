"""Checks at a model's entrance, so bad input fails with a message that says what was expected
instead of a RuntimeError from deep inside a convolution."""

from __future__ import annotations

import torch


def check_image_batch(x: torch.Tensor, in_chans: int, min_size: int = 32) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``x`` is a float NCHW batch with ``in_chans`` channels.

    ``min_size``: smaller images shrink below one pixel before the last stride-32 stage.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError("expected a torch.Tensor image batch of shape (N, C, H, W)")
    if x.dim() != 4:
        raise ValueError(
            "expected a 4-D image batch (N, C, H, W), got a "
            + str(x.dim())
            + "-D tensor of shape "
            + str(list(x.shape))
            + "; add a batch dimension with x.unsqueeze(0) for a single image"
        )
    if not x.is_floating_point():
        raise TypeError(
            "expected a floating point image tensor, got dtype "
            + str(x.dtype)
            + "; convert with x.float() and normalize (e.g. timm.data.resolve_data_config)"
        )
    if x.shape[1] != in_chans:
        raise ValueError(
            "expected "
            + str(in_chans)
            + " input channels (model built with in_chans="
            + str(in_chans)
            + "), got "
            + str(x.shape[1])
            + " in a tensor of shape "
            + str(list(x.shape))
            + "; pass NCHW (not NHWC) input or create the model with in_chans="
            + str(x.shape[1])
        )
    if x.shape[2] < min_size or x.shape[3] < min_size:
        raise ValueError(
            "image of size " + str(x.shape[2]) + "x" + str(x.shape[3]) + " is too small; NF networks "
            "need at least " + str(min_size) + "x" + str(min_size) + " pixels (resize or pad it)"
        )

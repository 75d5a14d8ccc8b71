"""Checks at a model's entrance, so bad input fails with a message that says what was expected
instead of a RuntimeError from deep inside a convolution.

``check_model_input`` is the one call a model's forward makes. ``normfree`` registers it with
``torch.fx.wrap``: FX tracing (timm's ``features_only=True, feature_cls="fx"``, torchvision's
``create_feature_extractor``, quantization) records it as one graph node instead of running it on a
Proxy, so the traced graph still checks real tensors when it runs.
"""

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
            + str(int(x.shape[1]))
            + " in a tensor of shape "
            + str([int(s) for s in x.shape])
            + "; pass NCHW (not NHWC) input or create the model with in_chans="
            + str(int(x.shape[1]))
        )
    if x.shape[2] < min_size or x.shape[3] < min_size:
        raise ValueError(
            "image of size "
            + str(int(x.shape[2]))
            + "x"
            + str(int(x.shape[3]))
            + " is too small; NF networks "
            "need at least " + str(min_size) + "x" + str(min_size) + " pixels (resize or pad it)"
        )


@torch.jit.unused
def check_input_dtype(x: torch.Tensor, param_dtype: torch.dtype) -> None:
    """Raise ``TypeError`` if ``x``'s dtype differs from the model's parameters outside autocast.

    A float64 model takes float64 input (as in timm); a float32 model given float64 or float16 input
    would otherwise fail inside the first conv with "Input type (double) and bias type (float)".
    Under ``torch.autocast`` the mix is intended and the convolutions cast.
    """
    if x.dtype != param_dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(
            f"input dtype {x.dtype} does not match the model's parameter dtype {param_dtype}; "
            f"convert the input with x.to({param_dtype}), the model with model.to({x.dtype}), "
            "or run under torch.autocast for mixed precision"
        )


def check_model_input(x: torch.Tensor, in_chans: int, param_dtype: torch.dtype) -> torch.Tensor:
    """``check_image_batch`` and, outside TorchScript, ``check_input_dtype``: a model's entrance check.

    Returns ``x``, so that the check sits on the data path of a traced graph, where dead-code elimination
    (torchvision's feature extraction runs it) cannot drop it.
    """
    check_image_batch(x, in_chans)
    if not torch.jit.is_scripting():
        check_input_dtype(x, param_dtype)
    return x

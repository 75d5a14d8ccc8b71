"""Checks at a model's entrance, so bad input fails with a message that says what was expected
instead of a RuntimeError from deep inside a convolution.

``check_model_input`` is the one call a model's forward makes. ``normfree`` registers it with
``torch.fx.wrap``: FX tracing (timm's ``features_only=True, feature_cls="fx"``, torchvision's
``create_feature_extractor``, quantization) records it as one graph node instead of running it on a
Proxy, so the traced graph still checks real tensors when it runs.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import close_matches, did_you_mean


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


# ---- creation arguments: checked before anything is built ---------------------------------------------

# timm's SelectAdaptivePool2d types (case-insensitive there too); anything else is a bare AssertionError.
POOL_TYPES = (
    "",
    "avg",
    "max",
    "avgmax",
    "catavgmax",
    "fast",
    "fastavg",
    "fastmax",
    "fastavgmax",
    "fastcatavgmax",
)


def _got(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _number_hint(name: str, value: Any) -> str:
    """``; pass a number, e.g. name=10`` when ``value`` is a number written as a string (a config file's)."""
    if not isinstance(value, str):
        return ""
    for convert in (int, float):
        try:
            return f"; pass a number, e.g. {name}={convert(value)!r}"
        except ValueError:
            continue
    return ""


def check_int_arg(name: str, value: Any, minimum: int, meaning: str) -> int:
    """``value`` as an int >= ``minimum``: ``TypeError`` for a non-int (bools too), ``ValueError`` below it.

    ``meaning`` says what the argument is, e.g. "positive int" or "int >= 0 (0 removes the classifier)".
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a {meaning}, got {_got(value)}{_number_hint(name, value)}")
    if value < minimum:
        raise ValueError(f"{name} must be a {meaning}, got {value}")
    return int(value)


def check_class_count(num_classes: Any) -> int:
    """``num_classes`` as an int >= 0; timm's head silently treats a negative count as 0 (no classifier)."""
    return check_int_arg("num_classes", num_classes, 0, "non-negative int (0 removes the classifier)")


def check_rate(name: str, value: Any) -> float:
    """A dropout / drop-path probability: a real number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float in [0, 1), got {_got(value)}{_number_hint(name, value)}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def check_global_pool(value: Any) -> str:
    """One of timm's global pooling types; timm itself only asserts."""
    if not isinstance(value, str) or value.lower() not in POOL_TYPES:
        raise ValueError(
            f"global_pool={value!r} is not a pooling type; use one of {list(POOL_TYPES)} "
            "('avg' is the default, '' keeps the feature map and needs num_classes=0)"
        )
    return value


def check_feature_indices(
    indices: Any, num_levels: int, name: str = "indices", model: str = "this model"
) -> None:
    """timm's feature index convention, checked with a message instead of timm's bare assertion.

    ``None``: all levels; an int n: the last n levels (1..num_levels); a list/tuple: explicit levels,
    negative ones counted from the end (-num_levels..num_levels - 1), at least one.
    """
    levels = (
        f"it has {num_levels} feature levels (0 = stem at stride 2 ... {num_levels - 1} = final features); "
        f"pass an int n in 1..{num_levels} for the last n levels, or a list of indices in "
        f"{-num_levels}..{num_levels - 1}"
    )
    if indices is None:
        return
    if isinstance(indices, bool) or not isinstance(indices, (numbers.Integral, list, tuple)):
        raise TypeError(
            f"{name} must be an int, a list of ints or None, got {_got(indices)}; {model} {levels}"
        )
    if isinstance(indices, numbers.Integral):
        if not 1 <= indices <= num_levels:
            raise ValueError(f"{name}={indices!r} is out of range for {model}: {levels}")
        return
    if not indices:
        raise ValueError(f"{name}={indices!r} selects no feature level of {model}: {levels}")
    bad_type = [i for i in indices if isinstance(i, bool) or not isinstance(i, numbers.Integral)]
    if bad_type:
        raise TypeError(f"{name}={indices!r} holds non-int entries {bad_type}; {model} {levels}")
    if any(not -num_levels <= i < num_levels for i in indices):
        raise ValueError(f"{name}={indices!r} is out of range for {model}: {levels}")


_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos", "random")  # timm.data's
_CROP_MODES = ("center", "squash", "border")


def _bad_overlay(key: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"pretrained_cfg_overlay[{key!r}]={value!r} is invalid: {expected}")


def _check_size(key: str, value: Any, min_px: int) -> None:
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 3
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
        and value[0] >= 1
        and min(value[1:]) >= min_px
    )
    if not ok:
        raise _bad_overlay(
            key,
            value,
            f"expected (channels, height, width) ints, channels >= 1 and height, width >= {min_px} "
            "(the smallest image NF networks take), e.g. (3, 224, 224)",
        )


def _check_positive(key: str, value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < float("inf"):
        raise _bad_overlay(key, value, f"expected {what}")


def check_pretrained_cfg_overlay(overlay: Any, min_px: int = 32) -> None:
    """The values of ``pretrained_cfg_overlay`` that data pipelines read, checked before they are stored.

    timm copies the overlay into the model's ``pretrained_cfg`` unchecked: ``input_size=(3, 0, 0)`` or
    ``crop_pct=-1`` surface later as a broken data pipeline, a string as "dictionary update sequence".
    Source keys (``file``, ``url``, ...) are left to the weight loaders.
    """
    from timm.models._pretrained import PretrainedCfg

    if overlay is None:
        return
    if not isinstance(overlay, Mapping):
        raise TypeError(
            f"pretrained_cfg_overlay must be a dict of pretrained_cfg fields, got {_got(overlay)}; "
            "e.g. pretrained_cfg_overlay=dict(input_size=(3, 256, 256), crop_pct=1.0)"
        )
    fields = [f.name for f in dataclasses.fields(PretrainedCfg)]
    unknown = sorted(str(k) for k in overlay if k not in fields)
    if unknown:
        close = [m for k in unknown for m in close_matches(k, fields, n=1)]
        raise TypeError(
            f"pretrained_cfg_overlay has unknown keys {unknown}"
            + (f" (did you mean {close}?)" if close else "")
            + f"; pretrained_cfg fields are {fields}"
        )
    for key, value in overlay.items():
        if value is None and key not in ("input_size", "crop_pct", "mean", "std", "num_classes"):
            continue  # optional fields (test_input_size, test_crop_pct, ...) may be unset
        if key in ("input_size", "test_input_size", "min_input_size"):
            _check_size(key, value, min_px)
        elif key in ("crop_pct", "test_crop_pct"):
            _check_positive(key, value, "a positive fraction of the image kept by the eval crop, e.g. 0.875")
        elif key in ("mean", "std"):
            ok = (
                isinstance(value, (tuple, list))
                and len(value) > 0
                and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
                and all(math.isfinite(v) and (key == "mean" or v > 0) for v in value)
            )
            if not ok:
                what = "finite numbers" if key == "mean" else "positive numbers"
                raise _bad_overlay(key, value, f"expected per-channel {what}, e.g. (0.5, 0.5, 0.5)")
        elif key == "interpolation" and value not in _INTERPOLATIONS:
            raise _bad_overlay(key, value, f"expected one of {list(_INTERPOLATIONS)}")
        elif key == "crop_mode" and value not in _CROP_MODES:
            raise _bad_overlay(key, value, f"expected one of {list(_CROP_MODES)}")
        elif key == "num_classes" and (
            isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0
        ):
            raise _bad_overlay(key, value, "expected an int >= 0")


# ---- NfCfg overrides (``timm.create_model("nf_resnet50", se_ratio=0.25)``) ---------------------------------


def _int_tuple(name: str, value: Any) -> tuple[int, ...]:
    """One positive int per stage, as a tuple (a config file's list is accepted)."""
    if isinstance(value, (list, tuple)) and value:
        return tuple(check_int_arg(f"{name}[{i}]", v, 1, "positive int") for i, v in enumerate(value))
    raise TypeError(f"{name} must be a non-empty tuple of ints, one per stage, got {_got(value)}")


def _real(name: str, value: Any, bound: str = "", optional: bool = False) -> float | None:
    """A finite real number within ``bound`` ("> 0", ">= 0" or "": any); ``None`` too if ``optional``."""
    if value is None and optional:
        return None
    what = f"a finite number{' ' + bound if bound else ''}{' or None' if optional else ''}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {what}, got {_got(value)}{_number_hint(name, value)}")
    if not math.isfinite(value) or (bound == "> 0" and value <= 0) or (bound == ">= 0" and value < 0):
        raise ValueError(f"{name} must be {what}, got {value}")
    return float(value)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        hint = did_you_mean(str(value), choices)
        raise ValueError(f"{name}={value!r} is not one of {list(choices)}{'; ' + hint if hint else ''}")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {_got(value)}")
    return value


def _optional_int(name: str, value: Any, minimum: int, meaning: str) -> int | None:
    return None if value is None else check_int_arg(name, value, minimum, meaning)


def _check_activation(name: str, value: Any) -> str:
    from ..layers import ACTIVATIONS

    return _choice(name, value, ACTIVATIONS)


# One check per NfCfg field: the value as the config stores it (lists become tuples, ints stay ints).
_CFG_CHECKS: dict[str, Any] = {
    "depths": _int_tuple,
    "channels": _int_tuple,
    "stem_type": lambda n, v: _choice(n, v, ("7x7_pool", "7x7", "3x3")),
    "stem_chs": lambda n, v: check_int_arg(n, v, 1, "positive int"),
    "stage_strides": _int_tuple,
    "bottle_ratio": lambda n, v: _real(n, v, "> 0"),
    "bottle_from": lambda n, v: _choice(n, v, ("out", "in")),
    "first_block_ratio": lambda n, v: _real(n, v, "> 0", optional=True),
    "group_size": lambda n, v: _optional_int(n, v, 1, "positive int or None (a dense conv)"),
    "se_ratio": lambda n, v: _real(n, v, ">= 0", optional=True),  # 0 or None: no squeeze-excite
    "se_gain": lambda n, v: _real(n, v, "> 0"),
    "shortcut_pool": _flag,
    "num_features": lambda n, v: _optional_int(n, v, 0, "int >= 0 or None (0 or None: no final conv)"),
    "act": _check_activation,
    "act_gamma": lambda n, v: _real(n, v, "> 0", optional=True),
    "alpha": lambda n, v: _real(n, v, "> 0"),
    "skipinit_gain": lambda n, v: _real(n, v),
    "conv_type": lambda n, v: _choice(n, v, ("scaled_ws", "he_init")),
    "he_init_nonlinearity": lambda n, v: _choice(n, v, ("relu", "linear")),
    "fold_scalars": _flag,
    "drop_rate": check_rate,
}


def check_cfg_overrides(overrides: Mapping[str, Any], fields: list[str]) -> dict[str, Any]:
    """``overrides`` of an NF config's ``fields``, each checked (a clear ``TypeError``/``ValueError`` instead
    of a failure deep inside the builder) and normalised; an unknown key names the close field names."""
    unknown = sorted(str(k) for k in overrides if k not in fields)
    if unknown:
        hint = did_you_mean(unknown[0], fields)
        raise TypeError(
            f"NfCfg has no field {unknown[0]!r}{'; ' + hint if hint else ''}; its fields are {fields}"
        )
    return {key: _CFG_CHECKS[key](key, value) for key, value in overrides.items()}


def check_cfg_consistency(cfg: Any) -> None:
    """The rules that tie an NfCfg's fields together: one depth, width and stride per stage; act_gamma only
    where activations are gamma-scaled (Scaled WS; He init uses plain activations)."""
    per_stage = (cfg.depths, cfg.channels, cfg.stage_strides)
    if len({len(v) for v in per_stage}) > 1:
        raise ValueError(
            "depths, channels and stage_strides need one entry per stage, got "
            f"depths={cfg.depths}, channels={cfg.channels}, stage_strides={cfg.stage_strides}; "
            "override them together"
        )
    if cfg.act_gamma is not None and cfg.conv_type != "scaled_ws":
        raise ValueError(
            f"act_gamma={cfg.act_gamma} scales the activations of a Scaled WS net; conv_type="
            f"{cfg.conv_type!r} uses plain activations (drop act_gamma or use conv_type='scaled_ws')"
        )

"""Registering paper-exact models under names timm already uses, without breaking timm's weights.

timm ships its own (slightly different) ``nf_resnet50``/``nf_regnet_b*`` and real weights for some
(``nf_resnet50.ra2_in1k``, ``nf_regnet_b1.ra2_in1k``). We register the paper-exact architecture
under the plain name and keep every timm tag that has weights: such a tag is built by timm's own
entrypoint, into the architecture its weights fit. Pretrained requests with no weights behind
them raise instead of silently returning random weights.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from safetensors import SafetensorError
from timm.models import _registry, build_model_with_cfg
from timm.models._builder import resolve_pretrained_cfg
from timm.models._pretrained import PretrainedCfg

from ..errors import close_matches, did_you_mean
from ._validate import check_feature_indices, check_pretrained_cfg_overlay
from ._weights import (
    check_local_dir,
    check_num_classes,
    check_weights,
    check_weights_file,
    load_checkpoint_checked,
    read_local_dir_config,
)
from .normfree import NfCfg, NormFreeNet, pop_overrides

OUR_TAG = "untrained"


class _TimmOriginal:
    """timm's own entrypoint and weighted pretrained cfgs for one model name, captured at import."""

    def __init__(self, entrypoint: Callable[..., Any], weighted_cfgs: dict[str, PretrainedCfg]) -> None:
        self.entrypoint = entrypoint
        self.weighted_cfgs = weighted_cfgs


_TIMM_ORIGINALS: dict[str, _TimmOriginal] = {}


def capture_timm_original(name: str) -> dict[str, PretrainedCfg]:
    """Remember timm's registration of ``name`` (if any, and not ours) before we overwrite it.

    Returns timm's pretrained cfgs that have weights, keyed by tag, to re-register beside ours.
    """
    fn = _registry._model_entrypoints.get(name)
    if fn is not None and not fn.__module__.startswith("nf_plugins"):
        prefix = name + "."
        weighted = {
            key[len(prefix) :]: cfg
            for key, cfg in _registry._model_pretrained_cfgs.items()
            if key.startswith(prefix) and cfg.has_weights
        }
        _TIMM_ORIGINALS[name] = _TimmOriginal(fn, weighted)
    original = _TIMM_ORIGINALS.get(name)
    return dict(original.weighted_cfgs) if original else {}


def timm_weight_tags(name: str) -> list[str]:
    """Tags of timm's own weights for ``name`` that load into timm's architecture."""
    original = _TIMM_ORIGINALS.get(name)
    return sorted(original.weighted_cfgs) if original else []


def _requested_tag(pretrained_cfg: Any) -> str | None:
    if isinstance(pretrained_cfg, str):
        return pretrained_cfg
    return None


def _resolved_timm_tag(variant: str, pretrained_cfg: Any) -> bool:
    """A resolved cfg (dict) carrying one of timm's weight tags, as ``hf-hub:timm/<name>.<tag>`` gives.

    Our exports never carry timm's tags (``nf_plugins.hub`` refuses them), so the tag identifies
    timm's architecture.
    """
    if isinstance(pretrained_cfg, PretrainedCfg):
        pretrained_cfg = pretrained_cfg.to_dict()
    return isinstance(pretrained_cfg, dict) and pretrained_cfg.get("tag") in timm_weight_tags(variant)


def create_nf(variant: str, cfg: NfCfg, pretrained: bool = False, **kwargs: Any) -> NormFreeNet:
    """Build ``variant`` (paper-exact) or, for one of timm's weight tags, timm's own model.

    ``kwargs`` that name ``NfCfg`` fields override ``cfg`` (``se_ratio=0.25``), as timm's nfnet does.
    """
    check_pretrained_cfg_overlay(kwargs.get("pretrained_cfg_overlay"))
    tag = _requested_tag(kwargs.get("pretrained_cfg"))
    known = [OUR_TAG, *timm_weight_tags(variant)]
    if tag is not None and tag not in known:
        hint = did_you_mean(tag, known, n=1)
        raise ValueError(
            f"unknown pretrained tag {tag!r} for {variant}; available tags: {known}"
            + (f" ({hint})" if hint else "")
        )
    if tag in timm_weight_tags(variant) or _resolved_timm_tag(variant, kwargs.get("pretrained_cfg")):
        # timm's weights are for timm's variant of this network: build that one.
        return _TIMM_ORIGINALS[variant].entrypoint(pretrained=pretrained, **kwargs)
    check_num_classes(kwargs.get("num_classes"))
    kwargs = dict(kwargs)
    cfg = pop_overrides(cfg, kwargs)
    where = variant
    if pretrained:
        resolved = resolve_pretrained_cfg(
            variant,
            pretrained_cfg=kwargs.get("pretrained_cfg"),
            pretrained_cfg_overlay=kwargs.get("pretrained_cfg_overlay"),
        )
        where = _weights_location(resolved, variant)
        if resolved.source == "local-dir" and resolved.file:
            check_local_dir(resolved.file)
        elif resolved.file and not resolved.state_dict:
            check_weights_file(resolved.file, "pretrained_cfg_overlay file")
        if not resolved.has_weights:
            others = [f"{variant}.{t}" for t in timm_weight_tags(variant)]
            raise ValueError(
                f"no pretrained weights are published for the paper-exact {variant} yet; use "
                "pretrained=False, pass weights with checkpoint_path=... or "
                "pretrained_cfg_overlay=dict(file='weights.safetensors')"
                + (f", or load timm's own variant with its weights: {others}" if others else "")
            )
    if kwargs.get("features_only"):
        check_feature_indices(kwargs.get("out_indices"), len(cfg.depths) + 1, "out_indices", variant)
    try:
        return build_model_with_cfg(
            NormFreeNet, variant, pretrained, model_cfg=cfg, feature_cfg=dict(feature_cls="getter"),
            pretrained_filter_fn=functools.partial(check_weights, source=f"pretrained weights {where}"),
            **kwargs,
        )  # fmt: skip
    except SafetensorError as e:  # safetensors' message names no file
        raise ValueError(
            f"pretrained weights {where} are not a valid safetensors file ({e}); the file is truncated "
            "or corrupt: download or export it again"
        ) from e


def _weights_location(src: PretrainedCfg, variant: str) -> str:
    """The file (or Hub repo) timm will read ``src``'s weights from, for error messages."""
    where = src.file or src.hf_hub_id or variant
    if src.file and os.path.isdir(src.file):  # local-dir: timm reads <dir>/model.safetensors
        where = os.path.join(src.file, "model.safetensors")
    return where


def check_model_name(name: str, key: str | None = None) -> None:
    """``ValueError`` naming the closest registered models when timm has no ``name`` (``arch[.tag]``;
    ``hf-hub:``/``local-dir:`` sources are timm's to resolve). timm's own error names no alternatives.

    ``key``: the config key the name came from (e.g. ``model.backbone.model_name``), for the message.
    """
    import timm

    arch = name.split(".", 1)[0]
    if ":" in name or timm.is_model(arch):
        return
    close = close_matches(arch, timm.list_models(), n=5)
    hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models('nf_*')"
    raise ValueError(f"{f'{key}={name!r} is not a timm model' if key else f'unknown model {arch!r}'}; {hint}")


def check_checkpoint_file(path: Any, named: str | None = None, fix: str = "") -> None:
    """A set ``checkpoint_path`` must be a weights file, checked before any model is built (timm's own
    error has no message); ``named``: how messages name it (default ``checkpoint_path '<path>'``), ``fix``:
    what to do when it is missing."""
    if not path:
        return
    try:
        check_weights_file(path, "checkpoint_path", named)
    except FileNotFoundError as e:
        if not fix:
            raise
        raise FileNotFoundError(f"{e}; {fix}") from None


def create_model(name: str, **kwargs: Any) -> Any:
    """``timm.create_model`` for our tools: an unknown name raises ``ValueError`` with close matches.

    timm's own error (``RuntimeError: Unknown model``) names no alternatives.
    """
    import timm

    if not isinstance(name, str) or not name:
        raise TypeError(f"model name must be a non-empty string, got {name!r}")
    check_model_name(name)
    if name.startswith("local-dir:"):  # timm's json.load names no file; 10**9 classes would allocate first
        read_local_dir_config(name[len("local-dir:") :])
    kwargs = dict(kwargs)
    checkpoint = kwargs.pop("checkpoint_path", None)
    check_checkpoint_file(checkpoint)
    try:
        model = timm.create_model(name, **kwargs)
        # timm's own checkpoint_path loading casts dtypes silently: load with the checks instead
        return load_checkpoint_checked(model, checkpoint) if checkpoint else model
    except SafetensorError as e:
        if not checkpoint:
            raise
        raise ValueError(
            f"checkpoint_path {str(checkpoint)!r} is not a valid safetensors file ({e}); it is truncated "
            "or corrupt: write it again"
        ) from e

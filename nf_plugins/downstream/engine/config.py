"""A train/test config: loaded with the command line's overrides, checked for the mistakes mmengine would
only hit deep inside the run (wrong option types, bad counts, misspelt Runner keys), and the edits the
command line makes to it (``--data-root``, ``--amp``)."""

from __future__ import annotations

import os.path as osp
from typing import Any

from mmengine.config import Config

from nf_plugins.errors import did_you_mean
from nf_plugins.mim import resolve_config


def load_config(path: str, work_dir: str | None, cfg_options: dict | None, launcher: str) -> Config:
    """Config with CLI overrides; work_dir defaults to ``work_dirs/<config name>`` as in mmseg.

    ``path`` is a file or a shipped config by its OpenMMLab name (``nf_plugins::segmentation/...``).
    """
    path = str(resolve_config(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f"config file {path!r} does not exist")
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        check_option_types(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    check_runner_keys(cfg, path)
    check_counts(cfg, path)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get("work_dir", None) is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(path))[0])
    return cfg


_MISSING = object()


def _lookup(cfg: Any, dotted: str) -> Any:
    """The value at a ``--cfg-options`` key (``a.b.0.c``) of ``cfg``, or ``_MISSING``."""
    node = cfg
    for part in dotted.split("."):
        if isinstance(node, (dict, Config)) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def check_option_types(cfg: Config, cfg_options: dict) -> None:
    """Refuse a ``--cfg-options`` value whose type differs from the config's own (``max_iters=abc``):
    mmengine would take it and fail deep inside the run, after the model and data are built.

    A number replaces a number (int or float), a bool a bool, a string a string; ``None`` and values
    the config does not have yet are not checked.
    """
    for key, new in cfg_options.items():
        old = _lookup(cfg, key)
        if old is _MISSING or old is None or new is None:
            continue
        if isinstance(old, bool):
            ok = isinstance(new, bool)
        elif isinstance(old, (int, float)):
            ok = isinstance(new, (int, float)) and not isinstance(new, bool)
        elif isinstance(old, str):
            ok = isinstance(new, str)
        else:
            continue
        if not ok:
            kind = (
                "number"
                if isinstance(old, (int, float)) and not isinstance(old, bool)
                else type(old).__name__
            )
            raise ValueError(
                f"--cfg-options {key}={new!r}: the config's value is {old!r}, a {kind}; give a {kind}"
            )


# Counts mmengine converts with int() (or not at all) deep inside the run: checked when the config loads.
_COUNTS = {
    "train_cfg.max_iters": 1, "train_cfg.max_epochs": 1, "train_cfg.val_interval": 1,
    "train_dataloader.batch_size": 1, "val_dataloader.batch_size": 1, "test_dataloader.batch_size": 1,
    "train_dataloader.num_workers": 0, "val_dataloader.num_workers": 0, "test_dataloader.num_workers": 0,
}  # fmt: skip


def check_counts(cfg: Config, path: str) -> None:
    """Iteration counts, batch sizes and worker counts are integers with their minimum (from the config
    file or ``--cfg-options``): ``max_iters=1.5`` would be truncated, ``-1`` trains nothing."""
    for key, low in _COUNTS.items():
        value = _lookup(cfg, key)
        if value is _MISSING or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{path}: {key}={value!r} must be an integer >= {low} (config or --cfg-options)")


# Top-level keys mmengine's Runner.from_cfg reads; any other top-level name is a config variable.
RUNNER_KEYS = (
    "model", "work_dir", "train_dataloader", "val_dataloader", "test_dataloader", "train_cfg", "val_cfg",
    "test_cfg", "auto_scale_lr", "optim_wrapper", "param_scheduler", "val_evaluator", "test_evaluator",
    "default_hooks", "custom_hooks", "data_preprocessor", "load_from", "resume", "launcher", "env_cfg",
    "log_processor", "log_level", "visualizer", "default_scope", "randomness", "experiment_name",
    "cfg", "model_wrapper_cfg", "compile", "custom_imports", "vis_backends", "tta_model",
)  # fmt: skip
# Config variables of mmseg's own configs that are near-misses of Runner keys, yet intended.
KNOWN_VARIABLES = ("models", "test_pipeline", "tta_pipeline")


def check_runner_keys(cfg: Config, path: str) -> None:
    """Refuse a top-level key that is a near-miss of a Runner key (``train_dataloder``): the Runner
    would silently ignore it and train with the inherited value."""
    for key in cfg.keys():
        if key in RUNNER_KEYS or key in KNOWN_VARIABLES:
            continue
        hint = did_you_mean(key, RUNNER_KEYS, n=1, cutoff=0.85)
        if hint:
            raise ValueError(
                f"{path}: top-level config key {key!r} is not read by mmengine's Runner; {hint} "
                "(a misspelt key is silently ignored)"
            )


def set_data_root(cfg: Config, data_root: str) -> int:
    """Point every dataset of the train/val/test dataloaders (ConcatDataset members too) at ``data_root``.

    Config inheritance resolves ``data_root`` into each dataset dict, so overriding the top-level
    variable does nothing; this is what ``--data-root`` does. Returns the number of datasets changed.
    """
    changed = 0

    def visit(ds: Any) -> None:
        nonlocal changed
        if not isinstance(ds, dict):
            return
        if "data_root" in ds:
            ds["data_root"] = data_root
            changed += 1
        for child in ds.get("datasets", []) or []:
            visit(child)
        visit(ds.get("dataset"))

    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        loader = cfg.get(key)
        if loader:
            visit(loader.get("dataset"))
    cfg.data_root = data_root
    return changed


def enable_amp(cfg: Config) -> None:
    """``--amp``: switch mmengine's OptimWrapper to AmpOptimWrapper with a dynamic loss scale."""
    if cfg.optim_wrapper.get("type") == "AmpOptimWrapper":
        return
    if cfg.optim_wrapper.get("type") != "OptimWrapper":
        raise ValueError(
            f"--amp needs optim_wrapper.type='OptimWrapper', got {cfg.optim_wrapper.get('type')!r}"
        )
    cfg.optim_wrapper.type = "AmpOptimWrapper"
    cfg.optim_wrapper.loss_scale = "dynamic"

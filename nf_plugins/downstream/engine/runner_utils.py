"""Helpers shared by tools/train.py and tools/test.py (any mmseg config, not only ours)."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import json
import logging
import os
import os.path as osp
import re
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.model import convert_sync_batchnorm as mmengine_convert_sync_batchnorm
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
from timm.layers import BatchNormAct2d
from timm.layers import convert_sync_batchnorm as timm_convert_sync_batchnorm
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nf_plugins.atomic import atomic_write_text
from nf_plugins.downstream.engine.hooks import NonFiniteLossHook


def load_config(path: str, work_dir: str | None, cfg_options: dict | None, launcher: str) -> Config:
    """Config with CLI overrides; work_dir defaults to ``work_dirs/<config name>`` as in mmseg."""
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
        close = difflib.get_close_matches(key, RUNNER_KEYS, n=1, cutoff=0.85)
        if close:
            raise ValueError(
                f"{path}: top-level config key {key!r} is not read by mmengine's Runner; did you mean "
                f"{close[0]!r}? (a misspelt key is silently ignored)"
            )


def setup_cpu_distributed(cfg: Config) -> None:
    """Make ``--launcher pytorch`` work without GPUs: gloo, CPU DDP, per-process BN instead of SyncBN.

    mmengine's pytorch launcher calls ``torch.cuda.set_device`` and wraps the model with
    ``device_ids=[LOCAL_RANK]``; both fail on CPU. With GPUs present nothing is changed.
    """
    if cfg.launcher == "none" or torch.cuda.is_available():
        return
    if cfg.launcher != "pytorch":
        raise ValueError(
            f"CPU-only distributed runs support --launcher pytorch (torchrun), got {cfg.launcher!r}"
        )
    cfg.setdefault("env_cfg", {}).setdefault("dist_cfg", {})["backend"] = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    wrapper = dict(cfg.get("model_wrapper_cfg", None) or dict(type="MMDistributedDataParallel"))
    wrapper["device_ids"] = None
    cfg.model_wrapper_cfg = wrapper
    heads = _per_process_bn(cfg.get("model"))
    if cfg.get("sync_bn", None) or heads:
        print_log(
            "SyncBN needs GPUs: keeping per-process BatchNorm on CPU", logger="current", level=logging.WARNING
        )
        cfg.sync_bn = None


def _per_process_bn(node: Any) -> int:
    """Turn every ``SyncBN``/``MMSyncBN`` norm_cfg in a model config into ``BN`` (DDP refuses
    SyncBatchNorm in CPU modules; mmengine reverts it only in non-distributed runs). Returns the count."""
    count = 0
    if isinstance(node, dict):
        if node.get("type") in ("SyncBN", "MMSyncBN"):
            node["type"] = "BN"
            count += 1
        for value in node.values():
            count += _per_process_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += _per_process_bn(value)
    return count


# cfg.sync_bn values: "timm" converts with timm's converter, which keeps the activation of timm's norm-act
# layers (BatchNormAct2d -> SyncBatchNormAct); "torch"/"mmcv" are mmengine's own conversions.
SYNC_BN_CHOICES = ("timm", "torch", "mmcv")


def check_sync_bn(sync_bn: str) -> None:
    """Raise ``ValueError`` unless ``sync_bn`` is one of :data:`SYNC_BN_CHOICES`."""
    if sync_bn not in SYNC_BN_CHOICES:
        raise ValueError(f"cfg.sync_bn must be one of {SYNC_BN_CHOICES} or None, got {sync_bn!r}")


def _bn_with_own_forward(model: nn.Module, allowed: tuple[type, ...] = ()) -> list[str]:
    """Names of BatchNorm subclasses whose ``forward`` does more than batch norm (timm's BatchNormAct2d
    applies its activation inside): a plain SyncBatchNorm in their place silently drops that."""
    plain = (_BatchNorm.forward, nn.SyncBatchNorm.forward)
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, _BatchNorm) and type(m).forward not in plain and not isinstance(m, allowed)
    ]


def convert_sync_bn(model: nn.Module, sync_bn: str) -> nn.Module:
    """The SyncBN conversion our runner applies to the model of a distributed run (``cfg.sync_bn``).

    mmengine's own conversion ("torch"/"mmcv") replaces every ``_BatchNorm`` by a plain SyncBatchNorm,
    which drops the activation timm keeps inside ``BatchNormAct2d`` (every ReLU of a ``resnetv2``), so
    it is refused for such models. "timm" uses ``timm.layers.convert_sync_batchnorm``: norm-act layers
    become ``SyncBatchNormAct`` (same activation), every other BatchNorm (mmseg's heads) torch's
    SyncBatchNorm, parameters and running statistics shared with the original modules.
    """
    check_sync_bn(sync_bn)
    lossy = _bn_with_own_forward(model, allowed=(BatchNormAct2d,) if sync_bn == "timm" else ())
    if lossy:
        raise ValueError(
            f"cfg.sync_bn={sync_bn!r} would replace {len(lossy)} BatchNorm layers that do more than batch "
            f"norm (e.g. {lossy[0]}: {type(model.get_submodule(lossy[0])).__name__}, whose activation would "
            "be dropped) by a plain SyncBatchNorm; "
            + ("set sync_bn='timm' (timm's converter keeps norm-act layers)" if sync_bn != "timm" else
               "convert this model yourself")
        )  # fmt: skip
    if sync_bn == "timm":
        return timm_convert_sync_batchnorm(model)
    return mmengine_convert_sync_batchnorm(model, sync_bn)


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


class NFRunner(Runner):
    """mmengine's Runner whose distributed model wrapping converts BatchNorm with :func:`convert_sync_bn`
    (``cfg.sync_bn="timm"`` for timm backbones), and whose ``load_checkpoint`` is strict when
    ``strict_load`` is set (tools/test.py); everything else is mmengine's."""

    strict_load = False

    def load_checkpoint(
        self,
        filename: str,
        map_location: str | Any = "cpu",
        strict: bool = False,
        revise_keys: list = [(r"^module.", "")],  # noqa: B006  (mmengine's signature and default)
    ) -> dict:
        """mmengine's ``load_checkpoint``; with ``strict_load`` the checkpoint must fit the model exactly."""
        if not self.strict_load:
            return super().load_checkpoint(filename, map_location, strict, revise_keys)
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        if isinstance(model, BaseTTAModel):  # mmengine's load_state_dict loads the wrapped model
            model = model.module
        check_checkpoint_fits(model, checkpoint, filename, revise_keys)
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        checkpoint = _load_checkpoint_to_model(model, checkpoint, True, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f"Load checkpoint from {filename} (strict)")
        return checkpoint

    def wrap_model(self, model_wrapper_cfg: dict | None, model: nn.Module) -> nn.Module:
        sync_bn = self.cfg.get("sync_bn", None)
        if not self.distributed or sync_bn is None or is_model_wrapper(model):
            return super().wrap_model(model_wrapper_cfg, model)
        model = convert_sync_bn(model, sync_bn)
        self.cfg.sync_bn = None  # converted above: mmengine's wrap_model must not convert again
        try:
            return super().wrap_model(model_wrapper_cfg, model)
        finally:
            self.cfg.sync_bn = sync_bn


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


def write_json_atomic(path: str, obj: Any) -> None:
    """Write ``obj`` as JSON through a temp file + ``os.replace`` (never a half-written file)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True))


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


def add_runner_args(parser: argparse.ArgumentParser, cfg_options_example: str) -> None:
    """The flags tools/train.py and tools/test.py share (mmseg's, plus ``--data-root``)."""
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        help=f"override config keys, e.g. {cfg_options_example}",
    )
    parser.add_argument("--data-root", help="replace data_root of every dataset in the dataloaders")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)


def parse_runner_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, and export ``--local_rank`` as LOCAL_RANK for launchers that pass it as a flag."""
    args = parser.parse_args()
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def add_safety_defaults(cfg: Config) -> None:
    """For any config (ours set both already): checkpoints through the atomic local backend unless a
    storage backend is named, and a ``NonFiniteLossHook`` unless one is there."""
    from nf_plugins.downstream.engine.checkpoint_io import ATOMIC_BACKEND

    hook = (cfg.get("default_hooks") or {}).get("checkpoint")
    if hook and hook.get("backend_args") is None and hook.get("file_client_args") is None:
        hook["backend_args"] = dict(backend=ATOMIC_BACKEND)
    custom = list(cfg.get("custom_hooks") or [])
    if not any(h.get("type") in ("NonFiniteLossHook", NonFiniteLossHook) for h in custom):
        cfg.custom_hooks = [*custom, dict(type="NonFiniteLossHook")]


_NOT_IN_REGISTRY = re.compile(r"^(?P<type>[\w.]+) is not in the (?P<scope>\w+)::(?P<registry>\w+) registry")


def registered_names(scope: str, registry_name: str) -> list[str]:
    """Every type name a ``scope::registry_name`` build can resolve (the scope's registry and its parents)."""
    from mmengine import registry as root

    modules = [root] if scope == "mmengine" else [importlib.import_module(f"{scope}.registry"), root]
    for module in modules:
        for reg in vars(module).values():
            if isinstance(reg, root.Registry) and reg.name == registry_name:
                names: set[str] = set()
                while reg is not None:
                    reg.import_from_location()
                    names |= set(reg.module_dict)
                    reg = reg.parent
                return sorted(names)
    return []


@contextlib.contextmanager
def registry_hints() -> Iterator[None]:
    """Turn mmengine's "X is not in the mmseg::model registry" into one that names the closest types."""
    try:
        yield
    except KeyError as e:
        match = _NOT_IN_REGISTRY.match(str(e.args[0]) if e.args else "")
        if match is None:
            raise
        names = registered_names(match["scope"], match["registry"])
        close = difflib.get_close_matches(match["type"].split(".")[-1], names, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"registered: {', '.join(names)}"
        raise KeyError(
            f"config type={match['type']!r} is not a registered {match['registry']} "
            f"({match['scope']}::{match['registry']} registry); {hint}"
        ) from e


def latest_checkpoint(work_dir: str) -> str | None:
    """The checkpoint ``--resume`` should continue from: the one ``last_checkpoint`` names, or, when that
    pointer is empty or names a missing file (mmengine writes it with a plain ``open``; a kill at that
    moment truncates it), the newest ``iter_N.pth``/``epoch_N.pth`` in ``work_dir``. None if there is none.
    """
    pointer = osp.join(work_dir, "last_checkpoint")
    named = ""
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named and osp.isfile(named):
            return named
    found = [
        (int(m.group(2)), m.group(1) == "iter", osp.join(work_dir, name))
        for name in (os.listdir(work_dir) if osp.isdir(work_dir) else [])
        if (m := re.fullmatch(r"(iter|epoch)_(\d+)\.pth", name))
    ]
    if not found:
        return None
    newest = max(found)[2]
    if osp.isfile(pointer):
        print_log(
            f"{pointer} names {named!r}, which is not a checkpoint file; resuming from the newest one, "
            f"{newest}",
            logger="current",
            level=logging.WARNING,
        )
    return newest


def build_runner(cfg: Config, strict_load: bool = False):
    """mmengine's Runner for ``cfg`` (:class:`NFRunner`: SyncBN that keeps timm's norm-act layers): CPU
    distributed set-up, atomic checkpoint writes, a stop on NaN/inf loss, and checkpoint reads with
    ``torch.load(weights_only=True)``."""
    from nf_plugins.downstream.engine.checkpoint_io import use_safe_checkpoint_loader

    if cfg.get("sync_bn", None) is not None:
        check_sync_bn(cfg.sync_bn)  # before set-up: a typo fails at once, not after the runner is built
    setup_cpu_distributed(cfg)
    add_safety_defaults(cfg)
    if cfg.get("resume") and not cfg.get("load_from"):
        cfg.load_from = latest_checkpoint(cfg.work_dir)  # mmengine resumes from load_from when it is set
    use_safe_checkpoint_loader()
    runner = NFRunner.from_cfg(cfg)
    runner.strict_load = strict_load
    return runner

"""The runner tools/train.py and tools/test.py build: mmengine's Runner with our SyncBN conversion, strict
test loads, atomic checkpoint writes, a stop on a NaN/inf loss and a ``--resume`` that survives a
truncated ``last_checkpoint``."""

from __future__ import annotations

import logging
import os
import os.path as osp
import re
from typing import Any

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
from torch import nn

from nf_plugins.downstream.engine.checkpoint_fit import check_checkpoint_fits
from nf_plugins.downstream.engine.hooks import NonFiniteLossHook
from nf_plugins.downstream.engine.sync_bn import check_sync_bn, convert_sync_bn, setup_cpu_distributed


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

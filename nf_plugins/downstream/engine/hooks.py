"""Training hooks: stop on a non-finite loss; the global-batch loss curve (mean over ranks), as JSON."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from nf_plugins.atomic import atomic_write_json


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training at the first NaN/inf loss, before any checkpoint of that iteration is written.

    mmengine trains on through a NaN loss (every later weight is NaN) and its ``CheckpointHook`` would
    then save the broken state over the good ones. This hook runs before it (priority ``ABOVE_NORMAL``
    vs ``VERY_LOW``) and raises, so the last checkpoint on disk is the last good one.
    """

    priority = "ABOVE_NORMAL"

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loss = (outputs or {}).get("loss")
        if loss is None:
            return
        loss = torch.as_tensor(loss)
        bad = (~torch.isfinite(loss)).any().to(torch.float32).reshape(1)
        if dist.is_available() and dist.is_initialized():
            # Each rank sees only its own loss, but DDP has already averaged a NaN gradient into every
            # rank's step: all ranks must stop, or rank 0 saves the broken weights of this iteration.
            dist.all_reduce(bad)
        if bool(bad.item()):
            where = "" if not torch.isfinite(loss).all() else " on another process (here finite)"
            raise FloatingPointError(
                f"loss is {loss.tolist()}{where} at iteration {runner.iter + 1}; training stopped before "
                "saving. "
                "The last checkpoint in the work dir is the last good one: lower the learning rate "
                "(optim_wrapper.optimizer.lr), try --amp off, or check the data, then --resume"
            )


@HOOKS.register_module()
class GlobalLossCurveHook(Hook):
    """Record ``loss`` averaged over all ranks at every iteration and save it to ``out_file``.

    mmengine logs rank 0's local loss only; this is the loss of the whole global batch, the number
    to compare between runs with different numbers of processes.
    """

    priority = "LOW"

    def __init__(self, out_file: str = "loss_curve.json") -> None:
        self.out_file = out_file
        self.losses: list[float] = []

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loss = outputs["loss"].detach().float().clone().reshape(())
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(loss)
            loss /= dist.get_world_size()
        self.losses.append(float(loss))

    def after_train(self, runner) -> None:
        if runner.rank != 0:
            return
        path = self.out_file if os.path.isabs(self.out_file) else os.path.join(runner.work_dir, self.out_file)
        atomic_write_json(path, {"loss": self.losses})


__all__ = ["GlobalLossCurveHook", "NonFiniteLossHook"]

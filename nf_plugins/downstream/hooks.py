"""Training hooks: the global-batch loss curve (mean over ranks), written as JSON by rank 0."""

from __future__ import annotations

import json
import os

import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


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
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"loss": self.losses}, f)
        os.replace(tmp, path)


__all__ = ["GlobalLossCurveHook"]

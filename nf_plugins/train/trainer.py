"""The training loop of the ImageNet recipe over timm's components; ``world_size`` processes under torchrun.

timm provides the data pipeline (``create_loader``: random-resized crop + flip), the optimizer
(``create_optimizer_v2``: SGD Nesterov, no weight decay on gains/biases/skip gains via the model's
``no_weight_decay``), the per-step cosine schedule with linear warm-up (``CosineLRScheduler``),
CutMix/MixUp (``Mixup``), the losses and the EMA (:class:`~nf_plugins.train.ema.PaperEma`).
``batch_size`` in a config is global: it is split across processes. Checkpoints (``last.pth``, every
``checkpoint_every`` epochs, written atomically) hold the model, EMA, optimizer, scheduler, step, epoch
and every process's RNG states (:mod:`nf_plugins.train.resume`).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from timm.data import Mixup, create_loader
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from timm.utils import accuracy

from ..hub.checkpoint import load_training_checkpoint, save_training_checkpoint
from ..imagenet_data import build_datasets
from ..models import create_model
from ..progress import Progress
from .ema import PaperEma
from .recipe import RECIPE_KEYS, model_kwargs
from .resume import rng_state, seed_all, set_rng_state, trim_log


def build_optimizer(model: torch.nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """timm's SGD (Nesterov) with 1-D parameters and ``model.no_weight_decay()`` (gains, biases, skip
    gains) in a group without weight decay."""
    return create_optimizer_v2(
        model,
        opt="sgd" if cfg["nesterov"] else "momentum",
        lr=cfg["lr"],
        momentum=cfg["momentum"],
        weight_decay=cfg["weight_decay"],
        filter_bias_and_bn=True,
    )


class Trainer:
    """One run of the recipe; ``world_size`` processes under torchrun, or one.

    ``validate=False`` trains without a validation split (no top-1 in the log); by default a missing
    validation folder is an error, never a fallback to other images.
    """

    def __init__(
        self, cfg: dict[str, Any], data_dir: Path, output: Path, device: str | None, validate: bool = True
    ) -> None:
        self.cfg, self.output = cfg, output
        # folders and class lists first: a wrong layout fails before the model is built
        train_set, val_set = build_datasets(
            data_dir, cfg["train_split"], cfg["val_split"] if validate else None, cfg["num_classes"]
        )
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.distributed:
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            if device == "cuda":
                torch.cuda.set_device(local_rank)
                device = f"cuda:{local_rank}"
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        self.device = torch.device(device)
        if cfg["batch_size"] % self.world_size:
            raise ValueError(
                f"batch_size {cfg['batch_size']} is not divisible by {self.world_size} processes"
            )
        seed_all(cfg["seed"] + self.rank)

        self.model_kwargs = model_kwargs(cfg)
        self.model = create_model(cfg["model"], **self.model_kwargs).to(self.device)
        self.ema = PaperEma(self.model, decay=cfg["ema_decay"]) if cfg["ema_decay"] else None
        self.ddp = (
            torch.nn.parallel.DistributedDataParallel(self.model, device_ids=None)
            if self.distributed
            else self.model
        )
        self.optimizer = build_optimizer(self.model, cfg)

        pcfg = self.model.pretrained_cfg
        common = dict(
            num_workers=cfg["workers"],
            distributed=self.distributed,
            use_prefetcher=False,
            interpolation=pcfg.get("interpolation", "bicubic"),
            mean=pcfg["mean"],
            std=pcfg["std"],
            persistent_workers=False,
            pin_memory=self.device.type == "cuda",
        )
        self.train_set = train_set
        self.train_loader = create_loader(
            train_set,
            input_size=(3, cfg["train_size"], cfg["train_size"]),
            batch_size=cfg["batch_size"] // self.world_size,
            is_training=True,
            color_jitter=None,  # baseline preprocessing: distorted-box crop + flip only
            **common,
        )
        self.val_loader = (
            None
            if val_set is None
            else create_loader(
                val_set,
                input_size=(3, cfg["test_size"], cfg["test_size"]),
                batch_size=max(1, cfg["batch_size"] // self.world_size),
                crop_pct=pcfg.get("test_crop_pct") or pcfg.get("crop_pct"),
                **common,
            )
        )
        self.steps_per_epoch = len(self.train_loader)
        if self.steps_per_epoch == 0:
            raise ValueError(f"{data_dir}: fewer training images than one batch of {cfg['batch_size']}")
        total = cfg["epochs"] * self.steps_per_epoch
        warmup = min(total, round(cfg["warmup_epochs"] * self.steps_per_epoch))
        self.scheduler = CosineLRScheduler(
            self.optimizer,
            t_initial=max(1, total - warmup),
            lr_min=0.0,
            warmup_t=warmup,
            warmup_lr_init=0.0,
            warmup_prefix=True,
            t_in_epochs=False,
        )
        self.mixup = None
        if cfg["mixup_alpha"] > 0 or cfg["cutmix_alpha"] > 0:
            self.mixup = Mixup(
                mixup_alpha=cfg["mixup_alpha"],
                cutmix_alpha=cfg["cutmix_alpha"],
                switch_prob=cfg["mixup_switch_prob"],
                label_smoothing=cfg["label_smoothing"],
                num_classes=cfg["num_classes"],
            )
            self.loss_fn: torch.nn.Module = SoftTargetCrossEntropy()
        else:
            self.loss_fn = LabelSmoothingCrossEntropy(cfg["label_smoothing"])
        self.step, self.epoch = 0, 0

    # ---- checkpoints ------------------------------------------------------------------------------
    def _all_rng_states(self) -> list[dict[str, Any]]:
        """Every process's RNG states, gathered (a collective: all ranks call it)."""
        state = rng_state()
        if not self.distributed:
            return [state]
        states: list[Any] = [None] * self.world_size
        dist.all_gather_object(states, state)
        return states

    def save(self) -> None:
        """Write ``last.pth`` atomically (rank 0) with everything an exact resume needs."""
        rngs = self._all_rng_states()  # collective: every rank takes part
        if self.rank != 0:
            return
        state = dict(
            model_name=self.cfg["model"],
            model_kwargs=self.model_kwargs,
            model=self.model.state_dict(),
            ema=self.ema.module.state_dict() if self.ema else None,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            step=self.step,
            epoch=self.epoch,
            world_size=self.world_size,
            rng=rngs,
            config=self.cfg,
            recipe={key: self.cfg[key] for key in RECIPE_KEYS},  # the model card's recipe rows
        )
        save_training_checkpoint(state, self.output / "last.pth")

    def resume(self, path: Path) -> None:
        """Load a checkpoint of the same model and continue from its step, with its RNG states."""
        state = load_training_checkpoint(path)
        if state["model_name"] != self.cfg["model"]:
            raise ValueError(
                f"{path} is a {state['model_name']} checkpoint, the config trains {self.cfg['model']}"
            )
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            if state.get("ema") is None:
                raise ValueError(f"{path} has no EMA weights but the config sets ema_decay")
            self.ema.module.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch = state["step"], state["epoch"]
        if self.rank == 0:
            trim_log(self.output / "log.jsonl", self.step, self.epoch)
        rngs = state["rng"]
        if len(rngs) != self.world_size:
            print(
                f"warning: {path} was written by {len(rngs)} processes, resuming with {self.world_size}: "
                "training continues but not bit-identically",
                file=sys.stderr,
            )
            seed_all(self.cfg["seed"] + 1000 * self.epoch + self.rank)
        else:
            set_rng_state(rngs[self.rank])

    # ---- loop -------------------------------------------------------------------------------------
    def log(self, echo: bool = True, **record: Any) -> None:
        """Append ``record`` to log.jsonl (rank 0); ``echo`` prints it too (the epoch records: the steps show
        as the progress bar)."""
        if self.rank == 0:
            line = json.dumps(record)
            if echo:
                print(line, flush=True)
            with (self.output / "log.jsonl").open("a") as f:
                f.write(line + "\n")

    def train_epoch(self) -> tuple[float, int]:
        """The epoch's mean loss over all processes, and how many undecodable images were skipped."""
        self.ddp.train()
        if self.distributed:
            self.train_loader.sampler.set_epoch(self.epoch)
        total, count = 0.0, 0
        self.train_set.take_skipped()
        bar = Progress(
            len(self.train_loader),
            f"epoch {self.epoch + 1}/{self.cfg['epochs']}",
            "step",
            enabled=self.rank == 0,
        )
        for images, targets in self.train_loader:
            images, targets = images.to(self.device), targets.to(self.device)
            if self.mixup is not None:
                images, targets = self.mixup(images, targets)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg["amp"]):
                loss = self.loss_fn(self.ddp(images), targets)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(
                    f"loss is {loss.item()} at step {self.step}; lower lr or check the data"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self.model, step=self.step)
            self.step += 1
            self.scheduler.step_update(self.step)
            total, count = total + loss.item(), count + 1
            lr = self.optimizer.param_groups[0]["lr"]
            self.log(echo=False, epoch=self.epoch, step=self.step, loss=loss.item(), lr=lr)
            bar.update(1, loss=f"{loss.item():.4f}", lr=f"{lr:.3g}")
        bar.close()
        skipped = self.train_set.take_skipped()
        if self.distributed:  # the epoch's mean loss and skipped images over all processes
            sums = torch.tensor([total, count, skipped], dtype=torch.float64, device=self.device)
            dist.all_reduce(sums)
            total, count, skipped = sums.tolist()
        return total / max(1, count), int(skipped)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> float:
        """Top-1 (%) of ``model`` on the validation split, over all processes."""
        model.eval()
        correct = torch.zeros(2, device=self.device)
        for images, targets in self.val_loader:
            images, targets = images.to(self.device), targets.to(self.device)
            top1 = accuracy(model(images), targets, topk=(1,))[0]
            correct += torch.tensor([top1.item() * len(targets) / 100.0, len(targets)], device=self.device)
        if self.distributed:
            dist.all_reduce(correct)
        return float(100.0 * correct[0] / correct[1].clamp(min=1))

    def fit(self, stop_after_epochs: int | None = None) -> None:
        """Train to ``epochs`` (or ``stop_after_epochs``), logging and checkpointing each epoch."""
        end = self.cfg["epochs"] if stop_after_epochs is None else min(self.cfg["epochs"], stop_after_epochs)
        while self.epoch < end:
            start = time.time()
            loss, skipped = self.train_epoch()
            self.epoch += 1
            record = dict(epoch=self.epoch, step=self.step, train_loss=loss, skipped_images=skipped)
            if skipped and self.rank == 0:
                print(f"warning: epoch {self.epoch} skipped {skipped} undecodable training images "
                      "(each named in the log above)", file=sys.stderr)  # fmt: skip
            if self.val_loader is not None:
                record["top1"] = self.evaluate(self.model)
                if self.ema is not None:
                    record["ema_top1"] = self.evaluate(self.ema.module)
            record["epoch_s"] = round(time.time() - start, 2)
            self.log(**record)
            if self.epoch % self.cfg["checkpoint_every"] == 0 or self.epoch == end:
                self.save()

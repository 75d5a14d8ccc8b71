"""The paper's ImageNet recipe (appendix A) as a thin layer over timm's components.

    python tools/train_imagenet.py configs/imagenet/nf_regnet_b0.yaml --data-dir /data/in1k --output runs/b0
    torchrun --nproc_per_node=8 tools/train_imagenet.py <config> --data-dir ... --output ...   # DDP
    torchrun --nnodes=4 --node_rank=$R --master_addr=$HOST --nproc_per_node=8 tools/train_imagenet.py ...

timm provides the data pipeline (``create_dataset``/``create_loader``: random-resized crop + flip),
the optimizer (``create_optimizer_v2``: SGD Nesterov, no weight decay on gains/biases/skip gains via
the model's ``no_weight_decay``), the per-step cosine schedule with linear warm-up
(``CosineLRScheduler``), CutMix/MixUp (``Mixup``), the losses and the EMA (``ModelEmaV3``, with the
paper's warm-up decay). ``batch_size`` in a config is global: it is split across processes.

Checkpoints (``last.pth``, every ``checkpoint_every`` epochs, written atomically) hold the model,
EMA, optimizer, scheduler, step, epoch and every process's RNG states: ``--resume`` continues exactly
as an uninterrupted run would. Export the result with ``tools/export_hub.py``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from timm.data import Mixup, create_loader
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3, accuracy

import nf_plugins  # noqa: F401  (registers the paper's models)
from nf_plugins._quiet import filter_third_party_warnings
from nf_plugins.atomic import atomic_write_text
from nf_plugins.distributed import exit_if_distributed
from nf_plugins.hub.checkpoint import load_training_checkpoint, save_training_checkpoint
from nf_plugins.imagenet_data import build_datasets
from nf_plugins.models import create_model
from nf_plugins.outputs import check_output_dir, check_output_file
from nf_plugins.progress import Progress

DEFAULTS: dict[str, Any] = dict(
    model=None,
    num_classes=1000,
    epochs=90,
    warmup_epochs=5,
    batch_size=1024,
    lr=0.4,
    momentum=0.9,
    nesterov=True,
    weight_decay=5e-5,
    label_smoothing=0.1,
    drop_rate=0.0,
    drop_path_rate=0.0,
    train_size=224,
    test_size=224,
    ema_decay=None,  # e.g. 0.99999; None: no EMA
    mixup_alpha=0.0,
    cutmix_alpha=0.0,
    mixup_switch_prob=0.5,
    workers=8,
    seed=0,
    checkpoint_every=1,
    amp=False,  # bfloat16 autocast (GPU)
    train_split="train",
    val_split="validation",
    notes="",
)


def load_config(path: str | Path, overrides: list[str]) -> dict[str, Any]:
    """A YAML recipe on top of ``DEFAULTS``, then ``key=value`` overrides (values parsed as YAML)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config {path} does not exist; see configs/imagenet/")
    cfg = dict(DEFAULTS)
    loaded = yaml.safe_load(path.read_text()) or {}
    items = list(loaded.items())
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        items.append((key, yaml.safe_load(value)))
    for key, value in items:
        if key not in DEFAULTS:
            raise ValueError(f"unknown config key {key!r} in {path} / --set; known keys: {sorted(DEFAULTS)}")
        cfg[key] = value
    if not cfg["model"]:
        raise ValueError(f"{path}: 'model' is required (e.g. nf_regnet_b0)")
    return check_config(cfg, path)


# key: (type, lowest, highest, lowest allowed, highest allowed); a bound of None is open.
_NUMBERS: dict[str, tuple[type, float | None, float | None, bool, bool]] = dict(
    num_classes=(int, 1, None, True, True),
    epochs=(int, 1, None, True, True),
    warmup_epochs=(float, 0, None, True, True),
    batch_size=(int, 1, None, True, True),
    lr=(float, 0, None, False, True),
    momentum=(float, 0, 1, True, False),
    weight_decay=(float, 0, None, True, True),
    label_smoothing=(float, 0, 1, True, False),
    drop_rate=(float, 0, 1, True, False),
    drop_path_rate=(float, 0, 1, True, False),
    train_size=(int, 32, None, True, True),
    test_size=(int, 32, None, True, True),
    ema_decay=(float, 0, 1, True, False),  # 0 or None: no EMA
    mixup_alpha=(float, 0, None, True, True),
    cutmix_alpha=(float, 0, None, True, True),
    mixup_switch_prob=(float, 0, 1, True, True),
    workers=(int, 0, None, True, True),
    seed=(int, 0, None, True, True),
    checkpoint_every=(int, 1, None, True, True),
)


def check_config(cfg: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """Types and ranges of every key, so ``--set lr=abc`` or ``epochs=-1`` fails before any work.

    A float key also takes a string that parses as a number (YAML reads ``5e-5`` as a string).
    """
    for key, (kind, low, high, low_ok, high_ok) in _NUMBERS.items():
        value = cfg[key]
        if value is None and key == "ema_decay":
            continue
        if kind is float and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        ok_type = isinstance(value, int) if kind is int else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not math.isfinite(value):
            raise ValueError(
                f"{path} / --set: {key}={cfg[key]!r} is not a{'n integer' if kind is int else ' number'}"
            )
        if (low is not None and (value < low or (value == low and not low_ok))) or (
            high is not None and (value > high or (value == high and not high_ok))
        ):
            lo = "(-inf" if low is None else f"{'[' if low_ok else '('}{low}"
            hi = "inf)" if high is None else f"{high}{']' if high_ok else ')'}"
            raise ValueError(f"{path} / --set: {key}={value!r} is outside {lo}, {hi}")
        cfg[key] = kind(value)
    if cfg["warmup_epochs"] > cfg["epochs"]:
        raise ValueError(
            f"{path} / --set: warmup_epochs={cfg['warmup_epochs']} exceeds epochs={cfg['epochs']}"
        )
    for key in ("nesterov", "amp"):
        if not isinstance(cfg[key], bool):
            raise ValueError(f"{path} / --set: {key}={cfg[key]!r} must be true or false")
    for key in ("model", "train_split", "val_split", "notes"):
        if not isinstance(cfg[key], str):
            raise ValueError(f"{path} / --set: {key}={cfg[key]!r} must be a string")
    return cfg


def model_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """``create_model`` arguments of a recipe (classes, dropout, stochastic depth)."""
    return dict(
        num_classes=cfg["num_classes"], drop_rate=cfg["drop_rate"], drop_path_rate=cfg["drop_path_rate"]
    )


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


class PaperEma(ModelEmaV3):
    """timm's EMA with the paper's warm-up: at update i (0 for the first), decay = min(d, (1+i)/(10+i))."""

    def get_decay(self, step: int | None = None) -> float:
        if step is None:
            return self.decay
        return min(self.decay, (1.0 + step) / (10.0 + step))


def rng_state() -> dict[str, Any]:
    """This process's RNG states as plain types (readable with ``torch.load(weights_only=True)``)."""
    np_state = np.random.get_state()
    state = dict(
        python=random.getstate(),
        numpy=[np_state[0], np_state[1].tolist(), *np_state[2:]],
        torch=torch.get_rng_state(),
    )
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trim_log(path: Path, step: int, epoch: int) -> int:
    """Drop the records a resumed run will write again (after ``step``/``epoch`` of its checkpoint) and a
    line cut short by a kill; returns how many were dropped. Without this a resume logs steps twice."""
    if not path.exists():
        return 0
    text = path.read_text()
    kept, dropped = [], 0
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        # step records carry the step; epoch records carry the step too (older logs: only the epoch)
        later = record["step"] > step if "step" in record else record.get("epoch", 0) > epoch
        if later:
            dropped += 1
        else:
            kept.append(line)
    if dropped or not text.endswith("\n"):  # a kill before the newline would glue the next record on
        atomic_write_text(path, "".join(f"{line}\n" for line in kept))
        print(f"{path}: dropped {dropped} records written after step {step} (the checkpoint resumed from)")
    return dropped


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
        state = rng_state()
        if not self.distributed:
            return [state]
        states: list[Any] = [None] * self.world_size
        dist.all_gather_object(states, state)
        return states

    def save(self) -> None:
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
        )
        save_training_checkpoint(state, self.output / "last.pth")

    def resume(self, path: Path) -> None:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", help="configs/imagenet/<model>.yaml")
    parser.add_argument("--data-dir", required=True, type=Path, help="ImageFolder root with train/ and val/")
    parser.add_argument("--output", required=True, type=Path, help="run folder (log.jsonl, last.pth)")
    parser.add_argument("--resume", type=Path, help="checkpoint to continue from (e.g. <output>/last.pth)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--stop-after-epochs", type=int, help="stop (with a checkpoint) after this epoch")
    parser.add_argument(
        "--no-val",
        action="store_true",
        help="train without a validation split (no top-1 is logged); without it a missing val/ is an error",
    )
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module that registers more timm models (like mmengine's custom_imports)",
    )
    args = parser.parse_args(argv)
    filter_third_party_warnings()
    for module in args.imports:
        importlib.import_module(module)

    cfg = load_config(args.config, args.set)
    if not args.data_dir.is_dir():
        raise FileNotFoundError(f"--data-dir {args.data_dir} is not a folder")
    check_output_dir(args.output, "--output")
    log = args.output / "log.jsonl"
    for path in (log, args.output / "last.pth"):
        check_output_file(path, "--output")
    if args.resume is None and (args.output / "last.pth").exists():
        raise FileExistsError(
            f"{args.output / 'last.pth'} exists: pass --resume {args.output / 'last.pth'} or another --output"
        )
    if args.resume is not None and not args.resume.is_file():
        raise FileNotFoundError(f"--resume {args.resume} does not exist")
    trainer = Trainer(cfg, args.data_dir, args.output, args.device, validate=not args.no_val)
    args.output.mkdir(parents=True, exist_ok=True)
    if args.resume:
        trainer.resume(args.resume)
    elif log.exists() and trainer.rank == 0:  # a run that died before its first checkpoint
        print(f"{log}: starting a new log (no last.pth: the run that wrote it left no checkpoint)")
        log.unlink()
    trainer.fit(args.stop_after_epochs)
    exit_if_distributed()  # torch 2.13 gloo teardown can deadlock or abort: see nf_plugins.distributed


if __name__ == "__main__":
    main()

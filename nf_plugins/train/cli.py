"""``nf-plugins train-imagenet``: the paper's ImageNet recipe on an ImageFolder, single process or DDP.

    nf-plugins train-imagenet configs/imagenet/nf_regnet_b0.yaml --data-dir /data/in1k --output runs/b0
    torchrun --nproc_per_node=8 tools/train_imagenet.py <config> --data-dir ... --output ...   # DDP
    torchrun --nnodes=4 --node_rank=$R --master_addr=$HOST --nproc_per_node=8 tools/train_imagenet.py ...

``--resume <output>/last.pth`` continues exactly as an uninterrupted run would. Export the result with
``nf-plugins export-hub``.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nf-plugins train-imagenet`` flags."""
    parser.add_argument(
        "config", help="configs/imagenet/<model>.yaml, or nf_plugins::imagenet/<model>.yaml (shipped)"
    )
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


def run(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> None:
    """Check the config, data and output folder (before any model is built), then train or resume."""
    from ..distributed import exit_if_distributed
    from ..outputs import check_output_dir, check_output_file
    from .recipe import load_config
    from .trainer import Trainer

    if args.stop_after_epochs is not None and args.stop_after_epochs < 1:
        raise ValueError(f"--stop-after-epochs must be >= 1, got {args.stop_after_epochs}")
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

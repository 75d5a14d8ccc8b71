"""``nf-plugins train``: train any mmseg config (mmseg's tools/train.py flags); CPU-only torchrun works too.

nf-plugins train nf_plugins::segmentation/fcn_nf-resnet50-d16_4xb4-30k_voc12aug-513x513.py
torchrun --nproc_per_node=4 tools/train.py CONFIG --launcher pytorch
"""

from __future__ import annotations

import argparse

from nf_plugins.distributed import exit_if_distributed
from nf_plugins.downstream.engine.cli_args import add_runner_args, config_from_args, export_local_rank
from nf_plugins.downstream.engine.config import enable_amp
from nf_plugins.downstream.engine.registry_hints import registry_hints
from nf_plugins.downstream.engine.runner import build_runner


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nf-plugins train`` options (mmseg's tools/train.py, plus ``--data-root``)."""
    parser.add_argument("config", help="train config file path, or nf_plugins::segmentation/... (shipped)")
    parser.add_argument("--work-dir", help="the dir to save logs and checkpoints")
    parser.add_argument("--resume", action="store_true", help="resume from the latest checkpoint in work_dir")
    parser.add_argument("--amp", action="store_true", help="automatic mixed precision")
    parser.add_argument("--auto-scale-lr", action="store_true", help="scale lr by batch / auto_scale_lr")
    add_runner_args(parser, "train_cfg.max_iters=10")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Train ``args.config`` with mmengine's Runner (:func:`build_runner`)."""
    export_local_rank(args)
    cfg = config_from_args(args)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        cfg.auto_scale_lr = dict(cfg.get("auto_scale_lr", {}), enable=True)
    cfg.resume = args.resume
    with registry_hints():  # a misspelt `type=` names the closest registered types
        runner = build_runner(cfg)
        runner.train()
    exit_if_distributed()

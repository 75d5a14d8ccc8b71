"""Train any mmseg config (mmseg's tools/train.py flags); CPU-only torchrun works too (gloo).

python tools/train.py configs/segmentation/fcn_nf-resnet50-d16_4xb4-30k_voc12aug-513x513.py
torchrun --nproc_per_node=4 tools/train.py CONFIG --launcher pytorch
"""

import argparse
import os

from mmengine.config import DictAction
from mmengine.runner import Runner

from nf_plugins.distributed import exit_if_distributed
from nf_plugins.downstream.runner_utils import (
    enable_amp,
    load_config,
    set_data_root,
    setup_cpu_distributed,
    trust_local_mmengine_checkpoints,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a segmentor / depth estimator (mmseg config)")
    parser.add_argument("config", help="train config file path")
    parser.add_argument("--work-dir", help="the dir to save logs and checkpoints")
    parser.add_argument("--resume", action="store_true", help="resume from the latest checkpoint in work_dir")
    parser.add_argument("--amp", action="store_true", help="automatic mixed precision")
    parser.add_argument("--auto-scale-lr", action="store_true", help="scale lr by batch / auto_scale_lr")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        help="override config keys, e.g. train_cfg.max_iters=10",
    )
    parser.add_argument("--data-root", help="replace data_root of every dataset in the dataloaders")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher)
    if args.data_root:
        set_data_root(cfg, args.data_root)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        cfg.auto_scale_lr = dict(cfg.get("auto_scale_lr", {}), enable=True)
    cfg.resume = args.resume
    setup_cpu_distributed(cfg)
    trust_local_mmengine_checkpoints()
    runner = Runner.from_cfg(cfg)
    runner.train()
    exit_if_distributed()


if __name__ == "__main__":
    main()

"""The command-line flags tools/train.py and tools/test.py share (mmseg's, plus ``--data-root``)."""

from __future__ import annotations

import argparse
import os

from mmengine.config import Config, DictAction

from nf_plugins.outputs import check_output_dir

from .config import load_config, set_data_root


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


def export_local_rank(args: argparse.Namespace) -> None:
    """Export ``--local_rank`` as LOCAL_RANK for launchers that pass it as a flag (torch's old launch)."""
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))


def config_from_args(args: argparse.Namespace) -> Config:
    """The config of ``args.config`` with the shared flags applied, every output folder checked before the
    model and data are built: ``--work-dir`` first (``Config.fromfile`` alone takes seconds, reading
    mmseg's metafiles), then the config's own ``work_dir``; ``--data-root`` last."""
    if args.work_dir:
        check_output_dir(args.work_dir, "--work-dir")
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher)
    check_output_dir(cfg.work_dir, "--work-dir")
    if args.data_root:
        set_data_root(cfg, args.data_root)
    return cfg

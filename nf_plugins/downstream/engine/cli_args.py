"""The command-line flags tools/train.py and tools/test.py share (mmseg's, plus ``--data-root``)."""

from __future__ import annotations

import argparse
import os

from mmengine.config import DictAction


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

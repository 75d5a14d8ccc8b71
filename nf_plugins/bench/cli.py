"""``nf-plugins bench`` / ``tools/benchmark.py``: the side-by-side benchmark and its report.

Every argument and both output paths are checked before the first model is built (a run takes minutes);
the table is printed before the files are written, so a write that fails after the run loses nothing.
"""

from __future__ import annotations

import argparse
import os

from ..outputs import check_output_file
from . import runner
from .runner import SUITES, BenchConfig, check_config, to_markdown, write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the short suite (< 3 min on 2 CPU cores)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (median reported)")
    parser.add_argument("--train-px", type=int, default=128, help="training resolution of the ResNet suites")
    parser.add_argument("--infer-px", type=int, default=224, help="inference resolution")
    parser.add_argument("--suites", nargs="*", default=None, help=f"subset: {' '.join(SUITES)}")
    parser.add_argument("--json", default="benchmark.json", help="output JSON path")
    parser.add_argument("--md", default="benchmark.md", help="output markdown path")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The run's config; raises ``ValueError`` naming the bad setting (before any work)."""
    cfg = BenchConfig(
        quick=args.quick,
        reps=args.reps,
        train_px=args.train_px,
        infer_px=args.infer_px,
        suites=tuple(args.suites) if args.suites else None,
    )
    if args.device is not None:
        cfg.device = args.device
    if args.threads is not None:
        cfg.threads = args.threads
    check_config(cfg)
    if args.json and args.md and os.path.abspath(args.json) == os.path.abspath(args.md):
        raise ValueError(f"--json and --md are the same file {args.json!r}; give two paths")
    for flag in ("json", "md"):
        if getattr(args, flag):
            check_output_file(getattr(args, flag), f"--{flag}")
    return cfg


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    """Check, measure, print the table, then write the JSON and markdown; returns the report."""
    try:
        cfg = config_from_args(args)
    except (ValueError, OSError) as e:
        parser.error(str(e))
    report = runner.run_benchmark(cfg)  # looked up on the module, so tests can stub the measurements
    print(to_markdown(report))  # first: the measurements survive a failing write
    try:
        write_report(report, args.json, args.md)
    except OSError as e:
        parser.exit(1, f"{parser.prog}: error: could not write the report ({e}); the table above holds it\n")
    return report

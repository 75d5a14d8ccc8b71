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
    parser.add_argument(
        "--goals", action="store_true", help="the suites of every speed goal (issue 17), at the goals' sizes"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (median reported)")
    parser.add_argument("--train-px", type=int, default=128, help="training resolution of the ResNet suites")
    parser.add_argument("--infer-px", type=int, default=224, help="inference resolution")
    parser.add_argument("--effnet-px", type=int, default=None, help="default: each EfficientNet's own")
    parser.add_argument(
        "--train-batches", type=int, nargs="+", default=None, help="override every training suite's"
    )
    parser.add_argument("--gpu-batch", type=int, default=64, help="the gpu suite's batch (and 1)")
    parser.add_argument("--stability-runs", type=int, default=5, help="repeated batch-1 runs (stability)")
    parser.add_argument(
        "--compile-backend", default="inductor", help="torch.compile backend (compiled suite)"
    )
    parser.add_argument("--suites", nargs="*", default=None, help=f"subset: {' '.join(SUITES)}")
    parser.add_argument("--json", default="benchmark.json", help="output JSON path")
    parser.add_argument("--md", default="benchmark.md", help="output markdown path")
    parser.add_argument("--png", default=None, help="ratio bar chart (default: the --md path with .png)")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The run's config; raises ``ValueError`` naming the bad setting (before any work)."""
    cfg = BenchConfig(
        quick=args.quick,
        goals=args.goals,
        reps=args.reps,
        train_px=args.train_px,
        infer_px=args.infer_px,
        suites=tuple(args.suites) if args.suites else None,
        effnet_px=args.effnet_px,
        train_batches=tuple(args.train_batches) if args.train_batches else None,
        gpu_batch=args.gpu_batch,
        stability_runs=args.stability_runs,
        compile_backend=args.compile_backend,
    )
    if args.device is not None:
        cfg.device = args.device
    if args.threads is not None:
        cfg.threads = args.threads
    check_config(cfg)
    if args.png is None and args.md:
        args.png = os.path.splitext(args.md)[0] + ".png"
    if args.png and not args.png.endswith(".png"):
        raise ValueError(f"--png must end in .png, got {args.png!r}")
    if args.json and args.md and os.path.abspath(args.json) == os.path.abspath(args.md):
        raise ValueError(f"--json and --md are the same file {args.json!r}; give two paths")
    if args.png and os.path.abspath(args.png) in {os.path.abspath(p) for p in (args.json, args.md) if p}:
        raise ValueError(f"--png {args.png!r} is also the --json or --md path; give another")
    for flag in ("json", "md", "png"):
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
        write_report(report, args.json, args.md, args.png)
    except OSError as e:
        parser.exit(1, f"{parser.prog}: error: could not write the report ({e}); the table above holds it\n")
    return report

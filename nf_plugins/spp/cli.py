"""``nf-plugins spp`` / ``tools/spp.py``: Signal Propagation Plots for timm models or the paper's figures."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..atomic import atomic_output
from ..outputs import check_output_file
from ..progress import Progress
from .adapters import find_blocks
from .plot import plot_spp, read_json, write_json
from .reference_nets import FIGURES, REFERENCE_NETS, blocks_per_stage, build_reference
from .stats import SppResult, signal_propagation

FIGURE_IMG_SIZE = 512  # the paper's figure 1 resolution
# Every network here downsamples by 32 (stem 4, three stride-2 stages): below 32 px the last stages run on
# a single zero-padded pixel, and the NF models refuse such inputs.
MIN_IMG_SIZE = 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="timm model names (e.g. nf_resnet50 resnetv2_50) or reference-net legend names "
        f"({', '.join(repr(n) for n in REFERENCE_NETS)})",
    )
    parser.add_argument("--figure", type=int, choices=sorted(FIGURES), help="redraw this figure of the paper")
    parser.add_argument(
        "--img-size",
        type=int,
        default=None,
        help=f"input resolution, at least {MIN_IMG_SIZE} (default: {FIGURE_IMG_SIZE} for --figure and "
        "reference nets, else the model's default input size)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="N(0,1) images per batch (default 8; the paper gives none; at least 2 for BatchNorm models)",
    )
    parser.add_argument("--depth", type=int, default=600, help="depth of the reference nets (multiple of 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the weights and the input")
    parser.add_argument("--log-scale", action="store_true", help="log y axes (figure 6 always uses them)")
    parser.add_argument(
        "--skip-gain",
        type=float,
        default=None,
        help="set every SkipInit gain of our NF models to this value (they start at 0, so an untrained "
        "model's residual stream is flat; the paper's plots use 1)",
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="forward dtype")
    parser.add_argument("--out", default="spp.png", help="plot file (default spp.png)")
    parser.add_argument("--json", default=None, help="also write the statistics to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--from-json",
        nargs="+",
        metavar="JSON",
        help="plot statistics saved by --json instead of running models (all of them, the MODEL names, or "
        "--figure N's nets, which may come from several files); --img-size/--batch-size only label the title",
    )


def _builder(name: str, depth: int, seed: int) -> tuple[Callable[[], nn.Module], int | None]:
    """(model constructor, its default input size) for a reference-net or timm model name.

    Reference nets are built lazily (one 600-layer net in memory at a time); timm models are built
    here, so that an unknown name fails before any work is done.
    """
    if name in REFERENCE_NETS:
        return (lambda: build_reference(name, depth)), FIGURE_IMG_SIZE
    from ..models import create_model

    torch.manual_seed(seed)
    model = create_model(name, pretrained=False)  # raises with close matches for unknown names
    size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))[-1]
    return (lambda: model), size


def set_skip_gains(model: nn.Module, name: str, value: float | None) -> None:
    """Apply ``--skip-gain``; without it, say when a model's residual branches are all switched off."""
    gains = [p for n, p in model.named_parameters() if n.endswith("skipinit_gain")]
    if value is not None:
        with torch.no_grad():
            for g in gains:
                g.fill_(value)
        if not gains:
            print(f"note: {name} has no SkipInit gains; --skip-gain does not apply to it", file=sys.stderr)
    elif gains and all(float(g.detach()) == 0.0 for g in gains):
        print(
            f"note: {name}'s SkipInit gains are all 0 (as initialised), so every block is the identity and "
            "the residual stream stays flat; pass --skip-gain 1 to plot it as the paper's figures do",
            file=sys.stderr,
        )


def saved_results(paths: list[str], names: list[str], parser: argparse.ArgumentParser) -> list[SppResult]:
    """The saved statistics of ``names`` (all, if empty) from ``paths``, in the order asked for."""
    try:
        saved = {r.model: r for path in paths for r in read_json(path)}
    except (OSError, ValueError) as e:
        parser.error(f"--from-json: {e}")
    missing = [n for n in names if n not in saved]
    if missing:
        parser.error(f"--from-json: no statistics for {missing} in {paths}; they hold {list(saved)}")
    return [saved[n] for n in names] if names else list(saved.values())


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Run ``nf-plugins spp``: check every argument and output path, then run the networks (or read
    ``--from-json``) and write the plot and the statistics."""
    if args.figure is not None and args.models:
        parser.error("give either MODEL names or --figure N, not both")
    if args.figure is None and not args.models and not args.from_json:
        parser.error("give at least one MODEL name or --figure N")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.img_size is not None and args.img_size < MIN_IMG_SIZE:
        parser.error(
            f"--img-size must be >= {MIN_IMG_SIZE}, got {args.img_size}: the networks downsample by 32, so "
            f"smaller images leave less than one pixel for the last stage (the paper's figures use 512)"
        )
    check_outputs(args, parser)
    names, log_scale, title = (list(args.models), args.log_scale, None)
    if args.figure is not None:
        fig_names, fig_log, title = FIGURES[args.figure]
        names, log_scale = list(fig_names), args.log_scale or fig_log
    if args.from_json:
        results = saved_results(args.from_json, names, parser)
        if title is not None:  # depth from the saved blocks; size and batch only when given
            title = f"{title}, depth {3 * len(results[0].blocks)}"
            title += f", {args.img_size} px" if args.img_size else ""
            title += f", batch {args.batch_size}" if args.batch_size else ""
        _write(results, args, log_scale, title)
        return
    batch_size = args.batch_size or 8
    try:
        if any(n in REFERENCE_NETS for n in names):
            blocks_per_stage(args.depth)
        builders = [(n, *_builder(n, args.depth, args.seed)) for n in names]
    except ValueError as e:
        parser.error(str(e))
    if batch_size == 1:
        build_of = {n: build for n, build, _ in builders}
        with_bn = [n for n in names if has_batchnorm(n, args.depth, build_of)]
        if with_bn:
            parser.error(
                f"--batch-size 1 with BatchNorm models {with_bn}: the SPP runs BatchNorm on the batch's "
                "statistics (the network at initialisation), and one image turns that into per-image "
                "normalisation, a different network (with a 1x1 feature map torch fails: one value per "
                "channel); use --batch-size 2 or more (default 8)"
            )
    dtype = getattr(torch, args.dtype)
    results = []
    for name, build, default_size in builders:
        torch.manual_seed(args.seed)
        model = build()
        set_skip_gains(model, name, args.skip_gain)
        img_size = args.img_size or default_size or 224
        try:
            total = len(find_blocks(model))
        except ValueError as e:
            parser.error(f"{name}: {e}")
        # a bar on a terminal, else a line per 10% (a 512 px reference net takes minutes on a CPU)
        with Progress(total, f"{name} ({img_size} px)", "block", enabled=not args.no_progress) as bar:
            try:
                result = signal_propagation(
                    model,
                    name=name,
                    img_size=img_size,
                    batch_size=batch_size,
                    seed=args.seed,
                    dtype=dtype,
                    on_block=lambda _s, bar=bar: bar.update(1),
                )
            except FloatingPointError as e:
                parser.error(str(e))
        results.append(result)
        del model
    if title is not None:
        title = f"{title}, depth {args.depth}, {args.img_size or FIGURE_IMG_SIZE} px, batch {batch_size}"
    _write(results, args, log_scale, title)


def has_batchnorm(name: str, depth: int, builders: dict[str, Callable[[], nn.Module]]) -> bool:
    """Whether ``name``'s network has BatchNorm layers; a reference net is built on the meta device for it
    (no memory, no weights), a timm model is already built."""
    if name in REFERENCE_NETS:
        with torch.device("meta"):
            model = build_reference(name, depth)
    else:
        model = builders[name]()
    return any(isinstance(m, _BatchNorm) for m in model.modules())


def check_outputs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse --out/--json paths that cannot be written, before any network runs (a figure takes minutes)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    formats = Figure().canvas.get_supported_filetypes()
    suffix = Path(args.out).suffix.lstrip(".").lower()
    if suffix and suffix not in formats:
        parser.error(f"--out {args.out!r}: matplotlib cannot write .{suffix}; use one of {sorted(formats)}")
    outputs = [("--out", args.out)] + ([("--json", args.json)] if args.json else [])
    if args.json and os.path.abspath(args.json) == os.path.abspath(args.out):
        parser.error(f"--out and --json are the same file {args.out!r}; give two paths")
    for flag, path in outputs:
        folder = Path(path).parent
        if not folder.exists():  # as atomic_output(make_dirs=False): a typo must not create a tree
            parser.error(f"{flag} {path!r}: folder {str(folder)!r} does not exist; create it first")
        try:
            check_output_file(path, flag)
        except OSError as e:
            parser.error(str(e))


def _write(results: list[SppResult], args: argparse.Namespace, log_scale: bool, title: str | None) -> None:
    """Write the plot and the JSON together: both appear, or (on any error) neither changes."""
    with contextlib.ExitStack() as stack:  # each renamed into place only once both are written
        plot_tmp = stack.enter_context(atomic_output(args.out, make_dirs=False))
        json_tmp = stack.enter_context(atomic_output(args.json, make_dirs=False)) if args.json else None
        plot_spp(results, plot_tmp, log_scale=log_scale, title=title)
        if json_tmp is not None:
            write_json(results, json_tmp)
    print(f"wrote {args.out}")
    if args.json:
        print(f"wrote {args.json}")

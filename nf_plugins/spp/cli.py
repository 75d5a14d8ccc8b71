"""``nf-plugins spp`` / ``tools/spp.py``: Signal Propagation Plots for timm models or the paper's figures."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch
from torch import nn

from .adapters import find_blocks
from .plot import plot_spp, read_json, write_json
from .reference_nets import FIGURES, REFERENCE_NETS, blocks_per_stage, build_reference
from .stats import SppResult, signal_propagation

FIGURE_IMG_SIZE = 512  # the paper's figure 1 resolution


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
        help=f"input resolution (default: {FIGURE_IMG_SIZE} for --figure and reference nets, "
        "else the model's default input size)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="N(0,1) images per batch (default 8; the paper gives none)",
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
    elif gains and all(float(g) == 0.0 for g in gains):
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


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[SppResult]:
    from tqdm import tqdm

    if args.figure is not None and args.models:
        parser.error("give either MODEL names or --figure N, not both")
    if args.figure is None and not args.models and not args.from_json:
        parser.error("give at least one MODEL name or --figure N")
    if (args.batch_size is not None and args.batch_size < 1) or (
        args.img_size is not None and args.img_size < 8
    ):
        parser.error("--batch-size must be >= 1 and --img-size >= 8")
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
        return _write(results, args, log_scale, title)
    batch_size = args.batch_size or 8
    try:
        if any(n in REFERENCE_NETS for n in names):
            blocks_per_stage(args.depth)
        builders = [(n, *_builder(n, args.depth, args.seed)) for n in names]
    except ValueError as e:
        parser.error(str(e))
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
        with tqdm(total=total, desc=name, unit="block", disable=args.no_progress, file=sys.stderr) as bar:
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
    return _write(results, args, log_scale, title)


def _write(
    results: list[SppResult], args: argparse.Namespace, log_scale: bool, title: str | None
) -> list[SppResult]:
    path = plot_spp(results, args.out, log_scale=log_scale, title=title)
    print(f"wrote {path}")
    if args.json:
        print(f"wrote {write_json(results, args.json)}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spp", description=__doc__)
    add_arguments(parser)
    run(parser.parse_args(argv), parser)
    return 0

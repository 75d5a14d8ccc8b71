"""``nf-plugins`` command line: one entry point for the thin scripts in ``tools/``.

A bad argument or a missing file ends every subcommand with a one-line ``nf-plugins CMD: error: ...`` on
stderr and exit status 2 (``nf_plugins.errors`` says which errors count); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys

from ._quiet import filter_third_party_warnings
from .errors import USER_ERRORS, UsageError, one_line


class _Parser(argparse.ArgumentParser):
    """argparse, with errors raised as :class:`UsageError` (``main`` prints them on one line instead of the
    usage text and message) and ``--debug`` on the command and every subcommand (subparsers are made of
    the parser's class, so a new subcommand gets both without asking)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,  # a subcommand's default must not overwrite `nf-plugins --debug CMD`
            help="on an error, show the traceback instead of the one-line message",
        )

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)", self.prog)


def main(argv: list[str] | None = None) -> int:
    """Run ``nf-plugins`` with ``argv``; a user error prints one line and exits with status 2."""
    filter_third_party_warnings()
    argv = sys.argv[1:] if argv is None else list(argv)
    options = argv[: argv.index("--")] if "--" in argv else argv
    try:
        return _run(argv)
    except USER_ERRORS as e:
        if "--debug" in options:  # read from argv: argparse may be what failed
            raise
        command = next((a for a in options if not a.startswith("-")), None)
        prog = e.prog if isinstance(e, UsageError) else " ".join(filter(None, ["nf-plugins", command]))
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)


def _run(argv: list[str]) -> int:
    parser = _Parser(prog="nf-plugins", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="model table against the paper, and a forward pass of every model")
    demo.add_argument("--models", nargs="*", default=None, help="subset of the paper models")
    bench = sub.add_parser("bench", help="side-by-side speed/memory benchmark (JSON + markdown ratios)")
    from .bench.cli import add_arguments as add_bench_arguments

    add_bench_arguments(bench)
    from .spp.cli import add_arguments as add_spp_arguments

    spp = sub.add_parser("spp", help="Signal Propagation Plots of timm models or the paper's figures")
    add_spp_arguments(spp)
    onnx = sub.add_parser("export-onnx", help="export a model to ONNX with Scaled WS folded into plain convs")
    onnx.add_argument("model", help="registered model name, e.g. nf_regnet_b0")
    onnx.add_argument("--out", required=True, help="output .onnx path")
    onnx.add_argument(
        "--checkpoint",
        default=None,
        help="weights: a training checkpoint of train_imagenet.py (model and classes from it) or a "
        "safetensors/.pth state dict",
    )
    onnx.add_argument(
        "--weights",
        choices=("ema", "model"),
        default="ema",
        help="from a training checkpoint: EMA (default, as export_hub.py and the paper) or the raw weights",
    )
    onnx.add_argument("--num-classes", type=int, default=1000)
    onnx.add_argument("--img-size", type=int, default=None, help="default: the model's test resolution")
    from .evaluate import add_arguments as add_validate_arguments

    add_validate_arguments(
        sub.add_parser("validate", help="top-1/top-5 of a timm model on an ImageFolder, as JSON")
    )
    from .results import add_arguments as add_results_arguments

    add_results_arguments(
        sub.add_parser("collect-results", help="README Table 6/7 'ours' columns from VOC/NYU work dirs")
    )
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the subcommand, whose --help lists what it takes
        sub.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "validate":
        from .evaluate import run as run_validate

        run_validate(args)
    if args.command == "collect-results":
        from .results import run as run_collect

        run_collect(args)
    if args.command == "spp":
        from .spp.cli import run as run_spp

        run_spp(args, spp)
    if args.command == "export-onnx":
        from .deploy import check_onnx_output, export_onnx
        from .hub.checkpoint import is_training_checkpoint, model_from_training_checkpoint
        from .models import create_model

        check_onnx_output(args.out)  # before building the model and reading weights
        if args.checkpoint and is_training_checkpoint(args.checkpoint):
            model, state = model_from_training_checkpoint(args.checkpoint, weights=args.weights)
            if state["model_name"] != args.model:
                onnx.error(f"--checkpoint holds {state['model_name']}, not {args.model}")
        else:
            kwargs = {"checkpoint_path": args.checkpoint} if args.checkpoint else {}
            model = create_model(args.model, num_classes=args.num_classes, **kwargs)
        size = (
            args.img_size
            or (model.pretrained_cfg.get("test_input_size") or model.pretrained_cfg["input_size"])[-1]
        )
        print(f"wrote {export_onnx(model, args.out, input_size=(3, size, size))}")
    if args.command == "bench":
        from .bench.cli import run as run_bench

        run_bench(args, bench)
    if args.command == "demo":
        from .demo import run_demo
        from .models import PAPER_MODELS

        unknown = sorted(set(args.models or ()) - set(PAPER_MODELS))
        if unknown:
            demo.error(f"unknown models {unknown}; choose from {list(PAPER_MODELS)}")
        run_demo(tuple(args.models) if args.models else PAPER_MODELS)
    return 0


if __name__ == "__main__":
    sys.exit(main())

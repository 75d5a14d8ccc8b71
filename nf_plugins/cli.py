"""``nf-plugins`` command line: one entry point for the thin scripts in ``tools/``.

A bad argument or a missing file ends every subcommand with a one-line ``nf-plugins CMD: error: ...`` on
stderr and exit status 2 (``nf_plugins.errors`` says which errors count); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

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


# name -> (module, one-line help). Each module defines ``add_arguments(parser)`` and ``run(args, parser)``;
# it is imported only when its command runs (or its --help is asked for), so `nf-plugins demo` never
# imports mmseg and `nf-plugins prepare-nyu` imports neither mmseg, mmcv nor mmengine. An int that
# ``run`` returns is the exit status; anything else (a path, a record) means success.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("nf_plugins.demo", "model table against the paper, and a forward pass of every model"),
    "bench": ("nf_plugins.bench.cli", "side-by-side speed/memory benchmark (JSON + markdown ratios)"),
    "spp": ("nf_plugins.spp.cli", "Signal Propagation Plots of timm models or the paper's figures"),
    "export-onnx": ("nf_plugins.deploy", "export a model to ONNX with Scaled WS folded into plain convs"),
    "validate": ("nf_plugins.evaluate", "top-1/top-5 of a timm model on an ImageFolder, as JSON"),
    "collect-results": ("nf_plugins.results", "README Table 6/7 'ours' columns from VOC/NYU work dirs"),
    "prepare-voc": ("nf_plugins.data.voc", "VOC2012 + SBD archives -> mmseg's VOCaug layout, checked"),
    "prepare-nyu": ("nf_plugins.data.nyu", "NYUv2 (.mat + splits, or mmseg's zip) -> mmseg's NYU layout"),
    "train": ("nf_plugins.downstream.commands.train", "train an mmseg config (mmseg's tools/train.py flags)"),
    "test": ("nf_plugins.downstream.commands.test", "score a checkpoint with any mmseg config (strict load)"),
    "demo-segmentation": (
        "nf_plugins.downstream.commands.demo_segmentation",
        "fine-tune an NF-RegNet-B0 FCN on synthetic VOC on CPU; mIoU before and after",
    ),
    "demo-depth": (
        "nf_plugins.downstream.commands.demo_depth",
        "fine-tune the depth model on rendered NYU-layout rooms on CPU; rms against the mean depth",
    ),
    "train-imagenet": ("nf_plugins.train.cli", "the paper's ImageNet recipe (single process or torchrun)"),
    "export-hub": ("nf_plugins.hub.cli", "a model or training checkpoint to timm's Hub layout (and publish)"),
}


def call(command: str, argv: list[str]) -> Any:
    """Run one subcommand with ``argv`` and return what its ``run`` returns, every error propagating (no
    one-line conversion, no exit): how scripts and tests call a command in process."""
    import importlib

    module = importlib.import_module(COMMANDS[command][0])
    parser = argparse.ArgumentParser(prog=f"nf-plugins {command}", description=module.__doc__)
    module.add_arguments(parser)
    filter_third_party_warnings()
    return module.run(parser.parse_args(argv), parser)


def _run(argv: list[str]) -> int:
    import importlib

    parser = _Parser(prog="nf-plugins", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    parsers = {}
    for name, (module, help_text) in COMMANDS.items():
        parsers[name] = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # only the command that runs imports its module
            importlib.import_module(module).add_arguments(parsers[name])
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the subcommand, whose --help lists what it takes
        parsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    status = importlib.import_module(COMMANDS[args.command][0]).run(args, parsers[args.command])
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


if __name__ == "__main__":
    sys.exit(main())

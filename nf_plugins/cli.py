"""``nf-plugins`` command line: one entry point for the thin scripts in ``tools/``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nf-plugins", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="model table against the paper, and a forward pass of every model")
    demo.add_argument("--models", nargs="*", default=None, help="subset of the paper models")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo
        from .models import PAPER_MODELS

        unknown = sorted(set(args.models or ()) - set(PAPER_MODELS))
        if unknown:
            parser.error(f"unknown models {unknown}; choose from {list(PAPER_MODELS)}")
        run_demo(tuple(args.models) if args.models else PAPER_MODELS)
    return 0


if __name__ == "__main__":
    sys.exit(main())

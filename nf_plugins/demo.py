"""The README's demo: the model table against the paper, then every model once on a random batch."""

from __future__ import annotations

import argparse
import time

import timm
import torch

from .models import PAPER_MODELS
from .models.complexity import format_table, model_row


def run_demo(models: tuple[str, ...] = PAPER_MODELS, batch_size: int = 2, px: int = 128) -> None:
    print("## Models: ours against the paper's Table 3 (MACs at each variant's test resolution)\n")
    print(format_table([model_row(name) for name in models]))
    print(f"\n## Forward pass of every model on a random {batch_size}x3x{px}x{px} batch\n")
    torch.manual_seed(0)
    x = torch.randn(batch_size, 3, px, px)
    for name in models:
        model = timm.create_model(name, num_classes=10).eval()
        start = time.perf_counter()
        with torch.inference_mode():
            logits = model(x)
        assert logits.shape == (batch_size, 10) and torch.isfinite(logits).all()
        print(
            f"{name:14s} logits {tuple(logits.shape)} finite, {1e3 * (time.perf_counter() - start):7.1f} ms"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nf-plugins demo`` options."""
    parser.add_argument("--models", nargs="*", default=None, help="subset of the paper models")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``nf-plugins demo``: the model table against the paper and a forward pass of each model."""
    unknown = sorted(set(args.models or ()) - set(PAPER_MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {list(PAPER_MODELS)}")
    run_demo(tuple(args.models) if args.models else PAPER_MODELS)

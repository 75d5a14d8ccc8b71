#!/usr/bin/env python
"""Export a model or a training checkpoint to timm's Hub layout, and optionally publish it.

    python tools/export_hub.py runs/b0/last.pth --out hub/nf_regnet_b0.nf_in1k --tag nf_in1k \\
        --results results.json --push my-org/nf_regnet_b0.nf_in1k
    python tools/export_hub.py nf_regnet_b0 --out hub/b0   # a (random-init) registered model

The folder holds model.safetensors, config.json and a model card README.md. Load it back with
``timm.create_model("local-dir:<out>", pretrained=True)`` or ``"hf-hub:<repo>"`` after ``import nf_plugins``.
``--push`` uses the token from ``--token``, ``HF_TOKEN`` or ``hf auth login``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import nf_plugins  # noqa: F401  (registers the paper's models)
from nf_plugins.hub import (
    export_for_hub,
    model_from_training_checkpoint,
    push_folder_to_hub,
    validate_repo_id,
)
from nf_plugins.models import create_model

_RECIPE_KEYS = (
    "epochs",
    "warmup_epochs",
    "batch_size",
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "label_smoothing",
    "drop_rate",
    "drop_path_rate",
    "train_size",
    "test_size",
    "ema_decay",
    "mixup_alpha",
    "cutmix_alpha",
)


def _read_results(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    results = json.loads(Path(path).read_text())
    if not isinstance(results, dict):
        raise ValueError(f'{path} must hold a JSON object of metric: value, e.g. {{"top1": 76.8}}')
    return results


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", help="training checkpoint (.pth from train_imagenet.py) or a model name")
    parser.add_argument("--out", required=True, type=Path, help="folder to write (must not exist)")
    parser.add_argument("--tag", default="custom", help="pretrained tag, e.g. nf_in1k")
    parser.add_argument("--weights", choices=("ema", "model"), default="ema", help="from a checkpoint")
    parser.add_argument("--results", type=Path, help="JSON object of metrics for the model card")
    parser.add_argument(
        "--dataset", action="append", default=[], help="dataset id(s) for the card, e.g. imagenet-1k"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--no-macs", action="store_true", help="skip counting MACs for the card")
    parser.add_argument("--push", metavar="REPO_ID", help="publish the folder to this Hub repo")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the stored login)")
    args = parser.parse_args(argv)
    if args.push:
        validate_repo_id(args.push)  # before any work

    recipe = None
    source = Path(args.source)
    if source.suffix in (".pth", ".pt") or source.is_file():
        model, state = model_from_training_checkpoint(source, weights=args.weights)
        cfg = state.get("config") or {}
        recipe = {k: cfg[k] for k in _RECIPE_KEYS if k in cfg}
        recipe.update(weights=args.weights, steps=state["step"], epochs_done=state["epoch"])
    else:
        model = create_model(args.source).eval()
    folder = export_for_hub(
        model,
        args.out,
        tag=args.tag,
        recipe=recipe,
        results=_read_results(args.results),
        repo_id=args.push,
        datasets=tuple(args.dataset),
        compute_macs=not args.no_macs,
        overwrite=args.overwrite,
    )
    print(f"wrote {folder}")
    if args.push:
        url = push_folder_to_hub(folder, args.push, token=args.token, private=args.private)
        print(f"pushed to {args.push}: {url}")
    return folder


if __name__ == "__main__":
    main()

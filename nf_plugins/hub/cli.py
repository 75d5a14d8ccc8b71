"""``nf-plugins export-hub``: a model or training checkpoint to timm's Hub layout, optionally published.

    nf-plugins export-hub runs/b0/last.pth --out hub/nf_regnet_b0.nf_in1k --tag nf_in1k \\
        --results results.json --push my-org/nf_regnet_b0.nf_in1k
    nf-plugins export-hub nf_regnet_b0 --out hub/b0   # a (random-init) registered model
    nf-plugins export-hub local-dir:hub/b0 --out hub/b0_v2 --tag v2   # re-export an export

The folder holds model.safetensors, config.json and a model card README.md. Load it back with
``timm.create_model("local-dir:<out>", pretrained=True)`` or ``"hf-hub:<repo>"`` after ``import nf_plugins``.
``--push`` uses the token from ``--token``, ``HF_TOKEN`` or ``hf auth login``.
From a training checkpoint the EMA weights are exported (``--weights ema``, the default, as the paper
reports them); ``--weights model`` exports the raw weights. ``nf-plugins export-onnx`` uses the same default.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from ..atomic import check_output_dir
from ..models import create_model
from .checkpoint import model_from_training_checkpoint
from .export import export_for_hub, push_folder_to_hub, validate_repo_id
from .validate_record import card_results, read_validation_record


def _read_results(path: Path | None) -> dict[str, Any] | None:
    """The ``--results`` metrics, checked before any work: a JSON object of finite numbers or strings."""
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"--results {str(path)!r} does not exist or is not a file")
    example = '{"top1": 76.8}'
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"--results {str(path)!r} is not valid JSON ({e}); expected e.g. {example}") from e
    if not isinstance(results, dict):
        raise ValueError(f"--results {str(path)!r} must hold a JSON object of metric: value, e.g. {example}")
    for key, value in results.items():
        ok = isinstance(value, str) or (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
        if not ok:
            raise ValueError(
                f"--results {str(path)!r}: {key!r} is {value!r}; "
                "each metric must be a finite number or a string"
            )
    return results


def _source_kind(source: str) -> str:
    """``checkpoint``, ``local-dir`` or ``name``; refuses sources that would be exported wrongly."""
    if source.startswith("hf-hub:"):
        raise ValueError(
            f"{source!r}: export-hub exports local weights and never looks up the Hub; download the "
            "repo first (hf download ORG/REPO --local-dir DIR) and pass local-dir:DIR"
        )
    if source.startswith("local-dir:"):
        return "local-dir"
    path = Path(source)
    if path.is_dir():
        if (path / "config.json").is_file():
            raise ValueError(
                f"{source!r} is an exported folder, not a training checkpoint; to re-export its weights "
                f"pass local-dir:{source}"
            )
        raise IsADirectoryError(f"{source!r} is a folder, not a training checkpoint (.pth) or a model name")
    if path.suffix in (".pth", ".pt") and not path.is_file():
        raise FileNotFoundError(f"training checkpoint {source!r} does not exist")
    if path.suffix in (".pth", ".pt") or path.is_file():
        return "checkpoint"
    return "name"


def _card_recipe(state: dict[str, Any], source: str, weights: str) -> dict[str, Any]:
    """The model card's recipe rows: the recipe the checkpoint was trained with, and how far it trained.

    ``train-imagenet`` saves its recipe (``nf_plugins.train.recipe.RECIPE_KEYS`` of its config) in every
    checkpoint; one saved before it did shows its whole config."""
    missing = [key for key in ("step", "epoch") if key not in state]
    if missing:
        raise ValueError(
            f"training checkpoint {source!r} holds no {' or '.join(map(repr, missing))}, which every "
            "checkpoint of `nf-plugins train-imagenet` saves and the model card reports; export a last.pth "
            "written by train-imagenet"
        )
    recipe = dict(state["recipe"] if "recipe" in state else state.get("config") or {})
    recipe.update(weights=weights, steps=state["step"], epochs_done=state["epoch"])
    return recipe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nf-plugins export-hub`` flags."""
    parser.add_argument(
        "source", help="training checkpoint (.pth of train-imagenet), local-dir:PATH or a model name"
    )
    parser.add_argument("--out", required=True, type=Path, help="folder to write (must not exist)")
    parser.add_argument("--tag", default="custom", help="pretrained tag, e.g. nf_in1k")
    parser.add_argument(
        "--weights",
        choices=("ema", "model"),
        default="ema",
        help="from a training checkpoint: EMA (default, as the paper reports) or the raw weights",
    )
    parser.add_argument("--results", type=Path, help="JSON object of metrics for the model card")
    parser.add_argument(
        "--validate-json",
        type=Path,
        help="the card's results from `nf-plugins validate --output` on these same weights (checked)",
    )
    parser.add_argument(
        "--dataset", action="append", default=[], help="dataset id(s) for the card, e.g. imagenet-1k"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--no-macs", action="store_true", help="skip counting MACs for the card")
    parser.add_argument("--push", metavar="REPO_ID", help="publish the folder to this Hub repo")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the stored login)")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Path:
    """Check every argument and the output folder before any weights are read, then export (and push)."""
    if args.push:
        validate_repo_id(args.push)
    if args.results and args.validate_json:
        parser.error("pass --results or --validate-json, not both")
    results = _read_results(args.results)
    record = read_validation_record(args.validate_json) if args.validate_json else None
    kind = _source_kind(args.source)
    if record is not None and kind == "name":
        parser.error(f"--validate-json: {args.source!r} is a random-init model, not the weights it scored")
    check_output_dir(args.out, args.overwrite)

    recipe = None
    if kind == "checkpoint":
        model, state = model_from_training_checkpoint(args.source, weights=args.weights)
        recipe = _card_recipe(state, args.source, args.weights)
    else:  # a local-dir: export keeps its weights; a bare name is a random-init model
        model = create_model(args.source, pretrained=kind == "local-dir").eval()
    if record is not None:  # refused unless it scored exactly these weights
        local = Path(args.source[len("local-dir:") :]) / "model.safetensors" if kind == "local-dir" else None
        results = card_results(
            record,
            architecture=model.pretrained_cfg["architecture"],
            checkpoint=local or args.source,
            weights=args.weights if kind == "checkpoint" else None,
        )
    folder = export_for_hub(
        model,
        args.out,
        tag=args.tag,
        recipe=recipe,
        results=results,
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

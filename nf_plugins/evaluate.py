"""Top-1/top-5 of any timm model on an ImageFolder (ImageNet val layout), written as a JSON record.

The preprocessing is timm's own for the model: ``resolve_data_config`` at the model's test size
(``pretrained_cfg``: resolution, crop_pct, interpolation, mean/std) and ``create_transform``; the images
are read by ``imagenet_data.CheckedImageFolder`` (an undecodable image is an error, never a substitute).
Class index of each folder, checked before any image is scored:

- ``class_map``: a text file of folder names, one per line, line ``i`` = class ``i`` (timm's format);
- folders that are all synsets of the model's ImageNet label set (timm's ``ImageNetInfo``, e.g.
  ``n01440764`` = 0 for a 1000-class model): each synset's ImageNet index, so a subset of the 1000
  folders is scored on the right labels;
- otherwise the folders' order (as ``nf-plugins train-imagenet`` labels them), which must cover every
  output of the model, and be the same order under timm's natural sort and a plain sort (torchvision's).

The JSON (``validation_record``, format in ``nf_plugins.hub.validate_record``) is what
``nf-plugins export-hub --validate-json`` puts on a model card.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path
from typing import Any

import torch

from .hub.validate_record import RECORD_FORMAT, file_sha256
from .imagenet_data import VAL_NAMES, CheckedImageFolder, _check_all_read, class_folders
from .progress import Progress


def _read_class_map(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"--class-map {str(path)!r} does not exist or is not a file")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"--class-map {str(path)!r} names {dup[:5]} more than once; one folder per line")
    return names


def class_index_map(
    split_dir: Path,
    num_classes: int,
    *,
    class_map: Path | None = None,
    label_names: list[str] | None = None,
) -> tuple[dict[str, int], str]:
    """Folder name -> class index for ``split_dir``, and how it was decided (see the module docstring)."""
    names = list(class_folders(split_dir))  # refuses loose images, empty class folders, no folders
    if class_map is not None:
        index = {name: i for i, name in enumerate(_read_class_map(class_map))}
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(
                f"{split_dir}: folders {missing[:5]} are not in --class-map {str(class_map)!r}; "
                "add them (line i = class i) or remove the folders"
            )
        beyond = [n for n in names if index[n] >= num_classes]
        if beyond:
            raise ValueError(
                f"--class-map {str(class_map)!r} gives {beyond[0]!r} class {index[beyond[0]]}, but the model "
                f"has {num_classes} outputs"
            )
        return {n: index[n] for n in names}, f"class map {class_map}"
    if label_names and len(label_names) == num_classes and set(names) <= set(label_names):
        index = {name: i for i, name in enumerate(label_names)}
        return {n: index[n] for n in names}, f"ImageNet synsets ({num_classes} classes)"
    if len(names) != num_classes:
        raise ValueError(
            f"{split_dir} has {len(names)} class folders but the model has {num_classes} outputs, and the "
            "folders are not ImageNet synsets (n01440764 ...) of its label set; pass --class-map FILE "
            "(folder names, line i = class i) or --num-classes for a checkpoint with another head"
        )
    if names != sorted(names):
        raise ValueError(
            f"{split_dir}: the folder order differs between timm's natural sort (train_imagenet.py's labels) "
            f"and a plain sort (torchvision's ImageFolder), e.g. {names[:3]} vs {sorted(names)[:3]}; pass "
            "--class-map FILE (folder names, line i = class i) to say which the model was trained on"
        )
    return {n: i for i, n in enumerate(names)}, "folder order"


def load_model(
    name: str,
    *,
    checkpoint: str | Path | None = None,
    weights: str = "ema",
    num_classes: int | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model to score and what identifies its weights (checkpoint path, SHA-256, EMA or raw).

    No checkpoint: timm's pretrained weights of ``name`` (``name.tag``, ``hf-hub:``, ``local-dir:``);
    a paper-exact name without a tag has none and raises. A training checkpoint of
    ``tools/train_imagenet.py`` must hold ``name``; any other file is a state dict loaded strictly.
    """
    from .hub.checkpoint import is_training_checkpoint, model_from_training_checkpoint
    from .models import create_model

    info: dict[str, Any] = {"checkpoint": None, "checkpoint_sha256": None, "weights": None}
    if checkpoint is None:
        if num_classes is not None:
            raise ValueError("--num-classes applies only with --checkpoint (pretrained weights fix the head)")
        model = create_model(name, pretrained=True)
        if name.startswith("local-dir:"):
            local = Path(name[len("local-dir:") :]) / "model.safetensors"
            if local.is_file():
                info.update(checkpoint=str(local.resolve()), checkpoint_sha256=file_sha256(local))
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"--checkpoint {str(path)!r} does not exist or is not a file")
        if is_training_checkpoint(path):
            model, state = model_from_training_checkpoint(path, weights=weights)
            if state["model_name"] != name:
                raise ValueError(f"--checkpoint {str(path)!r} holds {state['model_name']}, not {name}")
            info["weights"] = weights
        else:
            kwargs = {"num_classes": num_classes} if num_classes is not None else {}
            model = create_model(name, checkpoint_path=str(path), **kwargs)
        info.update(checkpoint=str(path.resolve()), checkpoint_sha256=file_sha256(path))
    return model.eval(), info


def eval_data_config(model: torch.nn.Module) -> dict[str, Any]:
    """timm's data config to score ``model``: its test size and crop, as timm's validate.py uses."""
    import timm.data

    return timm.data.resolve_data_config(model=model, use_test_size=True)


def evaluate(
    model: torch.nn.Module,
    split_dir: str | Path,
    *,
    class_map: str | Path | None = None,
    batch_size: int = 64,
    workers: int = 2,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Top-1/top-5 (%) of ``model`` on the class folders of ``split_dir``, with counts and data config."""
    import timm.data

    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"--data-dir {str(split_dir)!r} does not exist or is not a folder")
    num_classes = model.num_classes
    subset = timm.data.infer_imagenet_subset(model)
    label_names = list(timm.data.ImageNetInfo(subset).label_names()) if subset else None
    class_to_idx, how = class_index_map(
        split_dir, num_classes, class_map=Path(class_map) if class_map else None, label_names=label_names
    )
    data_config = eval_data_config(model)
    dataset = CheckedImageFolder(split_dir, class_to_idx, skip_corrupt=False)
    _check_all_read(dataset, sum(class_folders(split_dir).values()))
    dataset.transform = timm.data.create_transform(**data_config, is_training=False)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=device != "cpu"
    )
    model = model.to(device).eval()
    k = min(5, num_classes)
    correct1 = correct5 = seen = 0
    start = time.monotonic()
    with torch.inference_mode(), Progress(len(dataset), "validate", "images", enabled=progress) as bar:
        for images, target in loader:
            logits = model(images.to(device))
            if logits.ndim != 2 or logits.shape[1] != num_classes:
                raise ValueError(f"the model returned {tuple(logits.shape)}, expected (batch, {num_classes})")
            if not torch.isfinite(logits).all():
                raise ValueError("the model returned NaN/inf logits; no accuracy is reported for them")
            # counts of exact hits, summed over images (timm.utils.accuracy averages per batch in %)
            hits = logits.topk(k, dim=1).indices.cpu() == target[:, None]
            correct1 += int(hits[:, 0].sum())
            correct5 += int(hits.any(dim=1).sum())
            seen += len(target)
            bar.update(len(target))
    return {
        "n_images": seen,
        "num_classes": num_classes,
        "n_class_folders": len(class_to_idx),
        "class_index": how,
        "top1": 100.0 * correct1 / seen,
        "top5": 100.0 * correct5 / seen if num_classes >= 5 else None,
        "top1_correct": correct1,
        "top5_correct": correct5 if num_classes >= 5 else None,
        "data_config": {key: list(v) if isinstance(v, tuple) else v for key, v in data_config.items()},
        "seconds": round(time.monotonic() - start, 3),
    }


def validation_record(
    model_name: str,
    model: torch.nn.Module,
    weights_info: dict[str, Any],
    data_dir: Path,
    split_dir: Path,
    result: dict[str, Any],
) -> dict[str, Any]:
    """The JSON record: what was scored (model, weights, data), the numbers, when and with which versions."""
    import timm

    import nf_plugins

    return {
        "format": RECORD_FORMAT,
        "model": model_name,
        "architecture": model.pretrained_cfg.get("architecture"),
        **weights_info,
        "data_dir": str(data_dir.resolve()),
        "split_dir": str(split_dir.resolve()),
        **result,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "torch": torch.__version__,
            "timm": timm.__version__,
            "nf_plugins": nf_plugins.__version__,
        },
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nf-plugins validate`` flags."""
    parser.add_argument("model", help="timm model name (name.tag, hf-hub:ORG/REPO, local-dir:PATH)")
    parser.add_argument("--data-dir", required=True, type=Path, help="ImageFolder: <dir>/<class>/<image>")
    parser.add_argument(
        "--split",
        "--split-dir",
        dest="split",
        help="sub-folder of --data-dir holding the class folders, e.g. val",
    )
    parser.add_argument("--checkpoint", help="train_imagenet.py checkpoint, or a safetensors/.pth state dict")
    parser.add_argument(
        "--weights", choices=("ema", "model"), default="ema", help="from a training checkpoint"
    )
    parser.add_argument("--num-classes", type=int, help="head size of a state-dict --checkpoint")
    parser.add_argument("--class-map", type=Path, help="folder names, one per line, line i = class index i")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", type=Path, help="write the JSON record here")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> dict[str, Any]:
    """Check the arguments, score the model, print the result line and write the record."""
    from .atomic import atomic_write_json
    from .outputs import check_output_file

    if args.batch_size < 1 or args.workers < 0:
        raise ValueError(
            f"--batch-size must be >= 1 and --workers >= 0, got {args.batch_size}, {args.workers}"
        )
    if args.output:
        check_output_file(args.output, "--output")
    if not args.data_dir.is_dir():
        raise FileNotFoundError(f"--data-dir {str(args.data_dir)!r} does not exist or is not a folder")
    split_dir = args.data_dir / args.split if args.split else args.data_dir
    if not args.split and any((args.data_dir / n).is_dir() for n in VAL_NAMES):
        raise ValueError(
            f"--data-dir {str(args.data_dir)!r} holds a validation folder: it is a dataset root, not the "
            "class folders; pass --split val (or point --data-dir at the class folders)"
        )
    if not split_dir.is_dir():
        raise FileNotFoundError(f"--split {args.split!r}: {split_dir} does not exist or is not a folder")
    model, info = load_model(
        args.model, checkpoint=args.checkpoint, weights=args.weights, num_classes=args.num_classes
    )
    result = evaluate(
        model,
        split_dir,
        class_map=args.class_map,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
    )
    record = validation_record(args.model, model, info, args.data_dir, split_dir, result)
    top5 = f"{record['top5']:.2f}" if record["top5"] is not None else "-"
    n = record["n_images"]
    print(f"{args.model}: top-1 {record['top1']:.2f}  top-5 {top5}  on {n} images of {split_dir}")
    if args.output:
        atomic_write_json(args.output, record)
        print(f"wrote {args.output}")
    return record

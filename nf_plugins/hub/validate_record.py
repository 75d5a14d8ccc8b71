"""The record ``nf-plugins validate`` writes, as a model card reads it: its format tag, the hash that ties
it to the exact weights, the checks a card or results table needs, and the card's result rows.

Here, beside the card, so that ``nf-plugins export-hub`` reads records without importing the scorer
(``nf_plugins.evaluate`` writes them and imports this module).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

RECORD_FORMAT = "nf_plugins.validate/1"


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file: ties a record to the exact weights, wherever the file was moved."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_validation_record(path: str | Path) -> dict[str, Any]:
    """A JSON written by ``nf-plugins validate``, checked for the fields a card or table needs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"validate JSON {str(path)!r} does not exist or is not a file")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(
            f"{path} is not valid JSON ({e}); write it with `nf-plugins validate ... --output`"
        ) from e
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise ValueError(f"{path} is not a record of `nf-plugins validate` (format {RECORD_FORMAT!r})")
    top1 = record.get("top1")
    if not isinstance(top1, (int, float)) or not math.isfinite(top1) or not record.get("n_images"):
        raise ValueError(f"{path}: top1 {top1!r} over {record.get('n_images')!r} images is not a measurement")
    return record


def card_results(
    record: dict[str, Any], *, architecture: str, checkpoint: str | Path | None, weights: str | None
) -> dict[str, Any]:
    """Model-card results from a validate record, refused unless it scored these exact weights.

    The weights are matched by the file's SHA-256 (a moved or renamed file still matches; a retrained
    one does not) and, for a training checkpoint, EMA vs raw weights.
    """
    if record.get("architecture") != architecture:
        raise ValueError(
            f"the validate JSON scored {record.get('architecture')!r}, not {architecture!r}; run "
            f"`nf-plugins validate` on these weights"
        )
    if checkpoint is None or record.get("checkpoint_sha256") != file_sha256(checkpoint):
        raise ValueError(
            f"the validate JSON scored the weights {record.get('checkpoint')!r}, not {str(checkpoint)!r} "
            "(SHA-256 differs); run `nf-plugins validate` on the weights you export"
        )
    if record.get("weights") != weights:
        raise ValueError(
            f"the validate JSON scored the {record.get('weights')!r} weights of the checkpoint, the export "
            f"takes {weights!r}; pass the same --weights to both"
        )
    cfg = record["data_config"]
    results = {"ImageNet top-1 (%)": round(record["top1"], 2)}
    if record.get("top5") is not None:
        results["ImageNet top-5 (%)"] = round(record["top5"], 2)
    results.update(
        {
            "images scored": record["n_images"],
            "eval input": f"{cfg['input_size'][-1]} px, crop_pct {cfg['crop_pct']}, {cfg['interpolation']}",
            "evaluated": f"{record['date']} (nf-plugins validate, timm {record['versions']['timm']})",
        }
    )
    return results

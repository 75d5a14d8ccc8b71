"""The model card (README.md) of an exported model: architecture, size, recipe, results, citation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..models.complexity import PAPER_TABLE3

CITATION = """@inproceedings{brock2021characterizing,
  title     = {Characterizing signal propagation to close the performance gap in unnormalized ResNets},
  author    = {Brock, Andrew and De, Soham and Smith, Samuel L.},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2021}
}"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple, dict)):
        return "`" + json.dumps(value) + "`"
    return str(value)


def _table(rows: Mapping[str, Any], head: tuple[str, str]) -> str:
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in rows.items()]
    return "\n".join(lines)


def model_card(
    architecture: str,
    tag: str,
    *,
    params: int,
    macs: int | None,
    input_size: tuple[int, int, int],
    test_input_size: tuple[int, int, int] | None,
    num_classes: int,
    recipe: Mapping[str, Any] | None = None,
    results: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
    datasets: tuple[str, ...] = (),
) -> str:
    """Markdown with Hub front matter. ``macs`` are multiply-adds of one image at the test size."""
    test_size = test_input_size or input_size
    name = f"{architecture}.{tag}"
    load_id = f"hf-hub:{repo_id}" if repo_id else "local-dir:/path/to/this/folder"
    front = ["---", "tags:", "- image-classification", "- timm", "- nf_plugins", "library_name: timm"]
    front += ["license: apache-2.0"]
    if datasets:
        front += ["datasets:", *[f"- {d}" for d in datasets]]
    front += ["---"]

    details = {
        "architecture": f"`{architecture}` (paper-exact, registered into timm by `import nf_plugins`)",
        "weights tag": f"`{tag}`",
        "classes": num_classes,
        "params (M)": f"{params / 1e6:.2f}",
        f"MACs (B) @ {test_size[-2]}x{test_size[-1]}": f"{macs / 1e9:.3f}" if macs is not None else "-",
        "train image size": f"{input_size[-2]}x{input_size[-1]}",
        "test image size": f"{test_size[-2]}x{test_size[-1]}",
    }
    paper = PAPER_TABLE3.get(architecture)
    if paper:
        details["paper params (M) / MACs (B)"] = f"{paper[0]} / {paper[1]} (Table 3, 1000 classes)"

    parts = [
        "\n".join(front),
        f"# Model card for {name}",
        "A Normalizer-Free network from Brock, De & Smith, *Characterizing signal propagation to close "
        "the performance gap in unnormalized ResNets* (ICLR 2021), as implemented by "
        "nf_plugins for timm.",
        "## Model details\n\n" + _table(details, ("", "")),
        "## Usage\n\n```python\nimport timm, torch\nimport nf_plugins  # registers the paper's models\n\n"
        f'model = timm.create_model("{load_id}", pretrained=True).eval()\n'
        "cfg = timm.data.resolve_data_config({}, model=model)\n"
        "transform = timm.data.create_transform(**cfg)\n```",
        "## Training recipe\n\n"
        + (_table(recipe, ("setting", "value")) if recipe else "Not recorded with these weights."),
        "## Results\n\n" + (_table(results, ("metric", "value")) if results else "Not evaluated."),
        "## Citation\n\n```bibtex\n" + CITATION + "\n```",
    ]
    return "\n\n".join(parts) + "\n"

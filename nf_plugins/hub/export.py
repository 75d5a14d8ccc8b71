"""Export a model to a folder in timm's Hugging Face Hub layout, and publish that folder.

The folder holds exactly ``model.safetensors``, ``config.json`` (timm's ``save_for_hf``: architecture,
num_classes, model_args, pretrained_cfg) and ``README.md`` (our model card). Publishing uploads that
verified folder as is, rather than re-serializing the model as ``timm.models.push_to_hf_hub`` would
(which also writes a pickle ``pytorch_model.bin`` by default): what is published is what was checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.utils import HFValidationError
from huggingface_hub.utils import validate_repo_id as _hf_validate_repo_id
from timm.models import is_model, save_for_hf

from ..atomic import atomic_output_dir, check_output_dir
from ..models import PAPER_MODELS, timm_weight_tags
from ..models.complexity import count_macs, count_params
from .model_card import model_card

HUB_FILES = ("model.safetensors", "config.json", "README.md")
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")


def validate_repo_id(repo_id: str) -> str:
    """``namespace/name`` as the Hub accepts it; raises ``ValueError`` saying what is wrong."""
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"repo id must look like 'ORG_OR_USER/NAME', got {repo_id!r}")
    try:
        _hf_validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ValueError(f"invalid Hugging Face repo id {repo_id!r}: {e}") from e
    return repo_id


def validate_tag(tag: str, architecture: str) -> str:
    """A pretrained tag: short, file-name safe, and not one of timm's own weight tags for the name.

    timm's tags (e.g. ``ra2_in1k``) are routed to timm's architecture on load, so our weights must
    never carry one.
    """
    if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
        raise ValueError(f"tag must be letters, digits, '_' or '-' (at most 64, e.g. 'in1k'), got {tag!r}")
    if tag in timm_weight_tags(architecture):
        raise ValueError(
            f"tag {tag!r} is timm's own weight tag for {architecture} (loads timm's architecture); "
            "choose another, e.g. 'nf_in1k'"
        )
    return tag


def export_for_hub(
    model: torch.nn.Module,
    out_dir: str | Path,
    *,
    tag: str = "custom",
    recipe: Mapping[str, Any] | None = None,
    results: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
    datasets: tuple[str, ...] = (),
    compute_macs: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` to ``out_dir`` in timm's Hub layout, atomically (temp folder, then rename).

    Load it back with ``timm.create_model("local-dir:<out_dir>", pretrained=True)`` or, once pushed,
    ``"hf-hub:<repo_id>"`` (after ``import nf_plugins``).
    """
    cfg = getattr(model, "pretrained_cfg", None)
    if not cfg or not cfg.get("architecture") or not is_model(cfg["architecture"]):
        raise ValueError(
            "export needs a model built by timm.create_model (it reads model.pretrained_cfg['architecture'])"
        )
    architecture = cfg["architecture"]
    if architecture in PAPER_MODELS and not type(model).__module__.startswith("nf_plugins"):
        raise ValueError(
            f"this is timm's own {architecture} ({type(model).__module__}), but with nf_plugins imported the "
            f"name {architecture!r} builds the paper-exact network, so the export would not load back; "
            "export timm's variant with timm.models.save_for_hf in a process without nf_plugins"
        )
    validate_tag(tag, architecture)
    if repo_id is not None:
        validate_repo_id(repo_id)
    out_dir = check_output_dir(out_dir, overwrite)  # before counting MACs: fail fast on a bad --out

    input_size = tuple(cfg.get("input_size", (3, 224, 224)))
    test_size = tuple(cfg.get("test_input_size") or input_size)
    card = model_card(
        architecture,
        tag,
        params=count_params(model),
        macs=count_macs(model, test_size) if compute_macs else None,
        input_size=input_size,
        test_input_size=test_size,
        num_classes=model.num_classes,
        recipe=recipe,
        results=results,
        repo_id=repo_id,
        datasets=datasets,
    )
    with atomic_output_dir(out_dir, overwrite) as tmp:
        save_for_hf(model, tmp, model_config={"pretrained_cfg": {"tag": tag}}, safe_serialization=True)
        (tmp / "README.md").write_text(card, encoding="utf-8")
    return out_dir


def check_hub_folder(folder: str | Path) -> dict[str, Any]:
    """Check a folder holds exactly the files we publish, safetensors only; returns its config."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder exported by export_for_hub")
    names = sorted(p.name for p in folder.iterdir())
    missing = [n for n in HUB_FILES if n not in names]
    extra = [n for n in names if n not in HUB_FILES]
    if missing or extra:
        raise ValueError(
            f"{folder} must hold exactly {list(HUB_FILES)}; missing {missing}, unexpected {extra} "
            "(only safetensors weights are published)"
        )
    config = json.loads((folder / "config.json").read_text())
    arch = config.get("architecture")
    if not arch or not is_model(arch):
        raise ValueError(f"{folder / 'config.json'}: architecture {arch!r} is not a registered timm model")
    return config


def push_folder_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Add nf_plugins weights",
    verify: bool = True,
) -> str:
    """Upload an exported folder to ``repo_id`` (token from ``token``, ``HF_TOKEN`` or ``hf auth login``).

    With ``verify`` the folder is first loaded back through timm (``local-dir:``) so that nothing
    unloadable is published. Returns the commit URL.
    """
    from huggingface_hub import HfApi

    validate_repo_id(repo_id)
    check_hub_folder(folder)
    if verify:
        import timm

        timm.create_model(f"local-dir:{Path(folder).resolve()}", pretrained=True)
    api = HfApi(token=token, library_name="nf_plugins")
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        allow_patterns=list(HUB_FILES),
        revision=revision,
        commit_message=commit_message,
    )
    return str(commit)

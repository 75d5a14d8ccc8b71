"""Weights into the paper's models are never silently wrong: no dtype cast, no NaN/inf, clear file errors.

Every loader we own is covered: ``local-dir:``, ``hf-hub:`` (HF cache, offline), ``checkpoint_path``
(``nf_plugins.models.create_model``, ``export-onnx --checkpoint``), ``pretrained_cfg_overlay(file=...)``
and training checkpoints (``export_hub.py``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch

from nf_plugins.hub import export_for_hub, model_from_training_checkpoint
from nf_plugins.hub.checkpoint import save_training_checkpoint
from nf_plugins.models import create_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A good export of NF-RegNet-B0 (3 classes), float32 and finite."""
    folder = tmp_path_factory.mktemp("weights") / "b0"
    return export_for_hub(create_model("nf_regnet_b0", num_classes=3), folder, tag="t", compute_macs=False)


def _variant(exported: Path, dst: Path, change) -> Path:
    """A copy of the export whose state dict went through ``change``."""
    shutil.copytree(exported, dst)
    sd = safetensors.torch.load_file(exported / "model.safetensors")
    safetensors.torch.save_file(change(sd), dst / "model.safetensors")
    return dst


def _cast(dtype):
    return lambda sd: {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}


def _poison(value: float):
    def change(sd):
        sd = dict(sd)
        sd["head.fc.weight"] = sd["head.fc.weight"].clone()
        sd["head.fc.weight"][1, 2] = value
        return sd

    return change


def _load(loader: str, folder: Path, hf_cache, tmp_path):
    """Load ``folder``'s weights through one of our loaders."""
    if loader == "local-dir":
        return timm.create_model(f"local-dir:{folder}", pretrained=True)
    if loader == "hf-hub":
        hf_cache("org/b0", folder)
        return timm.create_model("hf-hub:org/b0", pretrained=True)
    if loader == "checkpoint_path":
        return create_model("nf_regnet_b0", num_classes=3, checkpoint_path=str(folder / "model.safetensors"))
    if loader == "overlay_file":
        overlay = dict(file=str(folder / "model.safetensors"))
        return timm.create_model(
            "nf_regnet_b0", num_classes=3, pretrained=True, pretrained_cfg_overlay=overlay
        )
    if loader == "training_checkpoint":
        sd = safetensors.torch.load_file(folder / "model.safetensors")
        path = tmp_path / "last.pth"
        state = dict(model_name="nf_regnet_b0", model_kwargs={"num_classes": 3}, model=sd, ema=sd, step=1)
        save_training_checkpoint(state, path)
        return model_from_training_checkpoint(path)[0]
    raise AssertionError(loader)


LOADERS = ["local-dir", "hf-hub", "checkpoint_path", "overlay_file", "training_checkpoint"]


@pytest.mark.parametrize("loader", LOADERS)
def test_float32_weights_load_exactly_through_every_loader(exported, loader, hf_cache, tmp_path):
    """The control for the refusals below: the same files in the model's dtype load bit-exactly."""
    model = _load(loader, exported, hf_cache, tmp_path)
    expected = safetensors.torch.load_file(exported / "model.safetensors")
    got = model.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], v) for k, v in expected.items())


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.int8], ids=["float16", "int8"])
def test_other_dtype_is_refused_naming_the_tensor(exported, loader, dtype, hf_cache, tmp_path):
    """float16 or int8 files with the right keys and shapes used to load, cast silently to float32."""
    folder = _variant(exported, tmp_path / "cast", _cast(dtype))
    hint = "dequantize it with its scales" if dtype == torch.int8 else r"convert the file explicitly"
    with pytest.raises(
        ValueError, match=rf"tensor '[\w.]+' has dtype {dtype} but the model's is torch.float32; .*{hint}"
    ):
        _load(loader, folder, hf_cache, tmp_path)


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(exported, loader, value, hf_cache, tmp_path):
    folder = _variant(exported, tmp_path / "bad", _poison(value))
    with pytest.raises(
        ValueError, match=r"tensor 'head.fc.weight' holds 1 non-finite value\(s\) \(NaN/inf\)"
    ):
        _load(loader, folder, hf_cache, tmp_path)


def test_weights_errors_name_the_file(exported, tmp_path):
    folder = _variant(exported, tmp_path / "half", _cast(torch.float16))
    with pytest.raises(ValueError, match=rf"^pretrained weights {folder / 'model.safetensors'}: tensor"):
        timm.create_model(f"local-dir:{folder}", pretrained=True)


# ---- local-dir: folders that are not what they claim -------------------------------------------------


@pytest.mark.parametrize(
    "text, msg",
    [
        ("{not json", r"config.json is not valid JSON \(Expecting property name"),
        ("[1, 2]", r"config.json must hold a JSON object with 'architecture' and 'model_args', got list"),
        ('{"architecture": "nf_regnet_b0", "model_args": [3]}', r"config.json: 'model_args' must be a JSON"),
    ],
    ids=["malformed", "list", "model_args_list"],
)
def test_bad_config_json_names_the_file(exported, tmp_path, text, msg):
    folder = tmp_path / "cfg"
    shutil.copytree(exported, folder)
    (folder / "config.json").write_text(text)
    with pytest.raises(ValueError, match=rf"^{folder}/{msg}"):
        create_model(f"local-dir:{folder}", pretrained=True)


@pytest.mark.parametrize("via", ["nf_plugins", "timm"])
def test_huge_num_classes_is_refused_before_allocating(exported, tmp_path, via):
    """10**9 classes would be a 3.6 TB classifier for B0's 960 features: refused from the number alone."""
    folder = tmp_path / "big"
    shutil.copytree(exported, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_args"]["num_classes"] = 10**9
    (folder / "config.json").write_text(json.dumps(config))
    create = create_model if via == "nf_plugins" else timm.create_model
    with pytest.raises(ValueError, match=r"num_classes=1000000000 is larger than 1,000,000 classes"):
        create(f"local-dir:{folder}", pretrained=True)
    with pytest.raises(ValueError, match="larger than 1,000,000"):
        create("nf_regnet_b0", num_classes=10**9)
    assert create("nf_regnet_b0", num_classes=21843).num_classes == 21843  # ImageNet-21k still fits


@pytest.mark.parametrize("kind", ["directory", "symlink_loop", "dangling_symlink"])
def test_weights_path_that_is_not_a_file_says_what_it_is(exported, tmp_path, kind):
    folder = tmp_path / kind
    shutil.copytree(exported, folder)
    weights = folder / "model.safetensors"
    weights.unlink()
    if kind == "directory":
        weights.mkdir()
        msg = "is a directory, not a weights file"
    else:
        os.symlink(weights if kind == "symlink_loop" else folder / "gone", weights)
        msg = r"is a symlink that resolves nowhere \(dangling or a loop\)"
    with pytest.raises(OSError, match=rf"local-dir: weights '{weights}' {msg}"):
        timm.create_model(f"local-dir:{folder}", pretrained=True)


@pytest.mark.parametrize("name", ["config.json", "README.md"])
def test_overlay_file_that_is_not_weights_is_named(exported, name):
    path = exported / name
    with pytest.raises(ValueError, match=rf"pretrained_cfg_overlay file '{path}' is not a weights file"):
        timm.create_model(
            "nf_regnet_b0", num_classes=3, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))
        )


@pytest.mark.parametrize("change", ["float16", "nan"])
def test_segmentation_backbone_checkpoint_is_checked_too(exported, tmp_path, change):
    """``model.backbone.checkpoint_path`` (ImageNet weights into the mmseg backbone) used a casting load."""
    from nf_plugins.downstream.models.backbone import NFBackbone

    sd = safetensors.torch.load_file(exported / "model.safetensors")
    path = tmp_path / "in1k.safetensors"
    safetensors.torch.save_file(
        (_cast(torch.float16) if change == "float16" else _poison(float("nan")))(sd), path
    )
    msg = (
        "has dtype torch.float16 but the model's is torch.float32"
        if change == "float16"
        else "holds 1 non-finite"
    )
    with pytest.raises(ValueError, match=rf"checkpoint_path '{path}': tensor '[\w.]+' {msg}"):
        NFBackbone("nf_regnet_b0", checkpoint_path=str(path), num_classes=3)

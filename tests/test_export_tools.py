"""nf-plugins export-onnx and export-hub: arguments and outputs checked before any work.

"Before any work" is proven by making the work itself fail the test: ``create_model`` and the
checkpoint loader are replaced by functions that raise, so an error that comes from them means the
output was checked too late.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch

import nf_plugins.deploy
import nf_plugins.hub
import nf_plugins.models
from nf_plugins.cli import call
from nf_plugins.cli import main as cli_main
from nf_plugins.hub import cli as export_hub
from nf_plugins.hub import export_for_hub
from nf_plugins.hub.checkpoint import save_training_checkpoint


class _NoWork(AssertionError):
    pass


@pytest.fixture
def no_work(monkeypatch):
    """Any model building or weight reading fails the test: the tools must stop before it."""

    def refuse(*args, **kwargs):
        raise _NoWork("expensive work started before the arguments/outputs were checked")

    monkeypatch.setattr(nf_plugins.models, "create_model", refuse)
    monkeypatch.setattr(export_hub, "create_model", refuse)
    monkeypatch.setattr(export_hub, "model_from_training_checkpoint", refuse)
    monkeypatch.setattr(nf_plugins.hub.checkpoint, "model_from_training_checkpoint", refuse)


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder nobody may create files in: a 0555 folder, or (root ignores modes) sysfs."""
    if os.geteuid() != 0:
        folder = tmp_path / "read_only"
        folder.mkdir(mode=0o555)
        yield folder
        folder.chmod(0o755)
        return
    try:
        tempfile.mkdtemp(dir="/sys")
    except OSError:
        yield Path("/sys")
    else:
        pytest.skip("running as root without a read-only folder to write to")


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_export_onnx_unwritable_output_fails_fast_leaving_nothing(unwritable, no_work, capsys):
    before = _entries(unwritable)
    start = time.perf_counter()
    with pytest.raises(SystemExit) as info:  # the CLI's one-line error, exit 2; --debug: the PermissionError
        cli_main(["export-onnx", "nf_regnet_b0", "--out", str(unwritable / "b0.onnx")])
    assert time.perf_counter() - start < 2
    assert info.value.code == 2
    assert f"ONNX output '{unwritable}/b0.onnx' is not writable (PermissionError" in capsys.readouterr().err
    assert _entries(unwritable) == before
    with pytest.raises(PermissionError, match=r"is not writable \(PermissionError"):
        cli_main(["export-onnx", "nf_regnet_b0", "--out", str(unwritable / "b0.onnx"), "--debug"])


def test_export_onnx_output_that_is_a_folder_is_named_before_work(tmp_path, no_work, capsys):
    (tmp_path / "x.onnx").mkdir()
    with pytest.raises(SystemExit) as info:
        cli_main(["export-onnx", "nf_regnet_b0", "--out", str(tmp_path / "x.onnx")])
    assert info.value.code == 2
    assert re.search(r"ONNX output '.*x.onnx' is a folder; give a file path", capsys.readouterr().err)
    assert _entries(tmp_path) == {"x.onnx"} and not list((tmp_path / "x.onnx").iterdir())


def test_export_hub_unwritable_output_fails_fast_leaving_nothing(unwritable, no_work):
    before = _entries(unwritable)
    start = time.perf_counter()
    with pytest.raises(
        PermissionError, match=rf"output folder '{unwritable}/hub_b0' is not writable \(PermissionError"
    ):
        call("export-hub", ["nf_regnet_b0", "--out", str(unwritable / "hub_b0")])
    assert time.perf_counter() - start < 2
    assert _entries(unwritable) == before


@pytest.mark.parametrize(
    "content, msg",
    [
        ("{top1: 76.8", r"is not valid JSON \(Expecting property name"),
        ('{"top1": NaN}', r"'top1' is nan; each metric must be a finite number or a string"),
        ('{"top1": [76.8]}', r"'top1' is \[76.8\]; each metric must be"),
        ("[76.8]", r"must hold a JSON object of metric: value"),
    ],
    ids=["malformed", "nan", "list_value", "list"],
)
def test_export_hub_bad_results_named_before_work(tmp_path, no_work, content, msg):
    results = tmp_path / "results.json"
    results.write_text(content)
    with pytest.raises(ValueError, match=rf"--results '{results}'.*{msg}"):
        call("export-hub", ["nf_regnet_b0", "--out", str(tmp_path / "out"), "--results", str(results)])
    assert not (tmp_path / "out").exists()


def test_export_hub_refuses_hub_sources_and_export_folders(tmp_path, no_work, monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise AssertionError("network lookup")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(ValueError, match=r"never looks up the Hub; .*hf download ORG/REPO --local-dir DIR"):
        call("export-hub", ["hf-hub:org/nf_regnet_b0", "--out", str(tmp_path / "out")])
    exported = tmp_path / "exported"
    exported.mkdir()
    (exported / "config.json").write_text("{}")
    with pytest.raises(
        ValueError, match=rf"is an exported folder, not a training checkpoint; .*local-dir:{exported}"
    ):
        call("export-hub", [str(exported), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_export_hub_local_dir_source_keeps_its_weights(tmp_path):
    """A local-dir: source used to be built without pretrained=True: its export held random weights."""
    model = timm.create_model("nf_regnet_b0", num_classes=3)
    with torch.no_grad():
        model.get_classifier().weight.normal_()  # zero at init: make the weights tell apart
    first = export_for_hub(model, tmp_path / "first", compute_macs=False)
    second = call("export-hub", [f"local-dir:{first}", "--out", str(tmp_path / "second"), "--no-macs"])
    a = safetensors.torch.load_file(first / "model.safetensors")
    b = safetensors.torch.load_file(second / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_export_onnx_checkpoint_exports_ema_like_export_hub(tmp_path, monkeypatch):
    """Both tools take a training checkpoint's EMA weights by default and the raw ones on request."""
    raw = timm.create_model("nf_regnet_b0", num_classes=3).state_dict()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in raw.items()}
    path = tmp_path / "last.pth"
    state = dict(model_name="nf_regnet_b0", model_kwargs={"num_classes": 3}, model=raw, ema=ema, step=5)
    save_training_checkpoint({**state, "epoch": 1}, path)
    seen = []
    monkeypatch.setattr(nf_plugins.deploy, "export_onnx", lambda model, out, **kw: seen.append(model) or out)
    for weights, expected in ((None, ema), ("model", raw)):
        extra = ["--weights", weights] if weights else []
        onnx_args = ["nf_regnet_b0", "--out", str(tmp_path / "m.onnx"), "--num-classes", "3"]
        cli_main(["export-onnx", *onnx_args, "--checkpoint", str(path), *extra])
        got = seen[-1].state_dict()
        assert all(torch.equal(got[k], v) for k, v in expected.items()), weights
        hub = call("export-hub", [str(path), "--out", str(tmp_path / f"hub_{weights}"), "--no-macs", *extra])
        exported = safetensors.torch.load_file(hub / "model.safetensors")
        assert all(torch.equal(exported[k], v) for k, v in expected.items()), weights


def test_export_hub_checkpoint_without_epoch_is_a_clear_error(tmp_path):
    """A checkpoint that lacks the epoch the model card reports (an older or hand-made one) used to end in a
    bare KeyError after the weights were read; now a ValueError naming the key, and nothing is written."""
    raw = timm.create_model("nf_regnet_b0", num_classes=3).state_dict()
    path = tmp_path / "last.pth"
    save_training_checkpoint(
        dict(model_name="nf_regnet_b0", model_kwargs={"num_classes": 3}, model=raw, step=5), path
    )
    with pytest.raises(
        ValueError, match=r"last.pth' holds no 'epoch', which every checkpoint of `nf-plugins train-"
    ):
        call("export-hub", [str(path), "--out", str(tmp_path / "hub"), "--weights", "model", "--no-macs"])
    assert not (tmp_path / "hub").exists()


def test_export_hub_card_shows_the_recipe_the_checkpoint_saved(tmp_path):
    """The card's recipe rows are the checkpoint's own ``recipe``; one written before train-imagenet saved
    it shows its whole ``config`` instead."""
    raw = timm.create_model("nf_regnet_b0", num_classes=3).state_dict()
    state = dict(model_name="nf_regnet_b0", model_kwargs={"num_classes": 3}, model=raw, step=5, epoch=1)
    for name, extra, rows in (
        ("new", dict(recipe={"lr": 0.25}, config={"lr": 0.25, "workers": 3}), ["| lr | 0.25 |"]),
        ("old", dict(config={"lr": 0.125, "workers": 3}), ["| lr | 0.125 |", "| workers | 3 |"]),
    ):
        save_training_checkpoint({**state, **extra}, tmp_path / f"{name}.pth")
        out = call(
            "export-hub",
            [str(tmp_path / f"{name}.pth"), "--out", str(tmp_path / name), "--weights", "model", "--no-macs"],
        )
        card = (out / "README.md").read_text()
        assert all(row in card for row in rows) and "| steps | 5 |" in card, card
        assert name == "old" or "| workers |" not in card

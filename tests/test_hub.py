"""Hub format: timm's weight tags through the HF cache, export -> load round trips, model cards.

Everything is offline: files are laid out as huggingface_hub's cache (models--ORG--REPO/snapshots/
<rev>/..., refs/main) in a temp dir, with HF_HUB_OFFLINE=1 and HF_HUB_CACHE pointing at it.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
import safetensors.torch
import timm
import torch
from live_weights import make_live
from timm.models import nfnet, save_for_hf

import nf_plugins
from nf_plugins.hub import export_for_hub, model_card, push_folder_to_hub, validate_repo_id
from nf_plugins.hub.export import check_hub_folder
from nf_plugins.models.complexity import PAPER_TABLE3


def _randomize(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial weights: our init zeroes the classifier and skip gains, so logits would all be 0."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("skipinit_gain") or name.endswith(".gain"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.ndim <= 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "fc" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval()


# ---- timm's own weight tags keep loading timm's architecture, from timm's Hub repos ----------------


@pytest.mark.parametrize("name", ["nf_resnet50", "nf_regnet_b1"])
def test_timm_ra2_weights_load_from_hf_cache(name, hf_cache, tmp_path):
    """timm's repo files (random init of timm's model) load through the tag: logits equal timm's."""
    reference = _randomize(getattr(nfnet, name)(pretrained=False, pretrained_cfg="ra2_in1k"))  # timm's code
    repo_id = f"timm/{name}.ra2_in1k"
    assert timm.models.get_pretrained_cfg(f"{name}.ra2_in1k").hf_hub_id == repo_id
    files = tmp_path / "timm_repo"
    # timm's repo layout: model.safetensors + config.json as timm's own save_for_hf writes them
    save_for_hf(reference, files, safe_serialization=True)
    assert json.loads((files / "config.json").read_text())["pretrained_cfg"]["tag"] == "ra2_in1k"
    hf_cache(repo_id, files)

    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = reference(x)
        for source in (f"{name}.ra2_in1k", f"hf-hub:{repo_id}"):
            model = timm.create_model(source, pretrained=True).eval()
            assert type(model) is nfnet.NormFreeNet, source
            torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=0)
    assert expected.abs().max() > 1e-3  # the comparison is not between two zero tensors


def test_timm_repo_with_mismatched_weights_names_the_keys(hf_cache, tmp_path):
    """A checkpoint that does not fit is an error naming missing/unexpected keys, never a partial load."""
    ours = timm.create_model("nf_resnet50")  # paper-exact: skipinit gains, no timm-shaped gains
    files = tmp_path / "bad"
    files.mkdir()
    safetensors.torch.save_file(ours.state_dict(), files / "model.safetensors")
    hf_cache("timm/nf_resnet50.ra2_in1k", files)
    with pytest.raises(
        RuntimeError, match=r"(?s)Unexpected key.*skipinit_gain.*size mismatch for stem.conv.gain"
    ):
        timm.create_model("nf_resnet50.ra2_in1k", pretrained=True)


def test_exported_folder_with_wrong_weights_names_the_keys(tmp_path):
    folder = export_for_hub(timm.create_model("nf_regnet_b0", num_classes=3), tmp_path / "b0", tag="t")
    sd = safetensors.torch.load_file(folder / "model.safetensors")
    sd["extra.weight"] = sd.pop("stem.conv.weight")
    safetensors.torch.save_file(sd, folder / "model.safetensors")
    with pytest.raises(RuntimeError, match=r"(?s)Missing key.*stem\.conv\.weight.*Unexpected key.*extra"):
        timm.create_model(f"local-dir:{folder}", pretrained=True)


# ---- export -> load round trip for every paper model ---------------------------------------------


# local-dir and hf-hub: the smallest model in the default run, every other paper model under -m slow;
# all 12 go through the HF cache in the default run: test_every_paper_model_round_trips_through_the_hf_cache.
_FAST = ("nf_regnet_b0",)


@pytest.mark.parametrize(
    "name", [n if n in _FAST else pytest.param(n, marks=pytest.mark.slow) for n in nf_plugins.PAPER_MODELS]
)
def test_export_round_trip_local_dir_and_hf_hub(name, tmp_path, hf_cache):
    model = _randomize(timm.create_model(name, num_classes=7))
    folder = export_for_hub(model, tmp_path / "export", tag="test", compute_macs=False)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == name and config["num_classes"] == 7
    assert config["pretrained_cfg"]["tag"] == "test"

    hf_cache(f"someorg/{name}-test", folder)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        assert torch.isfinite(expected).all() and expected.abs().max() > 1e-3
        for source in (f"local-dir:{folder}", f"hf-hub:someorg/{name}-test"):
            loaded = timm.create_model(source, pretrained=True).eval()
            assert type(loaded) is type(model) and loaded.pretrained_cfg["tag"] == "test"
            assert torch.equal(loaded(x), expected), source
            assert loaded.pretrained_cfg["test_input_size"] == model.pretrained_cfg["test_input_size"]


def test_every_paper_model_round_trips_through_the_hf_cache(tmp_path, hf_cache):
    """All 12 paper models in one default-run test: live weights (random SkipInit gains, gains, biases
    and classifier, so every branch shows in the logits) exported, then loaded back through the HF
    cache layout offline, give the same logits bit for bit (one 32 px image keeps it cheap)."""
    x = torch.randn(1, 3, 32, 32)
    for name in nf_plugins.PAPER_MODELS:
        model = make_live(timm.create_model(name, num_classes=3)).eval()
        with torch.no_grad():
            expected = model(x)  # before the export, which must not change the model
        folder = export_for_hub(model, tmp_path / name, tag="test", compute_macs=False)
        hf_cache(f"someorg/{name}-test", folder)
        del model  # one paper model in memory at a time (NF-ResNet-288: 146M parameters)
        with torch.no_grad():
            loaded = timm.create_model(f"hf-hub:someorg/{name}-test", pretrained=True).eval()
            assert loaded.pretrained_cfg["architecture"] == name and loaded.pretrained_cfg["tag"] == "test"
            assert expected.abs().max() > 1e-2, name  # not a comparison of zeros
            assert torch.equal(loaded(x), expected), name
        # 2 GB of safetensors for all 12 otherwise (the export and its copy in the cache)
        shutil.rmtree(folder)
        shutil.rmtree(tmp_path / "hf_home" / "hub" / f"models--someorg--{name}-test")


def test_model_card_numbers(tmp_path):
    model = timm.create_model("nf_regnet_b0")
    recipe = {"epochs": 360, "lr": 0.4, "weight_decay": 2e-5}
    folder = export_for_hub(
        model, tmp_path / "b0", tag="nf_in1k", recipe=recipe, results={"top1": 76.8}, repo_id="me/b0"
    )
    card = (folder / "README.md").read_text()
    assert card.startswith("---\ntags:\n- image-classification\n- timm")
    # independent numbers: the paper's Table 3 (8.6M params, 0.44B MACs at 224 px); ours within 1%
    params = float(re.search(r"\| params \(M\) \| ([\d.]+) \|", card).group(1))
    macs = float(re.search(r"\| MACs \(B\) @ 224x224 \| ([\d.]+) \|", card).group(1))
    assert params == pytest.approx(PAPER_TABLE3["nf_regnet_b0"][0], rel=0.01)
    assert macs == pytest.approx(PAPER_TABLE3["nf_regnet_b0"][1], rel=0.01)
    assert params == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6, abs=0.005)
    assert "| epochs | 360 |" in card and "| weight_decay | 2e-05 |" in card and "| top1 | 76.8 |" in card
    assert 'timm.create_model("hf-hub:me/b0", pretrained=True)' in card
    assert "@inproceedings{brock2021characterizing" in card
    assert "Not evaluated." in model_card(
        "nf_resnet50", "x", params=1, macs=None, input_size=(3, 2, 2), test_input_size=None, num_classes=2
    )


# ---- validation -------------------------------------------------------------------------------


def test_export_never_overwrites_and_rejects_bad_names(tmp_path):
    model = timm.create_model("nf_regnet_b0", num_classes=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_for_hub(model, out, compute_macs=False)
    assert (out / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folder left behind
    with pytest.raises(ValueError, match="timm's own weight tag"):
        export_for_hub(timm.create_model("nf_resnet50", num_classes=2), tmp_path / "x", tag="ra2_in1k")
    timm_variant = timm.create_model("nf_resnet50.ra2_in1k", num_classes=2)  # timm's architecture
    with pytest.raises(ValueError, match="timm's own nf_resnet50.*would not load back"):
        export_for_hub(timm_variant, tmp_path / "x", tag="ft", compute_macs=False)
    with pytest.raises(ValueError, match="tag must be"):
        export_for_hub(model, tmp_path / "x", tag="../evil")
    for bad in ("noslash", "a/b/c", "org/bad name", "org/..", "../x"):
        with pytest.raises(ValueError, match="repo id"):
            validate_repo_id(bad)
    assert validate_repo_id("my-org/nf_regnet_b0.nf_in1k") == "my-org/nf_regnet_b0.nf_in1k"


def test_push_refuses_folders_with_pickles_or_bad_repo(tmp_path):
    folder = export_for_hub(
        timm.create_model("nf_regnet_b0", num_classes=2), tmp_path / "f", compute_macs=False
    )
    with pytest.raises(ValueError, match="repo id"):
        push_folder_to_hub(folder, "not a repo")
    torch.save({}, folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"unexpected \['pytorch_model.bin'\].*only safetensors"):
        push_folder_to_hub(folder, "org/name")
    with pytest.raises(ValueError, match="unexpected"):
        check_hub_folder(folder)


# ---- timm's NF-ResNet-50 weights vs the paper-exact architecture -------------------------------------


def test_timm_nf_resnet50_maps_exactly_except_for_its_avgpool_shortcut():
    """Gamma, eps, gain shape, skipinit and final act map exactly; the avg-pool shortcut does not."""
    from dataclasses import replace

    from nf_plugins.hub.timm_compat import nf_resnet_from_timm
    from nf_plugins.models import NormFreeNet
    from nf_plugins.models.nf_resnet import model_cfgs

    reference = _randomize(nfnet.nf_resnet50(pretrained=False))  # timm's code, no plugin involved
    mapped = nf_resnet_from_timm(reference.state_dict())
    pooled = NormFreeNet(replace(model_cfgs["nf_resnet50"], shortcut_pool=True)).eval()
    pooled.load_state_dict(mapped, strict=True)
    paper = timm.create_model("nf_resnet50").eval()
    paper.load_state_dict(mapped, strict=True)  # same keys and shapes...
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(pooled(x), expected, atol=1e-5, rtol=1e-4)
        gap = (paper(x) - expected).abs().max() / expected.abs().max()
    assert gap > 0.05, gap  # ...but the strided 1x1 shortcut computes something else

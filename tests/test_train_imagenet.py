"""nf-plugins train-imagenet: configs against the paper, EMA closed form, loss, exact resume, torchrun DDP.

Training runs use a tiny NormFreeNet (our builder, 4 blocks) registered by a module the test writes,
passed with ``--import``, on a 3-class ImageFolder of 40x40 PNGs generated here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import yaml
from PIL import Image

import nf_plugins
from nf_plugins.cli import call
from nf_plugins.hub import load_training_checkpoint, model_from_training_checkpoint
from nf_plugins.train.ema import PaperEma
from nf_plugins.train.recipe import load_config
from nf_plugins.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "train_imagenet.py"

TINY_MODULE = '''
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from nf_plugins.models.normfree import NfCfg, NormFreeNet

CFG = NfCfg(depths=(1, 1, 1, 1), channels=(16, 32, 64, 128), stem_chs=8)
default_cfgs = generate_default_cfgs({"nf_tiny_test": dict(
    input_size=(3, 32, 32), mean=(0.5,) * 3, std=(0.5,) * 3, num_classes=3, interpolation="bilinear",
    crop_pct=1.0, first_conv="stem.conv", classifier="head.fc")})


@register_model
def nf_tiny_test(pretrained=False, **kwargs):
    """A 4-block NF-ResNet for tests of the training tool."""
    return build_model_with_cfg(NormFreeNet, "nf_tiny_test", pretrained, model_cfg=CFG, **kwargs)
'''


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(data dir, config path, env) shared by the runs of this module."""
    root = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    colors = [(220, 40, 40), (40, 200, 40), (40, 40, 220)]
    for split, n in (("train", 8), ("val", 4)):
        for c, color in enumerate(colors):
            folder = root / "data" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                img = np.clip(np.array(color) + rng.normal(0, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i}.png")
    (root / "tiny_models.py").write_text(TINY_MODULE)
    config = root / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            dict(
                model="nf_tiny_test",
                num_classes=3,
                epochs=3,
                warmup_epochs=1,
                batch_size=8,
                lr=0.1,
                weight_decay=5e-5,
                drop_rate=0.0,
                drop_path_rate=0.0,
                train_size=32,
                test_size=32,
                ema_decay=0.99999,
                workers=0,
            )
        )
    )
    env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{ROOT}", OMP_NUM_THREADS="1")
    sys.path.insert(0, str(root))
    yield root, config, env
    sys.path.remove(str(root))


def _train(setup, out: str, *extra: str) -> Path:
    root, config, _ = setup
    args = [str(config), "--data-dir", str(root / "data"), "--output", str(root / out), "--device", "cpu"]
    call("train-imagenet", [*args, "--import", "tiny_models", *extra])
    return root / out


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


# ---- recipe configs ------------------------------------------------------------------------------

# Appendix D: train px, test px, dropout, weight decay per NF-RegNet variant.
PAPER_APPENDIX_D = {
    "nf_regnet_b0": (192, 224, 0.2, 2e-5),
    "nf_regnet_b1": (240, 256, 0.2, 2e-5),
    "nf_regnet_b2": (240, 272, 0.3, 3e-5),
    "nf_regnet_b3": (288, 320, 0.3, 4e-5),
    "nf_regnet_b4": (320, 384, 0.4, 4e-5),
    "nf_regnet_b5": (384, 456, 0.4, 5e-5),
}


@pytest.mark.parametrize("name", nf_plugins.PAPER_MODELS)
def test_every_model_has_the_papers_recipe(name):
    cfg = load_config(ROOT / "configs" / "imagenet" / f"{name}.yaml", [])
    assert cfg["model"] == name and timm.is_model(name)
    assert (cfg["batch_size"], cfg["lr"], cfg["warmup_epochs"], cfg["momentum"]) == (1024, 0.4, 5, 0.9)
    assert cfg["nesterov"] is True and cfg["label_smoothing"] == 0.1
    if name in PAPER_APPENDIX_D:
        train_px, test_px, drop, wd = PAPER_APPENDIX_D[name]
        assert (cfg["train_size"], cfg["test_size"], cfg["drop_rate"], cfg["weight_decay"]) == (
            train_px,
            test_px,
            drop,
            wd,
        )
        assert cfg["epochs"] == 360 and cfg["ema_decay"] == 0.99999 and cfg["drop_path_rate"] == 0.1
        assert cfg["mixup_alpha"] > 0 and cfg["cutmix_alpha"] > 0
        pcfg = timm.create_model(name).pretrained_cfg  # the model's own cfg agrees on resolutions
        assert (pcfg["input_size"][-1], pcfg["test_input_size"][-1]) == (train_px, test_px)
    else:  # NF-ResNets, section 5.1: 90 epochs, wd 5e-5, regularized with dropout 0.25 + stochastic depth 0.1
        assert (cfg["epochs"], cfg["weight_decay"], cfg["drop_rate"], cfg["drop_path_rate"]) == (
            90,
            5e-5,
            0.25,
            0.1,
        )


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: nf_regnet_b0\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="unknown config key 'learning_rate'"):
        load_config(bad, [])
    with pytest.raises(ValueError, match="key=value"):
        load_config(ROOT / "configs/imagenet/nf_regnet_b0.yaml", ["epochs"])
    with pytest.raises(FileNotFoundError, match="configs/imagenet"):
        load_config(tmp_path / "nope.yaml", [])


def test_config_inherits_its_base_and_takes_unset_sizes_and_dropout_from_the_model(tmp_path):
    """A config's ``_base_`` sits under it, keys left out come from RECIPE or the model's pretrained_cfg and
    default dropout; the numbers below are appendix D's for B3 and values typed here, not read from code."""
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "family.yaml").write_text("epochs: 7\nlr: 0.3\nweight_decay: 1.0e-4\n")
    (tmp_path / "child.yaml").write_text("_base_: base/family.yaml\nmodel: nf_regnet_b3\nlr: 0.2\n")
    cfg = load_config(tmp_path / "child.yaml", ["weight_decay=3e-5"])
    assert (cfg["epochs"], cfg["lr"], cfg["weight_decay"]) == (7, 0.2, 3e-5)  # base < child < --set
    assert (cfg["train_size"], cfg["test_size"], cfg["drop_rate"]) == (288, 320, 0.3)  # appendix D, B3
    assert (cfg["batch_size"], cfg["label_smoothing"], cfg["drop_path_rate"]) == (1024, 0.1, 0.1)  # paper
    pinned = load_config(tmp_path / "child.yaml", ["train_size=128", "drop_rate=0"])
    assert (pinned["train_size"], pinned["test_size"], pinned["drop_rate"]) == (128, 320, 0.0)
    shipped = load_config("nf_plugins::imagenet/nf_regnet_b0.yaml", [])
    assert shipped == load_config(ROOT / "configs/imagenet/nf_regnet_b0.yaml", [])


@pytest.mark.parametrize(
    "base, message",
    [
        ("missing.yaml", r"config .*missing.yaml \(the _base_ of .*child.yaml\) does not exist"),
        ("bad.yaml", r"unknown config key 'wieght_decay' in .*bad.yaml; did you mean 'weight_decay'"),
        ("child.yaml", r"_base_ chain loops back to itself"),
        ("[a.yaml, b.yaml]", r"_base_ must be one file name"),
    ],
)
def test_a_bad_base_is_named(tmp_path, base, message):
    (tmp_path / "bad.yaml").write_text("wieght_decay: 0.1\n")
    (tmp_path / "child.yaml").write_text(f"_base_: {base}\nmodel: nf_regnet_b0\n")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_config(tmp_path / "child.yaml", [])


# ---- EMA, optimizer, schedule ------------------------------------------------------------------------


def test_ema_update_matches_closed_form():
    model = torch.nn.Linear(4, 3)
    ema = PaperEma(model, decay=0.99999)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    ema.update(model, step=5)  # paper: decay_i = min(0.99999, (1 + i) / (10 + i)) = 6 / 15 at i = 5
    d = 6 / 15
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ema.module.state_dict()[k], d * before[k] + (1 - d) * v, rtol=0, atol=1e-6)
    assert ema.get_decay(10**7) == 0.99999 and ema.get_decay(0) == pytest.approx(0.1)


def test_optimizer_groups_and_schedule(setup):
    root, config, _ = setup
    cfg = load_config(config, ["model=nf_regnet_b0", "num_classes=3"])
    trainer = Trainer(cfg, root / "data", root / "unused", "cpu")
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    groups = {g["weight_decay"]: {names[id(p)] for p in g["params"]} for g in trainer.optimizer.param_groups}
    assert set(groups) == {0.0, 5e-5}
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in trainer.optimizer.param_groups)
    no_decay = groups[0.0]
    assert (
        "stages.0.0.skipinit_gain" in no_decay and "stem.conv.gain" in no_decay and "head.fc.bias" in no_decay
    )
    assert all(n.endswith(".weight") and "gain" not in n for n in groups[5e-5])
    assert no_decay == trainer.model.no_weight_decay()
    # warm-up from 0 to lr over warmup_epochs, then cosine to 0 (stepped per update)
    steps = trainer.steps_per_epoch
    lrs = []
    for t in range(3 * steps + 1):
        trainer.scheduler.step_update(t)
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
    assert steps == 3 and lrs[0] == 0.0 and lrs[1] == pytest.approx(0.1 / 3)
    assert lrs[steps] == pytest.approx(0.1)
    assert lrs[2 * steps] == pytest.approx(0.05)  # half-way through the cosine
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


# ---- training runs ---------------------------------------------------------------------------------


def test_single_process_trains_resumes_exactly_and_exports(setup, tmp_path, capsys):
    plain = _train(setup, "plain")
    # the steps as progress (not a terminal: one line per epoch here), the results on stdout
    printed = capsys.readouterr()
    assert [json.loads(line)["epoch"] for line in printed.out.splitlines()] == [1, 2, 3]  # epoch records only
    progress_lines = re.findall(r"epoch (\d)/3: 3/3 step \(100%\), \d+ s, ETA 0 s, loss=", printed.err)
    assert progress_lines == ["1", "2", "3"]
    records = _log(plain)
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 9 and losses[0] == pytest.approx(np.log(3), abs=1e-4)  # zero-init classifier
    epoch_means = [r["train_loss"] for r in records if "train_loss" in r]
    assert epoch_means[-1] < epoch_means[0] - 0.05, epoch_means

    # with CutMix/MixUp (numpy RNG) and stochastic depth (torch RNG): resume must restore every RNG
    mix = ["--set", "mixup_alpha=0.2", "cutmix_alpha=1.0", "drop_path_rate=0.1"]
    full = _train(setup, "full", *mix)
    half = _train(setup, "half", *mix, "--stop-after-epochs", "1")
    assert load_training_checkpoint(half / "last.pth")["epoch"] == 1
    with pytest.raises(FileExistsError, match="--resume"):
        _train(setup, "half", *mix)
    _train(setup, "half", *mix, "--resume", str(half / "last.pth"))
    a, b = load_training_checkpoint(full / "last.pth"), load_training_checkpoint(half / "last.pth")
    assert a["step"] == b["step"] == 9
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resume"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])

    # export-hub: the EMA weights of the checkpoint to the Hub layout, loaded back with equal logits
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"top1": 66.7}))
    out = tmp_path / "hub"
    with pytest.raises(ValueError, match="repo id"):
        call("export-hub", [str(full / "last.pth"), "--out", str(out), "--push", "not a repo"])
    assert not out.exists()
    call(
        "export-hub", [str(full / "last.pth"), "--out", str(out), "--tag", "tiny", "--results", str(results)]
    )
    card = (out / "README.md").read_text()
    assert "| lr | 0.1 |" in card and "| steps | 9 |" in card and "| weights | ema |" in card
    assert "| top1 | 66.7 |" in card
    model, _ = model_from_training_checkpoint(full / "last.pth")
    assert all(torch.equal(v, a["ema"][k]) for k, v in model.state_dict().items())
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_torchrun_two_processes_gloo(setup):
    root, config, env = setup
    out = root / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += [str(TOOL), str(config), "--data-dir", str(root / "data"), "--output", str(out), "--device", "cpu"]
    cmd += ["--import", "tiny_models"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    epochs = [r for r in _log(out) if "train_loss" in r]
    assert len(epochs) == 3 and epochs[-1]["train_loss"] < epochs[0]["train_loss"] - 0.05, epochs
    state = load_training_checkpoint(out / "last.pth")
    # 24 images, global batch 8 = 4 per process: 3 steps per epoch, every rank's RNG state saved
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["step"] == 9
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])

"""Training faults (issue 9): a NaN loss stops training and keeps the last good checkpoint; a process
killed while saving never leaves a corrupt ``last.pth``.

Exact resume after a stop is proved in tests/test_train_imagenet.py
(test_single_process_trains_resumes_exactly_and_exports).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nf_plugins.cli import call
from nf_plugins.hub import load_training_checkpoint
from nf_plugins.train.recipe import load_config

ROOT = Path(__file__).resolve().parents[1]

# A 4-block NF-ResNet whose logits turn NaN while NF_TEST_NAN=1 (a diverging run, on demand).
NAN_MODULE = """
import os
import time
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from nf_plugins.models.normfree import NfCfg, NormFreeNet

CFG = NfCfg(depths=(1, 1, 1, 1), channels=(8, 16, 32, 64), stem_chs=8)
default_cfgs = generate_default_cfgs({"nf_nan_test": dict(
    input_size=(3, 32, 32), mean=(0.5,) * 3, std=(0.5,) * 3, num_classes=3, interpolation="bilinear",
    crop_pct=1.0, first_conv="stem.conv", classifier="head.fc")})


class NanNet(NormFreeNet):
    def forward(self, x):
        time.sleep(float(os.environ.get("NF_TEST_SLEEP", "0")))  # slow, not different
        out = super().forward(x)
        return out * float("nan") if os.environ.get("NF_TEST_NAN") == "1" else out


@register_model
def nf_nan_test(pretrained=False, **kwargs):
    return build_model_with_cfg(NanNet, "nf_nan_test", pretrained, model_cfg=CFG, **kwargs)
"""


def _tiny_run(tmp_path: Path) -> list[str]:
    """Train-tool arguments for a 3-epoch, 3-steps-per-epoch run on random 32 px images."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(3):
            folder = tmp_path / "data" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(4 if split == "train" else 1):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "nan_models.py").write_text(NAN_MODULE)
    config = tmp_path / "nan.yaml"
    cfg = dict(model="nf_nan_test", num_classes=3, epochs=3, warmup_epochs=0, batch_size=4, train_size=32)
    config.write_text(yaml.safe_dump(dict(cfg, test_size=32, ema_decay=0.0, workers=0, drop_path_rate=0.0)))
    return [str(config), "--data-dir", str(tmp_path / "data"), "--device", "cpu", "--import", "nan_models"]


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    args = [*_tiny_run(tmp_path), "--output", str(out)]
    call("train-imagenet", [*args, "--stop-after-epochs", "1"])  # 3 good steps, checkpoint at epoch 1
    good = (out / "last.pth").read_bytes()
    monkeypatch.setenv("NF_TEST_NAN", "1")
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 3; lower lr or check the data"):
        call("train-imagenet", [*args, "--resume", str(out / "last.pth")])
    assert (out / "last.pth").read_bytes() == good
    state = load_training_checkpoint(out / "last.pth")
    assert state["epoch"] == 1 and state["step"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values())


SAVER = """
import sys, torch
from nf_plugins.hub.checkpoint import save_training_checkpoint
i = 0
while True:
    i += 1
    w = torch.full((4_000_000,), float(i))  # 16 MB: most of the loop's time is spent saving
    save_training_checkpoint(dict(model_name="x", model_kwargs={}, model={"w": w}, step=i), sys.argv[1])
    print(i, flush=True)
"""


@pytest.mark.parametrize("delay_s", [0.1, pytest.param(0.03, marks=pytest.mark.slow)])
def test_kill_during_save_never_corrupts_the_checkpoint(tmp_path, delay_s):
    path = tmp_path / "last.pth"
    proc = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    try:
        assert proc.stdout.readline().strip() == "1", "the saver died before its first checkpoint"
        time.sleep(delay_s)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    state = load_training_checkpoint(path)  # complete, readable, and self-consistent
    step = state["step"]
    assert step >= 1
    assert torch.equal(state["model"]["w"], torch.full((4_000_000,), float(step)))
    # at most one temp file (the save that was killed) is left beside it; never the checkpoint itself
    assert len([p for p in tmp_path.iterdir() if p.name != "last.pth"]) <= 1


# exact resume after a clean stop runs by default in tests/test_train_imagenet.py; this adds a real SIGKILL
@pytest.mark.slow
def test_resume_after_a_kill_reaches_the_uninterrupted_weights(tmp_path, monkeypatch):
    """SIGKILL a training process after its first checkpoint, resume it: same final weights, bit for bit."""
    monkeypatch.syspath_prepend(str(tmp_path))
    args = _tiny_run(tmp_path)
    killed = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}", NF_TEST_SLEEP="0.3")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "train_imagenet.py"), *args, "--output", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not (killed / "last.pth").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    interrupted_at = load_training_checkpoint(killed / "last.pth")["epoch"]
    assert 1 <= interrupted_at < 3, "the run was not killed mid-training"
    call("train-imagenet", [*args, "--output", str(killed), "--resume", str(killed / "last.pth")])
    full = tmp_path / "full"
    call("train-imagenet", [*args, "--output", str(full)])
    a, b = load_training_checkpoint(full / "last.pth"), load_training_checkpoint(killed / "last.pth")
    assert a["step"] == b["step"] == 9
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), f"{name} differs after kill + resume"


# ---- issue 15: labels, splits, corrupt images, resume log, config values, output paths -------------


def _args(tmp_path: Path, *extra: str) -> list[str]:
    """The tiny run of ``_tiny_run`` writing to ``tmp_path/run``, with extra flags."""
    return [*_tiny_run(tmp_path), "--output", str(tmp_path / "run"), *extra]


def _steps(run: Path) -> list[int]:
    """The steps of the step records in ``run/log.jsonl`` (lines that do not parse are left out)."""
    steps = []
    for line in (run / "log.jsonl").read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            steps += [record["step"]] if "loss" in record else []
    return steps


def test_val_missing_a_class_is_an_error_naming_it(tmp_path, monkeypatch):
    """timm maps each split's own folders: val/ without class1 would score class2 images as label 1."""
    monkeypatch.syspath_prepend(str(tmp_path))
    args = _args(tmp_path, "--stop-after-epochs", "1")
    shutil.rmtree(tmp_path / "data/val/class1")
    with pytest.raises(ValueError, match=r"missing from val/: \['class1'\], missing from train/: none"):
        call("train-imagenet", args)
    assert not (tmp_path / "run").exists()  # refused before anything was built or written


def test_missing_val_folder_is_an_error_unless_validation_is_off(tmp_path, monkeypatch):
    """timm falls back to the data root (the training images) when val/ is missing."""
    monkeypatch.syspath_prepend(str(tmp_path))
    args = _args(tmp_path, "--stop-after-epochs", "1")
    shutil.rmtree(tmp_path / "data/val")
    with pytest.raises(
        FileNotFoundError, match=r"no validation folder: looked for validation, val, .*--no-val"
    ):
        call("train-imagenet", args)
    call("train-imagenet", [*args, "--no-val"])
    epoch = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()][-1]
    assert epoch["epoch"] == 1 and "top1" not in epoch and "ema_top1" not in epoch


@pytest.mark.parametrize(
    "case, error, message",
    [
        ("extra_class", ValueError, r"has 4 class folders but num_classes=3: labels 3..3 have no logit"),
        (
            "empty_class",
            ValueError,
            r"train: 1 class folders hold no images: class1; an empty class would",
        ),
        ("loose_image", ValueError, r"train holds 1 images outside any class folder \(e.g. stray.png\)"),
        ("same_folder", ValueError, r"the training and validation folders are the same"),
    ],
)
def test_class_folders_that_would_shift_labels_are_refused(tmp_path, monkeypatch, case, error, message):
    monkeypatch.syspath_prepend(str(tmp_path))
    args = _args(tmp_path, "--stop-after-epochs", "1")
    data = tmp_path / "data"
    if case == "extra_class":
        for split in ("train", "val"):
            shutil.copytree(data / split / "class0", data / split / "class3")
    elif case == "empty_class":
        for f in (data / "train/class1").iterdir():
            f.unlink()
    elif case == "loose_image":
        shutil.copy(data / "train/class0/0.png", data / "train/stray.png")
    else:
        args += ["--set", "val_split=train"]
    with pytest.raises(error, match=message):
        call("train-imagenet", args)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("lr=abc", r"lr='abc' is not a number"),
        ("epochs=-1", r"epochs=-1 is outside \[1, inf\)"),
        ("epochs=2.5", r"epochs=2.5 is not an integer"),
        ("batch_size=0", r"batch_size=0 is outside \[1, inf\)"),
        ("drop_rate=1.0", r"drop_rate=1.0 is outside \[0, 1\)"),
        ("lr=.nan", r"lr=nan is not a number"),
        ("nesterov=maybe", r"nesterov='maybe' must be true or false"),
    ],
)
def test_bad_config_values_fail_before_any_work(tmp_path, override, message):
    config = ROOT / "configs/imagenet/nf_regnet_b0.yaml"
    with pytest.raises(ValueError, match=message):
        load_config(config, [override])
    assert load_config(config, ["weight_decay=5e-5"])["weight_decay"] == 5e-5  # YAML: a str


def test_corrupt_training_images_are_named_and_counted_and_a_corrupt_val_image_stops(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.syspath_prepend(str(tmp_path))
    args = _args(tmp_path, "--stop-after-epochs", "1")
    bad = [tmp_path / "data/train/class1/2.png", tmp_path / "data/train/class2/0.png"]
    for path in bad:
        path.write_bytes(path.read_bytes()[:60])  # truncated PNG
    with caplog.at_level(logging.WARNING):
        call("train-imagenet", args)
    named = {str(r.args[0]) for r in caplog.records if "skipped undecodable" in r.getMessage()}
    assert named == {str(p) for p in bad}
    epoch = json.loads((tmp_path / "run/log.jsonl").read_text().splitlines()[-1])
    assert epoch["skipped_images"] == 2
    victim = tmp_path / "data/val/class0/0.png"
    victim.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=rf"{victim}: not a decodable image .*validation scores every image"):
        call("train-imagenet", [*args, "--output", str(tmp_path / "run2")])  # the last --output wins


def test_skipped_images_are_counted_across_dataloader_workers(tmp_path):
    """The count is shared memory: images skipped inside worker processes reach the epoch's record."""
    from nf_plugins.imagenet_data import build_datasets

    _tiny_run(tmp_path)
    for name in ("0.png", "3.png"):
        (tmp_path / "data/train/class0" / name).write_bytes(b"garbage")
    train, _ = build_datasets(tmp_path / "data", "train", None, 3)
    train.transform = lambda img: torch.zeros(1)
    loader = torch.utils.data.DataLoader(train, batch_size=3, num_workers=2)
    assert sum(len(targets) for _, targets in loader) == 12
    assert train.take_skipped() == 2 and train.take_skipped() == 0


def test_resume_never_logs_a_step_twice(tmp_path, monkeypatch):
    """A run killed after logging epoch 2 but before its checkpoint resumes from epoch 1's last.pth."""
    monkeypatch.syspath_prepend(str(tmp_path))
    args = _args(tmp_path)
    run = tmp_path / "run"
    call("train-imagenet", [*args, "--stop-after-epochs", "1"])
    epoch1 = (run / "last.pth").read_bytes()
    call("train-imagenet", [*args, "--stop-after-epochs", "2", "--resume", str(run / "last.pth")])
    (run / "last.pth").write_bytes(epoch1)  # the kill: epoch 2 is logged, its checkpoint never landed
    with (run / "log.jsonl").open("a") as f:
        f.write('{"epoch": 2, "st')  # and the last line was cut short
    call("train-imagenet", [*args, "--resume", str(run / "last.pth")])
    assert _steps(run) == list(range(1, 10))
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]  # all parse
    assert [r["epoch"] for r in records if "train_loss" in r] == [1, 2, 3]


@pytest.mark.parametrize("case", ["output_under_a_file", "log_is_a_folder"])
def test_unwritable_output_fails_at_once_leaving_nothing(tmp_path, monkeypatch, case):
    monkeypatch.syspath_prepend(str(tmp_path))
    base = _tiny_run(tmp_path)
    if case == "output_under_a_file":
        (tmp_path / "blocker").write_text("a file")
        out = tmp_path / "blocker" / "run"
        error = NotADirectoryError
    else:
        out = tmp_path / "run"
        (out / "log.jsonl").mkdir(parents=True)
        error = IsADirectoryError
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    start = time.perf_counter()
    with pytest.raises(error, match=r"--output .* choose another path|--output .* is a folder"):
        call("train-imagenet", [*base, "--output", str(out)])
    assert time.perf_counter() - start < 2.0
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before

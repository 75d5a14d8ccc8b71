"""Training faults (issue 9): a NaN loss stops training and keeps the last good checkpoint; a process
killed while saving never leaves a corrupt ``last.pth``.

Exact resume after a stop is proved in tests/test_train_imagenet.py
(test_single_process_trains_resumes_exactly_and_exports).
"""

from __future__ import annotations

import importlib.util
import os
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

from nf_plugins.hub import load_training_checkpoint

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("train_imagenet_faults", ROOT / "tools" / "train_imagenet.py")
train_imagenet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_imagenet)

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
    train_imagenet.main([*args, "--stop-after-epochs", "1"])  # 3 good steps, checkpoint at epoch 1
    good = (out / "last.pth").read_bytes()
    monkeypatch.setenv("NF_TEST_NAN", "1")
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 3; lower lr or check the data"):
        train_imagenet.main([*args, "--resume", str(out / "last.pth")])
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
    train_imagenet.main([*args, "--output", str(killed), "--resume", str(killed / "last.pth")])
    full = tmp_path / "full"
    train_imagenet.main([*args, "--output", str(full)])
    a, b = load_training_checkpoint(full / "last.pth"), load_training_checkpoint(killed / "last.pth")
    assert a["step"] == b["step"] == 9
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), f"{name} differs after kill + resume"

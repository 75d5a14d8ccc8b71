"""Two-process CPU training (torchrun, gloo) follows the same loss curve as one process with the same
global batch, and ends at the same weights."""

import json
import os
import os.path as osp
import runpy
import subprocess
import sys

import pytest
import torch

pytest.importorskip("mmseg")
from nf_plugins.data.synthetic_voc import make_synthetic_voc  # noqa: E402
from nf_plugins.data.voc import prepare_vocaug  # noqa: E402
from nf_plugins.downstream.engine.cpu_config import small_run_config  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, "configs/segmentation/fcn_nf-regnet-b0-d16_4xb4-30k_voc12aug-513x513.py")
ITERS = 3


def _config(voc: str, work_dir: str, batch_size: int, path: str) -> str:
    """The shipped config at a global batch of 4, without random augmentation or shuffling, so that
    rank r of 2 sees samples r, r+2 of the batch one process sees whole."""
    cfg = small_run_config(CONFIG, voc, work_dir, max_iters=ITERS, batch_size=batch_size, lr=0.05)
    pipe = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadAnnotations"),
        dict(type="ValidateSegSample", num_classes=21),
        dict(type="Resize", scale=(64, 64), keep_ratio=False),
        dict(type="PackSegInputs"),
    ]
    for ds in cfg.train_dataloader.dataset.datasets:
        ds.pipeline = pipe
    cfg.train_dataloader.sampler = dict(type="InfiniteSampler", shuffle=False)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.custom_hooks = [dict(type="GlobalLossCurveHook", out_file="loss_curve.json")]
    cfg.dump(path)
    return path


def test_torchrun_two_processes_match_one_process(tmp_path, monkeypatch):
    make_synthetic_voc(str(tmp_path), n_train=8, n_val=2, n_sbd_extra=4, size=(64, 56))
    voc = str(tmp_path / "VOCdevkit/VOC2012")
    prepare_vocaug(voc, str(tmp_path / "benchmark_RELEASE"), expect_trainaug=12, expect_val=2)
    one = _config(voc, str(tmp_path / "one"), 4, str(tmp_path / "one.py"))
    two = _config(voc, str(tmp_path / "two"), 2, str(tmp_path / "two.py"))
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]  # free port
    proc = subprocess.Popen(
        [*cmd, osp.join(ROOT, "tools/train.py"), two, "--launcher", "pytorch"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["train.py", one])
    runpy.run_path(osp.join(ROOT, "tools/train.py"), run_name="__main__")  # the one-process run, meanwhile
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert "Distributed training: True" in out and "GPU number: 2" in out  # mmengine: 2 processes

    curve1 = json.loads((tmp_path / "one/loss_curve.json").read_text())["loss"]
    curve2 = json.loads((tmp_path / "two/loss_curve.json").read_text())["loss"]
    assert len(curve1) == len(curve2) == ITERS and curve1[0] > curve1[-1]  # it trains
    torch.testing.assert_close(torch.tensor(curve2), torch.tensor(curve1), rtol=1e-4, atol=1e-5)
    w1 = torch.load(tmp_path / f"one/iter_{ITERS}.pth", weights_only=False)["state_dict"]
    w2 = torch.load(tmp_path / f"two/iter_{ITERS}.pth", weights_only=False)["state_dict"]
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5, msg=k)

"""Peak memory of one training step, each measured in a fresh process (peak RSS never goes down, so
several models in one process would hide each other)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import torch


def _train_step_peak(spec: str, batch: int, px: int, device: str) -> dict[str, float]:
    from .models import build

    dev = torch.device(device)
    model = build(spec).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, px, px, device=dev)
    y = torch.randint(0, 1000, (batch,), device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_mib": peak / 2**20, "step_mib": (peak - base) / 2**20}


def train_step_peak(spec: str, batch: int, px: int, device: str, threads: int) -> dict[str, float]:
    """Peak memory (RSS on CPU, max allocated on GPU) of a training step, from a child process."""
    code = (
        "import json, sys, torch; import nf_plugins; "
        f"torch.set_num_threads({threads}); "
        "from nf_plugins.bench.memory import _train_step_peak; "
        f"print(json.dumps(_train_step_peak({spec!r}, {batch}, {px}, {device!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory measurement of {spec} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])

"""Peak memory of a training step, each model measured in a fresh process.

On CPU, peak RSS is a poor gauge (glibc keeps freed pages, so it drifts by tens of MB run to run);
we sample the heap actually in use (glibc ``mallinfo2``: small-block arena + mmapped blocks) from a
background thread every 0.2 ms during two training steps and report its maximum, next to the RSS.
On GPU: ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import ctypes
import json
import resource
import subprocess
import sys
import threading
import time

import torch


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost",
    )]  # fmt: skip


def _heap_in_use_fn():
    try:
        libc = ctypes.CDLL("libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2

    def in_use() -> int:
        info = fn()
        return info.uordblks + info.hblkhd

    return in_use


class HeapPeakSampler:
    """Max of the in-use heap, sampled from a thread while the ``with`` block runs."""

    def __init__(self, interval_s: float = 2e-4) -> None:
        self.read = _heap_in_use_fn()
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.read())
            time.sleep(self.interval_s)

    def __enter__(self) -> HeapPeakSampler:
        if self.read is None:
            raise RuntimeError("heap sampling needs glibc's mallinfo2 (Linux, glibc >= 2.33)")
        self.peak = self.read()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())


def _train_step_peak(spec: str, batch: int, px: int, device: str) -> dict[str, float]:
    from .models import build

    dev = torch.device(device)
    model = build(spec).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, px, px, device=dev)
    y = torch.randint(0, 1000, (batch,), device=dev)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        step()
        step()
        return {"peak_mib": torch.cuda.max_memory_allocated(dev) / 2**20}
    step()  # optimizer state allocated: the second measured step is the steady state
    with HeapPeakSampler() as sampler:
        step()
    return {"peak_mib": sampler.peak / 2**20, "peak_rss_mib": _vm_hwm_bytes() / 2**20}


def _vm_hwm_bytes() -> int:
    """This process's peak RSS (VmHWM). Not ``ru_maxrss``: Linux carries that across exec, so a child
    spawned by a big parent would report the parent's RSS."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def train_step_peak(spec: str, batch: int, px: int, device: str, threads: int) -> dict[str, float]:
    """Peak memory of a training step (heap in use on CPU, max allocated on GPU), from a child process."""
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

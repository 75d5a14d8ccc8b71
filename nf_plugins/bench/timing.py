"""Interleaved timing: every candidate is timed in each repetition, in rotating order, and the median
per-call time is reported, so slow drifts of the machine (thermal, other load) hit all sides alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    device: torch.device,
    reps: int = 3,
    iters: int = 2,
    warmup: int = 1,
) -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin over ``reps`` repetitions."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    samples: dict[str, list[float]] = {k: [] for k in fns}
    labels = list(fns)
    for rep in range(reps):
        order = labels[rep % len(labels) :] + labels[: rep % len(labels)]
        for label in order:
            start = time.perf_counter()
            for _ in range(iters):
                fns[label]()
            synchronize(device)
            samples[label].append((time.perf_counter() - start) / iters)
    return {k: statistics.median(v) for k, v in samples.items()}


def _best_seconds(fn: Callable[[], object], device: torch.device, reps: int) -> float:
    fn()
    synchronize(device)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def gemm_peak_gflops(device: torch.device, reps: int = 5) -> float:
    """This machine's measured fp32 GEMM rate: the ceiling a training step's convolutions can approach.

    The best of a 2048^3 ``torch.mm`` (BLAS) and a 1x1 convolution of the same GEMM shape (the conv
    library: oneDNN on CPU, cuDNN on GPU). Both count: on AMD CPUs MKL's sgemm runs about half the rate
    oneDNN's convolutions reach, so the matmul alone is not the machine's ceiling.
    """
    n = 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    x = torch.randn(n // 256, n, 16, 16, device=device)  # 2048 pixels x 2048 channels
    w = torch.randn(n, n, 1, 1, device=device)
    flops = 2 * n**3
    with torch.no_grad():
        mm = _best_seconds(lambda: a @ b, device, reps)
        conv = _best_seconds(lambda: torch.nn.functional.conv2d(x, w), device, reps)
    return flops / min(mm, conv) / 1e9


def profile_top_ops(
    fn: Callable[[], object], device: torch.device, iters: int = 3, top: int = 10
) -> list[dict]:
    """Where ``fn``'s time goes: torch.profiler's ``top`` ops by self time (device time on GPU), per call."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    fn()  # warm-up outside the profile
    synchronize(device)
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        for _ in range(iters):
            fn()
        synchronize(device)
    attr = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, attr) > 0]
    total = sum(getattr(e, attr) for e in events)
    ranked = sorted(events, key=lambda e: getattr(e, attr), reverse=True)[:top]
    return [
        {
            "op": e.key,
            "self_ms": getattr(e, attr) / 1e3 / iters,
            "share": getattr(e, attr) / total,
            "calls": e.count // iters,
        }  # fmt: skip
        for e in ranked
    ]

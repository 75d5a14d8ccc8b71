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


def matmul_peak_gflops(device: torch.device, n: int = 2048, reps: int = 5) -> float:
    """This machine's measured fp32 matmul rate: the physical ceiling a training step can approach."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    synchronize(device)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9

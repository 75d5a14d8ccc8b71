"""What makes ``--resume`` exact: every RNG state as plain types, seeding, a log trimmed to the checkpoint.

A checkpoint stores each process's :func:`rng_state`; resuming restores it with :func:`set_rng_state`, so
CutMix/MixUp (numpy), stochastic depth (torch) and the data order continue as an uninterrupted run would.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write_text


def rng_state() -> dict[str, Any]:
    """This process's RNG states as plain types (readable with ``torch.load(weights_only=True)``)."""
    np_state = np.random.get_state()
    state = dict(
        python=random.getstate(),
        numpy=[np_state[0], np_state[1].tolist(), *np_state[2:]],
        torch=torch.get_rng_state(),
    )
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states :func:`rng_state` returned (CUDA's only where this machine has CUDA)."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trim_log(path: Path, step: int, epoch: int) -> int:
    """Drop the records a resumed run will write again (after ``step``/``epoch`` of its checkpoint) and a
    line cut short by a kill; returns how many were dropped. Without this a resume logs steps twice."""
    if not path.exists():
        return 0
    text = path.read_text()
    kept, dropped = [], 0
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        # step records carry the step; epoch records carry the step too (older logs: only the epoch)
        later = record["step"] > step if "step" in record else record.get("epoch", 0) > epoch
        if later:
            dropped += 1
        else:
            kept.append(line)
    if dropped or not text.endswith("\n"):  # a kill before the newline would glue the next record on
        atomic_write_text(path, "".join(f"{line}\n" for line in kept))
        print(f"{path}: dropped {dropped} records written after step {step} (the checkpoint resumed from)")
    return dropped


def seed_all(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (each process passes its own seed)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

"""mmengine checkpoints: written atomically, and read back with ``torch.load(weights_only=True)``.

mmengine 0.10.7 writes ``.pth`` files with a plain ``open(path, 'wb')`` (a kill mid-save leaves a
truncated ``latest`` checkpoint) and, under torch >= 2.6, cannot read its own training state with the
default ``weights_only=True`` (open-mmlab/mmengine#1655; upstream's fix turns ``weights_only`` off,
which lets any pickle run code). Here the writes go through a temp file + ``os.replace``, and the
reads stay ``weights_only=True`` with an allowlist of exactly the types mmengine/mmseg store.
"""

from __future__ import annotations

import os.path as osp
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from nf_plugins.atomic import atomic_write_bytes, atomic_write_text

ATOMIC_BACKEND = "atomic_local"


@register_backend(ATOMIC_BACKEND, force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose writes are atomic (temp file in the same folder + rename).

    Use it for checkpoints with ``default_hooks.checkpoint.backend_args=dict(backend='atomic_local')``
    (``tools/train.py`` sets it when a config names no backend).
    """

    def put(self, obj: bytes, filepath: str | Path) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: str | Path, encoding: str = "utf-8") -> None:
        atomic_write_text(filepath, obj, encoding)


def _numpy_globals() -> list[Any]:
    """The numpy reconstructors and dtype classes that pickled arrays and scalars refer to."""
    core = getattr(np, "_core", None) or np.core
    codes = ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1")
    dtype_classes = [type(np.dtype(t)) for t in codes]
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype, *dtype_classes]


def _history_buffer_method(obj: Any, name: str) -> Any:
    """The only ``getattr`` a checkpoint may call: a HistoryBuffer's statistics method.

    mmengine's HistoryBuffer keeps its statistics functions (``HistoryBuffer.min``, ``.max``, ``.mean``,
    ``.current``, ...) in a dict it pickles, and pickle stores them as ``getattr(HistoryBuffer, 'min')``.
    Allowing the builtin ``getattr`` would hand a malicious file attribute access on anything it can
    build; this stands in for it and allows exactly that one use.
    """
    allowed = {"min", "max", "mean", "current", *HistoryBuffer._statistics_methods}  # + registered ones
    if obj is not HistoryBuffer or name not in allowed or not callable(vars(HistoryBuffer).get(name)):
        what = obj.__name__ if isinstance(obj, type) else type(obj).__name__
        raise pickle.UnpicklingError(
            f"checkpoint calls getattr({what}, {name!r}); only HistoryBuffer's statistics methods may be "
            "looked up"
        )
    return getattr(obj, name)


def safe_checkpoint_globals() -> list[Any]:
    """What an mmengine/mmseg training checkpoint may contain beyond tensors and builtin containers."""
    return [HistoryBuffer, (_history_buffer_method, "builtins.getattr"), *_numpy_globals()]


def load_checkpoint_file(filename: str, map_location: Any = None) -> Any:
    """``torch.load(weights_only=True)`` of a local mmengine checkpoint, with mmengine's types allowed."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f"checkpoint {filename!r} does not exist")
    with torch.serialization.safe_globals(safe_checkpoint_globals()):
        try:
            return torch.load(filename, map_location=map_location, weights_only=True)
        except Exception as e:
            raise ValueError(
                f"checkpoint {filename!r} cannot be read with torch.load(weights_only=True): {e}\n"
                "It is truncated/corrupt, or holds objects other than tensors, numbers, numpy arrays and "
                "mmengine's HistoryBuffer. Loading it would have to run arbitrary pickled code: only if "
                "you made it yourself, load it with torch.load(..., weights_only=False) and re-save the "
                "state_dict"
            ) from e


def use_safe_checkpoint_loader() -> None:
    """Route mmengine's local checkpoint loading (``load_from``, ``--resume``) through
    :func:`load_checkpoint_file`."""
    CheckpointLoader.register_scheme(prefixes="", loader=load_checkpoint_file, force=True)

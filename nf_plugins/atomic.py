"""Atomic file output: every file this package writes (checkpoints, weights, plots, JSON, masks, ONNX)
appears complete or not at all, and a failure or kill mid-write leaves the previous file untouched.

One mechanism for all writers: a temp file in the target's folder (same file system, so the final
``os.replace`` is atomic), flushed to disk, given a normal file's mode, then renamed over the target.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, make_dirs: bool = True) -> Iterator[Path]:
    """Yield a temp path to write ``path``'s content to; on success it replaces ``path``.

    ``make_dirs=False`` makes a missing folder an error (for user-named outputs, where a typo in the
    folder should not silently create a new tree). On any exception the temp file is removed.
    """
    path = Path(path)
    if make_dirs:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise FileNotFoundError(f"output folder {str(path.parent)!r} does not exist; create it first")
    # keep the suffix: some writers (PIL, matplotlib, ONNX) choose the format from it
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; the result is a normal file
        yield tmp_path
        with open(tmp_path, "rb+") as f:  # the content is on disk before the name points at it
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))

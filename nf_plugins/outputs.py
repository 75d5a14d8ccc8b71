"""Output paths (and a CLI's numbers) checked before the expensive work: a tool that cannot write its
results fails at once, creating nothing, instead of after minutes of training or evaluation."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe(folder: Path, flag: str, path: Path) -> None:
    """Create and remove a temp file in ``folder`` (root passes ``os.access`` on read-only folders)."""
    if not folder.is_dir():
        raise NotADirectoryError(
            f"{flag} {str(path)!r} cannot be created: {str(folder)!r} is not a folder; choose another path"
        )
    try:
        fd, tmp = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
    except OSError as e:
        raise PermissionError(
            f"{flag} {str(path)!r} is not writable ({type(e).__name__}: {e.strerror}); choose another path"
        ) from e
    os.close(fd)
    os.unlink(tmp)


def check_output_dir(path: str | os.PathLike, flag: str) -> None:
    """Raise unless ``path`` is, or can be created as, a writable folder; creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{flag} {str(path)!r} is a file, not a folder; choose another path")
    _probe(_nearest_existing(path), flag, path)


def check_output_file(path: str | os.PathLike, flag: str) -> None:
    """Raise unless a file can be written at ``path`` (its folder exists or can be made); creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{flag} {str(path)!r} is a folder; give a file path")
    _probe(_nearest_existing(path.parent), flag, path)


def refuse_bad_args(
    parser: argparse.ArgumentParser,
    *,
    at_least: Iterable[tuple[str, float, float]] = (),
    positive: Iterable[tuple[str, float]] = (),
    output_dirs: Iterable[tuple[str, str | os.PathLike | None]] = (),
) -> None:
    """``parser.error`` (exit 2) on the first bad value: ``(flag, value, low)`` needs value >= low,
    ``(flag, value)`` a number > 0 (NaN fails), ``(flag, path)`` a creatable, writable folder (None: unset).
    """
    for flag, value, low in at_least:
        if value < low:
            parser.error(f"{flag} must be at least {low}, got {value}")
    for flag, value in positive:
        if not value > 0:
            parser.error(f"{flag} must be a positive number, got {value}")
    for flag, path in output_dirs:
        if path:
            try:
                check_output_dir(path, flag)
            except OSError as e:
                parser.error(str(e))

"""Atomic file output: every file this package writes (checkpoints, weights, plots, JSON, masks, ONNX)
appears complete or not at all, and a failure or kill mid-write leaves the previous file untouched.

One mechanism for all writers: a temp file in the target's folder (same file system, so the final
``os.replace`` is atomic), flushed to disk, given a normal file's mode, then renamed over the target.
Folders (``atomic_output_dir``) are filled in a temp folder and renamed into place the same way; the
result has the modes ``open()``/``mkdir()`` give under the umask (0644/0755 under umask 022), not
``mkstemp``/``mkdtemp``'s private 0600/0700.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from .outputs import check_output_dir as check_writable_dir


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


def normal_modes(root: str | os.PathLike) -> None:
    """Give ``root`` and all under it the modes ``open()``/``mkdir()`` give: 0666/0777 less the umask."""
    mask = _umask()
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o666 & ~mask)


def _old_copies(path: Path) -> list[Path]:
    """Hidden ``.<name>.old.*`` folders holding a previous ``path``, left by a swap that was cut short."""
    pattern = os.path.join(glob.escape(str(path.parent)), f".{glob.escape(path.name)}.old.*")
    return [Path(p) for p in glob.glob(pattern) if (Path(p) / path.name).is_dir()]


def recover_dir_swap(path: str | os.PathLike) -> Path | None:
    """Finish a folder swap killed between its two renames; returns the folder restored, if any.

    ``atomic_output_dir`` moves the old folder to ``.<name>.old.*/<name>`` before renaming the new one
    into place. Killed in between, ``path`` is missing: the newest old copy is moved back. Old copies
    beside an existing ``path`` (killed after the second rename) are removed.
    """
    path = Path(path)
    olds = sorted(_old_copies(path), key=lambda p: p.stat().st_mtime)
    restored = None
    if olds and not os.path.lexists(path):
        restored = olds.pop()
        os.replace(restored / path.name, path)
        shutil.rmtree(restored, ignore_errors=True)
        warnings.warn(
            f"restored {path} from {restored}: an earlier write of it was killed mid-swap", stacklevel=2
        )
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)
    return restored


def check_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Fail now, before any work, if folder ``path`` cannot be (re)written; repairs a cut-short swap first."""
    path = Path(path)
    recover_dir_swap(path)
    if os.path.lexists(path):
        if not overwrite:
            raise FileExistsError(
                f"{path} exists; choose another folder or pass overwrite=True (--overwrite)"
            )
        if not path.is_dir():
            raise NotADirectoryError(f"{path} exists and is not a folder; remove it or choose another name")
    check_writable_dir(path, "output folder")  # a temp file in the nearest existing folder
    return path


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder to fill; on success it becomes ``path`` (an existing one replaced only if asked).

    The swap is two renames (old folder aside, new one in); a kill between them is repaired by the
    next ``atomic_output_dir``/``check_output_dir`` on the same path (``recover_dir_swap``). On any
    exception the temp folder is removed and ``path`` is untouched.
    """
    path = Path(check_output_dir(path, overwrite))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp.", dir=path.parent))
    try:
        yield tmp
        normal_modes(tmp)
        if os.path.lexists(path):
            if not overwrite:  # appeared while we were writing
                raise FileExistsError(f"{path} exists; choose another folder or pass overwrite=True")
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: object, indent: int = 2, sort_keys: bool = False) -> Path:
    """Write ``obj`` as JSON (with a final newline) to ``path`` atomically: the one JSON writer."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n")

"""Path checks for the data-preparation tools: names from archives or split lists are refused when
they could resolve outside their folder (``..``, absolute, or a symbolic link leading out).
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath


class UnsafePathError(ValueError):
    """A name from an archive or split list that is absolute, has ``..`` or resolves outside its folder."""


def check_inside(path: str | os.PathLike, root: str | os.PathLike, where: str = "") -> None:
    """Raise :class:`UnsafePathError` (prefixed with ``where``) if ``path`` resolves outside ``root``
    (symbolic links followed as far as they exist, so a link anywhere on the way counts)."""
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    if os.path.commonpath([real, real_root]) != real_root:
        raise UnsafePathError(
            f"{where}{path} resolves to {real}, outside {real_root}: a link leads out of the folder; "
            "replace it with the real file or folder"
        )


def check_relative_name(name: str, where: str = "") -> None:
    """Raise :class:`UnsafePathError` unless ``name`` is a relative POSIX path without ``..``."""
    if PurePosixPath(name).is_absolute() or _windows_absolute(name):
        raise UnsafePathError(f"{where}{name!r} is an absolute path; only names inside the folder are kept")
    if ".." in PurePosixPath(name).parts:
        raise UnsafePathError(f"{where}{name!r}: '..' is not allowed; only names inside the folder are kept")


def _windows_absolute(name: str) -> bool:
    """``C:...`` or ``\\\\server``: absolute on Windows, where a list may have been written."""
    return (len(name) > 1 and name[1] == ":") or name.startswith("\\")

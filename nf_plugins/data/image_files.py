"""Decode-check image files at data-preparation time, so a corrupt file fails there with its name.

OpenCV (what mmcv's loaders use) returns ``None`` for an unreadable file and decodes a truncated JPEG
into a partly grey image with only a libjpeg warning, i.e. trains on it silently. PIL raises for both
once the pixels are actually decoded, which is what :func:`decoded_size` forces.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError


def require_file(path: str | os.PathLike, what: str = "an image file", context: str = "") -> None:
    """Raise unless ``path`` is a file (links followed): ``FileNotFoundError`` if nothing is there,
    ``IsADirectoryError``/``ValueError`` saying what is there instead (a folder is not "missing")."""
    if os.path.isfile(path):
        return
    note = f" ({context})" if context else ""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not {what}{note}; replace it with the file")
    if os.path.lexists(path) and not os.path.exists(path):
        raise FileNotFoundError(f"{path} is a broken symbolic link to {os.readlink(path)!r}{note}")
    if os.path.exists(path):
        raise ValueError(f"{path} is not a regular file (a device or pipe?), not {what}{note}")
    raise FileNotFoundError(f"{path} is missing{note}")


def decoded_image(path: str | os.PathLike) -> Image.Image:
    """The fully decoded image at ``path``; ``ValueError`` naming the file if it is corrupt or truncated."""
    require_file(path)
    try:
        with Image.open(path) as im:
            im.load()  # decode every pixel: a truncated file raises here, not in the training loop
            return im.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(
            f"{path}: not a decodable image ({type(e).__name__}: {e}); the file is corrupt or truncated, "
            "re-extract or re-download it"
        ) from e


def decoded_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of the fully decoded image at ``path`` (see :func:`decoded_image`)."""
    return decoded_image(path).size


def decoded_array(path: str | os.PathLike) -> np.ndarray:
    """The pixels of the image at ``path`` as stored (palette indices for a palette PNG)."""
    return np.asarray(decoded_image(path))

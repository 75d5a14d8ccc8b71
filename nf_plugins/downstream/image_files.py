"""Decode-check image files at data-preparation time, so a corrupt file fails there with its name.

OpenCV (what mmcv's loaders use) returns ``None`` for an unreadable file and decodes a truncated JPEG
into a partly grey image with only a libjpeg warning, i.e. trains on it silently. PIL raises for both
once the pixels are actually decoded, which is what :func:`decoded_size` forces.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError


def decoded_image(path: str | os.PathLike) -> Image.Image:
    """The fully decoded image at ``path``; ``ValueError`` naming the file if it is corrupt or truncated."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing")
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

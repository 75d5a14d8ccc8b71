"""The on-disk label rules, one definition each: VOC masks (labels and size), NYU depth PNGs and their
millimetre encoding.

Data preparation (``voc``, ``nyu``, ``synthetic_nyu``) writes and checks with these, and the mmseg side
(``downstream.datasets``) loads with them, so a file the converter accepts is one training reads.
"""

from __future__ import annotations

import numpy as np

VOC_NUM_CLASSES = 21  # background + 20 object classes
IGNORE_INDEX = 255  # VOC's "void": object outlines and difficult regions, ignored by loss and metric
MM_PER_M = 1000.0  # NYU depth PNGs hold millimetres: LoadDepthAnnotation(depth_rescale_factor=1e-3) -> m
MAX_DEPTH_M = 10.0  # NYU toolbox camera_params.m maxDepth: depth_rel2depth_abs clips the Kinect here


def check_seg_mask(
    mask: np.ndarray,
    mask_path: str,
    image_hw: tuple[int, int] | None = None,
    image_path: str | None = None,
    num_classes: int = VOC_NUM_CLASSES,
    ignore_index: int = IGNORE_INDEX,
) -> None:
    """Raise ``ValueError`` naming the files unless ``mask`` is one channel of class indices
    ``0..num_classes-1`` or ``ignore_index`` (negative labels included) and, given ``image_hw``, has the
    image's (height, width). Without it a bad label fails deep in the loss or trains on garbage, and a size
    mismatch is cropped into misaligned pairs."""
    if mask.ndim != 2:
        what = f"{mask.shape[2]} channels" if mask.ndim == 3 else f"shape {mask.shape}"
        raise ValueError(
            f"mask {mask_path} has {what}; expected a palette or 8-bit gray PNG of class indices "
            "(as VOC's SegmentationClass), not colours"
        )
    if image_hw is not None and tuple(mask.shape) != tuple(image_hw):
        raise ValueError(
            f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but image {image_path} is "
            f"{image_hw[1]}x{image_hw[0]} (WxH); they must match"
        )
    labels = np.unique(mask)
    bad = labels[(labels < 0) | ((labels >= num_classes) & (labels != ignore_index))]
    if bad.size:
        raise ValueError(
            f"mask {mask_path} has labels {bad.tolist()} outside 0..{num_classes - 1} and {ignore_index} "
            "(ignore); masks must hold class indices (palette PNG or 8-bit gray)"
        )


def depth_png_problem(raw: np.ndarray | None) -> str | None:
    """What is wrong with a decoded depth PNG (``None`` if it is a single-channel 16-bit map).

    An 8-bit or RGB PNG would otherwise load as silently wrong depth."""
    if raw is None:
        return "depth PNG is undecodable; expected a single-channel 16-bit PNG of depth in millimetres"
    if raw.dtype != np.uint16 or raw.ndim != 2:
        return (
            f"depth PNG is {raw.dtype} with shape {raw.shape}; expected a single-channel 16-bit PNG "
            "of depth in millimetres"
        )
    return None


def depth_to_mm(depth_m: np.ndarray, where: str) -> np.ndarray:
    """Depth in metres -> uint16 millimetres (0 = no depth; NaN/inf are holes, as the Kinect's).

    Raises ``ValueError`` naming ``where`` for maps no Kinect frame can hold: no valid pixel, negative
    depth, or depth beyond :data:`MAX_DEPTH_M` (millimetres passed as metres would saturate 16 bits)."""
    depth_m = np.asarray(depth_m)  # rounded in its own precision (float32 maps stay bit-identical)
    finite = np.isfinite(depth_m)
    if not (finite & (depth_m > 0)).any():
        raise ValueError(f"{where} has no valid depth (0 everywhere); it would train and score nothing")
    lo, hi = float(depth_m[finite].min()), float(depth_m[finite].max())
    if lo < 0:
        raise ValueError(f"{where} has negative depth {lo:g} m; depth is a distance in metres, >= 0")
    if hi > MAX_DEPTH_M:
        raise ValueError(
            f"{where} reaches {hi:.1f} m, beyond the {MAX_DEPTH_M:g} m the NYU toolbox clips Kinect depth "
            "to: is it in millimetres? divide by 1000 (depths must be in metres)"
        )
    return np.where(finite, np.round(depth_m * MM_PER_M), 0).astype(np.uint16)


def mm_to_depth(mm: np.ndarray) -> np.ndarray:
    """uint16 millimetres -> float64 metres (0 stays 0: no depth)."""
    return np.asarray(mm, dtype=np.float64) / MM_PER_M

"""Data transforms for the VOC recipe: paper-style random rescale and a sample validity check."""

from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform, Resize
from mmcv.transforms.utils import cache_randomness
from mmseg.registry import TRANSFORMS

from nf_plugins.data.labels import check_seg_mask


@TRANSFORMS.register_module()
class RandomRescale(BaseTransform):
    """Rescale image and mask by a factor drawn uniformly from ``ratio_range`` (paper: [0.5, 2.0]).

    mmcv's ``RandomResize`` scales relative to a fixed target size; the paper scales each image
    relative to its own size. The resizing itself is mmcv's ``Resize`` (bilinear image, nearest mask).
    """

    def __init__(self, ratio_range: tuple[float, float] = (0.5, 2.0)) -> None:
        lo, hi = ratio_range
        if not 0 < lo <= hi:
            raise ValueError(f"ratio_range must satisfy 0 < low <= high, got {ratio_range}")
        self.ratio_range = (float(lo), float(hi))

    @cache_randomness
    def _sample(self) -> float:
        return float(np.random.uniform(*self.ratio_range))

    def transform(self, results: dict) -> dict:
        return Resize(scale_factor=self._sample(), keep_ratio=True)(results)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(ratio_range={self.ratio_range})"


@TRANSFORMS.register_module()
class ValidateSegSample(BaseTransform):
    """Reject a sample whose mask has labels outside ``[0, num_classes)`` + ``ignore_index``, or
    whose mask and image differ in size, naming both files (put it right after LoadAnnotations).

    Without it, a bad label fails deep inside the loss (or silently trains on garbage) and a size
    mismatch is cropped into misaligned pairs.
    """

    def __init__(self, num_classes: int = 21, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        img_path, seg_path = results.get("img_path"), results.get("seg_map_path")
        seg = results.get("gt_seg_map")
        if seg is None:
            raise KeyError(f"ValidateSegSample needs LoadAnnotations before it (image {img_path})")
        check_seg_mask(seg, seg_path, results["img"].shape[:2], img_path, self.num_classes, self.ignore_index)
        return results

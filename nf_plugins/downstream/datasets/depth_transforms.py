"""The two depth transforms mmcv/mmseg lack; everything else in the NYU pipeline is theirs.

* ``DepthCenterCrop``: mmcv's ``CenterCrop`` crops ``gt_seg_map`` only; this also crops every map in
  ``seg_fields`` (``LoadDepthAnnotation`` registers ``gt_depth_map`` there), so image and depth stay aligned.
* ``LoadCheckedDepthAnnotation``: mmseg's ``LoadDepthAnnotation`` that refuses anything but a
  single-channel 16-bit PNG, since an 8-bit or RGB PNG would otherwise load as silently wrong depth.
"""

from __future__ import annotations

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import CenterCrop
from mmseg.datasets.transforms import LoadDepthAnnotation
from mmseg.registry import TRANSFORMS
from mmseg.utils import datafrombytes

from nf_plugins.data.labels import depth_png_problem


@TRANSFORMS.register_module()
class DepthCenterCrop(CenterCrop):
    """``mmcv.transforms.CenterCrop`` that also crops ``gt_depth_map`` (all ``seg_fields``)."""

    def _crop_seg_map(self, results: dict, bboxes: np.ndarray) -> None:
        keys = set(results.get("seg_fields", [])) | {"gt_seg_map"}
        for key in keys:
            if results.get(key) is not None:
                results[key] = mmcv.imcrop(results[key], bboxes=bboxes)


@TRANSFORMS.register_module()
class LoadCheckedDepthAnnotation(LoadDepthAnnotation):
    """``LoadDepthAnnotation`` for 16-bit depth PNGs (NYU: millimetres) with a dtype check."""

    def transform(self, results: dict) -> dict:
        path = results["depth_map_path"]
        raw = datafrombytes(fileio.get(path, self.backend_args), backend=self.decode_backend)
        problem = depth_png_problem(raw)
        if problem:
            raise ValueError(f"{path}: {problem}. Re-create it with nf-plugins prepare-nyu")
        depth = raw.astype(np.float32) if self.to_float32 else raw
        results["gt_depth_map"] = depth * self.depth_rescale_factor if self.to_float32 else depth
        results.setdefault("seg_fields", []).append("gt_depth_map")
        results["depth_rescale_factor"] = self.depth_rescale_factor
        return results

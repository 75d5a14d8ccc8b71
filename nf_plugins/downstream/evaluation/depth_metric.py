"""NYUv2 depth metrics as the paper reports them, with mmseg's per-image numbers beside them.

Laina et al. (the protocol the paper follows, appendix H.2) average rel, rms and log10 over all valid
pixels of the whole test set (their ``error_metrics.m``: "Errors computed over the entire test set"), and
the paper's deltas are "the percentage of pixels" within a ratio threshold. mmseg's ``DepthMetric``
instead computes every metric per image and averages the images. ``NYUDepthMetric`` reports both:

* ``d1 d2 d3 abs_rel sq_rel rmse rmse_log log10 silog``: pooled over every valid test pixel (headline);
* ``per_image/<same names>``: mmseg's ``DepthMetric`` values, from its own per-image function.

Per image it keeps only those numbers and the pooled sums, not the pixels (mmseg's metric holds every
valid pixel of the test set until the end: ~1.6 GB for NYU's 654 images at 640x480).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from mmengine.logging import print_log
from mmseg.evaluation.metrics import DepthMetric
from mmseg.registry import METRICS

PER_IMAGE_PREFIX = "per_image/"
_SUM_KEYS = ("n", "d1", "d2", "d3", "abs_rel", "sq_rel", "sq", "sq_log", "log", "log10")


def pooled_sums(gt: torch.Tensor, pred: torch.Tensor) -> dict[str, float]:
    """Sums over one image's valid pixels from which the pooled metrics follow exactly (float64)."""
    g, p = gt.double().flatten(), pred.double().flatten()
    ratio = torch.maximum(g / p, p / g)
    diff, diff_log = p - g, torch.log(p) - torch.log(g)
    return {
        "n": float(g.numel()),
        "d1": float((ratio < 1.25).sum()),
        "d2": float((ratio < 1.25**2).sum()),
        "d3": float((ratio < 1.25**3).sum()),
        "abs_rel": float((diff.abs() / g).sum()),
        "sq_rel": float((diff**2 / g).sum()),
        "sq": float((diff**2).sum()),
        "sq_log": float((diff_log**2).sum()),
        "log": float(diff_log.sum()),
        "log10": float((torch.log10(p) - torch.log10(g)).abs().sum()),
    }


def pooled_metrics(sums: dict[str, float]) -> dict[str, float]:
    """mmseg's nine NYU metrics with every mean taken over all pixels at once (silog in mmseg's form)."""
    n = sums["n"]
    mean = {k: sums[k] / n for k in _SUM_KEYS if k != "n"}
    return {
        "d1": mean["d1"],
        "d2": mean["d2"],
        "d3": mean["d3"],
        "abs_rel": mean["abs_rel"],
        "sq_rel": mean["sq_rel"],
        "rmse": math.sqrt(mean["sq"]),
        "rmse_log": math.sqrt(mean["sq_log"]),
        "log10": mean["log10"],
        "silog": math.sqrt(mean["sq_log"] - 0.5 * mean["log"] ** 2),  # >= 0: mean(d)^2 <= mean(d^2)
    }


@METRICS.register_module()
class NYUDepthMetric(DepthMetric):
    """mmseg's ``DepthMetric`` (same arguments, mask and crop) that also pools over all test pixels.

    The plain metric names are the pooled values of Laina et al. and the paper; ``per_image/<name>``
    are exactly what mmseg's ``DepthMetric`` reports for the same predictions and mask.
    """

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """mmseg's masking (and optional PNG output); then reduce each image to its numbers."""
        start = len(self.results)
        super().process(data_batch, data_samples)
        for i in range(start, len(self.results)):
            gt, pred = self.results[i]
            if gt.numel() == 0:
                raise ValueError(
                    "a test image has no valid ground-truth depth inside the evaluation mask "
                    f"({self.min_depth_eval} < depth < {self.max_depth_eval}, crop {self.crop_type}); "
                    "check that its depth PNG is in millimetres (tools/prepare_nyu.py --check DIR)"
                )
            self.results[i] = (self._calc_all_metrics(gt, pred), pooled_sums(gt, pred))

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Pooled metrics under mmseg's names, then mmseg's per-image means under ``per_image/``."""
        if self.format_only:
            return super().compute_metrics(results)
        if not results:
            raise ValueError("no test images were evaluated (empty test split)")
        totals = {k: sum(sums[k] for _, sums in results) for k in _SUM_KEYS}
        pooled = pooled_metrics(totals)
        out = {k: pooled[k] for k in self.metrics}
        for k in self.metrics:
            out[PER_IMAGE_PREFIX + k] = sum(per[k] for per, _ in results) / len(results)
        lines = [
            f"{k:>9}: pooled {out[k]:.4f}   per-image {out[PER_IMAGE_PREFIX + k]:.4f}" for k in self.metrics
        ]
        print_log(f"NYU depth over {len(results)} images, {int(totals['n'])} pixels:\n" + "\n".join(lines))
        return out

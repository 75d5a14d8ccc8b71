"""NYU depth metrics: pooled over all test pixels (Laina et al., the paper's headline) next to mmseg's
per-image means, on a hand-made case where the two differ; expected values worked out by hand."""

import math

import pytest
import torch

pytest.importorskip("mmseg")
from mmseg.evaluation.metrics import DepthMetric  # noqa: E402

from nf_plugins.downstream.evaluation.depth_metric import NYUDepthMetric  # noqa: E402

NAMES = ("d1", "d2", "d3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog")


def _samples():
    """Image A: 4 valid pixels, all exact (depth 2 m). Image B: 1 valid pixel (gt 1 m, pred 1.5 m), one
    hole (gt 0) and one pixel beyond 10 m, both with wild predictions that the mask must drop."""
    a = dict(
        gt_depth_map=dict(data=torch.full((1, 2, 2), 2.0)),
        pred_depth_map=dict(data=torch.full((1, 2, 2), 2.0)),
    )
    b = dict(
        gt_depth_map=dict(data=torch.tensor([[[1.0, 0.0, 12.0]]])),
        pred_depth_map=dict(data=torch.tensor([[[1.5, 5.0, 0.1]]])),
    )
    return [a, b]


def _evaluate(metric):
    for s in _samples():
        metric.process({}, [s])
    return metric.evaluate(2)


# By hand. Valid pixels: A's 4 (error 0) and B's 1 (pred/gt = 1.5, diff 0.5 m), so 5 pooled pixels.
# L = ln 1.5, l = log10 1.5. B alone: rmse 0.5, abs_rel 0.5, sq_rel 0.25, rmse_log L, log10 l,
# silog sqrt(L^2 - L^2 / 2) = L / sqrt(2); ratio 1.5 fails 1.25 but passes 1.5625 and 1.953.
L, LOG10 = math.log(1.5), math.log10(1.5)
POOLED = {  # every mean over the 5 pixels
    "d1": 4 / 5,
    "d2": 1.0,
    "d3": 1.0,
    "abs_rel": 0.5 / 5,
    "sq_rel": 0.25 / 5,
    "rmse": math.sqrt(0.25 / 5),
    "rmse_log": math.sqrt(L**2 / 5),
    "log10": LOG10 / 5,
    "silog": math.sqrt(L**2 / 5 - 0.5 * (L / 5) ** 2),
}
PER_IMAGE = {  # mean of A's value (perfect) and B's value
    "d1": (1 + 0) / 2,
    "d2": 1.0,
    "d3": 1.0,
    "abs_rel": (0 + 0.5) / 2,
    "sq_rel": (0 + 0.25) / 2,
    "rmse": (0 + 0.5) / 2,
    "rmse_log": (0 + L) / 2,
    "log10": (0 + LOG10) / 2,
    "silog": (0 + L / math.sqrt(2)) / 2,
}


def test_pooled_headline_and_per_image_differ_as_computed_by_hand():
    out = _evaluate(NYUDepthMetric(min_depth_eval=1e-3, max_depth_eval=10.0))
    assert set(out) == set(NAMES) | {f"per_image/{k}" for k in NAMES}
    for k in NAMES:
        assert out[k] == pytest.approx(POOLED[k], rel=1e-6), k
        assert out[f"per_image/{k}"] == pytest.approx(PER_IMAGE[k], rel=1e-6), k
    # the case separates the two definitions wherever B's error is not shared by every pixel
    assert out["rmse"] == pytest.approx(0.2236, abs=1e-4) and out["per_image/rmse"] == 0.25
    assert out["abs_rel"] == pytest.approx(0.1) and out["per_image/abs_rel"] == pytest.approx(0.25)


def test_per_image_numbers_are_mmseg_depth_metric():
    """Second implementation: mmseg's own DepthMetric on the same samples gives the per_image/ values."""
    ours = _evaluate(NYUDepthMetric(min_depth_eval=1e-3, max_depth_eval=10.0))
    mmseg = _evaluate(DepthMetric(min_depth_eval=1e-3, max_depth_eval=10.0))
    for k in NAMES:
        assert ours[f"per_image/{k}"] == pytest.approx(mmseg[k], rel=1e-6), k


def test_eigen_crop_option_is_mmseg_s():
    """crop_type='nyu_crop' masks as mmseg does (rows 45:471, cols 41:601 of 640x480); here only the
    pixels inside the crop carry an error, so pooled rmse = sqrt(inside error^2 * inside / all valid)."""
    gt = torch.full((1, 480, 640), 2.0)
    pred = gt.clone()
    pred[0, 45:471, 41:601] = 3.0  # 426 x 560 pixels off by 1 m
    pred[0, :45] = 9.0  # outside the crop: must not count
    sample = dict(gt_depth_map=dict(data=gt), pred_depth_map=dict(data=pred))
    metric = NYUDepthMetric(min_depth_eval=1e-3, max_depth_eval=10.0, crop_type="nyu_crop")
    metric.process({}, [sample])
    out = metric.evaluate(1)
    assert out["rmse"] == pytest.approx(1.0) and out["abs_rel"] == pytest.approx(0.5)
    metric = NYUDepthMetric(min_depth_eval=1e-3, max_depth_eval=10.0)  # no crop: every pixel counts
    metric.process({}, [sample])
    inside, top = 426 * 560, 45 * 640
    assert metric.evaluate(1)["rmse"] == pytest.approx(math.sqrt((inside * 1 + top * 49) / (480 * 640)))


def test_image_without_valid_depth_is_an_error():
    metric = NYUDepthMetric(min_depth_eval=1e-3, max_depth_eval=10.0)
    empty = dict(gt_depth_map=dict(data=torch.zeros(1, 2, 2)), pred_depth_map=dict(data=torch.ones(1, 2, 2)))
    with pytest.raises(ValueError, match="no valid ground-truth depth .*millimetres"):
        metric.process({}, [empty])

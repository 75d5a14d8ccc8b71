"""berHu loss: defaults, range checks and the module's arguments, each against hand-computed values.

Written to kill the mutants that test_depth_parts.py leaves alive (docs/mutation.md).
"""

import pytest
import torch

pytest.importorskip("mmseg")

from nf_plugins.downstream.models.depth_loss import BerHuLoss, berhu_loss  # noqa: E402


def _hand_berhu(residuals: list[float], ratio: float) -> float:
    """Laina et al.'s berHu written out: |r| up to c = ratio * max|r|, (r^2 + c^2) / 2c above."""
    c = ratio * max(abs(r) for r in residuals)
    terms = [abs(r) if abs(r) <= c else (r * r + c * c) / (2 * c) for r in residuals]
    return sum(terms) / len(terms)


def test_default_module_is_the_paper_loss_with_weight_one():
    # Residuals 0.1, -0.5, 2.0 on targets 0.5 (below 1 m: a min_depth of 1 would drop them all).
    target = torch.tensor([[[[0.5, 0.5, 0.5]]]])
    pred = target + torch.tensor([0.1, -0.5, 2.0])
    expected = _hand_berhu([0.1, -0.5, 2.0], 0.2)
    loss = BerHuLoss()
    assert loss.loss_name == "loss_berhu"
    assert loss(pred, target).item() == pytest.approx(expected, rel=1e-6)
    assert berhu_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)


def test_module_passes_its_threshold_min_depth_and_weight():
    target = torch.tensor([0.5, 2.0, 3.0, 4.0])
    pred = target + torch.tensor([9.0, 0.3, -1.0, 2.0])
    loss = BerHuLoss(threshold_ratio=0.6, min_depth=1.0, loss_weight=2.5, loss_name="loss_depth")
    # min_depth 1.0 drops the first pixel (residual 9, which would also set c); c = 0.6 * 2 = 1.2.
    expected = 2.5 * _hand_berhu([0.3, -1.0, 2.0], 0.6)
    assert loss(pred, target).item() == pytest.approx(expected, rel=1e-6)
    assert loss.loss_name == "loss_depth"


def test_threshold_ratio_range_is_half_open():
    assert BerHuLoss(threshold_ratio=1.0).threshold_ratio == 1.0  # c = max|r|: plain L1
    for bad in (0.0, -0.1, 1.01, 2.0):
        with pytest.raises(ValueError, match=r"^BerHuLoss: threshold_ratio must be in \(0, 1\], got"):
            BerHuLoss(threshold_ratio=bad)


def test_ratio_one_is_l1_and_all_zero_targets_give_an_exact_zero():
    target = torch.tensor([1.0, 2.0, 3.0])
    pred = torch.tensor([1.5, 1.0, 5.0])
    assert berhu_loss(pred, target, threshold_ratio=1.0).item() == pytest.approx((0.5 + 1.0 + 2.0) / 3)
    # No valid pixel: exactly 0 (not NaN), with a zero gradient that still reaches pred.
    pred = torch.tensor([3.0, 4.0], requires_grad=True)
    loss = berhu_loss(pred, torch.zeros(2))
    loss.backward()
    assert loss.item() == 0.0 and pred.grad.tolist() == [0.0, 0.0]


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"^berhu_loss: pred shape \(2,\) != target shape \(3,\)$"):
        berhu_loss(torch.zeros(2), torch.ones(3))


# ---- mmseg's loss interface: weight, avg_factor, reduction(_override) (issue 18) ----------------------
# One image, four pixels: residuals 0.1, -0.5, 2.0 and a pixel without depth (target 0). c = 0.2 * 2.0 = 0.4
# over the valid pixels, so the per-pixel losses are 0.1 (L1 side), (0.25 + 0.16) / 0.8 = 0.5125 and
# (4 + 0.16) / 0.8 = 5.2 (quadratic side), and 0 where there is no depth.
TARGET = torch.tensor([[[[0.5, 0.5, 0.5, 0.0]]]])
PRED = torch.tensor([[[[0.6, 0.0, 2.5, 7.0]]]])
PER_PIXEL = [0.1, 0.5125, 5.2, 0.0]


def test_reduction_none_and_sum_and_mean_over_valid_pixels():
    none = BerHuLoss(reduction="none")(PRED, TARGET)
    assert none.shape == PRED.shape and none.flatten().tolist() == pytest.approx(PER_PIXEL)
    assert BerHuLoss(reduction="sum")(PRED, TARGET).item() == pytest.approx(sum(PER_PIXEL))
    # mean divides by the 3 pixels with depth, not the 4 pixels (mmseg's CrossEntropyLoss avg_non_ignore)
    assert BerHuLoss()(PRED, TARGET).item() == pytest.approx(sum(PER_PIXEL) / 3, rel=1e-6)


def test_weight_scales_each_pixel_but_not_the_threshold():
    weight = torch.tensor([[[[2.0, 1.0, 0.0, 5.0]]]])
    loss = BerHuLoss(loss_weight=3.0)
    # the zero-weight pixel (residual 2.0) still sets c = 0.4; the mean still divides by 3 valid pixels
    expected = 3.0 * (2.0 * 0.1 + 1.0 * 0.5125 + 0.0 * 5.2) / 3
    assert loss(PRED, TARGET, weight=weight).item() == pytest.approx(expected, rel=1e-6)
    per_channel = torch.tensor([[[[2.0]]]])  # broadcast over the pixels, as mmseg's weight_reduce_loss
    assert loss(PRED, TARGET, weight=per_channel, reduction_override="sum").item() == pytest.approx(
        3.0 * 2.0 * sum(PER_PIXEL)
    )


def test_avg_factor_divides_the_weighted_sum():
    weight = torch.tensor([[[[1.0, 1.0, 0.5, 1.0]]]])
    value = BerHuLoss()(PRED, TARGET, weight=weight, avg_factor=2.0).item()
    assert value == pytest.approx((0.1 + 0.5125 + 0.5 * 5.2) / 2.0, rel=1e-6)
    none = BerHuLoss(reduction="none")(PRED, TARGET, avg_factor=2.0)  # mmseg: no reduction, no division
    assert none.flatten().tolist() == pytest.approx(PER_PIXEL)


def test_reduction_override_wins_over_the_modules_reduction():
    loss = BerHuLoss(reduction="sum")
    assert loss(PRED, TARGET).item() == pytest.approx(sum(PER_PIXEL))
    assert loss(PRED, TARGET, reduction_override="mean").item() == pytest.approx(sum(PER_PIXEL) / 3, rel=1e-6)
    assert loss(PRED, TARGET, reduction_override="none").flatten().tolist() == pytest.approx(PER_PIXEL)


def test_unsupported_interface_values_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"^BerHuLoss: reduction must be one of \('none', 'mean', 'sum'\), "):
        BerHuLoss(reduction="average")
    with pytest.raises(ValueError, match=r"^BerHuLoss: reduction_override must be None or one of"):
        BerHuLoss()(PRED, TARGET, reduction_override="max")
    with pytest.raises(
        ValueError, match=r"^berhu_loss: avg_factor divides a mean; it cannot be used with reduction='sum'$"
    ):
        BerHuLoss(reduction="sum")(PRED, TARGET, avg_factor=2.0)
    with pytest.raises(
        ValueError, match=r"^berhu_loss: reduction must be one of \('none', 'mean', 'sum'\), got 'average'$"
    ):
        berhu_loss(PRED, TARGET, reduction="average")
    with pytest.raises(ValueError, match=r"weight shape \(4,\) must have pred's 4 dims and broadcast to"):
        BerHuLoss()(PRED, TARGET, weight=torch.ones(4))
    with pytest.raises(ValueError, match=r"weight shape \(1, 1, 1, 3\) must have pred's 4 dims"):
        BerHuLoss()(PRED, TARGET, weight=torch.ones(1, 1, 1, 3))

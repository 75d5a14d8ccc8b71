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

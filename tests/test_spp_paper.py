"""The paper's SPP findings (section 3, 4.1-4.4, appendix F) on its reference networks.

64 px, batch 8, N(0, 1) input. The default run uses depth 36 (3 blocks per stage), which every
property below needs at least; the ``slow`` run repeats them at the paper's depth 600.
Expected values are analytic: for ReLU, E[g] = 1/sqrt(2 pi) and Var[g] = (1 - 1/pi) / 2, so a
He-init (gain 2) conv after BN-ReLU gives a channel variance of 1 - 1/pi = 0.682 (paper: ~0.68).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from nf_plugins.spp import build_reference, signal_propagation

DEPTHS = [36, pytest.param(600, marks=pytest.mark.slow)]
RELU_VAR = 0.5 * (1 - 1 / math.pi)  # Var(max(x, 0)), x ~ N(0, 1)


@functools.cache
def spp(name: str, depth: int) -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    result = signal_propagation(build_reference(name, depth), name=name, img_size=64, batch_size=8)
    cols = {k: np.array(result.column(k)) for k in ("avg_channel_squared_mean", "avg_channel_variance")}
    cols["res"] = np.array(result.column("residual_avg_channel_variance"))
    cols["stage"] = np.array([b.stage for b in result.blocks])
    assert [b.stage_end for b in result.blocks] == list(np.diff(cols["stage"], append=99) != 0)
    return cols


def per_stage(values: np.ndarray, stages: np.ndarray) -> list[np.ndarray]:
    return [values[stages == s] for s in range(4)]


@pytest.mark.parametrize("depth", DEPTHS)
def test_bn_relu_conv_residual_variance_and_mean_shift(depth):
    s = spp("BN-ReLU-Conv", depth)
    assert 0.6 < s["res"].mean() < 0.76
    assert s["res"].mean() == pytest.approx(1 - 1 / math.pi, rel=0.03)  # 0.682
    sq = per_stage(s["avg_channel_squared_mean"], s["stage"])
    for stage in sq:  # grows within each stage, by ~(sum_j W_ij)^2 E[g]^2 = 2 / (2 pi) per block ...
        assert np.polyfit(np.arange(len(stage)), stage, 1)[0] == pytest.approx(1 / math.pi, rel=0.3)
    for prev, nxt in zip(sq[:-1], sq[1:], strict=True):  # ... and resets at each transition, where
        assert nxt[0] < 0.6 * prev[-1]  # shortcut and branch each start afresh at 1 / pi
        assert nxt[0] == pytest.approx(2 / math.pi, rel=0.2)


@pytest.mark.parametrize("depth", DEPTHS)
def test_relu_bn_conv_residual_variance_one_and_linear_growth(depth):
    s = spp("ReLU-BN-Conv", depth)
    assert 0.9 < s["res"].mean() < 1.1 and np.all(np.abs(s["res"] - 1) < 0.1)
    for var in per_stage(s["avg_channel_variance"], s["stage"]):
        k = np.arange(len(var))
        np.testing.assert_allclose(var, 2 + k, rtol=0.06)  # reset to 1 + 1 at the transition, +1 per block
    assert np.all(s["avg_channel_squared_mean"] < 0.05)


@pytest.mark.parametrize("depth", DEPTHS)
def test_unnormalized_he_init_explodes(depth):
    var = spp("Unnormalized, He init", depth)["avg_channel_variance"]
    assert np.all(np.diff(var) > 0)
    assert var[-1] / var[0] > 2 ** (len(var) / 2)  # exponential: > sqrt(2) per block on average


@pytest.mark.parametrize("depth", DEPTHS)
def test_nf_he_init_mean_shift_but_not_with_scaled_ws(depth):
    he, ws = spp("NF, He init", depth), spp("NF, Scaled WS", depth)
    he_sq, he_var = (
        per_stage(he[k], he["stage"])[0] for k in ("avg_channel_squared_mean", "avg_channel_variance")
    )
    assert np.all(he_sq > he_var)  # the squared channel mean exceeds the variance (paper section 4.1)
    assert he_sq[-1] > 2 * he_sq[0]  # and grows with depth
    big = ws["stage"] < 2  # at 4 and 2 px a batch of 8 gives too few samples to resolve a channel mean
    assert np.all(ws["avg_channel_squared_mean"][big] < 0.02 * ws["avg_channel_variance"][big])


@pytest.mark.parametrize("depth", DEPTHS)
def test_nf_scaled_ws_matches_relu_bn_conv(depth):
    ws, bn = spp("NF, Scaled WS", depth), spp("ReLU-BN-Conv", depth)  # alpha = 1, as in figure 2
    first = ws["stage"] == 0  # stages at >= 8 px: zero padding has not yet shrunk the branch (section 4.2)
    var = ws["avg_channel_variance"][first]
    # At 64 px the 16 px first stage already loses ~10% of the 3x3 conv's taps to zero padding by its
    # end (the paper's "decays slightly near the end", at 512 px); BN renormalises, NF does not.
    np.testing.assert_allclose(var, bn["avg_channel_variance"][first], rtol=0.15)
    assert 0.85 < ws["res"][first].mean() < 1.05 and ws["res"][first].min() > 0.8
    # Skip and branch are uncorrelated: each block adds alpha^2 Var(f) = Var(f) to the variance.
    assert var[-1] - var[0] == pytest.approx(ws["res"][first][1:].sum(), rel=0.05)
    ws02 = spp("NF, Scaled WS, alpha=0.2", depth)
    var = ws02["avg_channel_variance"][first]
    np.testing.assert_allclose(var, 1 + 0.04 * (1 + np.arange(len(var))), rtol=0.05)  # 1 + k alpha^2


@pytest.mark.parametrize("depth", DEPTHS)
def test_gamma_sqrt2_attenuates(depth):
    s = spp("NF, gamma=sqrt(2)", depth)
    res = per_stage(s["res"], s["stage"])
    # Each of the branch's three ReLU + conv pairs keeps 2 * Var(relu) of the variance.
    assert res[0][0] == pytest.approx((2 * RELU_VAR) ** 3, rel=0.1)
    slope = np.polyfit(np.arange(len(res[0])), res[0], 1)[0]
    assert slope < 0 and res[0][-1] < 0.75 * res[0][0]  # attenuates through stage 1
    ends = s["avg_channel_variance"][np.diff(s["stage"], append=99) != 0]
    assert np.all(np.diff(ends) < 0)  # and is downscaled again at every transition
    correct = spp("NF, Scaled WS, alpha=0.2", depth)
    assert correct["res"][0] == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("depth", DEPTHS)
def test_unmodified_se_attenuates_relative_to_x2(depth):
    se1, se2 = spp("NF, unmodified SE", depth), spp("NF, SE x2", depth)
    # At init the sigmoid gate is ~0.5: the branch keeps 1/4 of its variance without the x2.
    assert se1["res"][0] / se2["res"][0] == pytest.approx(0.25, rel=0.1)
    assert se2["res"][0] == pytest.approx(1.0, abs=0.1)
    assert np.all(se1["res"] < 0.4 * se2["res"])
    assert np.all(se1["avg_channel_variance"][4:] < se2["avg_channel_variance"][4:])


@pytest.mark.parametrize("depth", DEPTHS)
def test_linear_nets_have_no_mean_shift(depth):
    bn, nf = spp("Linear, BN", depth), spp("Linear, NF", depth)
    assert np.all(np.abs(bn["res"] - 1) < 0.05)
    for s in (bn, nf):
        assert np.all(s["avg_channel_squared_mean"] < 0.05 * s["avg_channel_variance"])


@pytest.mark.parametrize("depth", DEPTHS)
def test_fixup_constant_within_stage_and_resets(depth):
    s = spp("FixUp", depth)
    assert np.all(s["res"] == 0)  # zero-initialised last conv
    stages = per_stage(s["avg_channel_variance"], s["stage"])
    for var in stages:
        np.testing.assert_allclose(var, var[0], rtol=1e-6)
    assert all(abs(b[0] / a[-1] - 1) > 0.02 for a, b in zip(stages[:-1], stages[1:], strict=True))


@pytest.mark.parametrize("depth", DEPTHS)
def test_post_activation_v1_residual_variance_one(depth):
    s = spp("ResNet-V1 (post-activation)", depth)
    np.testing.assert_allclose(s["res"], 1.0, atol=0.01)

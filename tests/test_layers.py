"""Layers: gammas against analytic/paper values, Scaled WS against eq. 3 and timm, caching, SE, drop path."""

import math

import numpy as np
import pytest
import timm.layers
import torch

from nf_plugins.layers import (
    GAMMA_TABLE,
    GammaAct,
    NFSqueezeExcite,
    ScaledStdConv2d,
    StochasticDepth,
    create_act,
    estimate_gamma,
)

RELU_ANALYTIC = math.sqrt(2.0) / math.sqrt(1.0 - 1.0 / math.pi)  # paper section 4.3


def test_relu_gamma_matches_analytic_formula():
    assert GAMMA_TABLE["relu"] == pytest.approx(RELU_ANALYTIC, abs=1e-9)
    assert estimate_gamma("relu") == pytest.approx(RELU_ANALYTIC, rel=0.01)


@pytest.mark.parametrize("name", sorted(GAMMA_TABLE))
def test_estimator_reproduces_table_within_1_percent(name):
    assert estimate_gamma(name) == pytest.approx(GAMMA_TABLE[name], rel=0.01)


@pytest.mark.parametrize(
    "name, paper_value",
    # Values quoted by the paper's text/code and DESIGN.md (silu: the paper's code divides by .5595).
    [("relu", 1.714), ("silu", 1 / 0.5595), ("gelu", 1.702), ("tanh", 1.594)],
)
def test_gammas_agree_with_paper_values(name, paper_value):
    assert GAMMA_TABLE[name] == pytest.approx(paper_value, rel=3e-3)
    assert estimate_gamma(name) == pytest.approx(paper_value, rel=0.01)


def test_estimator_accepts_any_callable():
    # A callable that is not in the table: 2*relu has gamma exactly half of relu's.
    assert estimate_gamma(lambda x: 2 * torch.relu(x)) == pytest.approx(estimate_gamma("relu") / 2, rel=1e-9)


@pytest.mark.parametrize("name", ["relu", "silu", "gelu", "tanh"])
def test_gamma_act_preserves_unit_variance(name):
    x = torch.randn(4096, 256, dtype=torch.float64)
    assert GammaAct(name)(x).var().item() == pytest.approx(1.0, rel=0.02)


def test_unknown_activation_names_choices():
    with pytest.raises(ValueError, match="unknown activation 'relu7'.*expected one of"):
        create_act("relu7")


def _eq3_numpy(w: np.ndarray, gain: np.ndarray, eps: float) -> np.ndarray:
    """Paper eq. 3, written independently in float64 numpy."""
    flat = w.reshape(w.shape[0], -1).astype(np.float64)
    n = flat.shape[1]
    mean = flat.mean(1, keepdims=True)
    var = ((flat - mean) ** 2).mean(1, keepdims=True)
    return (gain[:, None] * (flat - mean) / np.sqrt(var * n + eps)).reshape(w.shape)


def test_scaled_ws_weight_matches_equation_3():
    conv = ScaledStdConv2d(16, 8, 3, groups=2)
    with torch.no_grad():
        conv.weight.mul_(3.0).add_(0.5)
        conv.gain.uniform_(0.5, 2.0)
    expected = _eq3_numpy(conv.weight.detach().numpy(), conv.gain.detach().numpy(), conv.eps)
    np.testing.assert_allclose(conv.standardized_weight().detach().numpy(), expected, rtol=1e-5, atol=1e-7)
    w = conv.standardized_weight().detach().flatten(1)
    assert w.mean(1).abs().max() < 1e-6  # zero mean per filter: no mean shift
    g2 = conv.gain.detach().pow(2)
    assert ((w.pow(2).sum(1) - g2) / g2).abs().max() < 1e-3  # fan_in * var = gain^2


def test_scaled_ws_matches_timm_implementation():
    ours = ScaledStdConv2d(12, 10, 3, stride=2, eps=1e-4)
    # timm puts eps on var, ours on fan_in * var: the same function when eps_timm = eps / fan_in.
    theirs = timm.layers.ScaledStdConv2d(12, 10, 3, stride=2, padding=1, gamma=1.0, eps=1e-4 / ours.fan_in)
    theirs.load_state_dict({"weight": ours.weight, "bias": ours.bias, "gain": ours.gain.view(-1, 1, 1, 1)})
    x = torch.randn(2, 12, 17, 15)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_scaled_ws_preserves_variance_of_relu_activations():
    conv = ScaledStdConv2d(256, 256, 3)
    x = GammaAct("relu")(torch.randn(8, 256, 24, 24))
    with torch.no_grad():
        y = conv(x)[:, :, 1:-1, 1:-1]  # away from zero padding
    assert y.mean().abs() < 0.05
    assert y.var().item() == pytest.approx(1.0, rel=0.1)


def test_scaled_ws_statistics_in_float32_under_bf16():
    """A bf16 weight of mean 8, std 0.5 (bf16 holds it to 1/32, ~2% of its std) is standardized with
    float32 statistics: within the bf16 rounding of the output of eq. 3 on the same (rounded) weights.
    Statistics in bf16 (mean rounded to 1/32, 6% of the std) land ~7x further off, outside the tolerance.
    """
    conv = ScaledStdConv2d(64, 32, 3)
    with torch.no_grad():
        conv.weight.copy_(8.0 + 0.5 * torch.randn_like(conv.weight))
        conv.gain.uniform_(0.5, 1.5)
    conv_bf16 = ScaledStdConv2d(64, 32, 3).to(torch.bfloat16)
    conv_bf16.load_state_dict(conv.state_dict())
    w16 = conv_bf16.standardized_weight().detach()
    assert w16.dtype == torch.bfloat16
    w_rounded, gain = conv_bf16.weight.detach().double(), conv_bf16.gain.detach().double()
    expected = _eq3_numpy(w_rounded.numpy(), gain.numpy(), conv.eps)
    tol = 2 * 2**-9 * np.abs(expected).max()  # twice bf16's rounding (8 mantissa bits) of the largest value
    assert np.abs(w16.double().numpy() - expected).max() <= tol
    # The same formula with bf16 statistics, to show that the tolerance separates the two.
    flat = conv_bf16.weight.detach().flatten(1)
    mean = flat.mean(1, keepdim=True)
    naive = (
        conv_bf16.gain.detach()[:, None]
        * (flat - mean)
        / (flat.shape[1] * (flat - mean).square().mean(1, keepdim=True) + conv.eps).sqrt()
    )
    assert np.abs(naive.double().numpy() - expected.reshape(32, -1)).max() > 3 * tol
    # Under autocast the float32 weight's statistics stay float32; the conv itself runs in bf16.
    x = torch.randn(2, 64, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    w64 = _eq3_numpy(conv.weight.detach().double().numpy(), conv.gain.detach().double().numpy(), conv.eps)
    y64 = torch.nn.functional.conv2d(x.double(), torch.from_numpy(w64), conv.bias.double(), padding=1)
    assert (y.double() - y64).norm() / y64.norm() < 1e-2


def test_eval_cache_is_reused_and_never_stale():
    conv = ScaledStdConv2d(8, 8, 3).eval()
    x = torch.randn(1, 8, 10, 10)

    def fresh():
        with torch.enable_grad():
            return torch.nn.functional.conv2d(x, conv.standardized_weight().detach(), conv.bias, padding=1)

    with torch.no_grad():
        first = conv(x)
        assert conv._cached_weight() is conv._cached_weight()  # folded once, reused
        torch.testing.assert_close(first, fresh())
        # in-place update, as an optimizer step does
        conv.weight.add_(torch.randn_like(conv.weight))
        torch.testing.assert_close(conv(x), fresh())
        # load_state_dict
        other = ScaledStdConv2d(8, 8, 3)
        conv.load_state_dict(other.state_dict())
        torch.testing.assert_close(conv(x), fresh())
        # gain update
        conv.gain.mul_(2.0)
        torch.testing.assert_close(conv(x), fresh())
    # .to(float64)
    conv = conv.double()
    x = x.double()
    with torch.no_grad():
        assert conv(x).dtype == torch.float64
        torch.testing.assert_close(conv(x), fresh())
    # train(): the cache is dropped, and training mode recomputes with gradients
    conv.train()
    assert conv._cache is None
    y = conv(x)
    y.sum().backward()
    assert conv.weight.grad is not None and conv.gain.grad is not None


def test_squeeze_excite_gain_two_restores_variance():
    x = torch.randn(16, 64, 16, 16)
    se = NFSqueezeExcite(64, 32, "silu", gain=2.0)
    plain = NFSqueezeExcite(64, 32, "silu", gain=1.0)
    plain.load_state_dict(se.state_dict())
    with torch.no_grad():
        y2, y1 = se(x), plain(x)
    torch.testing.assert_close(y2, 2 * y1)
    assert y2.var().item() == pytest.approx(1.0, rel=0.25)
    assert y1.var().item() < 0.5  # the unmodified SE attenuates (paper section 4.4)


def test_stochastic_depth_does_not_rescale():
    dp = StochasticDepth(0.5).train()
    x = torch.ones(4000, 3)
    y = dp(x)
    kept = y[:, 0] != 0
    assert torch.equal(y[kept], x[kept])  # survivors are *not* divided by the keep rate
    assert 0.4 < kept.float().mean() < 0.6
    assert torch.equal(dp.eval()(x), x)


def test_standardization_gradient_is_exact():
    """Scaled WS through the fused batch-norm kernel: value and gradient of eq. 3 (float64)."""
    conv = ScaledStdConv2d(3, 6, 3, input_scale=1.3).double()
    with torch.no_grad():
        conv.gain.uniform_(0.5, 1.5)

    def eq3(w, g):  # independent composition of the paper's formula
        flat = w.flatten(1)
        var, mean = torch.var_mean(flat, 1, unbiased=False, keepdim=True)
        return (g.view(-1, 1) * 1.3 * (flat - mean) / torch.sqrt(var * 27 + conv.eps)).view_as(w)

    def ours(w, g):
        return torch.func.functional_call(_StdWeight(conv), {"conv.weight": w, "conv.gain": g}, ())

    w = conv.weight.detach().clone().requires_grad_(True)
    g = conv.gain.detach().clone().requires_grad_(True)
    torch.testing.assert_close(ours(w, g), eq3(w, g))
    assert torch.autograd.gradcheck(ours, (w, g))
    cot = torch.randn(6, 3, 3, 3, dtype=torch.float64)
    for a, b in zip(
        torch.autograd.grad(ours(w, g), (w, g), cot), torch.autograd.grad(eq3(w, g), (w, g), cot), strict=True
    ):
        torch.testing.assert_close(a, b)


class _StdWeight(torch.nn.Module):
    def __init__(self, conv: ScaledStdConv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self) -> torch.Tensor:
        return self.conv.standardized_weight()

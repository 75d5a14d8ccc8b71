"""NF layers (nf_plugins.layers): defaults, padding, caching rules and gains against independent values.

Written to kill the mutants that test_layers.py leaves alive (docs/mutation.md). Every expected number
is analytic or computed here from the paper's formulas, never by the layer under test.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from nf_plugins.layers import (
    GAMMA_TABLE,
    GammaAct,
    NFSqueezeExcite,
    ScaledStdConv2d,
    StochasticDepth,
    create_act,
    drop_path_keep_mask,
    get_gamma,
    he_init_conv2d,
)

RELU_GAMMA = math.sqrt(2.0 / (1.0 - 1.0 / math.pi))  # paper section 4.3


def _eq3(w: torch.Tensor, gain: torch.Tensor, eps: float, scale: float = 1.0) -> torch.Tensor:
    """Paper eq. 3 in float64: gain * scale * (W - mean) / sqrt(N * Var(W) + eps) per output filter."""
    flat = w.detach().double().flatten(1)
    var, mean = torch.var_mean(flat, 1, unbiased=False, keepdim=True)
    out = gain.detach().double().view(-1, 1) * scale * (flat - mean) / torch.sqrt(flat.shape[1] * var + eps)
    return out.view_as(w)


# ---------------------------------------------------------------- activations
def test_get_gamma_returns_the_table_value_exactly():
    assert get_gamma("relu") == RELU_GAMMA  # not the sampled estimate, which is only within 1%
    assert get_gamma("silu") == GAMMA_TABLE["silu"] == 1.787187
    with pytest.raises(ValueError, match="unknown activation 'nope'"):
        get_gamma("nope")


_ACT_NAMES = (
    "['celu', 'elu', 'gelu', 'gelu_tanh', 'hard_swish', 'identity', 'leaky_relu', 'mish', 'relu', 'relu6', "
    "'selu', 'sigmoid', 'silu', 'softplus', 'softsign', 'swish', 'tanh']"
)


def test_create_act_unknown_name_suggests_close_names_only_when_there_are_some():
    with pytest.raises(ValueError) as info:
        create_act("rleu")
    assert (
        str(info.value)
        == f"unknown activation 'rleu'; did you mean 'relu', 'relu6'? expected one of {_ACT_NAMES}"
    )
    with pytest.raises(ValueError) as info:
        create_act("zzz")
    assert str(info.value) == f"unknown activation 'zzz'; expected one of {_ACT_NAMES}"


def test_create_act_in_place_only_where_supported():
    assert create_act("relu", inplace=True).inplace is True
    assert create_act("relu").inplace is False
    assert isinstance(create_act("tanh", inplace=True), torch.nn.Tanh)  # Tanh has no in-place flag


def test_gamma_act_defaults_explicit_gamma_and_repr():
    act = GammaAct()
    assert act.act == "relu" and act.gamma == RELU_GAMMA and act.fn.inplace is False
    x = torch.linspace(-2, 2, 9)
    torch.testing.assert_close(act(x), torch.relu(x) * RELU_GAMMA)
    two = GammaAct("tanh", gamma=2.0)
    torch.testing.assert_close(two(x), torch.tanh(x) * 2.0)
    one = GammaAct("silu", gamma=1.0)
    torch.testing.assert_close(one(x), F.silu(x))
    assert GammaAct("relu", inplace=True).fn.inplace is True
    assert repr(two) == "GammaAct(\n  act=tanh, gamma=2.000000\n  (fn): Tanh()\n)"


# ---------------------------------------------------------------- Scaled WS conv
def test_scaled_ws_defaults_and_same_padding():
    conv = ScaledStdConv2d(4, 6)
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.dilation == (1, 1)
    assert conv.padding == (1, 1) and conv.groups == 1 and conv.eps == 1e-4 and conv.input_scale == 1.0
    assert conv.fan_in == 36 and conv.bias is not None and torch.equal(conv.bias, torch.zeros(6))
    assert torch.equal(conv.gain, torch.ones(6))
    assert ScaledStdConv2d(4, 6, bias=False).bias is None
    # padding = dilation * (k - 1) // 2 keeps the size at stride 1
    for k, d, pad in ((1, 1, 0), (3, 1, 1), (5, 1, 2), (3, 2, 2), (3, 6, 6), (5, 3, 6), (7, 1, 3)):
        assert ScaledStdConv2d(2, 2, k, dilation=d).padding == (pad, pad), (k, d)
    assert ScaledStdConv2d(8, 4, 3, groups=4).fan_in == 18


def test_scaled_ws_init_is_unit_fan_in_variance():
    # kaiming "linear": std 1/sqrt(fan_in), so N * Var(W) = 1 and eps = 1e-4 is small next to it.
    conv = ScaledStdConv2d(256, 256, 3)
    assert conv.weight.std().item() == pytest.approx(conv.fan_in**-0.5, rel=0.02)


def test_scaled_ws_forward_with_input_scale_gain_bias_and_out_scale():
    conv = ScaledStdConv2d(4, 6, 3, stride=2, dilation=2, input_scale=0.7).double()
    with torch.no_grad():
        conv.gain.uniform_(0.5, 2.0)
        conv.bias.uniform_(-1, 1)
        conv.weight.mul_(5.0).add_(0.3)
    x = torch.randn(2, 4, 11, 9, dtype=torch.float64)
    w = _eq3(conv.weight, conv.gain, 1e-4, 0.7)
    ref = F.conv2d(x, w, conv.bias, stride=2, padding=2, dilation=2)
    torch.testing.assert_close(conv(x), ref)
    s = torch.linspace(0.5, 3.0, 6, dtype=torch.float64)
    ref_s = F.conv2d(x, w * s.view(-1, 1, 1, 1), conv.bias * s, stride=2, padding=2, dilation=2)
    torch.testing.assert_close(conv(x, s), ref_s)
    torch.testing.assert_close(conv.standardized_weight(s), w * s.view(-1, 1, 1, 1))
    plain = ScaledStdConv2d(4, 6, 3, bias=False).double()
    torch.testing.assert_close(
        plain(x, s), F.conv2d(x, _eq3(plain.weight, plain.gain, 1e-4) * s.view(-1, 1, 1, 1), padding=1)
    )


def test_scaled_ws_eps_is_on_fan_in_times_variance():
    # A tiny weight makes eps dominate: the result tells eps/N from eps*N and from a missing eps.
    conv = ScaledStdConv2d(3, 2, 3, eps=1e-2).double()
    with torch.no_grad():
        conv.weight.mul_(1e-2)
    torch.testing.assert_close(conv.standardized_weight(), _eq3(conv.weight, conv.gain, 1e-2))


def test_channels_last_weight_is_standardized_in_place_layout():
    conv = ScaledStdConv2d(6, 4, 3).double()
    with torch.no_grad():
        conv.gain.uniform_(0.5, 2.0)
    ref = _eq3(conv.weight, conv.gain, 1e-4)
    conv = conv.to(memory_format=torch.channels_last)
    w = conv.standardized_weight()
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    torch.testing.assert_close(w, ref)


def test_weight_cache_only_in_eval_without_grad_and_when_enabled():
    conv = ScaledStdConv2d(3, 4, 3)
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        conv(x)  # training mode: recomputed, nothing cached
    assert conv._cache is None
    conv.eval()
    conv(x).sum().backward()  # eval with grad (fine-tuning a frozen-mode layer): gradients flow
    assert conv._cache is None and conv.weight.grad.abs().sum() > 0 and conv.gain.grad.abs().sum() > 0
    with torch.no_grad():
        out = conv(x)
    assert conv._cache is not None
    torch.testing.assert_close(out, F.conv2d(x, conv.standardized_weight(), conv.bias, padding=1))
    off = ScaledStdConv2d(3, 4, 3).eval()
    off.cache_weight = False
    with torch.no_grad():
        off(x)
    assert off._cache is None
    assert conv.train()._cache is None and conv.training and all(m.training for m in conv.modules())
    assert not conv.train(False).training


def test_scaled_ws_repr_shows_eps_and_only_a_non_unit_input_scale():
    assert repr(ScaledStdConv2d(2, 3, 1)).endswith("kernel_size=(1, 1), stride=(1, 1), eps=0.0001)")
    assert repr(ScaledStdConv2d(2, 3, 1, input_scale=2.0)).endswith(", eps=0.0001, input_scale=2.000000)")


def test_he_init_conv_is_the_relu_fan_in_baseline():
    conv = he_init_conv2d(128, 256, 3, dilation=2)
    assert type(conv) is torch.nn.Conv2d and conv.padding == (2, 2) and conv.stride == (1, 1)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2.0 / (128 * 9)), rel=0.02)
    assert torch.equal(conv.bias, torch.zeros(256))
    assert he_init_conv2d(4, 4, 5).padding == (2, 2)
    small = he_init_conv2d(4, 6, 1, stride=2, groups=2, bias=False)
    assert small.bias is None and small.stride == (2, 2) and small.groups == 2 and small.padding == (0, 0)


# ---------------------------------------------------------------- squeeze-excite, stochastic depth
def test_squeeze_excite_is_two_times_the_sigmoid_gate():
    se = NFSqueezeExcite(6, 3)
    assert se.gain == 2.0 and se.act.act == "silu" and se.act.gamma == GAMMA_TABLE["silu"]
    assert se.fc1.bias is not None and se.fc2.bias is not None and se.fc1.kernel_size == (1, 1)
    with torch.no_grad():
        for p in se.parameters():
            p.uniform_(-1, 1)
    x = torch.randn(2, 6, 5, 4)
    pooled = x.mean((2, 3))  # written out: fc1 -> gamma*silu -> fc2 -> sigmoid, times 2
    h = F.silu(pooled @ se.fc1.weight.view(3, 6).T + se.fc1.bias) * GAMMA_TABLE["silu"]
    gate = torch.sigmoid(h @ se.fc2.weight.view(6, 3).T + se.fc2.bias)
    torch.testing.assert_close(se(x), x * 2.0 * gate[:, :, None, None])
    assert repr(se).startswith("NFSqueezeExcite(\n  gain=2.0")


@pytest.mark.parametrize("channels_last", [False, True])
def test_squeeze_excite_matmul_path_equals_the_conv_formulation_with_gradients(channels_last):
    """The SE runs its 1x1 convs as F.linear on the pooled vector: the same values and gradients (x,
    weights, biases) as the convs applied to the pooled 1x1 map, in float64, at batch 1 (where PyTorch
    picks its im2col conv) and batch 3, NCHW and channels_last."""
    for batch in (1, 3):
        se = NFSqueezeExcite(12, 5).double()
        with torch.no_grad():
            for p in se.parameters():
                p.uniform_(-1, 1)
        x = torch.randn(batch, 12, 6, 5, dtype=torch.float64)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x_ref = x.detach().clone().requires_grad_(True)
        x = x.requires_grad_(True)
        pooled = x_ref.mean((2, 3), keepdim=True)
        h = se.act(F.conv2d(pooled, se.fc1.weight, se.fc1.bias))
        ref = x_ref * 2.0 * torch.sigmoid(F.conv2d(h, se.fc2.weight, se.fc2.bias))
        grad_out = torch.randn_like(ref)
        ref_grads = torch.autograd.grad(ref, [x_ref, *se.parameters()], grad_out)
        out = se(x)
        grads = torch.autograd.grad(out, [x, *se.parameters()], grad_out)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
        for got, want in zip(grads, ref_grads, strict=True):
            assert want.abs().max() > 0
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_keep_mask_is_per_sample_with_keep_rate_one_minus_p():
    x = torch.ones(20000, 3, 2, 2)
    mask = drop_path_keep_mask(x, 0.25)
    assert mask.shape == (20000, 1, 1, 1)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert mask.mean().item() == pytest.approx(0.75, abs=0.015)
    assert drop_path_keep_mask(torch.ones(5, 2), 0.0).shape == (5, 1)


def test_stochastic_depth_default_drops_nothing():
    x = torch.ones(64, 4)
    torch.testing.assert_close(StochasticDepth().train()(x), x)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_weights_are_standardized_with_float32_statistics(dtype):
    # Statistics in the weight's own dtype round every element a second time: ~90% of the entries then
    # differ from eq. 3 (float64, rounded once); with float32 statistics (nearly) none do.
    conv = ScaledStdConv2d(64, 64, 3)
    with torch.no_grad():
        conv.weight.mul_(1.5).add_(0.5)
        conv.gain.uniform_(0.5, 1.5)
    conv = conv.to(dtype)
    s = (torch.rand(64) + 0.5).to(dtype)
    ref = _eq3(conv.weight, conv.gain, 1e-4)
    got, got_s = conv.standardized_weight(), conv.standardized_weight(s)
    assert got.dtype == got_s.dtype == dtype
    assert (got != ref.to(dtype)).float().mean() < 0.01
    assert (got_s != (ref * s.double().view(-1, 1, 1, 1)).to(dtype)).float().mean() < 0.01


def test_grouped_scaled_ws_conv_in_every_path():
    conv = ScaledStdConv2d(8, 6, 3, groups=2).double()
    with torch.no_grad():
        conv.bias.uniform_(-1, 1)
    x = torch.randn(2, 8, 7, 7, dtype=torch.float64)
    w = _eq3(conv.weight, conv.gain, 1e-4)
    ref = F.conv2d(x, w, conv.bias, padding=1, groups=2)
    torch.testing.assert_close(conv(x), ref)  # training path
    s = torch.full((6,), 0.5, dtype=torch.float64)
    torch.testing.assert_close(conv(x, s), 0.5 * ref)  # out_scale path
    with torch.no_grad():
        torch.testing.assert_close(conv.eval()(x), ref)  # cached inference path


def test_compiled_inference_recomputes_the_weight():
    conv = ScaledStdConv2d(3, 4, 3).eval()
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        ref = F.conv2d(x, _eq3(conv.weight, conv.gain, 1e-4).float(), conv.bias, padding=1)
        torch.testing.assert_close(torch.compile(conv, backend="eager")(x), ref)


def test_he_init_conv_forward_keeps_the_size():
    conv = he_init_conv2d(4, 6)
    assert conv.kernel_size == (3, 3) and conv.dilation == (1, 1)
    x = torch.randn(1, 4, 9, 8)
    assert conv(x).shape == (1, 6, 9, 8)
    assert he_init_conv2d(4, 6, 3, dilation=3)(x).shape == (1, 6, 9, 8)
    assert he_init_conv2d(4, 6, 5, stride=2)(x).shape == (1, 6, 5, 4)

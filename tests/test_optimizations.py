"""Every speed optimization keeps outputs and gradients equal to the plain (explicit-multiply) path."""

import dataclasses

import pytest
import torch

from nf_plugins.layers import ScaledStdConv2d
from nf_plugins.models import NormFreeBlock, NormFreeNet
from nf_plugins.models.nf_regnet import model_cfgs as regnet_cfgs
from nf_plugins.models.nf_resnet import model_cfgs as resnet_cfgs

CFGS = {"nf_resnet26": resnet_cfgs["nf_resnet26"], "nf_regnet_b0": regnet_cfgs["nf_regnet_b0"]}


def _pair(name: str, **kwargs):
    folded = NormFreeNet(CFGS[name], num_classes=10, **kwargs)
    plain = NormFreeNet(dataclasses.replace(CFGS[name], fold_scalars=False), num_classes=10, **kwargs)
    for m in folded.modules():
        if isinstance(m, NormFreeBlock):
            m.skipinit_gain.data.uniform_(0.5, 1.5)
    torch.nn.init.normal_(folded.get_classifier().weight, std=0.1)
    plain.load_state_dict(folded.state_dict())  # identical parameters: folding adds none
    return folded, plain


@pytest.mark.parametrize("name", sorted(CFGS))
def test_folded_constants_match_plain_path(name):
    folded, plain = _pair(name, drop_path_rate=0.3)
    block = folded.stages[1][1]
    assert block.folded and block.act2.gamma == 1.0 and block.conv2.input_scale > 1.0
    assert not plain.stages[1][1].folded and plain.stages[1][1].conv2.input_scale == 1.0
    x = torch.randn(2, 3, 64, 64)
    outs, grads = [], []
    for model in (folded, plain):
        torch.manual_seed(3)  # the same stochastic-depth masks on both paths
        out = model.train()(x)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append({n: p.grad for n, p in model.named_parameters()})
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    for n, g in grads[1].items():  # float32 reassociation: compare relative to each gradient's scale
        assert (grads[0][n] - g).abs().max() <= 1e-4 * g.abs().max() + 1e-7, n
    with torch.no_grad():
        torch.testing.assert_close(folded.eval()(x), plain.eval()(x), rtol=1e-5, atol=1e-5)


def test_input_scale_is_exact_algebra():
    conv = ScaledStdConv2d(8, 4, 3, input_scale=1.7)
    ref = ScaledStdConv2d(8, 4, 3)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(2, 8, 9, 9)
    torch.testing.assert_close(conv(x), ref(1.7 * x), rtol=1e-5, atol=1e-5)


def test_channels_last_matches():
    folded, _ = _pair("nf_regnet_b0")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = folded.eval()(x)
        out = folded.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_out_scale_is_exact_algebra_with_gradients():
    """conv(x, out_scale=s) == s * conv(x), and so are the gradients of weight, gain, bias and s."""
    conv = ScaledStdConv2d(8, 4, 3, input_scale=1.3)
    torch.nn.init.normal_(conv.bias)
    ref = ScaledStdConv2d(8, 4, 3, input_scale=1.3)
    ref.load_state_dict(conv.state_dict())
    s, s_ref = (torch.tensor(0.7, requires_grad=True) for _ in range(2))
    x = torch.randn(2, 8, 9, 9)
    out, expected = conv(x, s), s_ref * ref(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    out.square().sum().backward()
    expected.square().sum().backward()
    for (name, p), q in zip(conv.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(s.grad, s_ref.grad, rtol=1e-4, atol=1e-5)


def test_channels_last_training_keeps_weight_layout_and_gradients():
    """A channels_last model standardizes its weights in place of layout: no reorder, same numbers."""
    folded, _ = _pair("nf_resnet26")
    cl, _ = _pair("nf_resnet26")
    cl.load_state_dict(folded.state_dict())
    cl = cl.to(memory_format=torch.channels_last)
    conv = cl.stages[0][0].conv2
    assert conv.standardized_weight().is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64)
    out_ref = folded.train()(x)
    out = cl.train()(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, out_ref, rtol=1e-4, atol=1e-4)
    out.square().sum().backward()
    out_ref.square().sum().backward()
    for (name, p), q in zip(cl.named_parameters(), folded.parameters(), strict=True):
        assert (p.grad - q.grad).abs().max() <= 1e-3 * q.grad.abs().max() + 1e-7, name

"""Numerical robustness (issue 9): mixed precision, extreme weight scales, gradient checkpointing.

Scaled WS computes its statistics in float32 whatever the autocast dtype, so bf16/fp16 runs stay finite
and close to float32. Every paper model is swept under ``-m slow``; one ResNet and one RegNet by default.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nf_plugins
from nf_plugins.layers import ScaledStdConv2d
from nf_plugins.models import NormFreeBlock, create_model

_FAST = {("nf_resnet26", torch.bfloat16), ("nf_resnet26", torch.float16), ("nf_regnet_b0", torch.bfloat16)}
# bf16 keeps 8 mantissa bits, fp16 11: tolerances on (logits relative error, gradient cosine similarity)
_TOL = {torch.bfloat16: (0.1, 0.98), torch.float16: (0.02, 0.995)}


def _nontrivial(name: str) -> torch.nn.Module:
    """A model whose blocks and head are not zero-initialised (else every comparison is 0 vs 0)."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, drop_rate=0.0)
    torch.nn.init.normal_(model.get_classifier().weight, std=0.1)
    for m in model.modules():
        if isinstance(m, NormFreeBlock):
            m.skipinit_gain.data.fill_(0.2)
    return model.train()


def _fwd_bwd(model, x, dtype):
    model.zero_grad()
    with torch.autocast(x.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        y = model(x)
    y.float().square().sum().backward()
    return y.float().detach(), torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        pytest.param(n, d, id=f"{n}-{str(d)[6:]}", marks=() if (n, d) in _FAST else pytest.mark.slow)
        for n in nf_plugins.PAPER_MODELS
        for d in (torch.bfloat16, torch.float16)
    ],
)
def test_autocast_forward_backward_is_finite_and_close_to_fp32(name, dtype):
    model = _nontrivial(name)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y32, g32 = _fwd_bwd(model, x, None)
    try:
        y, g = _fwd_bwd(model, x, dtype)
    except RuntimeError as e:  # fp16 CPU kernels are missing in some torch builds
        pytest.skip(f"{dtype} autocast on CPU unsupported here: {e}")
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    logits_tol, cos_tol = _TOL[dtype]
    assert y32.abs().max() > 1e-2
    assert (y - y32).norm() / y32.norm() < logits_tol
    assert F.cosine_similarity(g, g32, dim=0) > cos_tol


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["nf_resnet50", "nf_regnet_b0"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_cuda_autocast_forward_backward_is_finite_and_close_to_fp32(name, dtype):
    """The same check on the GPU (cuDNN kernels, fp16 overflow risk), with channels_last as users run it."""
    model = _nontrivial(name).cuda().to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1)).cuda()
    x = x.to(memory_format=torch.channels_last)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # a true fp32 reference
    y32, g32 = _fwd_bwd(model, x, None)
    y, g = _fwd_bwd(model, x, dtype)
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    logits_tol, cos_tol = _TOL[dtype]
    assert (y - y32).norm() / y32.norm() < logits_tol
    assert F.cosine_similarity(g, g32, dim=0) > cos_tol


def _standardized_reference(w: np.ndarray, gain: np.ndarray, eps: float) -> np.ndarray:
    """Equation (3) of the paper with timm's eps, in float64 numpy."""
    n = w[0].size
    flat = w.reshape(len(w), -1)
    var = flat.var(axis=1, keepdims=True)
    out = gain.reshape(-1, 1) * (flat - flat.mean(axis=1, keepdims=True)) / np.sqrt(n * var + eps)
    return out.reshape(w.shape)


@pytest.mark.parametrize("scale", [1e3, 1e-3])
def test_scaled_ws_stays_finite_and_exact_for_extreme_weight_scales(scale):
    torch.manual_seed(0)
    conv = ScaledStdConv2d(16, 8, 3, padding=1)
    with torch.no_grad():
        conv.weight.mul_(scale)
        conv.gain.uniform_(0.5, 1.5)
    w = conv.standardized_weight()
    ref = _standardized_reference(
        conv.weight.detach().double().numpy(), conv.gain.detach().double().numpy(), conv.eps
    )
    np.testing.assert_allclose(w.detach().double().numpy(), ref, rtol=1e-4, atol=1e-7)
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    y = conv(x)
    y.square().sum().backward()
    for t in (y, x.grad, conv.weight.grad, conv.gain.grad):
        assert torch.isfinite(t).all()


def test_whole_model_with_scaled_weights_stays_finite():
    """x1e3 changes nothing (Scaled WS is scale-invariant); x1e-3 falls below eps and shrinks the
    weights (the standardizer is eps-regularised, as in the paper and timm) but stays finite."""
    model = _nontrivial("nf_regnet_b0").eval()
    convs = [m for m in model.modules() if isinstance(m, ScaledStdConv2d)]
    originals = [c.weight.detach().clone() for c in convs]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        for scale in (1e3, 1e-3):
            for c, w in zip(convs, originals, strict=True):
                c.weight.copy_(w * scale)
            y = model(x)
            assert torch.isfinite(y).all(), scale
            if scale > 1:
                torch.testing.assert_close(y, ref, rtol=1e-3, atol=1e-4)


def test_grad_checkpointing_gives_same_gradients_on_a_regnet():
    """tests/test_models.py checks nf_resnet26; this covers SE and grouped convs (nf_regnet_b0)."""
    model = _nontrivial("nf_regnet_b0")
    x = torch.randn(1, 3, 32, 32)
    _, plain = _fwd_bwd(model, x, None)
    model.set_grad_checkpointing(True)
    _, ckpt = _fwd_bwd(model, x, None)
    assert plain.abs().max() > 0
    torch.testing.assert_close(ckpt, plain)

"""Scaled Weight Standardization conv (paper eq. 3, appendix B.1).

``W_hat = gain * (W - mean(W)) / sqrt(N * Var(W) + eps)`` over each filter's fan-in N, with a
learnable per-output gain (init 1) next to the weight and a bias (init 0) on the output, so that
both fold into a plain convolution at inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def scaled_ws_weight(
    weight: torch.Tensor, gain: torch.Tensor, scale: float, eps: float, out_scale: torch.Tensor | None = None
) -> torch.Tensor:
    """``gain * scale * (W - mean) / sqrt(var + eps)`` per output filter (``scale``: input scale / sqrt(N)).

    With ``eps = eps_paper / N`` this is the paper's ``gain * (W - mean) / sqrt(N var + eps_paper)``, written
    as a batch norm over each filter's fan-in with affine weight ``gain * scale``: it runs as one fused
    kernel forward and backward, and autograd keeps only W and per-filter statistics (timm's
    ScaledStdConv2d uses the same kernel). Statistics are at least float32.
    """
    dtype = torch.promote_types(weight.dtype, torch.float32)
    affine = gain.to(dtype) * scale
    if out_scale is not None:
        affine = affine * out_scale.to(dtype)
    # Per-filter statistics do not depend on the order of a filter's elements, so a channels_last
    # weight is standardized in its own (O, kh, kw, I) layout and comes back channels_last: the conv
    # then needs no weight reorder, forward or backward.
    channels_last = not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last)
    w = weight.permute(0, 2, 3, 1) if channels_last else weight
    out = F.batch_norm(
        w.to(dtype).reshape(1, w.shape[0], -1), None, None, weight=affine,
        training=True, momentum=0.0, eps=eps,
    ).reshape(w.shape).to(weight.dtype)  # fmt: skip
    return out.permute(0, 3, 1, 2) if channels_last else out


# FX tracing (timm's feature_cls="fx", torchvision's feature extraction, quantization) records the
# standardization as one call instead of tracing its layout test, which a Proxy cannot answer.
torch.fx.wrap("scaled_ws_weight")


class ScaledStdConv2d(nn.Conv2d):
    """Conv2d whose weight is re-standardized (Scaled WS) in every training forward.

    Statistics are computed in float32 whatever the parameter or autocast dtype. In eval mode with
    gradients off (``torch.no_grad``/``inference_mode``) the standardized weight is cached, so
    inference costs a plain conv; the cache is keyed on the versions, storage and dtype of
    ``weight`` and ``gain``, so an optimizer step, ``load_state_dict``, ``.to()`` or ``train()``
    can never leave it stale.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        eps: float = 1e-4,
        input_scale: float = 1.0,
    ) -> None:
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.gain = nn.Parameter(torch.ones(out_channels))
        self.eps = eps
        # A constant that multiplies the input (e.g. the previous activation's gamma and 1/beta), folded
        # into the weight: conv(s * x, W) == conv(x, s * W), one multiply per weight, not per activation.
        self.input_scale = float(input_scale)
        self.fan_in = (in_channels // groups) * kernel_size * kernel_size
        nn.init.kaiming_normal_(self.weight, nonlinearity="linear")  # any scale: WS removes it
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        self.cache_weight = True  # set False to recompute every call (the benchmark's baseline)
        self._cache_key: tuple = ()
        self._cache: torch.Tensor | None = None

    def standardized_weight(self, out_scale: torch.Tensor | None = None) -> torch.Tensor:
        """The Scaled WS weight, differentiable w.r.t. ``weight`` and ``gain`` (and ``out_scale``)."""
        return scaled_ws_weight(
            self.weight, self.gain, self.input_scale * self.fan_in**-0.5, self.eps / self.fan_in, out_scale
        )

    @torch.jit.unused
    def _cached_weight(self) -> torch.Tensor:
        if torch.fx._symbolic_trace.is_fx_symbolic_tracing():  # traced under no_grad: no cache in a graph
            return self.standardized_weight()
        w, g = self.weight, self.gain
        key = (w._version, g._version, w.data_ptr(), g.data_ptr(), w.dtype, w.device)
        if self._cache is None or key != self._cache_key:
            with torch.no_grad():
                self._cache = self.standardized_weight()
            self._cache_key = key
        return self._cache

    def forward(self, x: torch.Tensor, out_scale: torch.Tensor | None = None) -> torch.Tensor:
        """``conv(x)``, or ``out_scale * conv(x)`` computed as a conv with scaled weight and bias.

        ``out_scale`` (a scalar or per-output-channel tensor, e.g. a residual branch's SkipInit gain) is
        folded into the Scaled WS affine, so its gradient costs a per-filter reduction instead of two
        activation-sized multiplies in the backward pass.
        """
        if out_scale is not None:
            bias = self.bias
            if bias is not None:
                bias = bias * out_scale
            weight = self.standardized_weight(out_scale)
            return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        if torch.jit.is_scripting() or torch.compiler.is_compiling():
            weight = self.standardized_weight()
        elif self.training or torch.is_grad_enabled() or not self.cache_weight:
            weight = self.standardized_weight()
        else:
            weight = self._cached_weight()
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def train(self, mode: bool = True) -> ScaledStdConv2d:
        self._cache, self._cache_key = None, ()
        return super().train(mode)

    def extra_repr(self) -> str:
        extra = f", eps={self.eps}"
        if self.input_scale != 1.0:
            extra += f", input_scale={self.input_scale:.6f}"
        return super().extra_repr() + extra


def he_init_conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = True,
) -> nn.Conv2d:
    """A plain conv with He (fan-in, ReLU) init: the unnormalized baseline of the paper's figure 2."""
    conv = nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride,
        dilation * (kernel_size - 1) // 2,
        dilation,
        groups,
        bias,
    )
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv

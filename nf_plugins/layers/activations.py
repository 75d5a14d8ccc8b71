"""Gamma-scaled activations: g(x) * gamma with gamma = 1 / sqrt(Var(g(x))), x ~ N(0, 1).

The paper (section 4.3, appendix D.1) scales every nonlinearity so that a unit-Gaussian input
gives a unit-variance output. ``GAMMA_TABLE`` holds the exact population values (computed by
Gaussian quadrature; ReLU equals the analytic sqrt(2 / (1 - 1/pi))), and ``estimate_gamma``
reproduces the paper's sampling estimator for any callable.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ..errors import did_you_mean

ActFn = Callable[[torch.Tensor], torch.Tensor]

# Modules, not functions, so that TorchScript can compile GammaAct.
_ACT_LAYERS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "celu": nn.CELU,
    "selu": nn.SELU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
    "mish": nn.Mish,
    "softsign": nn.Softsign,
    "hard_swish": nn.Hardswish,
    "relu6": nn.ReLU6,
    "identity": nn.Identity,
}
ACTIVATIONS: tuple[str, ...] = tuple(_ACT_LAYERS)  # the names create_act and GammaAct accept

# 1 / sqrt(Var(g(x))) for x ~ N(0, 1), by quadrature over [-12, 12] in float64.
GAMMA_TABLE: dict[str, float] = {
    "relu": math.sqrt(2.0 / (1.0 - 1.0 / math.pi)),  # 1.712859, analytic (paper section 4.3)
    "silu": 1.787187,
    "swish": 1.787187,
    "gelu": 1.700926,
    "gelu_tanh": 1.700917,
    "tanh": 1.592537,
    "sigmoid": 4.801313,
    "elu": 1.270843,
    "celu": 1.270843,
    "selu": 1.000000,
    "softplus": 1.919126,
    "leaky_relu": 1.704832,
    "mish": 1.592025,
    "softsign": 2.337533,
    "hard_swish": 1.813871,
    "relu6": 1.712859,
    "identity": 1.0,
}


_INPLACE_CAPABLE = {
    "relu",
    "silu",
    "swish",
    "elu",
    "celu",
    "selu",
    "leaky_relu",
    "mish",
    "hard_swish",
    "relu6",
}


def create_act(name: str, inplace: bool = False) -> nn.Module:
    """The plain (unscaled) activation module registered under ``name``."""
    try:
        factory = _ACT_LAYERS[name]
    except KeyError:
        hint = did_you_mean(str(name), _ACT_LAYERS)
        raise ValueError(
            f"unknown activation {name!r}; {hint + ' ' if hint else ''}expected one of {sorted(_ACT_LAYERS)}"
        ) from None
    if inplace and name in _INPLACE_CAPABLE:
        return factory(inplace=True)
    return factory()


@torch.no_grad()
def estimate_gamma(
    fn: ActFn | str, num_vectors: int = 1024, dim: int = 256, seed: int = 2, dtype=torch.float64
) -> float:
    """The paper's numerical estimator of gamma (appendix D.1) for any activation.

    Samples ``num_vectors`` unit-Gaussian vectors of size ``dim``, takes the (population) variance of
    ``fn`` over each vector, averages, and returns ``mean_var ** -0.5``.
    """
    if isinstance(fn, str):
        fn = create_act(fn)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(num_vectors, dim, generator=gen, dtype=dtype)
    mean_var = fn(x).var(dim=1, unbiased=False).mean()
    return float(mean_var.rsqrt())


def get_gamma(name: str) -> float:
    """Gamma for a named activation: the table value, else the numerical estimate."""
    if name in GAMMA_TABLE:
        return GAMMA_TABLE[name]
    return estimate_gamma(create_act(name))


class GammaAct(nn.Module):
    """``gamma * g(x)``: an activation rescaled to preserve unit variance on N(0, 1) input."""

    def __init__(self, act: str = "relu", gamma: float | None = None, inplace: bool = False) -> None:
        super().__init__()
        self.act = act
        self.fn = create_act(act, inplace=inplace)
        self.gamma = float(get_gamma(act) if gamma is None else gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gamma == 1.0:  # gamma folded elsewhere (or identity): no elementwise multiply
            return self.fn(x)
        return self.fn(x) * self.gamma

    def extra_repr(self) -> str:
        return f"act={self.act}, gamma={self.gamma:.6f}"

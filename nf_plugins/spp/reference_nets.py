"""The networks of the paper's Signal Propagation Plots (figures 1, 2 and 6-11), at any depth.

All are ResNet-600-style bottleneck nets by default: 4 stages of 50 blocks (600 = 4 x 50 x 3 convs),
widths 256/512/1024/2048, a 7x7/2 stem conv and 3x3/2 max-pool. The NF variants are our own
``NormFreeNet``, made by ``create_model("nf_resnet50", ...)`` from config overrides alone (SkipInit gains
1, since the paper's SPPs show the branches at work; constants folded as in every NF model); the
post-activation ResNet-V1 is timm's ``ResNet``; the pre-activation BN / unnormalized / linear nets and
FixUp are defined here from torch's BatchNorm and our He-init conv.

He init follows He et al. (2015)'s derivation ``fan_in * Var(W) * E[x^2] = 1``: gain 2 for a conv
whose input is rectified (E[x^2] = Var/2), gain 1 where its input is not (after BN in ReLU-BN-Conv,
at the stem, in linear nets). That is what gives ReLU-BN-Conv its residual variance of 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from ..errors import did_you_mean
from ..layers import create_act, he_init_conv2d
from ..models import NormFreeNet, create_model
from .adapters import BlockFamily, register_family

WIDTHS = (256, 512, 1024, 2048)
STRIDES = (1, 2, 2, 2)
Order = Literal["bn_act", "act_bn", "act"]


def blocks_per_stage(depth: int) -> int:
    """Blocks per stage for a ``depth``-layer net: 4 stages of bottlenecks with 3 convs each."""
    if depth < 12 or depth % 12:
        raise ValueError(
            f"depth must be a positive multiple of 12 (4 stages x 3-conv bottlenecks), got {depth}; "
            "the paper's nets are depth 600 = [50, 50, 50, 50] blocks"
        )
    return depth // 12


def he_conv(
    in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, rectified: bool = True
) -> nn.Conv2d:
    """A He-initialised conv; ``rectified=False`` for inputs that are not ReLU outputs (gain 1)."""
    conv = he_init_conv2d(in_chs, out_chs, kernel_size, stride=stride, bias=False)
    if not rectified:
        nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="linear")
    return conv


class PreAct(nn.Module):
    """The pre-activation of a ResNetV2 conv: BN-act, act-BN, or act alone (unnormalized)."""

    def __init__(self, chs: int, order: Order, act: str) -> None:
        super().__init__()
        self.order = order
        self.norm = nn.BatchNorm2d(chs) if order != "act" else nn.Identity()
        self.act = create_act(act)

    @property
    def rectifies(self) -> bool:
        """Whether the following conv sees a rectified input (the activation comes last)."""
        return self.order != "act_bn" and isinstance(self.act, nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order == "act_bn":
            return self.norm(self.act(x))
        return self.act(self.norm(x))


class PreActBottleneckRef(nn.Module):
    """ResNetV2 bottleneck: pre -> 1x1 -> pre -> 3x3 -> pre -> 1x1, plus the skip; transition
    blocks convolve the pre-activated input on their shortcut (paper appendix E, figure 4)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, order: Order, act: str) -> None:
        super().__init__()
        mid = out_chs // 4
        self.pre1, self.pre2, self.pre3 = (PreAct(c, order, act) for c in (in_chs, mid, mid))
        rect = self.pre1.rectifies
        proj = stride > 1 or in_chs != out_chs
        self.downsample = he_conv(in_chs, out_chs, 1, stride, rect) if proj else None
        self.conv1 = he_conv(in_chs, mid, 1, 1, rect)
        self.conv2 = he_conv(mid, mid, 3, stride, rect)
        self.conv3 = he_conv(mid, out_chs, 1, 1, rect)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.pre1(x)
        shortcut = self.downsample(pre) if self.downsample is not None else x
        out = self.conv1(pre)
        out = self.conv2(self.pre2(out))
        return self.conv3(self.pre3(out)) + shortcut


class ScalarBias(nn.Module):
    """FixUp's scalar multiplier and/or bias (init 1 and 0)."""

    def __init__(self, scale: bool = False) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.scale = nn.Parameter(torch.ones(())) if scale else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.scale if self.scale is not None else x) + self.bias


class FixupBottleneck(nn.Module):
    """FixUp bottleneck (Zhang et al., 2019): post-activation, no norm, scalar biases, He init
    scaled by ``L ** -1/4`` on the first two convs and a zero-initialised last conv."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, num_blocks: int) -> None:
        super().__init__()
        mid = out_chs // 4
        self.bias1a, self.bias1b, self.bias2a, self.bias2b, self.bias3a = (ScalarBias() for _ in range(5))
        self.conv1 = he_conv(in_chs, mid, 1)
        self.conv2 = he_conv(mid, mid, 3, stride)
        self.conv3 = he_conv(mid, out_chs, 1)
        self.scale_bias = ScalarBias(scale=True)  # ends the residual branch
        proj = stride > 1 or in_chs != out_chs
        self.downsample = he_conv(in_chs, out_chs, 1, stride) if proj else None
        self.act = nn.ReLU()
        with torch.no_grad():
            self.conv1.weight.mul_(num_blocks**-0.25)  # L^(-1/(2m-2)) with m = 3 layers per branch
            self.conv2.weight.mul_(num_blocks**-0.25)
            self.conv3.weight.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xa = self.bias1a(x)
        shortcut = self.downsample(xa) if self.downsample is not None else x
        out = self.act(self.bias1b(self.conv1(xa)))
        out = self.act(self.bias2b(self.conv2(self.bias2a(out))))
        out = self.scale_bias(self.conv3(self.bias3a(out)))
        return self.act(out + shortcut)


class RefResNet(nn.Module):
    """Stem (7x7/2 conv, optional 3x3/2 max-pool) and four stages of ``make_block`` blocks."""

    def __init__(
        self,
        depth: int,
        make_block: Callable[[int, int, int], nn.Module],
        pool: bool = True,
        stem_post: nn.Module | None = None,
        widths: tuple[int, ...] = WIDTHS,
    ) -> None:
        super().__init__()
        n = blocks_per_stage(depth)
        stem_chs = widths[0] // 4  # the paper's 64 for its 256-wide first stage
        self.stem = nn.Sequential(
            he_conv(3, stem_chs, 7, 2, rectified=False),
            stem_post or nn.Identity(),
            nn.MaxPool2d(3, 2, 1) if pool else nn.Identity(),
        )
        stages, prev = [], stem_chs
        for out_chs, stride in zip(widths, STRIDES, strict=True):
            stages.append(
                nn.Sequential(
                    *(
                        make_block(prev if i == 0 else out_chs, out_chs, stride if i == 0 else 1)
                        for i in range(n)
                    )
                )
            )
            prev = out_chs
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


register_family(
    BlockFamily("reference ResNetV2 (BN / unnormalized / linear)", (PreActBottleneckRef,), lambda m: m.conv3)
)
register_family(BlockFamily("reference FixUp", (FixupBottleneck,), lambda m: m.scale_bias))


# ---- builders ------------------------------------------------------------------------------------
def preact_resnet(
    depth: int = 600,
    order: Order = "bn_act",
    act: str = "relu",
    pool: bool = True,
    widths: tuple[int, ...] = WIDTHS,
) -> RefResNet:
    """Pre-activation ResNetV2: BN-ReLU-Conv (``bn_act``), ReLU-BN-Conv (``act_bn``) or no norm (``act``).

    ``widths``: the 4 stages' output widths (the paper's by default; smaller ones for cheap tests).
    """
    return RefResNet(
        depth, lambda i, o, s: PreActBottleneckRef(i, o, s, order, act), pool=pool, widths=widths
    )


def fixup_resnet(depth: int = 600) -> RefResNet:
    """FixUp ResNet (post-activation, no normalization)."""
    n_total = 4 * blocks_per_stage(depth)
    return RefResNet(
        depth,
        lambda i, o, s: FixupBottleneck(i, o, s, n_total),
        stem_post=nn.Sequential(ScalarBias(), nn.ReLU()),
    )


def resnet_v1(depth: int = 600) -> nn.Module:
    """Post-activation ResNet-V1 with BN (timm's ``ResNet``), last BN gamma 1 rather than zero."""
    from timm.models.resnet import Bottleneck, ResNet

    n = blocks_per_stage(depth)
    return ResNet(Bottleneck, [n] * 4, num_classes=0, zero_init_last=False)


def nf_resnet(
    depth: int = 600,
    alpha: float = 0.2,
    conv_type: Literal["scaled_ws", "he_init"] = "scaled_ws",
    act: str = "relu",
    gamma: float | None = None,
    se_gain: float | None = None,
    pool: bool = True,
    widths: tuple[int, ...] = WIDTHS,
) -> NormFreeNet:
    """NF-ResNetV2 (our ``NormFreeNet``: ``nf_resnet50`` with config overrides) with SkipInit gains 1.

    ``gamma`` overrides the gain of every activation (the paper's figure 8 uses sqrt(2)); ``se_gain`` adds
    squeeze-excite (ratio 1/4 of the bottleneck, 1/16 of the block width) with that output gain (2 is the
    NF correction, 1 the unmodified SE of figure 9). ``conv_type="he_init"`` with ``act="identity"`` is
    figure 7's linear NF net: plain Gaussian weights of gain 1 (section 4.1). ``pool=False`` drops the
    stem's max-pool (figure 7). ``widths``: the 4 stages' output widths (the paper's by default; smaller
    ones for cheap tests).
    """
    linear = conv_type == "he_init" and act == "identity"
    return create_model(
        "nf_resnet50",
        num_classes=0,
        depths=(blocks_per_stage(depth),) * 4,
        channels=tuple(widths),
        stem_type="7x7_pool" if pool else "7x7",
        stem_chs=widths[0] // 4,
        alpha=alpha,
        conv_type=conv_type,
        he_init_nonlinearity="linear" if linear else "relu",
        act=act,
        act_gamma=gamma,
        se_ratio=0.25 if se_gain is not None else None,
        se_gain=2.0 if se_gain is None else se_gain,
        skipinit_gain=1.0,
    )


REFERENCE_NETS: dict[str, Callable[[int], nn.Module]] = {
    "BN-ReLU-Conv": lambda d: preact_resnet(d, "bn_act"),
    "ReLU-BN-Conv": lambda d: preact_resnet(d, "act_bn"),
    "Unnormalized, He init": lambda d: preact_resnet(d, "act"),
    "NF, He init": lambda d: nf_resnet(d, alpha=1.0, conv_type="he_init"),
    "NF, Scaled WS": lambda d: nf_resnet(d, alpha=1.0),
    "NF, Scaled WS, alpha=0.2": lambda d: nf_resnet(d, alpha=0.2),
    "NF, gamma=sqrt(2)": lambda d: nf_resnet(d, alpha=0.2, gamma=math.sqrt(2)),
    "NF, SE x2": lambda d: nf_resnet(d, alpha=0.2, se_gain=2.0),
    "NF, unmodified SE": lambda d: nf_resnet(d, alpha=0.2, se_gain=1.0),
    "Linear, BN": lambda d: preact_resnet(d, "bn_act", act="identity", pool=False),
    "Linear, NF": lambda d: nf_resnet(d, alpha=1.0, conv_type="he_init", act="identity", pool=False),
    "FixUp": fixup_resnet,
    "ResNet-V1 (post-activation)": resnet_v1,
}

# The paper's figures: which reference nets each draws, and whether it uses a log scale.
FIGURES: dict[int, tuple[tuple[str, ...], bool, str]] = {
    1: (("BN-ReLU-Conv", "ReLU-BN-Conv"), False, "ResNetV2 with BatchNorm (paper figure 1)"),
    2: (("ReLU-BN-Conv", "NF, He init", "NF, Scaled WS"), False, "BN vs NF, alpha = 1 (paper figure 2)"),
    6: (("Unnormalized, He init",), True, "Unnormalized ResNetV2, He init (paper figure 6)"),
    7: (("Linear, BN", "Linear, NF"), False, "Linear ResNetV2s, no max-pool (paper figure 7)"),
    8: (("NF, Scaled WS, alpha=0.2", "NF, gamma=sqrt(2)"), False, "NF with gamma = sqrt(2) (paper figure 8)"),
    9: (("NF, SE x2", "NF, unmodified SE"), False, "NF with squeeze-excite (paper figure 9)"),
    10: (("FixUp",), False, "FixUp ResNet (paper figure 10)"),
    11: (("ResNet-V1 (post-activation)",), False, "Post-activation ResNet-V1 with BN (paper figure 11)"),
}


def build_reference(name: str, depth: int = 600) -> nn.Module:
    """One of the paper's SPP networks by its legend name (see ``REFERENCE_NETS``)."""
    if name not in REFERENCE_NETS:
        hint = did_you_mean(str(name), REFERENCE_NETS)
        choices = f"choose from {list(REFERENCE_NETS)}"
        raise ValueError(f"unknown reference network {name!r}; {hint + ' ' if hint else ''}{choices}")
    return REFERENCE_NETS[name](depth)

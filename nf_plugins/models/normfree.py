"""One generic Normalizer-Free network, driven by a config dataclass.

NF-ResNets (pre-activation bottleneck ResNetV2) and NF-RegNets (inverted bottleneck, grouped 3x3,
squeeze-excite) are the same residual recipe (paper section 4.5):

    x_{l+1} = x_l + alpha * skipinit_gain * f_l(act(x_l) / beta_l),  beta_l = sqrt(Var(x_l))

with the expected variance tracked analytically: it starts at 1, grows by alpha^2 per block and
resets to 1 after each transition block, whose shortcut convolves the activated, beta-scaled input.
The variant tables live in ``nf_resnet.py`` and ``nf_regnet.py``.
"""

# No ``from __future__ import annotations`` here: FX copies the root forward's annotation into the traced
# graph, and a string "torch.Tensor" becomes a name (``_torch_Tensor_``) that TorchScript cannot resolve.
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import torch
from timm.layers import ClassifierHead
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq
from torch import nn

from ..errors import did_you_mean
from ..layers import (
    GammaAct,
    NFSqueezeExcite,
    ScaledStdConv2d,
    StochasticDepth,
    drop_path_keep_mask,
    he_init_conv2d,
)
from ._validate import (
    check_cfg_consistency,
    check_cfg_overrides,
    check_class_count,
    check_feature_indices,
    check_global_pool,
    check_int_arg,
    check_model_input,
    check_rate,
)

# FX tracing records the entrance check as one call (run on real tensors when the graph runs) instead of
# tracing into it, where ``isinstance(x, Tensor)`` fails on a Proxy; timm marks its own helpers this way.
torch.fx.wrap("check_model_input")


@dataclass(frozen=True)
class NfCfg:
    """Architecture of one NF network variant: everything the builder reads, and nothing patched after it.

    Any field can be overridden where a model is created, as timm's ``replace(cfg, **kwargs)``:
    ``timm.create_model("nf_resnet50", se_ratio=0.25, act_gamma=2 ** 0.5)`` (see ``with_overrides``).
    """

    depths: tuple[int, ...]
    channels: tuple[int, ...]
    # 7x7/2 conv + 3x3/2 max-pool (ResNet), 7x7/2 conv alone (the paper's figure 7), or 3x3/2 conv (RegNet)
    stem_type: Literal["7x7_pool", "7x7", "3x3"] = "7x7_pool"
    stem_chs: int = 64
    stage_strides: tuple[int, ...] = (1, 2, 2, 2)
    # Bottleneck width: ``out_chs * ratio`` (ResNet) or ``in_chs * ratio`` (inverted, RegNet).
    bottle_ratio: float = 0.25
    bottle_from: Literal["out", "in"] = "out"
    first_block_ratio: float | None = None  # ratio of the network's very first block, if different
    group_size: int | None = None  # channels per group of the 3x3 conv; None: dense conv
    se_ratio: float | None = None  # SE hidden width as a fraction of the bottleneck width
    se_gain: float = 2.0  # SE output gain: 2 undoes the sigmoid gate's halving of the variance (section 4.4)
    shortcut_pool: bool = False  # transition shortcut: 2x2 avg-pool + 1x1 conv instead of strided 1x1
    num_features: int | None = None  # final 1x1 conv width before pooling; None: no final conv
    act: str = "relu"
    act_gamma: float | None = None  # gamma of every activation (Scaled WS nets); None: the activation's own
    alpha: float = 0.2
    skipinit_gain: float = 0.0  # initial value of each block's learnable skip gain (SkipInit: 0)
    # "scaled_ws": the NF recipe. "he_init": plain He-initialised convs with unscaled activations,
    # the unnormalized baseline whose mean shift the paper's figure 2 shows.
    conv_type: Literal["scaled_ws", "he_init"] = "scaled_ws"
    # He gain of "he_init" convs: "relu" (2, rectified inputs) or "linear" (1, figure 7's linear nets)
    he_init_nonlinearity: Literal["relu", "linear"] = "relu"
    # Fold the activation gammas and 1/beta into the next Scaled WS conv's weight, fuse skip gain x alpha
    # (and the stochastic-depth mask) into one multiply-add, and run branch activations in place. Exact
    # algebra (the constants multiply *after* each nonlinearity, so no homogeneity is needed); False keeps
    # every multiply explicit, the plain path the tests compare against.
    fold_scalars: bool = True
    drop_rate: float = 0.0  # dropout before the classifier, the variant's default

    @property
    def folds(self) -> bool:
        """Whether constants are folded into convs (only Scaled WS convs have a weight scale to fold into)."""
        return self.fold_scalars and self.conv_type == "scaled_ws"

    @property
    def gamma(self) -> float:
        """The gamma of this network's activation (1 for He init, whose weights carry the ReLU gain)."""
        return self.act_layer().gamma

    def with_overrides(self, **overrides: Any) -> "NfCfg":
        """This config with ``overrides`` of its fields, each value checked first; unknown keys name the
        closest fields. The result is this very object when nothing is overridden."""
        if not overrides:
            return self
        cfg = replace(self, **check_cfg_overrides(overrides, list(CFG_FIELDS)))
        check_cfg_consistency(cfg)
        return cfg

    def conv(
        self, in_chs: int, out_chs: int, kernel_size: int, input_scale: float = 1.0, **kwargs: Any
    ) -> nn.Module:
        """A conv of this network's kind; ``input_scale`` is folded into Scaled WS weights."""
        if self.conv_type == "scaled_ws":
            return ScaledStdConv2d(in_chs, out_chs, kernel_size, input_scale=input_scale, **kwargs)
        if self.conv_type == "he_init":
            if input_scale != 1.0:
                raise ValueError("he_init convs cannot fold an input scale; use fold_scalars=False")
            return he_init_conv2d(in_chs, out_chs, kernel_size, **kwargs)
        raise ValueError(f"unknown conv_type {self.conv_type!r}; expected 'scaled_ws' or 'he_init'")

    def act_layer(self, folded: bool = False, inplace: bool = False) -> GammaAct:
        """This network's activation: gamma-scaled for Scaled WS, plain (gamma 1) for He init or when
        ``folded`` (its gamma then lives in the next conv's weight)."""
        plain = folded or self.conv_type != "scaled_ws"
        return GammaAct(self.act, gamma=1.0 if plain else self.act_gamma, inplace=inplace)

    def bottleneck_width(self, in_chs: int, out_chs: int, first_in_net: bool) -> tuple[int, int]:
        """(width, groups) of a block's bottleneck, rounded down to whole groups as the paper does."""
        ratio = self.first_block_ratio if first_in_net and self.first_block_ratio else self.bottle_ratio
        width = int((out_chs if self.bottle_from == "out" else in_chs) * ratio)
        if self.group_size is None:
            return width, 1
        groups = max(1, width // self.group_size)
        return groups * self.group_size, groups


CFG_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(NfCfg))


def pop_overrides(cfg: NfCfg, kwargs: dict[str, Any]) -> NfCfg:
    """``cfg`` with the NfCfg fields among ``kwargs`` (removed from it) applied, checked.

    ``drop_rate`` stays in ``kwargs``: it is also the model's own argument, which takes precedence.
    """
    overrides = {key: kwargs.pop(key) for key in CFG_FIELDS if key in kwargs and key != "drop_rate"}
    return cfg.with_overrides(**overrides)


class TransitionShortcut(nn.Module):
    """Shortcut of a transition block: (2x2 avg-pool +) 1x1 Scaled WS conv on the activated input.

    The pool uses ``ceil_mode`` without counting padding, so odd sizes match the strided 3x3 path.
    """

    def __init__(self, cfg: NfCfg, in_chs: int, out_chs: int, stride: int, input_scale: float = 1.0) -> None:
        super().__init__()
        pooled = cfg.shortcut_pool and stride > 1
        self.pool = (
            nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if pooled else nn.Identity()
        )
        self.conv = cfg.conv(in_chs, out_chs, 1, input_scale=input_scale, stride=1 if pooled else stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x))


class NormFreeBlock(nn.Module):
    """Pre-activation NF bottleneck: act -> /beta -> 1x1 -> act -> 3x3 (-> SE x2) -> act -> 1x1.

    ``conv3`` ends the residual branch; its output is scaled by ``alpha * skipinit_gain`` (SkipInit,
    initialised to 0) and added to the skip path.
    """

    def __init__(
        self,
        cfg: NfCfg,
        in_chs: int,
        out_chs: int,
        stride: int,
        dilation: int,
        beta: float,
        first_in_net: bool,
        drop_path: float,
    ) -> None:
        super().__init__()
        mid_chs, groups = cfg.bottleneck_width(in_chs, out_chs, first_in_net)
        self.beta = beta
        self.alpha = cfg.alpha
        self.folded = cfg.folds
        # Folded: act1's gamma and 1/beta scale conv1's and the shortcut conv's weights, act2/act3's gammas
        # scale conv2/conv3's; branch activations then run in place (act1 not: x is the skip path).
        gamma = cfg.gamma if self.folded else 1.0
        in_scale = gamma / beta if self.folded else 1.0
        self.act1 = cfg.act_layer(folded=self.folded)
        needs_proj = stride > 1 or in_chs != out_chs
        self.downsample = TransitionShortcut(cfg, in_chs, out_chs, stride, in_scale) if needs_proj else None
        self.conv1 = cfg.conv(in_chs, mid_chs, 1, input_scale=in_scale)
        self.act2 = cfg.act_layer(folded=self.folded, inplace=self.folded)
        self.conv2 = cfg.conv(
            mid_chs, mid_chs, 3, input_scale=gamma, stride=stride, dilation=dilation, groups=groups
        )
        se_chs = max(1, int(mid_chs * cfg.se_ratio)) if cfg.se_ratio else 0
        # The SE gain (x2) precedes act3; SiLU is not positively homogeneous, so it cannot move into conv3.
        self.se = (
            NFSqueezeExcite(mid_chs, se_chs, cfg.act, gain=cfg.se_gain, gamma=cfg.act_gamma)
            if se_chs
            else nn.Identity()
        )
        self.act3 = cfg.act_layer(folded=self.folded, inplace=self.folded)
        self.conv3 = cfg.conv(mid_chs, out_chs, 1, input_scale=gamma)
        self.drop_path_rate = float(drop_path)
        self.drop_path = StochasticDepth(drop_path) if drop_path > 0 else nn.Identity()
        self.skipinit_gain = nn.Parameter(torch.full((), float(cfg.skipinit_gain)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(x)
        if not self.folded:
            out = out * (1.0 / self.beta)
        shortcut = x
        if self.downsample is not None:
            shortcut = self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(self.act2(out))
        out = self.se(out)
        out = self.act3(out)
        if self.folded:
            scale = self.skipinit_gain * self.alpha
            if torch.is_grad_enabled() and isinstance(self.conv3, ScaledStdConv2d):
                # Training: alpha * skip gain rides in conv3's weight and bias, so the backward pass has
                # no activation-sized multiply for the branch or for the gain's gradient.
                out = self.conv3(out, scale)
                if self.training and self.drop_path_rate > 0.0:
                    return torch.addcmul(shortcut, out, drop_path_keep_mask(out, self.drop_path_rate))
                return shortcut + out
            # Inference: conv3's weight stays cached; shortcut + out * scale is one fused multiply-add.
            scale = scale.to(out.dtype)
            if self.training and self.drop_path_rate > 0.0:
                scale = scale * drop_path_keep_mask(out, self.drop_path_rate)
            return torch.addcmul(shortcut, self.conv3(out), scale)
        out = self.conv3(out)
        out = self.drop_path(out * (self.skipinit_gain * self.alpha))
        return out + shortcut

    def extra_repr(self) -> str:
        return f"beta={self.beta:.4f}, alpha={self.alpha}"


class NfStem(nn.Module):
    """ResNet stem (7x7/2 Scaled WS conv + 3x3/2 max-pool, or without the pool) or RegNet stem (3x3/2)."""

    def __init__(self, cfg: NfCfg, in_chans: int) -> None:
        super().__init__()
        if cfg.stem_type not in ("7x7_pool", "7x7", "3x3"):
            raise ValueError(f"unknown stem_type {cfg.stem_type!r}; expected '7x7_pool', '7x7' or '3x3'")
        self.conv = cfg.conv(in_chans, cfg.stem_chs, 3 if cfg.stem_type == "3x3" else 7, stride=2)
        pooled = cfg.stem_type == "7x7_pool"
        self.pool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1) if pooled else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))


class NormFreeNet(nn.Module):
    """A Normalizer-Free ResNet/RegNet with timm's model interface."""

    def __init__(
        self,
        cfg: NfCfg,
        num_classes: int = 1000,
        in_chans: int = 3,
        global_pool: str = "avg",
        output_stride: int = 32,
        drop_rate: float | None = None,
        drop_path_rate: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        cfg = pop_overrides(cfg, kwargs)
        if kwargs:
            own = ("num_classes", "in_chans", "global_pool", "output_stride", "drop_rate", "drop_path_rate")
            fields_ = [f for f in CFG_FIELDS if f not in own]
            hint = did_you_mean(sorted(kwargs)[0], (*own, *fields_))
            raise TypeError(
                f"NormFreeNet got unexpected keyword arguments {sorted(kwargs)}; it accepts num_classes, "
                "in_chans, global_pool, output_stride (8, 16 or 32), drop_rate, drop_path_rate (and timm's "
                f"features_only, out_indices, pretrained, pretrained_cfg), and overrides of the NfCfg fields "
                f"{', '.join(fields_)}" + (f"; {hint}" if hint else "")
            )
        if output_stride not in (8, 16, 32) or isinstance(output_stride, bool):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
        num_classes = check_class_count(num_classes)
        in_chans = check_int_arg("in_chans", in_chans, 1, "positive int")
        drop_path_rate = check_rate("drop_path_rate", drop_path_rate)
        check_global_pool(global_pool)
        if not global_pool and num_classes:
            raise ValueError(
                f"global_pool='' (no pooling) cannot feed a classifier of num_classes={num_classes}: pass "
                "num_classes=0 for unpooled features, or a pooling type such as global_pool='avg'"
            )
        self.cfg = cfg
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = check_rate("drop_rate", cfg.drop_rate if drop_rate is None else drop_rate)
        self.grad_checkpointing = False

        self.stem = NfStem(cfg, in_chans)
        self.feature_info = [dict(num_chs=cfg.stem_chs, reduction=2, module="stem.conv")]

        # Stochastic depth of block i (0-based) of n: drop_path_rate * i / n, as the authors' reference code
        # (DeepMind's nfnets) and EfficientNet, which the paper follows (appendix C), compute it; plain
        # Python floats, so it works on the 'meta' device too.
        n_blocks = sum(cfg.depths)
        dp_rates = [drop_path_rate * i / n_blocks for i in range(n_blocks)]
        prev_chs, net_stride, dilation = cfg.stem_chs, 4 if cfg.stem_type == "7x7_pool" else 2, 1
        expected_var, block_idx = 1.0, 0
        stages = []
        for stage_idx, (depth, out_chs, stride) in enumerate(
            zip(cfg.depths, cfg.channels, cfg.stage_strides, strict=True)
        ):
            first_dilation = dilation
            if net_stride * stride > output_stride:
                dilation *= stride
                stride = 1
            net_stride *= stride
            blocks = []
            for i in range(depth):
                blocks.append(
                    NormFreeBlock(
                        cfg,
                        prev_chs,
                        out_chs,
                        stride=stride if i == 0 else 1,
                        dilation=first_dilation if i == 0 else dilation,
                        beta=expected_var**0.5,
                        first_in_net=block_idx == 0,
                        drop_path=dp_rates[block_idx],
                    )
                )
                if i == 0:
                    expected_var = 1.0  # the transition block's shortcut re-normalises the stream
                expected_var += cfg.alpha**2
                prev_chs = out_chs
                block_idx += 1
            stages.append(nn.Sequential(*blocks))
            if stage_idx < len(cfg.depths) - 1:
                self.feature_info.append(
                    dict(num_chs=out_chs, reduction=net_stride, module=f"stages.{stage_idx}")
                )
        self.stages = nn.Sequential(*stages)

        if cfg.num_features:
            self.final_conv = cfg.conv(prev_chs, cfg.num_features, 1)
            self.num_features = cfg.num_features
        else:
            self.final_conv = nn.Identity()
            self.num_features = prev_chs
        self.final_act = cfg.act_layer()
        self.feature_info.append(dict(num_chs=self.num_features, reduction=net_stride, module="final_act"))
        self.head_hidden_size = self.num_features
        self.head = ClassifierHead(
            self.num_features, num_classes, pool_type=global_pool, drop_rate=self.drop_rate
        )
        self._zero_init_classifier()
        if cfg.conv_type == "he_init" and cfg.he_init_nonlinearity == "linear":
            self._he_init_linear()

    @torch.no_grad()
    def _he_init_linear(self) -> None:
        """He et al.'s fan_in * Var(W) * E[x^2] = 1 for unrectified inputs: Gaussian weights of gain 1
        (section 4.1's linear nets; he_init convs are built with the ReLU gain 2). Drawn after construction,
        in module order, which is the random stream the committed figure-7 statistics were computed with."""
        se_convs = {id(c) for m in self.modules() if isinstance(m, NFSqueezeExcite) for c in m.modules()}
        for conv in self.modules():
            if isinstance(conv, nn.Conv2d) and id(conv) not in se_convs:
                nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="linear")

    def _zero_init_classifier(self) -> None:
        fc = self.get_classifier()
        if isinstance(fc, nn.Linear):
            nn.init.zeros_(fc.weight)
            nn.init.zeros_(fc.bias)

    # ---- timm model interface -------------------------------------------------------------------
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^stem",
            blocks=[
                (r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.(\d+)", None),
                (r"^final_conv", (99999,)),
            ],
        )

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Gains, biases and skip gains: everything but conv/linear weights (paper appendix B.1)."""
        return {n for n, p in self.named_parameters() if p.ndim <= 1}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        num_classes = check_class_count(num_classes)
        if global_pool is not None:
            check_global_pool(global_pool)
        pool = self.head.global_pool.pool_type if global_pool is None else global_pool
        if not pool and num_classes:
            raise ValueError(
                f"reset_classifier({num_classes}) with global_pool='' (no pooling): pass num_classes=0 for "
                "unpooled features, or a pooling type such as global_pool='avg'"
            )
        self.num_classes = num_classes
        self.head.reset(num_classes, global_pool)
        self._zero_init_classifier()

    @torch.jit.ignore
    def _arch_name(self) -> str:
        """The registered name (e.g. nf_resnet26) for error messages."""
        cfg = getattr(self, "pretrained_cfg", None) or {}
        return str(cfg.get("architecture") or type(self).__name__)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Features at the stem (index 0) and after each stage (1-4); the last is ``final_act``'s output.

        ``norm`` is accepted for timm compatibility: NF networks have no norm layer, and the last
        intermediate is always the activated final features, as in ``forward_features``.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        x = check_model_input(x, self.in_chans, self.stem.conv.weight.dtype)
        # Scripted models keep timm's assertion: there the indices are fixed at creation (features_only).
        if not torch.jit.is_scripting():
            check_feature_indices(indices, len(self.stages) + 1, "indices", self._arch_name())
        take_indices, max_index = feature_take_indices(len(self.stages) + 1, indices)
        intermediates: list[torch.Tensor] = []
        x = self.stem.conv(x)
        if 0 in take_indices:
            intermediates.append(x)
        x = self.stem.pool(x)
        last_idx = len(self.stages)
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[:max_index]
        for feat_idx, stage in enumerate(stages, start=1):
            x = stage(x)
            if feat_idx == last_idx:
                x = self.final_act(self.final_conv(x))
            if feat_idx in take_indices:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages (and head) that the requested intermediates do not need."""
        check_feature_indices(indices, len(self.stages) + 1, "indices", self._arch_name())
        take_indices, max_index = feature_take_indices(len(self.stages) + 1, indices)
        self.stages = self.stages[:max_index]
        if max_index < len(self.cfg.depths):
            self.final_conv, self.final_act = nn.Identity(), nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = check_model_input(x, self.in_chans, self.stem.conv.weight.dtype)
        x = self.stem(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.stages, x)
        else:
            x = self.stages(x)
        return self.final_act(self.final_conv(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits) if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

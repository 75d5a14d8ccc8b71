"""The NF network builder against a forward pass written out here from the paper's equations.

``x_{l+1} = x_l + alpha * g_l * f_l(gamma * act(x_l) / beta_l)`` with beta_l from the analytic
variance (1, +alpha^2 per block, reset to 1 after each transition block), Scaled WS (eq. 3), the x2
SE gate and the transition shortcut on the activated, beta-scaled input. The reference reads only the
parameter tensors; widths, groups, strides, dilations and betas are derived here from the paper's rules
and asserted, on live weights (non-zero SkipInit gains, random classifier, gains and biases), in
float64, for the folded and the plain path, in eval and training mode, with their gradients.

Written to kill the mutants of nf_plugins/models/normfree.py (docs/mutation.md).
"""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models import group_parameters

from nf_plugins.layers import GAMMA_TABLE, GammaAct
from nf_plugins.models import create_model
from nf_plugins.models.normfree import CFG_FIELDS, NfCfg, NfStem, NormFreeBlock, NormFreeNet

RES = NfCfg(depths=(2, 2), channels=(16, 32), stem_chs=8, stage_strides=(1, 2), alpha=0.3)
REG = NfCfg(
    depths=(1, 2, 1, 2),
    channels=(16, 24, 32, 40),
    stem_type="3x3",
    stem_chs=8,
    stage_strides=(2, 2, 2, 2),
    bottle_ratio=2.25,
    bottle_from="in",
    first_block_ratio=1.0,
    group_size=8,
    se_ratio=0.5,
    shortcut_pool=True,
    num_features=48,
    act="silu",
    alpha=0.25,
)
ACTS = {"relu": F.relu, "silu": F.silu}


def _live(model: NormFreeNet, seed: int = 0) -> NormFreeNet:
    """Random SkipInit gains, conv gains, biases and classifier: every term of the forward counts."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("skipinit_gain") or name.endswith(".gain"):
                p.copy_(torch.rand(p.shape, generator=gen, dtype=p.dtype) + 0.5)
            elif name.endswith("bias") or name.startswith("head."):
                p.copy_(torch.rand(p.shape, generator=gen, dtype=p.dtype) - 0.5)
    return model


def _width(cfg: NfCfg, in_chs: int, out_chs: int, first_in_net: bool) -> tuple[int, int]:
    """Bottleneck width and groups by the paper's rule: ratio of out (ResNet) or in (RegNet), rounded
    down to whole groups of ``group_size`` (appendix D code)."""
    ratio = cfg.first_block_ratio if (first_in_net and cfg.first_block_ratio) else cfg.bottle_ratio
    width = math.floor((out_chs if cfg.bottle_from == "out" else in_chs) * ratio)
    if cfg.group_size is None:
        return width, 1
    groups = max(1, width // cfg.group_size)
    return groups * cfg.group_size, groups


def reference(
    model: NormFreeNet,
    cfg: NfCfg,
    x: torch.Tensor,
    output_stride: int = 32,
    params=None,
    gamma: float | None = None,
    se_gain: float = 2.0,
):
    """(logits, [stem conv, stage 1..n outputs, final features]) of the paper's network, from the
    parameter tensors of ``model`` (``params`` overrides some, e.g. leaves for gradients). ``gamma``:
    the activations' gain (default: the table's for Scaled WS, 1 for He init); ``se_gain``: the SE's."""
    p = {k: v.detach() for k, v in model.state_dict().items()} | (params or {})
    ws = cfg.conv_type == "scaled_ws"
    gamma = gamma if gamma is not None else GAMMA_TABLE[cfg.act] if ws else 1.0

    def act(t):
        return gamma * ACTS[cfg.act](t)

    def conv(name, t, k, stride=1, dilation=1, groups=1):
        w = p[name + ".weight"]
        assert w.shape[1:] == (t.shape[1] // groups, k, k), name
        if ws:
            flat = w.flatten(1)
            var, mean = torch.var_mean(flat, 1, unbiased=False, keepdim=True)
            w = (
                p[name + ".gain"].view(-1, 1) * (flat - mean) / torch.sqrt(flat.shape[1] * var + 1e-4)
            ).view_as(w)
        return F.conv2d(t, w, p.get(name + ".bias"), stride, dilation * (k - 1) // 2, dilation, groups)

    feats = []
    if cfg.stem_type == "7x7_pool":
        x = conv("stem.conv", x, 7, stride=2)
        feats.append(x)
        x, net_stride = F.max_pool2d(x, 3, 2, 1), 4
    else:  # "3x3" (RegNet) or "7x7" (no max-pool)
        x = conv("stem.conv", x, 3 if cfg.stem_type == "3x3" else 7, stride=2)
        feats.append(x)
        net_stride = 2
    in_chs, var, dilation, first = cfg.stem_chs, 1.0, 1, True
    for s, (depth, out_chs, stride) in enumerate(
        zip(cfg.depths, cfg.channels, cfg.stage_strides, strict=True)
    ):
        first_dilation = dilation
        if net_stride * stride > output_stride:  # dilate instead of striding past the output stride
            dilation, stride = dilation * stride, 1
        net_stride *= stride
        for i in range(depth):
            name = f"stages.{s}.{i}"
            mid, groups = _width(cfg, in_chs, out_chs, first)
            beta = math.sqrt(var)
            assert model.stages[s][i].beta == pytest.approx(beta, rel=1e-12)
            a = act(x) / beta
            st, dil = (stride, first_dilation) if i == 0 else (1, dilation)
            if i == 0:  # transition block: the shortcut convolves the activated, beta-scaled input
                if cfg.shortcut_pool and st > 1:
                    shortcut = conv(name + ".downsample.conv", F.avg_pool2d(a, 2, st, 0, True, False), 1)
                else:
                    shortcut = conv(name + ".downsample.conv", a, 1, stride=st)
            else:
                shortcut = x
            h = conv(name + ".conv1", a, 1)
            assert h.shape[1] == mid, name
            h = conv(name + ".conv2", act(h), 3, st, dil, groups)
            if cfg.se_ratio:
                se = name + ".se"
                assert p[se + ".fc1.weight"].shape[0] == int(mid * cfg.se_ratio)
                g = F.conv2d(h.mean((2, 3), keepdim=True), p[se + ".fc1.weight"], p[se + ".fc1.bias"])
                g = (gamma if ws else GAMMA_TABLE[cfg.act]) * ACTS[cfg.act](g)
                h = h * se_gain * torch.sigmoid(F.conv2d(g, p[se + ".fc2.weight"], p[se + ".fc2.bias"]))
            h = conv(name + ".conv3", act(h), 1)
            x = shortcut + cfg.alpha * p[name + ".skipinit_gain"] * h
            var = (1.0 if i == 0 else var) + cfg.alpha**2
            in_chs, first = out_chs, False
        feats.append(x)
    if cfg.num_features:
        x = conv("final_conv", x, 1)
    x = act(x)
    feats[-1] = x
    logits = x.mean((2, 3)) @ p["head.fc.weight"].T + p["head.fc.bias"]
    return logits, feats


def _model(cfg: NfCfg, **kwargs) -> NormFreeNet:
    torch.manual_seed(0)
    return _live(NormFreeNet(cfg, num_classes=5, **kwargs)).double()


def _input(h: int = 33, w: int = 35) -> torch.Tensor:
    return torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize("cfg", [RES, REG], ids=["resnet", "regnet"])
def test_forward_matches_the_paper_equations(cfg, fold):
    cfg = NfCfg(**{**cfg.__dict__, "fold_scalars": fold})
    model, x = _model(cfg), _input()
    ref, ref_feats = reference(model, cfg, x)
    with torch.no_grad():  # inference: cached weights, constants folded into the convs
        torch.testing.assert_close(model.eval()(x), ref)
        _, feats = model.forward_intermediates(x)
    assert len(feats) == len(ref_feats) == len(cfg.depths) + 1
    for got, want in zip(feats, ref_feats, strict=True):
        torch.testing.assert_close(got, want)
    # with gradients (the training path: alpha * gain folded into conv3), values and gradients by value
    for mode in (False, True):
        model.train(mode)
        gains = {
            n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters() if "gain" in n
        }
        out = model(x)
        torch.testing.assert_close(out, reference(model, cfg, x, params=gains)[0])
        cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        names = list(gains)
        got = torch.autograd.grad(out, [dict(model.named_parameters())[n] for n in names], cot)
        want = torch.autograd.grad(reference(model, cfg, x, params=gains)[0], list(gains.values()), cot)
        for n, a, b in zip(names, got, want, strict=True):
            torch.testing.assert_close(a, b, msg=n)


@pytest.mark.parametrize("output_stride", [8, 16])
def test_output_stride_dilates_instead_of_striding(output_stride):
    model, x = _model(REG, output_stride=output_stride), _input(64, 64)
    ref, ref_feats = reference(model, REG, x, output_stride=output_stride)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), ref)
        feats = model.forward_intermediates(x, intermediates_only=True)
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 64 // min(16, output_stride), 64 // output_stride]
    for got, want in zip(feats, ref_feats, strict=True):
        torch.testing.assert_close(got, want)
    reductions = [info["reduction"] for info in model.feature_info]
    assert reductions == [2, 4, 8, min(16, output_stride), output_stride]


def test_he_init_baseline_is_plain_convs_and_unscaled_activations():
    cfg = NfCfg(**{**RES.__dict__, "conv_type": "he_init"})
    model, x = _model(cfg), _input()
    assert not cfg.folds and type(model.stages[0][0].conv2) is torch.nn.Conv2d
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference(model, cfg, x)[0])
    with pytest.raises(
        ValueError, match="^he_init convs cannot fold an input scale; use fold_scalars=False$"
    ):
        cfg.conv(4, 4, 1, input_scale=2.0)
    bad = NfCfg(**{**RES.__dict__, "conv_type": "bn"})
    with pytest.raises(ValueError, match=r"^unknown conv_type 'bn'; expected 'scaled_ws' or 'he_init'$"):
        bad.conv(4, 4, 1)
    with pytest.raises(ValueError, match=r"^unknown stem_type '5x5'; expected '7x7_pool', '7x7' or '3x3'$"):
        NfStem(NfCfg(**{**RES.__dict__, "stem_type": "5x5"}), 3)


def test_feature_info_and_intermediate_selection():
    model, x = _model(REG), _input(64, 64)
    assert [(i["num_chs"], i["reduction"], i["module"]) for i in model.feature_info] == [
        (8, 2, "stem.conv"),
        (16, 4, "stages.0"),
        (24, 8, "stages.1"),
        (32, 16, "stages.2"),
        (48, 32, "final_act"),
    ]
    assert model.num_features == model.head_hidden_size == 48
    _, ref_feats = reference(model, REG, x)
    with torch.no_grad():
        final, feats = model.eval().forward_intermediates(x, indices=[1, 3], stop_early=True)
        torch.testing.assert_close(final, ref_feats[3])  # stopped after stage 3: no final conv
        for got, want in zip(feats, [ref_feats[1], ref_feats[3]], strict=True):
            torch.testing.assert_close(got, want)
        full, feats = model.forward_intermediates(x, indices=[0, 4])
        torch.testing.assert_close(full, ref_feats[4])
        torch.testing.assert_close(feats[0], ref_feats[0])
        full, feats = model.forward_intermediates(x, indices=[1])  # no early stop: the whole network runs
        torch.testing.assert_close(full, ref_feats[4])
        torch.testing.assert_close(feats[0], ref_feats[1])
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)  # an int: the last n
        for got, want in zip(last_two, ref_feats[3:], strict=True):
            torch.testing.assert_close(got, want)
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        torch.testing.assert_close(pooled, ref_feats[4].mean((2, 3)))
    with pytest.raises(ValueError, match=r"^output_fmt must be 'NCHW', got 'NHWC'$"):
        model.forward_intermediates(x, output_fmt="NHWC")
    with pytest.raises(ValueError):
        model.forward_intermediates(x[:, :2])  # the entrance check runs here too
    with pytest.raises(TypeError):
        model.forward_intermediates(x.float())


def test_pruning_keeps_the_requested_intermediates():
    model, x = _model(REG), _input(64, 64)
    _, ref_feats = reference(model, REG, x)
    assert model.prune_intermediate_layers([1, 2]) == [1, 2]
    assert len(model.stages) == 2 and isinstance(model.final_conv, torch.nn.Identity)
    assert isinstance(model.final_act, torch.nn.Identity) and model.num_classes == 0
    with torch.no_grad():
        feats = model.eval().forward_intermediates(x, indices=[1, 2], intermediates_only=True)
    for got, want in zip(feats, ref_feats[1:3], strict=True):
        torch.testing.assert_close(got, want)
    full = _model(REG)
    full.prune_intermediate_layers([1, 4], prune_head=False)
    assert len(full.stages) == 4 and not isinstance(full.final_conv, torch.nn.Identity)
    assert full.num_classes == 5


def test_stochastic_depth_rates_and_per_sample_unscaled_drop():
    model = _model(REG, drop_path_rate=0.5)
    blocks = [b for stage in model.stages for b in stage]
    rates = [b.drop_path_rate for b in blocks]
    # linear in depth from 0: rate * i / n (DeepMind's nfnets code, EfficientNet) or rate * i / (n - 1)
    assert rates in ([0.5 * i / 6 for i in range(6)], [0.5 * i / 5 for i in range(6)])
    assert isinstance(blocks[0].drop_path, torch.nn.Identity) and blocks[3].drop_path.drop_prob == rates[3]
    assert model.stages[3][1].drop_path.scale_by_keep is False
    for fold in (True, False):
        m = _model(NfCfg(**{**REG.__dict__, "fold_scalars": fold}), drop_path_rate=0.5)
        block = m.stages[3][1]  # rate 5/12 or 1/2
        x = torch.randn(32, 40, 3, 3, dtype=torch.float64)
        with torch.no_grad():
            kept = block.eval()(x)
        torch.testing.assert_close(block(x).detach(), kept)  # eval with gradients: no drop either
        for grad in (False, True):
            torch.manual_seed(3)
            with torch.set_grad_enabled(grad):
                y = block.train()(x).detach()
            is_kept = [torch.allclose(y[i], kept[i]) for i in range(32)]
            is_dropped = [torch.equal(y[i], x[i]) for i in range(32)]
            # every sample either keeps its whole branch, unscaled, or drops it; both happen
            assert all(k != d for k, d in zip(is_kept, is_dropped, strict=True)), (fold, grad)
            assert 4 < sum(is_kept) < 28, (fold, grad)


def test_constructor_errors_say_what_is_accepted():
    for kwargs, exc, msg in [
        (
            dict(foo=1),
            TypeError,
            r"^NormFreeNet got unexpected keyword arguments \['foo'\]; it accepts num_classes, in_chans, "
            r"global_pool, output_stride \(8, 16 or 32\), drop_rate, drop_path_rate "
            r"\(and timm's features_only, out_indices, pretrained, pretrained_cfg\), and overrides of the "
            r"NfCfg fields depths, channels, stem_type, .*, fold_scalars$",
        ),
        (dict(output_stride=4), ValueError, r"^output_stride must be 8, 16 or 32, got 4$"),
        (dict(in_chans=0), ValueError, r"^in_chans must be a positive int, got 0$"),
        (
            dict(in_chans="3"),
            TypeError,
            r"^in_chans must be a positive int, got '3' \(str\); pass a number, e\.g\. in_chans=3$",
        ),
        (dict(drop_path_rate=1.0), ValueError, r"^drop_path_rate must be in \[0, 1\), got 1\.0$"),
        (dict(drop_path_rate=-0.1), ValueError, r"^drop_path_rate must be in \[0, 1\), got -0\.1$"),
        (dict(drop_rate=1.0), ValueError, r"^drop_rate must be in \[0, 1\), got 1\.0$"),
        (dict(drop_rate=-0.5), ValueError, r"^drop_rate must be in \[0, 1\), got -0\.5$"),
    ]:
        with pytest.raises(exc, match=msg):
            NormFreeNet(RES, **kwargs)
    one = NormFreeNet(RES, in_chans=1, drop_path_rate=0.0, drop_rate=0.0)
    assert one.in_chans == 1 and one.stem.conv.in_channels == 1 and one.num_classes == 1000
    assert NormFreeNet(NfCfg(**{**RES.__dict__, "drop_rate": 0.25})).drop_rate == 0.25
    assert NormFreeNet(NfCfg(**{**RES.__dict__, "drop_rate": 0.25}), drop_rate=0.1).head.drop.p == 0.1
    assert NormFreeNet(RES, global_pool="max").head.global_pool.pool_type == "max"
    assert one.head.global_pool.pool_type == "avg" and one.grad_checkpointing is False
    with pytest.raises(ValueError):  # a config whose per-stage tuples disagree is not silently cut
        NormFreeNet(NfCfg(**{**RES.__dict__, "channels": (16,)}))


def test_timm_interface_methods():
    model = _model(RES)
    names = [n for n, _ in model.named_parameters()]
    assert model.no_weight_decay() == {n for n in names if n.endswith(("gain", "bias"))}
    groups = group_parameters(model, model.group_matcher())
    assert groups[0] == ["stem.conv.weight", "stem.conv.bias", "stem.conv.gain"]
    assert all(n.startswith("stages.0.0.") for n in groups[1]) and len(groups) == 1 + 4 + 1
    coarse = group_parameters(model, model.group_matcher(coarse=True))
    assert all(n.startswith("stages.1.") for n in coarse[2]) and len(coarse) == 1 + 2 + 1
    assert model.get_classifier() is model.head.fc
    model.reset_classifier(7)
    fc = model.get_classifier()
    assert model.num_classes == 7 and fc.out_features == 7
    assert not fc.weight.any() and not fc.bias.any()  # zero-initialised classifier
    model.reset_classifier(0, "")
    assert isinstance(model.get_classifier(), torch.nn.Identity) and model.head.global_pool.pool_type == ""


def test_gradient_checkpointing_recomputes_blocks():
    model = _model(RES).train()
    calls = []
    for stage in model.stages:
        for block in stage:
            block.register_forward_hook(lambda *_: calls.append(1))
    model.set_grad_checkpointing()
    assert model.grad_checkpointing
    x = _input()
    model(x).sum().backward()
    assert len(calls) > 4  # the forward, then blocks recomputed in the backward pass
    model.set_grad_checkpointing(False)
    calls.clear()
    model(x).sum().backward()
    assert len(calls) == 4
    assert repr(model.stages[0][1]).startswith(
        f"NormFreeBlock(\n  beta={math.sqrt(1 + 0.09):.4f}, alpha=0.3\n"
    )


def test_structure_rules_outside_the_paper_configs():
    # a stage whose width does not change still gets a projection when it strides, and only then
    cfg = NfCfg(**{**RES.__dict__, "channels": (8, 8), "se_ratio": 0.05})
    model = NormFreeNet(cfg)
    assert model.stages[0][0].downsample is None and model.stages[1][0].downsample is not None
    se = model.stages[0][0].se  # SE width int(2 * 0.05) = 0 -> at least 1; the network's activation
    assert se.fc1.out_channels == 1 and se.act.act == "relu"
    assert [i["reduction"] for i in model.feature_info] == [2, 4, 8]  # 7x7 stem + max-pool: stride 4
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1000)
    assert model.prune_intermediate_layers() == [2]  # default: the last feature only, nothing pruned
    assert len(model.stages) == 2 and model.head.global_pool.pool_type == ""


# ---- NfCfg overrides through create_model (timm's ``replace(cfg, **kwargs)``) ---------------------------

# nf_resnet26 shrunk through the overrides themselves; the expected architecture is written out here.
SMALL = dict(depths=(2, 2), channels=(16, 32), stem_chs=8, stage_strides=(1, 2))
# (overrides, reference keywords): each forward must match the paper's equations with those values.
OVERRIDES = {
    "depths": (dict(depths=(1, 3)), {}),
    "channels": (dict(channels=(24, 40)), {}),
    "stem_type_7x7": (dict(stem_type="7x7"), {}),
    "stem_type_3x3": (dict(stem_type="3x3"), {}),
    "stem_chs": (dict(stem_chs=12), {}),
    "stage_strides": (dict(stage_strides=(2, 2)), {}),
    "bottle_ratio": (dict(bottle_ratio=0.5), {}),
    "bottle_from": (dict(bottle_from="in"), {}),
    "first_block_ratio": (dict(first_block_ratio=1.0), {}),
    "group_size": (dict(group_size=2), {}),
    "se_ratio": (dict(se_ratio=0.5), {}),
    "se_gain": (dict(se_ratio=0.5, se_gain=1.5), dict(se_gain=1.5)),
    "shortcut_pool": (dict(shortcut_pool=True), {}),
    "num_features": (dict(num_features=48), {}),
    "act": (dict(act="silu", se_ratio=0.5), {}),
    "act_gamma": (dict(act_gamma=1.3, se_ratio=0.5), dict(gamma=1.3)),
    "alpha": (dict(alpha=0.6), {}),
    "conv_type": (dict(conv_type="he_init"), {}),
    "fold_scalars": (dict(fold_scalars=False), {}),
}


@pytest.mark.parametrize("case", list(OVERRIDES))
def test_each_override_builds_what_the_paper_equations_compute(case):
    """Built by ``timm.create_model("nf_resnet26", <field>=...)``, on live weights, the network is the paper's
    forward with the overridden value (SE gain, gamma, alpha, ... used by value), folded or not."""
    overrides, ref_kwargs = OVERRIDES[case]
    expected = NfCfg(**{**SMALL, **overrides})
    torch.manual_seed(0)
    model = _live(timm.create_model("nf_resnet26", num_classes=5, **{**SMALL, **overrides})).double().eval()
    assert model.cfg == expected  # the override reached the config, and nothing else changed
    x = _input()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(model, expected, x, **ref_kwargs)[0])
    acts = [m for m in model.modules() if isinstance(m, GammaAct)]
    if case == "fold_scalars":  # the plain path multiplies by gamma where the folded path scales weights
        assert {a.gamma for a in acts} == {GAMMA_TABLE["relu"]}
    else:
        assert model.stages[0][0].act2.gamma == 1.0  # every other case runs folded
    if case == "act_gamma":  # the SE's hidden activation and the final one carry it too
        assert model.stages[0][0].se.act.gamma == model.final_act.gamma == 1.3


def test_every_config_field_has_an_override_test():
    covered = {k for overrides, _ in OVERRIDES.values() for k in overrides}
    assert covered | {"skipinit_gain", "he_init_nonlinearity", "drop_rate"} == set(CFG_FIELDS)


def test_skipinit_drop_rate_and_he_gain_overrides_by_value():
    model = timm.create_model("nf_resnet26", num_classes=5, skipinit_gain=0.7, drop_rate=0.3, **SMALL)
    gains = [b.skipinit_gain for b in model.modules() if isinstance(b, NormFreeBlock)]
    assert len(gains) == 4 and all(g.item() == pytest.approx(0.7) and g.requires_grad for g in gains)
    assert model.head.drop.p == 0.3
    x, model = _input(), model.double().eval()
    with torch.no_grad():  # a non-zero initial gain is a live branch: the paper's forward on these weights
        torch.testing.assert_close(model.forward_features(x), reference(model, NfCfg(**SMALL), x)[1][-1])
    # He init: fan_in * Var(W) is the gain, 2 for rectified inputs and 1 for linear ones (He et al. 2015)
    for nonlinearity, gain in (("relu", 2.0), ("linear", 1.0)):
        torch.manual_seed(0)
        he = timm.create_model(
            "nf_resnet26", conv_type="he_init", he_init_nonlinearity=nonlinearity, channels=(256, 512),
            **{k: v for k, v in SMALL.items() if k != "channels"},
        )  # fmt: skip
        convs = [m for m in he.stages.modules() if isinstance(m, torch.nn.Conv2d)]
        var = torch.stack([c.weight.var() * c.weight[0].numel() for c in convs])
        assert var.mean().item() == pytest.approx(gain, rel=0.05), nonlinearity


def test_overrides_through_our_create_model_and_features_only():
    model = create_model("nf_resnet26", features_only=True, out_indices=(0, 1, 2), **SMALL)
    assert [i["num_chs"] for i in model.feature_info] == [8, 16, 32]  # 3 levels: the overridden 2 stages
    with pytest.raises(ValueError, match=r"out_indices=\(0, 3\) is out of range for nf_resnet26: it has 3"):
        create_model("nf_resnet26", features_only=True, out_indices=(0, 3), **SMALL)
    assert timm.create_model(
        "nf_resnet26", depths=[1, 1], channels=[8, 16], stage_strides=[1, 2]
    ).cfg.depths == (
        1,
        1,
    )  # lists, as a config file gives them, become the config's tuples


@pytest.mark.parametrize(
    ("overrides", "exc", "msg"),
    [
        (dict(se_ratoi=0.25), TypeError,
         r"^NormFreeNet got unexpected keyword arguments \['se_ratoi'\]; it accepts .*; did you mean 'se_ratio', "),  # noqa: E501
        (dict(skip_gain=1.0), TypeError, r"did you mean 'skipinit_gain'"),
        (dict(se_gain=-1), ValueError, r"^se_gain must be a finite number > 0, got -1$"),
        (dict(se_gain="2"), TypeError, r"^se_gain must be a finite number > 0, got '2' \(str\); pass a number"),  # noqa: E501
        (dict(act="sillu"), ValueError, r"^act='sillu' is not one of \[.*\]; did you mean 'silu'"),
        (dict(stem_type="7x7pool"), ValueError, r"did you mean '7x7_pool'"),
        (dict(depths=(2, "3")), TypeError,
         r"^depths\[1\] must be a positive int, got '3' \(str\); pass a number, e\.g\. depths\[1\]=3$"),
        (dict(depths=(2, 0)), ValueError, r"^depths\[1\] must be a positive int, got 0$"),
        (dict(depths=3), TypeError, r"^depths must be a non-empty tuple of ints, one per stage, got 3 \(int\)$"),  # noqa: E501
        (dict(depths=(1, 1, 1)), ValueError,
         r"^depths, channels and stage_strides need one entry per stage, got depths=\(1, 1, 1\), "
         r"channels=\(16, 32\), stage_strides=\(1, 2\); override them together$"),
        (dict(act_gamma=1.5, conv_type="he_init"), ValueError, r"act_gamma=1.5 scales the activations of a"),
        (dict(fold_scalars="no"), TypeError, r"^fold_scalars must be True or False, got 'no' \(str\)$"),
        (dict(alpha=float("nan")), ValueError, r"^alpha must be a finite number > 0, got nan$"),
        (dict(group_size=0), ValueError, r"^group_size must be a positive int or None"),
        (dict(se_ratio=-0.5), ValueError, r"^se_ratio must be a finite number >= 0 or None, got -0.5$"),
    ],
)  # fmt: skip
def test_bad_overrides_say_what_is_wrong(overrides, exc, msg):
    with pytest.raises(exc, match=msg):
        timm.create_model("nf_resnet26", **{**SMALL, **overrides})


def test_with_overrides_names_close_fields_and_keeps_the_object_when_empty():
    assert RES.with_overrides() is RES
    assert RES.with_overrides(alpha=0.5) == NfCfg(**{**RES.__dict__, "alpha": 0.5})
    with pytest.raises(
        TypeError, match=r"^NfCfg has no field 'aplha'; did you mean 'alpha'\?; its fields are"
    ):
        RES.with_overrides(aplha=0.5)


def test_overrides_survive_a_hub_export_and_reload(tmp_path):
    """timm records create_model's kwargs in the exported config.json: an override that changes no tensor
    shape (act_gamma, skipinit_gain) still reloads as the same network, not silently as the base one."""
    from nf_plugins.hub import export_for_hub

    torch.manual_seed(0)
    model = _live(timm.create_model("nf_resnet26", num_classes=3, act_gamma=1.3, se_ratio=0.5, **SMALL))
    export_for_hub(model, tmp_path / "hub", compute_macs=False)
    back = timm.create_model(f"local-dir:{tmp_path / 'hub'}", pretrained=True)
    assert back.cfg == model.cfg and back.cfg.act_gamma == 1.3 and back.cfg.depths == (2, 2)
    x = _input().float()
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(x), model.eval()(x))

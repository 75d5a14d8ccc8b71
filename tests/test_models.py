"""NF behaviour (signal propagation, batch independence, folding) and timm conventions for every model."""

import dataclasses
import math

import pytest
import timm
import timm.optim
import torch
from live_weights import make_live

import nf_plugins
from nf_plugins.models import NormFreeBlock, NormFreeNet, create_model
from nf_plugins.models.nf_regnet import model_cfgs as regnet_cfgs
from nf_plugins.models.nf_resnet import model_cfgs as resnet_cfgs

ALL = nf_plugins.PAPER_MODELS
SMALL = ("nf_resnet26", "nf_regnet_b0")
ALPHA = 0.2


def block_output_stats(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[int, int, float, float]]:
    """(stage, index in stage, avg channel squared mean, avg channel variance) after every block."""
    stats, hooks = [], []
    for s, stage in enumerate(model.stages):
        for i, block in enumerate(stage):

            def hook(_m, _i, out, s=s, i=i):
                o = out.double()
                stats.append((s, i, o.mean((0, 2, 3)).pow(2).mean().item(), o.var((0, 2, 3)).mean().item()))

            hooks.append(block.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return stats


def test_resnet50_signal_propagation_follows_analytic_variance():
    """Var after block k of a stage is 1 + (k+1) alpha^2: growth by alpha^2 = 0.04 per block.

    Checked as the per-block increments (a flat variance has increments 0, a doubled alpha 0.16) and the
    level right after each transition (1 + alpha^2: the transition re-normalises the stream to 1; not
    checked in the last stage, 5x5 px, where zero padding lowers it). Measured: increments 0.031-0.040.
    """
    model = NormFreeNet(resnet_cfgs["nf_resnet50"], skipinit_gain=1.0).eval()
    stats = block_output_stats(model, torch.randn(8, 3, 160, 160))
    for stage, k, sq_mean, var in stats:
        assert sq_mean < 0.1
        if k == 0 and stage < 3:
            assert var == pytest.approx(1 + ALPHA**2, abs=0.04), stage
    var_by_stage: dict[int, list[float]] = {}
    for stage, _, _, var in stats:
        var_by_stage.setdefault(stage, []).append(var)
    for stage, variances in var_by_stage.items():
        steps = [b - a for a, b in zip(variances[:-1], variances[1:], strict=True)]
        assert sum(steps) / len(steps) == pytest.approx(ALPHA**2, rel=0.3), (stage, steps)
        assert all(0.5 * ALPHA**2 < d < 1.5 * ALPHA**2 for d in steps), (stage, steps)


def _paper_expected_variances(depths: tuple[int, ...]) -> list[float]:
    """Expected Var of each block's input, from the paper's rule stated independently of the builder:
    1 at the network's first block; within a stage 1 + i alpha^2 after i blocks; a stage's first block
    sees the previous stage's 1 + depth alpha^2 (its transition reset the stream to 1)."""
    out = []
    for s, depth in enumerate(depths):
        for i in range(depth):
            if i == 0:
                out.append(1.0 if s == 0 else 1 + depths[s - 1] * ALPHA**2)
            else:
                out.append(1 + i * ALPHA**2)
    return out


@pytest.mark.parametrize("name", ALL)
def test_beta_is_the_expected_std_with_a_reset_after_each_transition(name):
    with torch.device("meta"):
        model = timm.create_model(name)
    depths = {**resnet_cfgs, **regnet_cfgs}[name].depths
    betas = [b.beta for stage in model.stages for b in stage]
    assert betas == pytest.approx([v**0.5 for v in _paper_expected_variances(depths)], rel=1e-12)


def test_measured_block_input_variance_is_beta_squared():
    """On a network without avg-pool shortcuts the stream entering each block has variance beta^2."""
    model = NormFreeNet(resnet_cfgs["nf_resnet26"], skipinit_gain=1.0).eval()
    measured, hooks = [], []
    for stage in model.stages:
        for block in stage:
            hooks.append(
                block.register_forward_pre_hook(
                    lambda m, a: measured.append((m.beta, a[0].double().var((0, 2, 3)).mean().item()))
                )
            )
    with torch.no_grad():
        model(torch.randn(8, 3, 128, 128))
    for h in hooks:
        h.remove()
    # Block 0 sees the max-pooled stem output, not N(0, 1); the last stage (4x4 px) loses variance to padding.
    for i, (beta, var) in enumerate(measured[1:-2], start=1):
        assert var == pytest.approx(beta**2, abs=0.03), (i, beta)


def test_regnet_b0_signal_propagation():
    """Within each stage the variance grows by alpha^2 per block, relative to the transition output.

    The paper's 2x2 avg-pool shortcut is left uncorrected (appendix B: it "attenuates the signal",
    mis-estimating beta at init), so on white-noise input each transition scales the stream down;
    the same network with strided-conv shortcuts follows 1 + k alpha^2 in absolute terms.
    """
    x = torch.randn(8, 3, 160, 160)
    model = NormFreeNet(regnet_cfgs["nf_regnet_b0"], skipinit_gain=1.0).eval()
    stats = block_output_stats(model, x)
    transition_var = {}
    for stage, k, sq_mean, var in stats:
        transition_var.setdefault(stage, var)
        expected = (1 + (k + 1) * ALPHA**2) / (1 + ALPHA**2)
        assert var / transition_var[stage] == pytest.approx(expected, rel=0.2)
        assert sq_mean < 0.1
    no_pool = dataclasses.replace(regnet_cfgs["nf_regnet_b0"], shortcut_pool=False)
    torch.manual_seed(0)
    stats = block_output_stats(NormFreeNet(no_pool, skipinit_gain=1.0).eval(), x)
    for stage, k, _, var in stats[:-6]:  # the last stage is 5x5 px: zero padding dominates
        assert var == pytest.approx(1 + (k + 1) * ALPHA**2, rel=0.2), (stage, k)


@pytest.mark.parametrize("name", ["nf_resnet50", "nf_regnet_b0"])
def test_he_init_without_scaled_ws_shows_mean_shift(name):
    cfgs = {**resnet_cfgs, **regnet_cfgs}
    he = dataclasses.replace(cfgs[name], conv_type="he_init")
    stats = block_output_stats(NormFreeNet(he, skipinit_gain=1.0).eval(), torch.randn(8, 3, 160, 160))
    assert max(s[2] for s in stats) > 0.2  # the mean shift the Scaled WS models keep below 0.1


@pytest.mark.parametrize("name", SMALL)
def test_batch_independence_in_train_mode(name):
    model = timm.create_model(name, drop_rate=0.0, drop_path_rate=0.0).train()
    for m in model.modules():
        if isinstance(m, NormFreeBlock):
            m.skipinit_gain.data.uniform_(0.5, 1.5)
    torch.nn.init.normal_(model.get_classifier().weight, std=0.1)
    x = torch.randn(4, 3, 64, 64)
    full = model(x)
    for i in range(4):
        torch.testing.assert_close(full[i : i + 1], model(x[i : i + 1]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", SMALL)
def test_folded_eval_weights_match_unfolded(name):
    model = timm.create_model(name, num_classes=10)
    torch.nn.init.normal_(model.get_classifier().weight, std=0.1)
    for m in model.modules():
        if isinstance(m, NormFreeBlock):
            m.skipinit_gain.data.fill_(1.0)
    x = torch.randn(2, 3, 64, 64)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)

    def check():
        model.eval()
        with torch.no_grad():
            folded = model(x)
        unfolded = model(x).detach()  # grad enabled: recomputes Scaled WS
        torch.testing.assert_close(folded, unfolded, rtol=1e-5, atol=1e-5)
        return folded

    before = check()
    model.train()
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), torch.tensor([1, 2])).backward()
    opt.step()
    after = check()
    assert not torch.allclose(before, after)
    model.load_state_dict(timm.create_model(name, num_classes=10).state_dict())
    reloaded = check()
    assert not torch.allclose(after, reloaded)


def _down(n: int, stride: int) -> int:
    for _ in range(int(math.log2(stride))):
        n = (n + 1) // 2
    return n


@pytest.mark.parametrize("name", ALL)
def test_features_only_shapes_on_odd_sizes(name):
    """Shapes only, so on the meta device (the same shape rules, no compute: NF-ResNet-288 at output
    stride 8 took 30 s for real); the smallest model also for real, in case a kernel disagreed."""
    h, w = 225, 193
    for os_, device in [(8, "meta"), (16, "meta"), (32, "meta")] + [(8, "cpu")] * (name == "nf_regnet_b0"):
        with torch.device(device):
            model = timm.create_model(name, features_only=True, output_stride=os_).eval()
            x = torch.randn(1, 3, h, w)
        reductions = model.feature_info.reduction()
        assert reductions == [2, 4, 8, min(16, os_), min(32, os_)]
        with torch.no_grad():
            feats = model(x)
        assert [f.shape[1] for f in feats] == model.feature_info.channels()
        assert [tuple(f.shape[2:]) for f in feats] == [(_down(h, r), _down(w, r)) for r in reductions]


def _module_outputs(model: torch.nn.Module, names: list[str], x: torch.Tensor) -> list[torch.Tensor]:
    """Outputs of the named submodules in a plain forward, by hooks: independent of forward_intermediates."""
    out, hooks = {}, []
    for n in names:
        hooks.append(model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o)))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return [out[n] for n in names]


@pytest.mark.parametrize("name", SMALL)
def test_out_indices_and_forward_intermediates(name):
    model = make_live(timm.create_model(name)).eval()
    x = torch.randn(1, 3, 64, 64)
    hooked = _module_outputs(model, [f["module"] for f in model.feature_info], x)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
        assert len(inter) == len(hooked) == 5
        for a, b in zip(inter, hooked, strict=True):  # each level is that module's output, by value
            assert b.abs().max() > 0.1
            torch.testing.assert_close(a, b)
        feat = timm.create_model(name, features_only=True, out_indices=(1, 3)).eval()
        missing, _ = feat.load_state_dict(
            {"model." + k: v for k, v in model.state_dict().items()}, strict=False
        )
        assert missing == []
        out = feat(x)
    assert len(out) == 2
    torch.testing.assert_close(out[0], hooked[1])
    torch.testing.assert_close(out[1], hooked[3])


@pytest.mark.parametrize("name", SMALL)
def test_any_size_from_32_px(name):
    model = timm.create_model(name, num_classes=3).eval()
    with torch.no_grad():
        for h, w in [(32, 32), (33, 47), (37, 32), (63, 65), (97, 34)]:
            assert model(torch.randn(1, 3, h, w)).shape == (1, 3)


@pytest.mark.parametrize(
    "bad, exc, pattern",
    [
        (torch.randn(1, 4, 64, 64), ValueError, r"expected 3 input channels \(model built with in_chans=3\)"),
        (torch.randn(1, 64, 64, 3), ValueError, "expected 3 input channels.*NCHW"),
        (torch.randn(3, 64), ValueError, r"expected a 4-D image batch \(N, C, H, W\), got a 2-D"),
        (torch.randn(1, 1, 3, 64, 64), ValueError, "got a 5-D tensor"),
        (torch.randint(0, 255, (1, 3, 64, 64)), TypeError, "expected a floating point image tensor.*int64"),
        (torch.randn(1, 3, 16, 64), ValueError, "16x64 is too small.*at least 32x32"),
    ],
)
def test_bad_input_says_what_was_expected(bad, exc, pattern):
    model = timm.create_model("nf_regnet_b0").eval()
    with pytest.raises(exc, match=pattern):
        model(bad)


def test_unknown_names_and_kwargs():
    with pytest.raises(ValueError, match="unknown model 'nf_regnet_b9'; did you mean nf_regnet_b"):
        create_model("nf_regnet_b9")
    with pytest.raises(RuntimeError, match="Unknown model"):  # timm's own entry point still refuses
        timm.create_model("nf_regnet_b9")
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['depth'\].*accepts num_classes"):
        timm.create_model("nf_regnet_b0", depth=3)
    with pytest.raises(ValueError, match="output_stride must be 8, 16 or 32"):
        timm.create_model("nf_regnet_b0", output_stride=4)
    with pytest.raises(ValueError, match=r"unknown pretrained tag 'in1k'.*available tags: \['untrained'"):
        timm.create_model("nf_regnet_b0.in1k")


def test_pretrained_without_weights_is_an_error_not_random_init():
    with pytest.raises(ValueError, match="no pretrained weights.*nf_resnet50.ra2_in1k"):
        timm.create_model("nf_resnet50", pretrained=True)
    with pytest.raises(ValueError, match="no pretrained weights.*paper-exact nf_regnet_b0"):
        timm.create_model("nf_regnet_b0", pretrained=True)


def test_listing_and_default_cfgs():
    names = timm.list_models("nf_re*")
    for name in ALL:
        assert name in names
        with torch.device("meta"):  # the cfg needs no weights: 8 s less for building all 12
            cfg = timm.create_model(name).pretrained_cfg
        assert (
            cfg["tag"] == "untrained" and cfg["first_conv"] == "stem.conv" and cfg["classifier"] == "head.fc"
        )
    assert timm.create_model("nf_regnet_b3").pretrained_cfg["input_size"] == (3, 288, 288)
    assert set(timm.list_pretrained("nf_re*")) >= {"nf_resnet50.ra2_in1k", "nf_regnet_b1.ra2_in1k"}


def _final_side(px: int, n_halvings: int) -> int:
    """Side after ``n_halvings`` stride-2 steps that each pad to round up (ceil), as TF "SAME" does."""
    for _ in range(n_halvings):
        px = math.ceil(px / 2)
    return px


@pytest.mark.parametrize("name", ALL)
def test_pool_size_is_the_final_feature_size_at_input_size(name):
    """timm's default_cfg contract (its test_model_default_cfgs): forward_features at ``input_size``
    is ``pool_size``; after ``reset_classifier(0)`` the output is pooled, after ``(0, '')`` it is not.
    Shapes on the meta device (the same shape rules, no compute); B1/B2 (240 px: 8x8, not 7x7) for real."""
    cfg = timm.create_model(name, pretrained=False, num_classes=0).pretrained_cfg
    input_size, pool_size = cfg["input_size"], cfg["pool_size"]
    halvings = 5  # stem (conv 2 x pool 2, or conv 2 x stage-1 2) and three more stride-2 stages
    assert pool_size == (_final_side(input_size[1], halvings),) * 2
    with torch.device("meta"):
        model = timm.create_model(name)
    state = model.state_dict()
    assert cfg["first_conv"] + ".weight" in state and cfg["classifier"] + ".weight" in state
    x = torch.empty(1, *input_size, device="meta")
    assert tuple(model.forward_features(x).shape[-2:]) == pool_size
    model.reset_classifier(0)
    assert tuple(model(x).shape) == (1, model.num_features)
    model.reset_classifier(0, "")
    assert tuple(model(x).shape[-2:]) == pool_size
    if name in ("nf_regnet_b1", "nf_regnet_b2"):
        real = timm.create_model(name, num_classes=0).eval()
        with torch.no_grad():
            assert tuple(real.forward_features(torch.randn(1, *input_size)).shape[-2:]) == pool_size == (8, 8)


@pytest.mark.parametrize("name", ["nf_resnet50", "nf_regnet_b1"])
def test_timm_weight_tags_keep_timm_architecture(name, tmp_path):
    """timm's weights load into timm's own variant (same logits), never into ours."""
    from timm.models import nfnet

    reference = getattr(nfnet, name)(pretrained=False).eval()  # timm's entrypoint, bypassing the registry
    torch.nn.init.normal_(reference.get_classifier().weight, std=0.01)
    path = tmp_path / "timm_weights.pth"
    torch.save(reference.state_dict(), path)
    model = timm.create_model(
        f"{name}.ra2_in1k", pretrained=True, pretrained_cfg_overlay=dict(file=str(path))
    )
    assert type(model).__module__ == "timm.models.nfnet"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference(x))
    ours = timm.create_model(name)
    with pytest.raises(RuntimeError, match="Missing key|Unexpected key|size mismatch"):
        ours.load_state_dict(reference.state_dict())


def test_timm_conventions():
    model = timm.create_model("nf_regnet_b0", num_classes=5, in_chans=1, global_pool="max")
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 5)
    model.reset_classifier(7)
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 7)
    assert model.get_classifier().weight.abs().sum() == 0
    feats = model.forward_features(torch.randn(2, 1, 64, 64))
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
    # no weight decay on gains, biases and skip gains; timm's optimizer factory honours it
    nwd = model.no_weight_decay()
    assert "stages.0.0.skipinit_gain" in nwd and "stages.0.0.conv1.gain" in nwd and "stem.conv.bias" in nwd
    assert not any(n.endswith("conv1.weight") for n in nwd)
    opt = timm.optim.create_optimizer_v2(model, "sgd", lr=0.1, weight_decay=1e-4)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    named = dict(model.named_parameters())
    assert (
        id(named["stages.0.0.conv1.gain"]) not in decayed and id(named["stages.0.0.conv1.weight"]) in decayed
    )
    # layer-wise groups
    groups = timm.models.group_parameters(model, model.group_matcher())
    assert len(groups) == sum(len(s) for s in model.stages) + 2


def test_drop_rates_act_only_in_training():
    model = timm.create_model("nf_regnet_b0", drop_rate=0.5, drop_path_rate=0.5, num_classes=4)
    # stochastic depth of block i of n is rate * i / n (the authors' reference code); B0 has n = 16 blocks
    assert model.head.drop.p == 0.5 and model.stages[-1][-1].drop_path.drop_prob == pytest.approx(
        0.5 * 15 / 16
    )
    assert model.stages[0][0].drop_path.__class__.__name__ == "Identity"  # rate 0 at the first block
    for m in model.modules():
        if isinstance(m, NormFreeBlock):
            m.skipinit_gain.data.fill_(1.0)
    torch.nn.init.normal_(model.get_classifier().weight)
    x = torch.randn(2, 3, 64, 64)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    assert timm.create_model("nf_regnet_b4").head.drop.p == 0.4  # the variant's default (appendix D)


def test_grad_checkpointing_gives_same_gradients():
    model = timm.create_model("nf_resnet26", num_classes=3)
    torch.nn.init.normal_(model.get_classifier().weight, std=0.1)
    for m in model.modules():
        if isinstance(m, NormFreeBlock):
            m.skipinit_gain.data.fill_(1.0)
    x = torch.randn(2, 3, 64, 64)

    def grads():
        model.zero_grad()
        model(x).square().sum().backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads()
    model.set_grad_checkpointing(True)
    for a, b in zip(plain, grads(), strict=True):
        torch.testing.assert_close(a, b)


def _grads(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    torch.manual_seed(3)  # the same dropout mask (NF-RegNets' head drops 20-40% in training) for each run
    model(x).square().sum().backward()
    return {n.removeprefix("_orig_mod."): p.grad.clone() for n, p in model.named_parameters()}


def _assert_grads_close(got: dict, expected: dict, rel: float = 1e-4) -> None:
    assert got.keys() == expected.keys()
    for n, g in expected.items():
        assert g.abs().max() > 0, n  # live weights: every parameter, the SkipInit gains too, has a gradient
        assert (got[n] - g).abs().max() <= rel * g.abs().max(), n


def test_torchscript_matches_eager_on_live_weights():
    # float64: a SkipInit gain's gradient is one sum over a whole stage's activations, whose float32
    # rounding depends on the thread count (1.3e-4 relative with one thread); float64 keeps the
    # comparison at 1e-4 meaningful on any machine.
    model = make_live(timm.create_model("nf_regnet_b0", num_classes=10)).double()
    scripted = torch.jit.script(model)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        expected = model.eval()(x)
        assert expected.abs().max() > 0.1
        torch.testing.assert_close(scripted.eval()(x), expected, rtol=1e-5, atol=1e-5)
    _assert_grads_close(_grads(scripted.train(), x), _grads(model.train(), x))
    with pytest.raises(Exception, match="expected 3 input channels"):
        scripted(torch.randn(1, 2, 64, 64))


TINY = dataclasses.replace(  # two blocks per stage, every NF-RegNet part (grouped conv, SE, pooled shortcut)
    regnet_cfgs["nf_regnet_b0"], depths=(2, 2, 2, 2), channels=(16, 32, 48, 64), stem_chs=16, num_features=96
)


def test_torch_compile_fullgraph_matches_eager_on_live_weights():
    model = make_live(NormFreeNet(TINY, num_classes=5, drop_rate=0.0))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")  # fullgraph: no graph breaks
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
    _assert_grads_close(_grads(compiled, x), _grads(model, x))


@pytest.mark.slow  # 60-140 s on 2 cores, nearly all of it C++ compilation
def test_torch_compile_inductor_matches_eager_on_live_weights():
    """Inductor (generated C++ kernels, needs a compiler) on a tiny NF-RegNet."""
    model = make_live(NormFreeNet(TINY, num_classes=5, drop_rate=0.0))
    compiled = torch.compile(model, fullgraph=True, backend="inductor")
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
    _assert_grads_close(_grads(compiled, x), _grads(model, x), rel=1e-3)


def test_builds_on_meta_device():
    with torch.device("meta"):
        model = timm.create_model("nf_regnet_b0", drop_path_rate=0.1)
    assert model.stem.conv.weight.is_meta
    assert model.stages[-1][-1].drop_path_rate == pytest.approx(0.1 * 15 / 16)  # block 15 of 16: rate * i / n

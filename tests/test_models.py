"""NF behaviour (signal propagation, batch independence, folding) and timm conventions for every model."""

import dataclasses
import math

import pytest
import timm
import timm.optim
import torch

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


def with_unit_skip_gains(model: torch.nn.Module) -> torch.nn.Module:
    for m in model.modules():
        if isinstance(m, NormFreeBlock):
            m.skipinit_gain.data.fill_(1.0)
    return model


def test_resnet50_signal_propagation_follows_analytic_variance():
    model = with_unit_skip_gains(NormFreeNet(resnet_cfgs["nf_resnet50"])).eval()
    stats = block_output_stats(model, torch.randn(8, 3, 160, 160))
    for stage, k, sq_mean, var in stats:
        assert var == pytest.approx(1 + (k + 1) * ALPHA**2, rel=0.2), (stage, k)
        assert sq_mean < 0.1


def test_regnet_b0_signal_propagation():
    """Within each stage the variance grows by alpha^2 per block, relative to the transition output.

    The paper's 2x2 avg-pool shortcut is left uncorrected (appendix B: it "attenuates the signal",
    mis-estimating beta at init), so on white-noise input each transition scales the stream down;
    the same network with strided-conv shortcuts follows 1 + k alpha^2 in absolute terms.
    """
    x = torch.randn(8, 3, 160, 160)
    model = with_unit_skip_gains(NormFreeNet(regnet_cfgs["nf_regnet_b0"])).eval()
    stats = block_output_stats(model, x)
    transition_var = {}
    for stage, k, sq_mean, var in stats:
        transition_var.setdefault(stage, var)
        expected = (1 + (k + 1) * ALPHA**2) / (1 + ALPHA**2)
        assert var / transition_var[stage] == pytest.approx(expected, rel=0.2)
        assert sq_mean < 0.1
    no_pool = dataclasses.replace(regnet_cfgs["nf_regnet_b0"], shortcut_pool=False)
    torch.manual_seed(0)
    stats = block_output_stats(with_unit_skip_gains(NormFreeNet(no_pool)).eval(), x)
    for stage, k, _, var in stats[:-6]:  # the last stage is 5x5 px: zero padding dominates
        assert var == pytest.approx(1 + (k + 1) * ALPHA**2, rel=0.2), (stage, k)


@pytest.mark.parametrize("name", ["nf_resnet50", "nf_regnet_b0"])
def test_he_init_without_scaled_ws_shows_mean_shift(name):
    cfgs = {**resnet_cfgs, **regnet_cfgs}
    he = dataclasses.replace(cfgs[name], conv_type="he_init")
    stats = block_output_stats(with_unit_skip_gains(NormFreeNet(he)).eval(), torch.randn(8, 3, 160, 160))
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
    h, w = 225, 193
    for os_ in (8, 16, 32):
        model = timm.create_model(name, features_only=True, output_stride=os_).eval()
        reductions = model.feature_info.reduction()
        assert reductions == [2, 4, 8, min(16, os_), min(32, os_)]
        with torch.no_grad():
            feats = model(torch.randn(1, 3, h, w))
        assert [f.shape[1] for f in feats] == model.feature_info.channels()
        assert [tuple(f.shape[2:]) for f in feats] == [(_down(h, r), _down(w, r)) for r in reductions]


@pytest.mark.parametrize("name", SMALL)
def test_out_indices_and_forward_intermediates(name):
    model = timm.create_model(name).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
        torch.testing.assert_close(inter[-1], final)
        feat = timm.create_model(name, features_only=True, out_indices=(1, 3)).eval()
        feat.load_state_dict(model.state_dict(), strict=False)
        out = feat(x)
    assert len(out) == 2 and [o.shape[1] for o in out] == [inter[1].shape[1], inter[3].shape[1]]


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
        cfg = timm.create_model(name).pretrained_cfg
        assert (
            cfg["tag"] == "untrained" and cfg["first_conv"] == "stem.conv" and cfg["classifier"] == "head.fc"
        )
    assert timm.create_model("nf_regnet_b3").pretrained_cfg["input_size"] == (3, 288, 288)
    assert set(timm.list_pretrained("nf_re*")) >= {"nf_resnet50.ra2_in1k", "nf_regnet_b1.ra2_in1k"}


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
    assert model.head.drop.p == 0.5 and model.stages[-1][-1].drop_path.drop_prob == 0.5
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


def test_torchscript_matches_eager():
    model = timm.create_model("nf_regnet_b0", num_classes=10).eval()
    torch.nn.init.normal_(model.get_classifier().weight, std=0.1)
    scripted = torch.jit.script(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(Exception, match="expected 3 input channels"):
        scripted(torch.randn(1, 2, 64, 64))


def test_torch_compile_fullgraph_matches_eager():
    model = timm.create_model("nf_resnet26", num_classes=10)
    torch.nn.init.normal_(model.get_classifier().weight, std=0.1)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")  # fullgraph: no graph breaks
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
    compiled(x).sum().backward()
    assert model.stem.conv.gain.grad is not None


def test_builds_on_meta_device():
    with torch.device("meta"):
        model = timm.create_model("nf_regnet_b0", drop_path_rate=0.1)
    assert model.stem.conv.weight.is_meta
    assert model.stages[-1][-1].drop_path_rate == pytest.approx(0.1)

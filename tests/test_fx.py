"""torch.fx on every paper model: timm's and torchvision's graph tooling, by value on live weights.

The assertions follow timm's own tests (tests/test_models.py: ``test_model_forward_fx``,
``test_model_backward_fx``, ``test_model_forward_fx_torchscript``, the ``feature_cls="fx"`` path),
tightened to compare values and gradients with the eager model instead of shapes and ``grad is not None``.
"""

from __future__ import annotations

import pytest
import timm
import torch
from live_weights import make_live
from timm.layers import get_notrace_functions, get_notrace_modules
from timm.models import get_graph_node_names
from torchvision.models.feature_extraction import create_feature_extractor

import nf_plugins

ALL = nf_plugins.PAPER_MODELS
SMALL = ("nf_resnet26", "nf_regnet_b0")
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def _fx_model(model: torch.nn.Module) -> torch.fx.GraphModule:
    """As timm's ``_create_fx_model``: a GraphModule returning the last node of the train and eval graphs,
    traced with timm's leaf modules and wrapped functions."""
    tracer_kwargs = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions())
    train_nodes, eval_nodes = get_graph_node_names(model)
    return create_feature_extractor(
        model,
        train_return_nodes=[train_nodes[-1]],
        eval_return_nodes=[eval_nodes[-1]],
        tracer_kwargs=tracer_kwargs,
    )


def _only(out: dict[str, torch.Tensor]) -> torch.Tensor:
    (value,) = out.values()
    return value


DEEP = ("nf_resnet152", "nf_resnet200", "nf_resnet288")  # 50-96 blocks: seconds per trace, under -m slow


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in DEEP else n for n in ALL])
def test_every_model_traces_with_the_entrance_check_as_one_node(name):
    """timm's ``get_graph_node_names`` (a symbolic trace in train and eval mode) of each model, built on the
    meta device (no weights needed): the check is one node, every ``feature_info`` module is in the graph."""
    with torch.device("meta"):
        model = timm.create_model(name, num_classes=7)
    train_nodes, eval_nodes = get_graph_node_names(model)
    for nodes in (train_nodes, eval_nodes):
        assert "check_model_input" in nodes  # the check stays in the graph, traced as a call
        assert nodes[-1].startswith("head")
        for info in model.feature_info:  # its nodes are named after it (timm's FeatureGraphNet returns them)
            assert any(n == info["module"] or n.startswith(info["module"] + ".") for n in nodes), info


def _torchvision_features(name: str) -> None:
    with torch.device("meta"):
        model = timm.create_model(name, num_classes=7)
    modules = [info["module"] for info in model.feature_info]
    extractor = create_feature_extractor(model.eval(), return_nodes={m: m for m in modules})
    feats = extractor(torch.empty(1, 3, 64, 96, device="meta"))
    expected = [(f["num_chs"], 64 // f["reduction"], 96 // f["reduction"]) for f in model.feature_info]
    assert [tuple(f.shape[1:]) for f in feats.values()] == expected


@pytest.mark.parametrize("name", SMALL)
def test_torchvision_feature_extractor(name):
    _torchvision_features(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ALL if n not in SMALL])
def test_torchvision_feature_extractor_all(name):
    _torchvision_features(name)


def test_traced_graph_still_checks_its_input():
    graph = _fx_model(timm.create_model("nf_regnet_b0").eval())
    with pytest.raises(ValueError, match=r"expected 3 input channels"):
        graph(torch.randn(1, 4, 64, 64))
    with pytest.raises(TypeError, match=r"input dtype torch.float64 does not match"):
        graph(torch.randn(1, 3, 64, 64, dtype=torch.float64))


def _eager_vs_fx(name: str, script: bool) -> None:
    model = make_live(timm.create_model(name, num_classes=7))
    fx_model = _fx_model(model)
    model.eval(), fx_model.eval()
    with torch.no_grad():
        expected = model(X)
        # Eager eval uses the cached standardized weights, the graph recomputes them: float32 rounding that
        # 96 live residual blocks (NF-ResNet-288) grow to ~6e-5 of the logits' scale; a wrong op is far larger
        tol = dict(rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
        torch.testing.assert_close(_only(fx_model(X)), expected, **tol)
        if script:  # timm's test_model_forward_fx_torchscript, compared by value
            torch.testing.assert_close(_only(torch.jit.script(fx_model)(X)), expected, **tol)
    grads = []
    for m in (model, fx_model):
        m.train().zero_grad()
        torch.manual_seed(3)  # the same dropout mask (NF-RegNets' head drops 20-40%) in both
        out = _only(m(X)) if m is fx_model else m(X)
        out.square().sum().backward()
        grads.append({n: p.grad for n, p in m.named_parameters()})
    eager, traced = grads
    assert set(traced) <= set(eager) and len(traced) == len(eager)  # every parameter gets a gradient
    for n, g in traced.items():
        assert eager[n].abs().max() > 0, n
        assert (g - eager[n]).abs().max() <= 1e-5 * eager[n].abs().max(), n


@pytest.mark.parametrize("name", SMALL)
def test_fx_forward_backward_and_torchscript_match_eager(name):
    _eager_vs_fx(name, script=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ALL if n not in SMALL])
def test_fx_forward_backward_and_torchscript_match_eager_all(name):
    _eager_vs_fx(name, script=True)


@pytest.mark.parametrize("name", SMALL)
def test_features_only_fx_equals_the_default_feature_path(name):
    """``feature_cls="fx"`` (timm's FeatureGraphNet) gives the same features as the default getter."""
    getter = make_live(timm.create_model(name, features_only=True))
    graph = timm.create_model(name, features_only=True, feature_cls="fx")
    assert type(graph).__name__ == "FeatureGraphNet"
    missing, unexpected = graph.graph_module.load_state_dict(getter.model.state_dict(), strict=False)
    assert missing == [] and all(k.startswith("head.") for k in unexpected)
    x = X.clone().requires_grad_()
    outs = []
    for m in (getter, graph):
        feats = m.train()(x)
        (grad,) = torch.autograd.grad(sum(f.square().mean() for f in feats), x)
        outs.append(([f.detach() for f in feats], grad))
    (f_get, g_get), (f_fx, g_fx) = outs
    assert len(f_get) == len(f_fx) == 5
    for a, b in zip(f_fx, f_get, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_fx, g_get, rtol=1e-5, atol=1e-7)


def test_fx_graph_mode_quantization_prepares_and_calibrates():
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx

    model = make_live(timm.create_model("nf_resnet26", num_classes=7)).eval()
    prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), example_inputs=(X,))
    observers = [m for m in prepared.modules() if isinstance(m, torch.ao.quantization.ObserverBase)]
    assert observers
    with torch.no_grad():
        torch.testing.assert_close(prepared(X), model(X), rtol=1e-5, atol=1e-5)  # observers only watch
    assert any(
        torch.isfinite(o.min_val).all() and o.min_val.numel() > 0 for o in observers if hasattr(o, "min_val")
    )

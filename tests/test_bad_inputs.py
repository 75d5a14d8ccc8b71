"""Bad-input catalogue (issue 9): every case names the exception type AND what the message must say.

The table of these cases is docs/bad_inputs.md; each row names the test here that proves it.
Models are small and inputs 64 px so the whole file stays a few seconds on 2 cores.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import os
import pickle
import re
from pathlib import Path

import pytest
import safetensors.torch
import torch

from nf_plugins.cli import main as cli_main
from nf_plugins.deploy import export_onnx
from nf_plugins.hub import export_for_hub, load_training_checkpoint
from nf_plugins.models import create_model
from nf_plugins.spp import signal_propagation

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def r26():
    torch.manual_seed(0)
    return create_model("nf_resnet26", num_classes=4).eval()


@pytest.fixture(scope="module")
def b0():
    torch.manual_seed(0)
    return create_model("nf_regnet_b0", num_classes=4).eval()


# ---- model forward: what reaches the entrance ------------------------------------------------------

FORWARD_CASES = [
    # id, input, exception, message regex
    ("5_channels", torch.randn(1, 5, 64, 64), ValueError, r"expected 3 input channels.*in_chans=5"),
    ("nhwc", torch.randn(1, 64, 64, 3), ValueError, r"expected 3 input channels.*NCHW \(not NHWC\)"),
    ("rank3", torch.randn(3, 64, 64), ValueError, r"4-D image batch.*3-D tensor.*unsqueeze\(0\)"),
    ("rank5", torch.randn(1, 1, 3, 64, 64), ValueError, r"4-D image batch.*5-D tensor"),
    ("uint8", torch.zeros(1, 3, 64, 64, dtype=torch.uint8), TypeError, r"floating point.*torch.uint8.*float\(\)"),  # noqa: E501
    ("int64", torch.zeros(1, 3, 64, 64, dtype=torch.int64), TypeError, r"floating point.*torch.int64"),
    ("float64", torch.zeros(1, 3, 64, 64, dtype=torch.float64), TypeError, r"float64 does not match.*float32"),  # noqa: E501
    ("float16", torch.zeros(1, 3, 64, 64, dtype=torch.float16), TypeError, r"float16 does not match.*autocast"),  # noqa: E501
    ("too_small", torch.zeros(1, 3, 16, 16), ValueError, r"16x16 is too small.*32x32"),
    ("too_narrow", torch.zeros(1, 3, 64, 31), ValueError, r"64x31 is too small"),
    ("not_tensor", [[0.0]], TypeError, r"torch.Tensor image batch"),
]  # fmt: skip


@pytest.mark.parametrize("family", ["r26", "b0"])
@pytest.mark.parametrize(
    ("x", "exc", "msg"), [c[1:] for c in FORWARD_CASES], ids=[c[0] for c in FORWARD_CASES]
)
def test_forward_rejects_bad_input_at_the_entrance(family, x, exc, msg, request):
    model = request.getfixturevalue(family)
    with pytest.raises(exc, match=msg):
        model(x)
    with pytest.raises(exc, match=msg):  # forward_intermediates (features_only's path) checks too
        model.forward_intermediates(x)


def test_float64_model_takes_float64_and_rejects_float32(b0):
    """float64 is allowed when the model is float64 (as in timm); it matches the float32 model."""
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        model64 = create_model("nf_regnet_b0", num_classes=4).eval()
        model64.load_state_dict(b0.state_dict())
        model64.get_classifier().weight.normal_()  # the zero-init head would make both outputs zero
        ref = model64(x)
        model64.double()
        out = model64(x.double())
        assert out.dtype == torch.float64 and ref.abs().max() > 1e-3
        torch.testing.assert_close(out.float(), ref, rtol=1e-4, atol=1e-4)
        with pytest.raises(TypeError, match=r"float32 does not match.*float64.*x.to\(torch.float64\)"):
            model64(x)


def test_mixed_dtypes_are_fine_under_autocast(b0):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(b0(torch.randn(1, 3, 64, 64, dtype=torch.bfloat16))).all()


@pytest.mark.parametrize(("h", "w"), [(33, 47), (65, 32), (97, 101)])
def test_odd_sizes_follow_the_ceil_stride_rule(h, w):
    """Every stride-2 conv/pool pads k//2, so level r has ceil(H/r) x ceil(W/r) pixels."""
    feats = create_model("nf_regnet_b0", features_only=True).eval()
    with torch.no_grad():
        outs = feats(torch.randn(1, 3, h, w))
    for r, y in zip(feats.feature_info.reduction(), outs, strict=True):
        assert tuple(y.shape[2:]) == (math.ceil(h / r), math.ceil(w / r)), (r, y.shape)


def test_nan_input_propagates_in_the_model_and_is_refused_by_spp(r26):
    """The model does not test for NaN (a host sync on every forward); the SPP tool does."""
    x = torch.randn(2, 3, 32, 32)
    x[1, 2, 3, 4] = float("nan")
    x[0, 0, 0, 0] = float("inf")
    with torch.no_grad():
        assert torch.isnan(r26(x)).any()
    with pytest.raises(ValueError, match=r"2 NaN/inf values; pass a finite batch"):
        signal_propagation(r26, x)


# ---- model creation -------------------------------------------------------------------------------

CREATE_CASES = [
    ("unknown_name", "nf_resnet5", {}, ValueError, r"unknown model 'nf_resnet5'; did you mean nf_resnet50"),
    ("typo_regnet", "nf_regnet_b9", {}, ValueError, r"unknown model 'nf_regnet_b9'; did you mean nf_regnet_b"),  # noqa: E501
    ("empty_name", "", {}, TypeError, r"non-empty string"),
    ("unknown_tag", "nf_resnet50.ra3_in1k", {}, ValueError,
     r"unknown pretrained tag 'ra3_in1k'.*available tags: \['untrained', 'ra2_in1k'\].*did you mean 'ra2_in1k'"),  # noqa: E501
    ("unknown_tag_no_timm", "nf_resnet26.in1k", {}, ValueError, r"available tags: \['untrained'\]"),
    ("no_weights", "nf_resnet26", dict(pretrained=True), ValueError,
     r"no pretrained weights are published for the paper-exact nf_resnet26.*checkpoint_path"),
    ("unknown_kwarg", "nf_resnet26", dict(dropout=0.1), TypeError,
     r"unexpected keyword arguments \['dropout'\].*drop_rate"),
    ("output_stride", "nf_resnet26", dict(output_stride=4), ValueError, r"output_stride must be 8, 16 or 32"),
    ("in_chans_zero", "nf_resnet26", dict(in_chans=0), ValueError, r"in_chans must be a positive int"),
    ("drop_path_rate", "nf_resnet26", dict(drop_path_rate=1.0), ValueError, r"drop_path_rate must be in \[0, 1\)"),  # noqa: E501
    ("drop_rate", "nf_resnet26", dict(drop_rate=-0.1), ValueError, r"drop_rate must be in \[0, 1\)"),
    ("out_indices", "nf_resnet26", dict(features_only=True, out_indices=(1, 7)), ValueError,
     r"out_indices=\(1, 7\) is out of range for nf_resnet26: it has 5 feature levels"),
    ("out_indices_int", "nf_regnet_b0", dict(features_only=True, out_indices=6), ValueError,
     r"out_indices=6 is out of range"),
    ("missing_checkpoint", "nf_resnet26", dict(checkpoint_path="/no/such/weights.safetensors"),
     FileNotFoundError, r"checkpoint_path '/no/such/weights.safetensors' does not exist"),
    ("bad_hf_repo", "hf-hub:org/bad name", dict(pretrained=True), ValueError, r"(?i)repo id"),
    ("num_classes_negative", "nf_resnet26", dict(num_classes=-1), ValueError,
     r"num_classes must be a non-negative int \(0 removes the classifier\), got -1"),
    ("num_classes_str", "nf_resnet26", dict(num_classes="10"), TypeError,
     r"num_classes must be a non-negative int.*got '10' \(str\); pass a number, e.g. num_classes=10$"),
    ("in_chans_bool", "nf_resnet26", dict(in_chans=True), TypeError,
     r"in_chans must be a positive int, got True \(bool\)"),
    ("drop_rate_str", "nf_resnet26", dict(drop_rate="0.1"), TypeError,
     r"drop_rate must be a float in \[0, 1\), got '0.1' \(str\); pass a number, e.g. drop_rate=0.1$"),
    ("global_pool", "nf_resnet26", dict(global_pool="bogus"), ValueError,
     r"global_pool='bogus' is not a pooling type; use one of \['', 'avg', 'max'"),
    ("no_pool_with_classes", "nf_resnet26", dict(global_pool=""), ValueError,
     r"global_pool='' \(no pooling\) cannot feed a classifier of num_classes=1000: pass num_classes=0"),
    ("out_indices_empty", "nf_resnet26", dict(features_only=True, out_indices=()), ValueError,
     r"out_indices=\(\) selects no feature level of nf_resnet26: it has 5 feature levels"),
    ("overlay_input_size", "nf_resnet26", dict(pretrained_cfg_overlay=dict(input_size=(3, 0, 0))), ValueError,
     r"pretrained_cfg_overlay\['input_size'\]=\(3, 0, 0\) is invalid: expected \(channels, height, width\)"),
    ("overlay_crop_pct", "nf_resnet26", dict(pretrained_cfg_overlay=dict(crop_pct=-1)), ValueError,
     r"pretrained_cfg_overlay\['crop_pct'\]=-1 is invalid: expected a positive fraction"),
    ("overlay_str", "nf_resnet26", dict(pretrained_cfg_overlay="abc"), TypeError,
     r"pretrained_cfg_overlay must be a dict of pretrained_cfg fields, got 'abc' \(str\)"),
    ("overlay_unknown_key", "nf_resnet26", dict(pretrained_cfg_overlay=dict(crop_pc=1.0)), TypeError,
     r"pretrained_cfg_overlay has unknown keys \['crop_pc'\] \(did you mean \['crop_pct'\]\?\)"),
    ("overlay_std", "nf_resnet26", dict(pretrained_cfg_overlay=dict(std=(0.2, 0.0, 0.2))), ValueError,
     r"pretrained_cfg_overlay\['std'\]=\(0.2, 0.0, 0.2\) is invalid: expected per-channel positive numbers"),
]  # fmt: skip

# The cases of issue 15 also go through timm.create_model: our registered entrypoints check them there.
TIMM_ENTRY_CASES = [c for c in CREATE_CASES if c[0] in (
    "num_classes_negative", "num_classes_str", "in_chans_bool", "drop_rate_str", "global_pool",
    "out_indices_empty", "overlay_input_size", "overlay_crop_pct", "overlay_str",
)]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "kwargs", "exc", "msg"), [c[1:] for c in CREATE_CASES], ids=[c[0] for c in CREATE_CASES]
)
def test_create_model_errors(name, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        create_model(name, **kwargs)


@pytest.mark.parametrize(
    ("name", "kwargs", "exc", "msg"), [c[1:] for c in TIMM_ENTRY_CASES], ids=[c[0] for c in TIMM_ENTRY_CASES]
)
def test_timm_create_model_checks_the_same(name, kwargs, exc, msg):
    import timm

    with pytest.raises(exc, match=msg):
        timm.create_model(name, **kwargs)


def test_valid_pretrained_cfg_overlay_is_stored():
    """The overlay check lets timm's own kinds of values through: crop_pct above 1 (timm ships 1.15)."""
    overlay = dict(input_size=(3, 256, 256), crop_pct=1.15, interpolation="bilinear", mean=(0.5,) * 3)
    cfg = create_model("nf_regnet_b0", num_classes=0, pretrained_cfg_overlay=overlay).pretrained_cfg
    assert {k: cfg[k] for k in overlay} == overlay


def test_reset_classifier_checks_before_changing_the_head(r26):
    """timm's head treats a negative count as 0 (no classifier) and asserts on a bad pool type; here each
    is a ValueError/TypeError naming the argument, and the model keeps its classifier."""
    model = create_model("nf_resnet26", num_classes=4)
    fc = model.get_classifier()
    for args, exc, msg in [
        ((-3,), ValueError, r"num_classes must be a non-negative int \(0 removes the classifier\), got -3"),
        (("10",), TypeError, r"num_classes must be a non-negative int.*'10' \(str\); pass a number, e.g. num_classes=10"),  # noqa: E501
        ((10, "bogus"), ValueError, r"global_pool='bogus' is not a pooling type"),
        ((10, ""), ValueError, r"reset_classifier\(10\) with global_pool='' \(no pooling\): pass num_classes=0 for unpooled features, or a pooling type such as global_pool='avg'$"),  # noqa: E501
    ]:  # fmt: skip
        with pytest.raises(exc, match=msg):
            model.reset_classifier(*args)
        assert model.get_classifier() is fc and model.num_classes == 4
    model.reset_classifier(0, "")  # unpooled features: the one valid use of global_pool=''
    assert model.num_classes == 0 and model.head.global_pool.pool_type == ""


INDICES_CASES = [
    ("last_n_too_many", 10, ValueError, r"indices=10 is out of range for nf_resnet26: it has 5 feature levels"),  # noqa: E501
    ("last_n_zero", 0, ValueError, r"indices=0 is out of range.*an int n in 1\.\.5 for the last n levels"),
    ("last_n_negative", -7, ValueError, r"indices=-7 is out of range.*a list of indices in -5\.\.4"),
    ("float", 2.5, TypeError, r"indices must be an int, a list of ints or None, got 2.5 \(float\)"),
    ("empty", [], ValueError, r"indices=\[\] selects no feature level of nf_resnet26"),
    ("list_out_of_range", [0, 9], ValueError, r"indices=\[0, 9\] is out of range"),
    ("list_negative_out_of_range", [-6], ValueError, r"indices=\[-6\] is out of range"),
    ("list_float", [1.0], TypeError, r"indices=\[1.0\] holds non-int entries \[1.0\]"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("indices", "exc", "msg"), [c[1:] for c in INDICES_CASES], ids=[c[0] for c in INDICES_CASES]
)
def test_forward_intermediates_indices_errors(r26, indices, exc, msg):
    """timm gives bare assertions (``last-n (10) is out of range (1 to 5)``), 'float' not iterable, or
    ``max() arg is an empty sequence``; pruning takes the same indices and checks them the same way."""
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(exc, match=msg):
        r26.forward_intermediates(x, indices=indices)
    with pytest.raises(exc, match=msg):
        create_model("nf_resnet26", num_classes=0).prune_intermediate_layers(indices)


@pytest.mark.parametrize("indices", [None, 1, 3, 5, [0], [-1], [0, -2, 4], (-5, 2)])
def test_forward_intermediates_indices_follow_timm(r26, indices):
    """Valid indices select what timm's own ``feature_take_indices`` selects (int = last n, a sequence =
    explicit levels, negative from the end): features of those levels, compared by value."""
    from timm.models._features import feature_take_indices

    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        everything = r26.forward_intermediates(x, intermediates_only=True)
        got = r26.forward_intermediates(x, indices=indices, intermediates_only=True)
    take, _ = feature_take_indices(5, indices)
    assert len(got) == len(take)
    for level, y in zip(sorted(take), got, strict=True):
        torch.testing.assert_close(y, everything[level], rtol=0, atol=0)


def test_scripted_model_raises_torch_jit_error_with_the_same_message(r26):
    """TorchScript re-raises a model's ValueError as ``torch.jit.Error``, a plain Exception subclass
    (neither a ValueError nor a RuntimeError); the message keeps the eager text after
    ``builtins.ValueError:``. Scripted callers catch ``torch.jit.Error`` (or match the text)."""
    scripted = torch.jit.script(r26)
    with pytest.raises(torch.jit.Error, match=r"builtins.ValueError: expected 3 input channels.*in_chans=5"):
        scripted(torch.randn(1, 5, 64, 64))
    assert not issubclass(torch.jit.Error, (ValueError, TypeError, RuntimeError))


def test_features_only_checks_its_input():
    feats = create_model("nf_regnet_b0", features_only=True, out_indices=(-1,)).eval()
    with pytest.raises(ValueError, match=r"expected 3 input channels"):
        feats(torch.randn(1, 1, 64, 64))
    with pytest.raises(TypeError, match=r"float64 does not match"):
        feats(torch.randn(1, 3, 64, 64, dtype=torch.float64))


def test_cli_unknown_model_suggests_names(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # one line on stderr, exit status 2
        cli_main(["export-onnx", "nf_regnet_b8", "--out", str(tmp_path / "m.onnx")])
    assert exit_info.value.code == 2
    assert re.search(r"unknown model 'nf_regnet_b8'; did you mean nf_regnet_b", capsys.readouterr().err)
    with pytest.raises(ValueError, match=r"unknown model 'nf_regnet_b8'; did you mean nf_regnet_b"):
        cli_main(["--debug", "export-onnx", "nf_regnet_b8", "--out", str(tmp_path / "m.onnx")])
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["spp", "nf_resnet5", "--out", str(tmp_path / "s.png"), "--no-progress"])
    assert exit_info.value.code == 2
    assert re.search(r"unknown model 'nf_resnet5'; did you mean nf_resnet50", capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


# ---- weights files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub") / "b0"
    return export_for_hub(create_model("nf_regnet_b0", num_classes=2), folder, compute_macs=False)


def _copy_folder(src: Path, dst: Path, weights: bytes) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(weights if f.name == "model.safetensors" else f.read_bytes())
    return dst


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_safetensors_name_the_file(exported, tmp_path, damage):
    data = (exported / "model.safetensors").read_bytes()
    bad = {"truncated": data[: len(data) // 2], "garbage": b"not a safetensors file" * 4, "empty": b""}[
        damage
    ]
    folder = _copy_folder(exported, tmp_path / "bad", bad)
    weights = folder / "model.safetensors"
    with pytest.raises(ValueError, match=rf"{re.escape(str(weights))} are not a valid safetensors file"):
        create_model(f"local-dir:{folder}", pretrained=True)
    with pytest.raises(
        ValueError, match=rf"checkpoint_path '{re.escape(str(weights))}' is not a valid safetensors"
    ):
        create_model("nf_regnet_b0", num_classes=2, checkpoint_path=str(weights))


def test_checkpoint_for_another_architecture_names_the_keys(tmp_path):
    """timm's strict load names missing/unexpected keys and shapes: nothing is loaded partially."""
    other = tmp_path / "r26.safetensors"
    safetensors.torch.save_file(create_model("nf_resnet26", num_classes=2).state_dict(), other)
    with pytest.raises(RuntimeError, match=r"(?s)Missing key.*stages\.0\.0\.se\.fc1\.weight.*Unexpected key"):
        create_model("nf_regnet_b0", num_classes=2, checkpoint_path=str(other))
    with pytest.raises(RuntimeError, match=r"size mismatch for stem\.conv\.weight.*\[64, 3, 7, 7\]"):
        create_model(
            "nf_regnet_b0", num_classes=2, pretrained=True, pretrained_cfg_overlay=dict(file=str(other))
        )
    with pytest.raises(
        RuntimeError, match=r"size mismatch for head\.fc\.weight"
    ):  # right arch, wrong classes
        create_model("nf_resnet26", num_classes=3, checkpoint_path=str(other))


def test_missing_local_dir_and_config(exported, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config.json"):
        create_model(f"local-dir:{tmp_path / 'nothing'}", pretrained=True)


# ---- untrusted pickles -----------------------------------------------------------------------------


class _Evil:
    """A pickle that runs code when unpickled (creates a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def test_malicious_pickle_is_refused_by_every_loader(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    with evil.open("wb") as f:
        pickle.dump({"state_dict": _Evil(marker)}, f)
    torch.save({"model": _Evil(marker), "format": "nf_plugins.train_checkpoint/1"}, tmp_path / "evil_zip.pth")
    for path in (evil, tmp_path / "evil_zip.pth"):
        with pytest.raises(ValueError, match=r"weights_only=True"):
            load_training_checkpoint(path)
        with pytest.raises(RuntimeError, match=r"weights_only=True blocked loading this checkpoint"):
            create_model("nf_resnet26", checkpoint_path=str(path))
        with pytest.raises(RuntimeError, match=r"weights_only=True blocked loading this checkpoint"):
            cli_main(
                ["export-onnx", "nf_regnet_b0", "--out", str(tmp_path / "m.onnx"), "--checkpoint", str(path)]
            )
    if importlib.util.find_spec("mmengine") is not None:  # mmengine checkpoints (tools/train.py --resume)
        from nf_plugins.downstream.engine.checkpoint_io import load_checkpoint_file

        for path in (evil, tmp_path / "evil_zip.pth"):
            with pytest.raises(ValueError, match=r"cannot be read with torch.load\(weights_only=True\)"):
                load_checkpoint_file(str(path))
    assert not marker.exists()
    assert not (tmp_path / "m.onnx").exists()


# torch.load calls allowed without weights_only=True, with why: none (mmengine's training state is read
# with weights_only=True and an allowlist, nf_plugins/downstream/engine/checkpoint_io.py).
_TRUSTED_TORCH_LOADS: dict[str, int] = {}


def unsafe_torch_loads(source: str) -> list[int]:
    """Lines of ``torch.load`` calls without a literal ``weights_only=True``, found in the AST.

    Every spelling counts (``torch.load``, ``import torch as t; t.load``, ``from torch import load [as f]``,
    ``torch.serialization.load``); strings, docstrings and comments do not.
    """
    tree = ast.parse(source)
    torch_names, serialization_names, load_names = {"torch"}, set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "torch" and alias.asname:
                    torch_names.add(alias.asname)
                elif alias.name == "torch.serialization" and alias.asname:
                    serialization_names.add(alias.asname)
        elif isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization"):
            for alias in node.names:
                if alias.name == "load":
                    load_names.add(alias.asname or "load")
                elif alias.name == "serialization":
                    serialization_names.add(alias.asname or "serialization")

    def is_torch_load(func: ast.expr) -> bool:
        if isinstance(func, ast.Name):
            return func.id in load_names
        if not (isinstance(func, ast.Attribute) and func.attr == "load"):
            return False
        owner = func.value
        if isinstance(owner, ast.Name):
            return owner.id in torch_names | serialization_names
        return (
            isinstance(owner, ast.Attribute)
            and owner.attr == "serialization"
            and isinstance(owner.value, ast.Name)
            and owner.value.id in torch_names
        )

    def weights_only(call: ast.Call) -> bool:
        return any(
            k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in call.keywords
        )

    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and is_torch_load(node.func) and not weights_only(node)
    )


@pytest.mark.parametrize(
    ("source", "lines"),
    [
        ("import torch\ntorch.load(p, weights_only=True)\n", []),
        ('"""torch.load(p, weights_only=True)"""\nimport torch\ntorch.load(p)\n', [3]),
        ("from torch import load\nload(p)\n", [2]),
        ("from torch import load as f\nf(p, weights_only=False)\n", [2]),
        ("import torch as t\nt.load(\n    p,\n)\n", [2]),
        ("import torch\ntorch.serialization.load(p)\n", [2]),
        ("# torch.load(p)\nx = 'torch.load(p)'\n", []),
    ],
    ids=["safe", "docstring", "from_import", "alias_false", "module_alias", "serialization", "text"],
)
def test_torch_load_scan_sees_every_spelling(source, lines):
    assert unsafe_torch_loads(source) == lines


def test_every_torch_load_in_the_package_and_tools_is_weights_only():
    found = {}
    for path in [*ROOT.joinpath("nf_plugins").rglob("*.py"), *ROOT.joinpath("tools").rglob("*.py")]:
        lines = unsafe_torch_loads(path.read_text())
        if lines:
            found[path.relative_to(ROOT).as_posix()] = len(lines)
    assert found == _TRUSTED_TORCH_LOADS


# ---- ONNX export ------------------------------------------------------------------------------------

ONNX_CASES = [
    ("suffix", "m.txt", (3, 64, 64), ValueError, r"must end in \.onnx"),
    ("no_folder", "missing/m.onnx", (3, 64, 64), FileNotFoundError, r"missing'.*does not exist; create it"),
    ("input_rank", "m.onnx", (64, 64), ValueError, r"input_size must be \(C, H, W\)"),
    ("too_small", "m.onnx", (3, 8, 8), ValueError, r"8x8 is too small"),
    ("channels", "m.onnx", (5, 64, 64), ValueError, r"expected 3 input channels.*got 5 in a tensor of shape \[1, 5"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(
    ("rel", "size", "exc", "msg"), [c[1:] for c in ONNX_CASES], ids=[c[0] for c in ONNX_CASES]
)
def test_onnx_export_errors_leave_no_file(b0, tmp_path, rel, size, exc, msg):
    with pytest.raises(exc, match=msg):
        export_onnx(b0, tmp_path / rel, input_size=size)
    assert list(tmp_path.rglob("*")) == []


# ---- archives in the prepare tools ------------------------------------------------------------------


def test_prepare_nyu_zip_members_cannot_escape(tmp_path, monkeypatch):
    """``zipfile.extractall`` drops ``..`` and absolute prefixes; prove it for prepare_nyu's mmseg-zip path
    (the VOC tarballs use tarfile's data filter: tests/test_segmentation_e2e.py)."""
    import tempfile
    import zipfile

    from nf_plugins.data import nyu as prepare_nyu

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # extraction goes to scratch/tmpXXXX
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escaped.txt", "x")
        zf.writestr(str(tmp_path / "absolute.txt"), "x")
    with pytest.raises(prepare_nyu.NYUFormatError, match=r"evil.zip: no top-level 'nyu/' folder"):
        prepare_nyu.convert_mmseg_zip(evil, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "absolute.txt").exists()
    assert list(scratch.iterdir()) == []  # the extraction folder is removed

"""Signal Propagation Plot library and CLI: statistics against a hand computation, adapters, errors."""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pytest
import timm
import torch
from torch import nn

from nf_plugins.cli import main as cli_main
from nf_plugins.models import NfCfg, NormFreeNet
from nf_plugins.spp import find_blocks, plot_spp, read_json, signal_propagation, write_json
from nf_plugins.spp.reference_nets import preact_resnet

PANEL_KEYS = ("avg_channel_squared_mean", "avg_channel_variance", "residual_avg_channel_variance")


def _np_stats(y: torch.Tensor) -> tuple[float, float]:
    """The paper's appendix F snippets on an NCHW tensor (channels on axis 1 here)."""
    a = y.detach().numpy().astype(np.float64)
    return float(np.mean(np.mean(a, axis=(0, 2, 3)) ** 2)), float(np.mean(np.var(a, axis=(0, 2, 3))))


def _small_nf() -> NormFreeNet:
    # the plain path: gamma and 1/beta stay explicit multiplies, as the hand computation writes them
    cfg = NfCfg(
        depths=(2, 2), channels=(32, 64), stem_chs=16, stage_strides=(1, 2), alpha=0.5, se_ratio=0.25,
        fold_scalars=False,
    )  # fmt: skip
    model = NormFreeNet(cfg, num_classes=0)
    with torch.no_grad():
        for i, block in enumerate(model.stages.modules()):
            if hasattr(block, "skipinit_gain"):
                block.skipinit_gain.fill_(0.6 + 0.1 * i)
    return model.eval()


@torch.no_grad()
def test_statistics_match_hand_computation_without_hooks():
    model = _small_nf()
    inp = torch.randn(4, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    expected = []
    x = model.stem(inp)
    for stage in model.stages:
        for blk in stage:
            # x_{l+1} = x_l + alpha * gain * f(act(x_l) / beta), written out from the paper's equation.
            a = blk.act1(x) * (1.0 / blk.beta)
            shortcut = blk.downsample(a) if blk.downsample is not None else x
            f = blk.conv3(blk.act3(blk.se(blk.conv2(blk.act2(blk.conv1(a))))))
            y = x_next = f * (blk.skipinit_gain * blk.alpha) + shortcut
            torch.testing.assert_close(x_next, blk(x))  # the formula is the block's forward
            expected.append((*_np_stats(y), _np_stats(f)[1]))
            x = x_next
    result = signal_propagation(model, inp)
    assert len(result.blocks) == len(expected) == 4
    for got, want in zip(result.blocks, expected, strict=True):
        for key, value in zip(PANEL_KEYS, want, strict=True):
            assert getattr(got, key) == pytest.approx(value, rel=1e-6, abs=1e-12), key
    assert [(b.stage, b.stage_end) for b in result.blocks] == [(0, False), (0, True), (1, False), (1, True)]


def test_batch_statistics_restore_modes_running_stats_and_hooks():
    model = preact_resnet(12, "bn_act")
    model.train()
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    before = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    signal_propagation(model, img_size=32, batch_size=2)
    assert all(m.training for m in model.modules())
    torch.testing.assert_close(bn.running_mean, before[0])
    torch.testing.assert_close(bn.running_var, before[1])
    assert bn.num_batches_tracked == before[2] and bn.momentum == 0.1
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize(
    ("name", "depths"),
    [
        ("resnet50", (3, 4, 6, 3)),
        ("resnet18", (2, 2, 2, 2)),
        ("resnetv2_50", (3, 4, 6, 3)),
        ("nf_seresnet26", (2, 2, 2, 2)),
    ],
)
def test_timm_families_blocks_and_stage_ends(name, depths):
    model = timm.create_model(name, pretrained=False)
    blocks = find_blocks(model)
    assert len(blocks) == sum(depths)
    ends = [b.index for b in blocks if b.stage_end]
    assert ends == list(np.cumsum(depths) - 1)
    assert [b.stage for b in blocks] == [s for s, d in enumerate(depths) for _ in range(d)]


def test_timm_resnet_branch_end_is_after_the_last_bn():
    # With the last BN's gamma at 1, the branch ends in a batch-normalised tensor: variance exactly ~1.
    model = timm.create_model("resnet26", pretrained=False, zero_init_last=False)
    result = signal_propagation(model, img_size=64, batch_size=4)
    res = np.array(result.column("residual_avg_channel_variance"))
    assert np.allclose(res, 1.0, atol=2e-3), res


def test_unreadable_model_names_block_types_and_families():
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32)
    with pytest.raises(ValueError, match=r"Block.*supported block families.*timm resnetv2"):
        find_blocks(model)


def test_nonfinite_input_and_statistics_raise():
    model = _small_nf()
    bad = torch.randn(2, 3, 32, 32)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="1 NaN/inf"):
        signal_propagation(model, bad)
    with torch.no_grad():
        model.stages[1][0].skipinit_gain.fill_(math.inf)
    with pytest.raises(FloatingPointError, match=r"block 2 \(stages.1.0, stage 1\).*float64"):
        signal_propagation(model, img_size=32, batch_size=2)
    assert not any(m._forward_hooks for m in model.modules())  # removed on error too


def test_float64_forward_restores_model_dtype():
    model = _small_nf()
    r64 = signal_propagation(model, img_size=32, batch_size=2, dtype=torch.float64)
    r32 = signal_propagation(model, img_size=32, batch_size=2)
    assert next(model.parameters()).dtype == torch.float32
    for a, b in zip(r64.blocks, r32.blocks, strict=True):
        assert a.avg_channel_variance == pytest.approx(b.avg_channel_variance, rel=1e-4)


def test_cli_figure_writes_png_and_json_schema(tmp_path, capsys):
    out, js = tmp_path / "fig.png", tmp_path / "stats.json"
    argv = ["spp", "--figure", "2", "--depth", "12", "--img-size", "32", "--batch-size", "2"]
    assert cli_main([*argv, "--out", str(out), "--json", str(js), "--no-progress"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(js.read_text())
    assert [d["model"] for d in data] == ["ReLU-BN-Conv", "NF, He init", "NF, Scaled WS"]
    for entry in data:
        assert set(entry) == {"model", "blocks"} and len(entry["blocks"]) == 4
        for i, blk in enumerate(entry["blocks"]):
            assert set(blk) == {"index", "stage", "stage_end", *PANEL_KEYS}
            assert (blk["index"], blk["stage"], blk["stage_end"]) == (i, i, True)
            assert all(isinstance(blk[k], float) for k in PANEL_KEYS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "stats.json"]  # no temp files left


def test_cli_timm_models_and_bad_names(tmp_path, capsys):
    js = tmp_path / "s.json"
    argv = ["spp", "resnet18", "nf_resnet26", "--img-size", "32", "--batch-size", "2", "--no-progress"]
    cli_main([*argv, "--out", str(tmp_path / "a.png"), "--json", str(js)])
    assert [(d["model"], len(d["blocks"])) for d in json.loads(js.read_text())] == [
        ("resnet18", 8),
        ("nf_resnet26", 8),
    ]
    with pytest.raises(SystemExit):
        cli_main(["spp", "nf_resnet5", "--out", str(tmp_path / "b.png")])
    assert "did you mean nf_resnet50" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["spp", "--figure", "3"])
    with pytest.raises(SystemExit):
        cli_main(["spp", "--figure", "2", "--depth", "50", "--out", str(tmp_path / "c.png")])
    assert "multiple of 12" in capsys.readouterr().err
    assert not (tmp_path / "b.png").exists() and not (tmp_path / "c.png").exists()


# ---- the CLI checks its arguments and outputs before any network runs (issue 15) ---------------------

SMALL = ["--depth", "12", "--img-size", "32", "--batch-size", "2", "--no-progress"]


@pytest.fixture
def no_run(monkeypatch):
    """Fail the test as soon as a network would run: refusals must come first."""
    from nf_plugins.spp import cli

    def ran(*_a, **_k):
        raise AssertionError("the SPP ran before its arguments were refused")

    monkeypatch.setattr(cli, "signal_propagation", ran)


@pytest.mark.parametrize(("model", "size"), [("nf_resnet26", 8), ("BN-ReLU-Conv", 16), ("NF, Scaled WS", 31)])
def test_cli_img_size_below_32_is_refused(tmp_path, capsys, no_run, model, size):
    """Every net downsamples by 32; --img-size 8 used to pass the tool's own check (>= 8)."""
    with pytest.raises(SystemExit) as info:
        cli_main(["spp", model, "--depth", "12", "--img-size", str(size), "--out", str(tmp_path / "s.png")])
    assert info.value.code == 2
    assert f"--img-size must be >= 32, got {size}: the networks downsample by 32" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model", ["BN-ReLU-Conv", "resnet18", "Linear, BN"])
def test_cli_batch_1_with_batchnorm_is_refused(tmp_path, capsys, no_run, model):
    """BatchNorm on one image's statistics is per-image normalisation (and torch fails on a 1x1 map, which
    32 px gives): refused with the fix, before any network runs."""
    argv = ["spp", model, "--depth", "12", "--img-size", "32", "--batch-size", "1", "--no-progress"]
    with pytest.raises(SystemExit) as info:
        cli_main([*argv, "--out", str(tmp_path / "s.png")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"--batch-size 1 with BatchNorm models ['{model}']" in err and "use --batch-size 2 or more" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_batch_1_without_batchnorm_runs(tmp_path):
    argv = ["spp", "NF, Scaled WS", "--depth", "12", "--img-size", "32", "--batch-size", "1", "--no-progress"]
    assert cli_main([*argv, "--out", str(tmp_path / "s.png"), "--json", str(tmp_path / "s.json")]) == 0
    assert len(read_json(tmp_path / "s.json")[0].blocks) == 4


def _unwritable(tmp_path, case: str, name: str) -> str:
    if case == "parent_is_a_file":
        (tmp_path / "file").write_text("x")
        return str(tmp_path / "file" / name)
    if case == "path_is_a_folder":
        (tmp_path / name).mkdir()
        return str(tmp_path / name)
    if case == "missing_folder":
        return str(tmp_path / "missing" / name)
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    return str(tmp_path / "ro" / name)


@pytest.mark.parametrize("flag", ["--out", "--json"])
@pytest.mark.parametrize(
    "case", ["parent_is_a_file", "path_is_a_folder", "missing_folder", "read_only_folder"]
)
def test_cli_unwritable_output_fails_in_under_2_s_and_leaves_nothing(tmp_path, capsys, no_run, case, flag):
    """Before: found only after the run, and with a bad --json the plot was left behind alone."""
    bad = _unwritable(tmp_path, case, "s.png" if flag == "--out" else "s.json")
    good = str(tmp_path / ("s.json" if flag == "--out" else "s.png"))
    other = "--json" if flag == "--out" else "--out"
    before = sorted(tmp_path.rglob("*"))
    for _ in range(2):  # timed: the second call (the first imports matplotlib, once per process)
        start = time.perf_counter()
        with pytest.raises(SystemExit) as info:
            cli_main(["spp", "NF, Scaled WS", *SMALL, flag, bad, other, good])
        assert info.value.code == 2 and bad in capsys.readouterr().err
    assert time.perf_counter() - start < 2.0
    assert sorted(tmp_path.rglob("*")) == before  # no plot, no JSON, no probe or temp file


def test_cli_refuses_the_same_path_for_plot_and_json(tmp_path, capsys, no_run):
    with pytest.raises(SystemExit):
        same = str(tmp_path / "s")
        cli_main(["spp", "NF, Scaled WS", *SMALL, "--out", same, "--json", same])
    assert "--out and --json are the same file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_plot_format_matplotlib_cannot_write(tmp_path, capsys, no_run):
    with pytest.raises(SystemExit):
        cli_main(["spp", "NF, Scaled WS", *SMALL, "--out", str(tmp_path / "s.xyz")])
    assert "matplotlib cannot write .xyz" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_write_failing_after_the_run_changes_neither_output(tmp_path, monkeypatch, capsys):
    """Plot and JSON are renamed into place together: when the JSON cannot be written after the run (its
    path turned into a folder meanwhile), the previous plot is untouched and no temp file is left."""
    from nf_plugins.spp import cli

    out, js = tmp_path / "s.png", tmp_path / "s.json"
    out.write_bytes(b"previous plot")
    real = cli.signal_propagation

    def run_then_break_the_json_path(*args, **kwargs):
        result = real(*args, **kwargs)
        js.mkdir()
        return result

    monkeypatch.setattr(cli, "signal_propagation", run_then_break_the_json_path)
    with pytest.raises(SystemExit) as info:  # the IsADirectoryError, as the CLI's one-line error
        cli_main(["spp", "NF, Scaled WS", *SMALL, "--out", str(out), "--json", str(js)])
    assert info.value.code == 2 and "Is a directory" in capsys.readouterr().err
    assert out.read_bytes() == b"previous plot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.png"] and not any(js.iterdir())


def test_cli_skip_gain_turns_the_residual_branches_on(tmp_path, capsys):
    """Untrained NF models start with SkipInit 0 (flat stream, and the tool says so); --skip-gain 1 adds
    each branch's unit variance, so the variance grows along a stage as in the paper's figures."""
    argv = ["spp", "nf_resnet26", "--img-size", "32", "--batch-size", "2", "--no-progress"]
    runs = {}
    for extra in ([], ["--skip-gain", "1"]):
        js = tmp_path / f"s{len(extra)}.json"
        cli_main([*argv, *extra, "--out", str(tmp_path / f"p{len(extra)}.png"), "--json", str(js)])
        runs[len(extra)] = json.loads(js.read_text())[0]["blocks"]
        if not extra:
            assert "SkipInit gains are all 0" in capsys.readouterr().err
    flat, on = runs[0], runs[2]
    assert flat[1]["avg_channel_variance"] == pytest.approx(flat[0]["avg_channel_variance"], rel=1e-6)
    # Block 1 (no transition): Var(x1) = Var(x0) + alpha^2 Var(f), branch and skip independent (section 4).
    grown = on[1]["avg_channel_variance"] - on[0]["avg_channel_variance"]
    assert grown == pytest.approx(0.2**2 * on[1]["residual_avg_channel_variance"], rel=0.1)
    cli_main(["spp", "resnet18", "--skip-gain", "1", "--img-size", "32", "--batch-size", "2", "--no-progress",
              "--out", str(tmp_path / "r.png")])  # fmt: skip
    assert "resnet18 has no SkipInit gains" in capsys.readouterr().err


def test_json_roundtrip_file_mode_and_bad_json(tmp_path):
    result = signal_propagation(_small_nf(), img_size=32, batch_size=2, name="small")
    path = write_json([result], tmp_path / "s.json")
    assert path.stat().st_mode & 0o044  # readable by others like any normal output file (umask 022)
    assert read_json(path) == [result]
    plot_spp(read_json(path), tmp_path / "s.png", log_scale=True)
    (tmp_path / "bad.json").write_text(json.dumps([{"model": "m", "blocks": [{"index": 0}]}]))
    with pytest.raises(ValueError, match="bad.json: m block 0 must have exactly the keys"):
        read_json(tmp_path / "bad.json")


def test_cli_from_json_merges_saved_runs_in_figure_order(tmp_path, capsys):
    """--from-json redraws a figure from statistics saved by separate runs (one net each), in the figure's
    order, without running a model; a net that no file holds is an error naming it."""
    common = ["--depth", "12", "--img-size", "32", "--batch-size", "2", "--no-progress"]
    for i, name in enumerate(["NF, Scaled WS", "ReLU-BN-Conv", "NF, He init"]):
        cli_main(
            ["spp", name, *common, "--out", str(tmp_path / f"{i}.png"), "--json", str(tmp_path / f"{i}.json")]
        )
    saved = [str(tmp_path / f"{i}.json") for i in range(3)]
    merged = tmp_path / "fig2.json"
    cli_main(
        [
            "spp",
            "--figure",
            "2",
            "--from-json",
            *saved,
            "--out",
            str(tmp_path / "f.png"),
            "--json",
            str(merged),
        ]
    )
    assert [r.model for r in read_json(merged)] == ["ReLU-BN-Conv", "NF, He init", "NF, Scaled WS"]
    assert read_json(merged)[2] == read_json(saved[0])[0]  # the numbers pass through unchanged
    with pytest.raises(SystemExit):
        cli_main(["spp", "--figure", "2", "--from-json", *saved[:2], "--out", str(tmp_path / "g.png")])
    assert "no statistics for ['NF, He init']" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()


# ---- the paper's depth 600 on a reduced width (the paper's widths at depth 36: test_spp_paper.py) ----
DEEP = 600  # 4 stages of 50 bottlenecks, as in every SPP of the paper
NARROW = (16, 32, 64, 128)  # the paper's 256-2048 / 16: what the properties need is depth, not width


@torch.no_grad()
def test_nf_depth_600_grows_alpha_squared_per_block_and_resets_at_transitions():
    """Section 4: Var(x_{l+1}) = Var(x_l) + alpha^2 Var(f_l), 50 times per stage, to 1 + 50 alpha^2 = 3;
    each transition divides by beta = sqrt(expected variance), so the next stage starts again at
    1 + alpha^2 and its branches again see unit variance (a wrong beta reset shrinks them)."""
    torch.manual_seed(0)
    from nf_plugins.spp.reference_nets import nf_resnet

    result = signal_propagation(nf_resnet(DEEP, alpha=0.2, widths=NARROW), img_size=64, batch_size=8)
    var = np.array(result.column("avg_channel_variance"))
    res = np.array(result.column("residual_avg_channel_variance"))
    stage = np.array([b.stage for b in result.blocks])
    assert len(var) == 4 * 50
    # Stages 0 and 1 run at 16 and 8 px; later ones at 4 and 2 px, where zero padding shrinks the 3x3
    # conv's output (test_spp_paper.py's test_nf_scaled_ws_branch_decay_is_zero_padding).
    for s in (0, 1):
        v, r = var[stage == s], res[stage == s]
        assert v[0] == pytest.approx(1 + 0.2**2 * r[0], rel=0.05)  # the reset (stage 0: unit stem output)
        # + alpha^2 Var(f) per block (at 16 channels skip and branch are not quite uncorrelated: 15%)
        assert np.polyfit(np.arange(50), v, 1)[0] == pytest.approx(0.2**2 * r.mean(), rel=0.15)
        assert 0.85 < r[:10].mean() < 1.1, r[:10]  # unit-variance branch input: beta is right
    assert var[stage == 0][-1] == pytest.approx(1 + 50 * 0.2**2, rel=0.1)


@torch.no_grad()
def test_bn_relu_conv_depth_600_branch_variance_068_and_linear_growth():
    """Section 3: with BN-ReLU-Conv, Var(f_l) ~ 0.68 (= 1 - 1/pi) at every depth l of the 600, and the
    variance grows by it at every block between transitions, where it resets."""
    torch.manual_seed(0)
    from nf_plugins.spp.reference_nets import preact_resnet

    result = signal_propagation(preact_resnet(DEEP, "bn_act", widths=NARROW), img_size=32, batch_size=8)
    var = np.array(result.column("avg_channel_variance"))
    res = np.array(result.column("residual_avg_channel_variance"))
    stage = np.array([b.stage for b in result.blocks])
    assert res.mean() == pytest.approx(1 - 1 / math.pi, rel=0.05)
    for s in range(4):
        v, r = var[stage == s], res[stage == s]
        assert np.polyfit(np.arange(50), v, 1)[0] == pytest.approx(r.mean(), rel=0.1)  # + Var(f) per block
        assert v[0] < 0.1 * var[stage == s - 1][-1] if s else v[0] < 3  # reset at the transition

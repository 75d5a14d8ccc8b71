"""Issue 17's benchmark additions: the fast paths it times (channels_last, torch.compile, ONNX Runtime)
equal the plain path on live weights, the roofline counts, the goals, the bar chart, and the CLI's new
options at tiny sizes. Speed itself is measured, not tested."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from nf_plugins.bench import BenchConfig, run_benchmark, runner
from nf_plugins.bench.chart import ratio_chart
from nf_plugins.bench.fastpaths import compare_paths
from nf_plugins.bench.goals import evaluate
from nf_plugins.bench.goals import to_markdown as goals_markdown
from nf_plugins.bench.models import build
from nf_plugins.bench.roofline import (
    ByteCounterMode,
    roofline_fraction,
    stream_bandwidth_gbs,
    train_step_cost,
)
from nf_plugins.bench.runner import randomize_zero_init
from nf_plugins.cli import main as cli_main
from nf_plugins.models import NormFreeNet
from nf_plugins.models.nf_regnet import model_cfgs as regnet_cfgs

ROOT = Path(__file__).resolve().parents[1]
TINY = dataclasses.replace(  # two blocks per stage, every NF-RegNet part (grouped conv, SE, pooled shortcut)
    regnet_cfgs["nf_regnet_b0"], depths=(1, 1, 1, 1), channels=(16, 32, 48, 64), stem_chs=16, num_features=96
)


@pytest.fixture
def no_timing(monkeypatch):
    """Stub the machine measurements (peak, bandwidth, timing): these tests are about values, not speed."""
    monkeypatch.setattr(runner, "gemm_peak_gflops", lambda device: 100.0)
    monkeypatch.setattr(runner, "stream_bandwidth_gbs", lambda device: 10.0)
    monkeypatch.setattr(runner, "time_interleaved", lambda fns, *a, **k: {k2: 0.5 for k2 in fns})


# ---- the fast paths equal the plain path, outputs and gradients, on live weights --------------------


@pytest.mark.parametrize("name", ["nf_resnet50", "nf_regnet_b0"])
def test_channels_last_equals_nchw_outputs_and_gradients(name):
    """The channels_last suites' own check, with random SkipInit gains and classifier (NF-RegNet-B0: the
    grouped convs and the SE's matmul path too)."""
    plain = randomize_zero_init(build(f"ours:{name}"))
    fast = __import__("copy").deepcopy(plain).to(memory_format=torch.channels_last)
    assert fast.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 32, 32)
    d = compare_paths(plain, fast, x, fast_x=x.contiguous(memory_format=torch.channels_last))
    assert d["max_abs_logit"] > 0.1 and d["max_abs_grad"] > 1e-3  # live: a zero model would match anything
    assert d["max_abs_diff"] <= 1e-4 * d["max_abs_logit"]
    assert d["max_abs_grad_diff"] <= 1e-3 * d["max_abs_grad"]


def test_compare_paths_sees_a_wrong_fast_path():
    """A fast path whose weights differ in one conv by 1% noise shows in outputs and gradients (noise, not
    a scale: Scaled WS standardizes a scale away)."""
    plain = randomize_zero_init(NormFreeNet(TINY, num_classes=5, drop_rate=0.0))
    fast = __import__("copy").deepcopy(plain)
    with torch.no_grad():
        w = fast.stages[1][0].conv2.weight
        w.add_(torch.randn(w.shape, generator=torch.Generator().manual_seed(0)) * 0.01 * w.std())
    d = compare_paths(plain, fast, torch.randn(2, 3, 32, 32))
    assert d["max_abs_diff"] > 1e-4 and d["max_abs_grad_diff"] > 1e-4


def _tiny_build(spec, num_classes=1000, **kwargs):
    return NormFreeNet(TINY, num_classes=num_classes, **kwargs)


LAYOUT_SECONDS = {("ours", "nchw"): 0.5, ("ours", "channels_last"): 0.25, ("peer", "nchw"): 1.0,
                  ("peer", "channels_last"): 2.0}  # fmt: skip


def _timed_by_layout(fns, *args, **kwargs):
    """Stub timing: ours is faster in channels_last, the peer in NCHW; each step runs once, for real."""
    for fn in fns.values():
        fn()
    return {key: LAYOUT_SECONDS[key] for key in fns}


def test_vs_effnet_compares_each_side_at_its_faster_layout(monkeypatch, no_timing):
    """Peers at their best settings: every side is run in NCHW and channels_last (a real step each) and
    the row compares ours' faster layout with the peer's faster layout; all four rates are kept."""
    monkeypatch.setattr(runner, "time_interleaved", _timed_by_layout)
    cfg = BenchConfig(reps=1, effnet_px=32, threads=1, train_batches=(2,), suites=("vs_effnet",))
    (row,) = run_benchmark(cfg)["rows"]
    assert row["value"] == pytest.approx(2 / LAYOUT_SECONDS["ours", "channels_last"])
    assert row["peer_value"] == pytest.approx(2 / LAYOUT_SECONDS["peer", "nchw"])
    assert row["ratio"] == pytest.approx(4.0)
    extra = row["extra"]
    assert (extra["ours_layout"], extra["peer_layout"]) == ("channels_last", "nchw")
    for (side, layout), sec in LAYOUT_SECONDS.items():
        assert extra[f"{side}_{layout}_img_s"] == pytest.approx(2 / sec)
    # ours in channels_last was checked against NCHW on live weights before it was timed
    assert extra["max_abs_logit"] > 0.1 and extra["max_abs_diff"] <= 1e-4 * extra["max_abs_logit"]


def test_stability_compares_each_side_at_its_faster_layout_in_every_run(monkeypatch, no_timing):
    monkeypatch.setattr(runner, "time_interleaved", _timed_by_layout)
    cfg = BenchConfig(reps=1, infer_px=32, threads=1, stability_runs=3, suites=("stability",))
    (row,) = run_benchmark(cfg)["rows"]
    assert row["value"] == pytest.approx(250.0) and row["peer_value"] == pytest.approx(1000.0)
    assert row["extra"]["ratios"] == [4.0, 4.0, 4.0]
    assert row["extra"]["runs_won_by_layout"] == {"ours_channels_last": 3, "peer_nchw": 3}


def test_compiled_suite_checks_outputs_and_gradients(monkeypatch, no_timing):
    """The compiled suite on a tiny NF-RegNet (aot_eager: the autograd tracing torch.compile does, without
    the minutes of C++ codegen; inductor on the same model is the slow test in test_models.py): its rows
    carry the compiled-vs-eager differences of outputs and gradients, which are those of equal models."""
    monkeypatch.setattr(runner, "build", _tiny_build)
    bench = runner.Benchmark(BenchConfig(reps=1, compile_backend="aot_eager"))
    bench.compiled(["nf_regnet_b0"], batch=2, px=32, ipx=32)
    rows = {(r.peer, r.setting): r for r in bench.rows}
    train = rows[("ours:nf_regnet_b0 eager", "train b2 32px")].extra
    assert train["max_abs_logit"] > 0.1 and train["max_abs_grad"] > 1e-3
    assert train["max_abs_diff"] <= 1e-4 and train["max_abs_grad_diff"] <= 1e-4 * max(
        1, train["max_abs_grad"]
    )
    peer = rows[("timm-own:nf_regnet_b0 compiled", "train b2 32px")].extra
    assert peer["peer_max_abs_diff"] <= 1e-4 and peer["compile_s"] > 0 and peer["peer_compile_s"] > 0
    infer = rows[("ours:nf_regnet_b0 eager", "infer b1 32px")].extra
    assert infer["max_abs_diff"] <= 1e-4 and infer["max_abs_logit"] > 0.1
    assert infer["recompiles_on_resize"] >= 0 and train["graph_breaks"] == 0  # fullgraph-clean model


def test_compiled_inference_is_compiled_with_freezing_and_training_without(monkeypatch, no_timing):
    """Batch-1 inference is compiled under inductor's ``freezing`` (parameters as constants); training
    must not be (frozen parameters would not learn). A recording backend sees the setting at compile."""
    import torch._inductor.config as inductor_config

    seen = []

    def recording_backend(gm, example_inputs):
        symbolic = any(not isinstance(a, torch.Tensor) for a in example_inputs)  # dynamic sizes as inputs
        seen.append((torch.is_grad_enabled(), inductor_config.freezing, symbolic))
        return gm.forward

    monkeypatch.setattr(runner, "build", _tiny_build)
    bench = runner.Benchmark(BenchConfig(reps=1, compile_backend=recording_backend))
    bench.compiled(["nf_regnet_b0"], batch=2, px=32, ipx=48)
    assert seen[0] == (True, False, False)  # the training graph
    # The inference graph is compiled for its own input size, not marked dynamic because training ran at
    # another size in the same process (dynamo's automatic dynamic shapes): that costs freezing its gain.
    inference = [s for s in seen if not s[0]]
    assert inference[0] == (False, True, False)
    assert all(frozen for _, frozen, _ in inference)  # the resized call's graph too
    assert inductor_config.freezing is False  # restored
    (infer,) = [r for r in bench.rows if r.setting == "infer b1 48px"]
    assert infer.extra["freezing"] is True and infer.extra["max_abs_diff"] <= 1e-4


def test_onnx_suite_matches_eager_and_timm_own_export(no_timing):
    """Our folded export and timm's own standard export, each through ONNX Runtime, match their PyTorch
    models within 1e-4 on live weights; the goals see the agreement."""
    bench = runner.Benchmark(BenchConfig(reps=1))
    bench.onnx_runtime(["nf_regnet_b0"], 32)
    assert [r.peer for r in bench.rows] == ["ours:nf_regnet_b0 eager", "timm-own:nf_regnet_b0 onnxruntime"]
    extra = bench.rows[0].extra
    assert extra["max_abs_logit"] > 0.1
    assert extra["max_abs_diff"] <= 1e-4 and extra["peer_max_abs_diff"] <= 1e-4
    rows = [{**dataclasses.asdict(r), "ratio": r.ratio} for r in bench.rows]
    assert all(e.get("outputs_agree") for e in evaluate(rows) if e["goal"].startswith("onnx_vs"))


def test_onnx_suite_reports_a_wrong_export(monkeypatch, no_timing):
    """An export whose folded convs are off by 1% is caught, and the goal is missed whatever the speed."""
    import nf_plugins.deploy

    original = nf_plugins.deploy.plain_conv_from

    def wrong_fold(conv):
        out = original(conv)
        with torch.no_grad():
            out.weight.mul_(1.01)
        return out

    monkeypatch.setattr(nf_plugins.deploy, "plain_conv_from", wrong_fold)
    bench = runner.Benchmark(BenchConfig(reps=1))
    bench.onnx_runtime(["nf_regnet_b0"], 32)
    assert bench.rows[0].extra["max_abs_diff"] > 1e-3
    rows = [{**dataclasses.asdict(r), "ratio": r.ratio} for r in bench.rows]
    onnx = [e for e in evaluate(rows) if e["goal"] == "onnx_vs_eager"]
    assert onnx and onnx[0]["status"] == "missed" and onnx[0]["outputs_agree"] is False


# ---- roofline: bytes and FLOPs by hand ----------------------------------------------------------------


def test_byte_count_of_a_training_step_is_the_hand_count():
    """conv 3->4 (3x3, pad 1, no bias) then linear 4*5*5 -> 2 on a 1x3x5x5 input, fp32."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(100, 2))
    x_b, w_b, y_b = 75 * 4, 108 * 4, 100 * 4  # conv input, weight, output
    lw_b, lb_b, out_b = 200 * 4, 2 * 4, 2 * 4  # linear weight, bias, output
    forward = (x_b + w_b + y_b) + (y_b + lw_b + lb_b + out_b)  # conv; addmm(bias, input, weight^T)
    # backward: grad_input = mm(grad_out, W) and grad_W = mm(grad_out^T, input): each reads two, writes one
    linear_back = (out_b + lw_b + y_b) + (out_b + y_b + lw_b)
    conv_back = y_b + x_b + w_b + w_b  # reads grad_out, input, weight; writes grad_weight only (x needs none)
    cost = train_step_cost(model, 1, 5)
    assert cost["bytes"] == forward + linear_back + conv_back
    assert cost["flops"] == 2 * (2 * 25 * 4 * 27) + 3 * (2 * 100 * 2)  # conv fwd + weight grad; linear x3


def test_byte_counter_ignores_elementwise_ops():
    with ByteCounterMode() as counter:
        torch.relu(torch.randn(100)) + 1
    assert counter.bytes == 0


def test_roofline_fraction_by_hand():
    # intensity 10 FLOP/B x 20 GB/s = 200 GFLOP/s < peak 500: memory bound; achieved 100 -> 0.5
    r = roofline_fraction(flops=10**11, bytes_moved=10**10, seconds=1.0, peak_gflops=500, bw_gbs=20)
    assert r["intensity_flop_per_byte"] == 10 and r["memory_bound"] and r["roofline_fraction"] == 0.5
    r = roofline_fraction(flops=10**11, bytes_moved=10**8, seconds=1.0, peak_gflops=500, bw_gbs=20)
    assert not r["memory_bound"] and r["roofline_fraction"] == 100 / 500
    with pytest.raises(ValueError, match="positive flops, bytes and seconds"):
        roofline_fraction(0, 1, 1.0, 1.0, 1.0)


def test_stream_bandwidth_is_a_plausible_memory_rate():
    bw = stream_bandwidth_gbs(torch.device("cpu"), mib=16, reps=2)
    assert 0.5 < bw < 5000  # GB/s: any machine's memory, never 0 or a unit slip of 1000x


# ---- goals, profiles, chart -----------------------------------------------------------------------------


def _row(suite, model, peer, setting, ratio, **extra):
    return {"suite": suite, "model": model, "peer": peer, "setting": setting, "unit": "img/s", "value": ratio,
            "peer_value": 1.0, "ratio": ratio, "extra": extra}  # fmt: skip


FIXTURE_ROWS = [
    _row("vs_effnet", "ours:nf_regnet_b0", "timm:efficientnet_b0", "train b4 224px", 1.48),
    _row("vs_effnet", "ours:nf_regnet_b0", "timm:efficientnet_b0", "train b16 224px", 2.28),
    _row("stability", "ours:nf_regnet_b0", "timm-own:nf_regnet_b0", "infer b1 224px fp32", 1.6,
         ratio_min=1.4),
    _row("onnx", "ours:nf_resnet50 onnxruntime", "ours:nf_resnet50 eager", "infer b1 224px", 1.5,
         max_abs_diff=2e-4),
    _row("vs_bn", "ours:nf_resnet50", "timm:resnetv2_50", "train b16 128px", 1.1),
]  # fmt: skip


def test_goals_met_missed_and_gaps_by_hand():
    got = {(e["goal"], e.get("setting")): e for e in evaluate(FIXTURE_ROWS)}
    small = got[("effnet_small_batch", "train b4 224px")]
    assert small["status"] == "missed" and small["gap"] == pytest.approx(0.52)
    assert got[("effnet_small_batch", "train b16 224px")]["status"] == "met"
    stable = got[("b1_stable", "infer b1 224px fp32")]
    assert stable["value"] == 1.4 and stable["status"] == "missed"  # the worst run counts, not the median 1.6
    onnx = got[("onnx_vs_eager", "infer b1 224px")]
    assert (
        onnx["status"] == "missed" and onnx["outputs_agree"] is False and "gap" not in onnx
    )  # 1.5x, but 2e-4
    assert got[("compile_train", None)]["status"] == "not run"
    md = goals_markdown(evaluate(FIXTURE_ROWS))
    assert "| missed, short by 0.52x (26%) |" in md and "outputs differ by more than the tolerance" in md


def test_ratio_chart_has_one_bar_per_ratio_and_the_goal_ticks(tmp_path):
    no_ratio = _row("scaling", "ours:nf_regnet_b0", None, "train b8 128px", None)
    report = {
        "environment": {"device": "cpu", "device_name": "x86_64", "threads": 2},
        "rows": [*FIXTURE_ROWS, no_ratio],
    }
    fig = ratio_chart(report, tmp_path / "b.png")
    ax = fig.axes[0]
    assert [round(p.get_width(), 2) for p in ax.patches] == [
        1.48,
        2.28,
        1.6,
        1.5,
        1.1,
    ]  # the None row has none
    ticks = [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "-"]
    assert sorted(ticks) == [1.3, 2.0, 2.0]  # effnet x2 and onnx; stability's goal is on its worst run
    colours = [tuple(round(c, 2) for c in p.get_facecolor()[:3]) for p in ax.patches]
    assert colours[0] != colours[1]  # the missed b4 bar stands out from the met b16 bar
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_missed_goal_is_profiled_into_the_report(monkeypatch, no_timing):
    """Timing stubbed so ours is slower than the peer: the missed goal's step is profiled (top ops)."""
    monkeypatch.setattr(
        runner, "time_interleaved", lambda fns, *a, **k: {k2: 3.0 - i for i, k2 in enumerate(fns)}
    )
    cfg = BenchConfig(reps=1, train_px=32, train_batches=(16,), suites=("channels_last",))
    report = run_benchmark(cfg)
    (missed,) = [e for e in report["goals"] if e["goal"] == "channels_last"]
    assert missed["status"] == "missed"
    ((label, ops),) = report["profiles"].items()
    assert "channels_last" in label and ops and {"op", "self_ms", "share", "calls"} <= ops[0].keys()
    assert any("conv" in o["op"] for o in ops) and sum(o["share"] for o in ops) <= 1.0 + 1e-6
    assert "Where the time goes: channels_last" in runner.to_markdown(report)


# ---- the CLI's new options, tiny sizes (seconds) ---------------------------------------------------------


def test_cli_tiny_run_writes_json_markdown_and_chart(tmp_path, capsys):
    out = [str(tmp_path / f"b.{ext}") for ext in ("json", "md")]
    argv = ["bench", "--suites", "stability", "roofline", "--infer-px", "32", "--train-px", "32",
            "--effnet-px", "32", "--stability-runs", "2", "--reps", "1", "--threads", "1",
            "--json", out[0], "--md", out[1]]  # fmt: skip
    cli_main(argv)
    report = json.loads(Path(out[0]).read_text())
    (stab,) = [r for r in report["rows"] if r["suite"] == "stability"]
    assert len(stab["extra"]["ratios"]) == 2
    assert stab["extra"]["ratio_min"] <= stab["ratio"] <= stab["extra"]["ratio_max"] * 1.0001
    roof = [r for r in report["rows"] if r["suite"] == "roofline"]
    assert [r["setting"] for r in roof] == ["train b16 32px", "train b16 32px"]
    for r in roof:
        assert 0 < r["extra"]["roofline_fraction"] and r["extra"]["fraction_of_gemm_peak"] > 0
        assert r["extra"]["roofline_fraction"] >= r["extra"]["fraction_of_gemm_peak"] - 1e-9  # bound <= peak
    assert report["environment"]["memory_bandwidth_gbs"] > 0
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"  # beside the markdown, by default
    assert "Goals (issue 17):" in Path(out[1]).read_text()


def test_gpu_suite_runs_on_cpu_at_tiny_size(monkeypatch):
    """The GPU suite's code path (bf16 autocast, channels_last, both pairs) on the CPU; every step really
    runs (timed once), only the machine's peak and bandwidth measurements are stubbed."""
    monkeypatch.setattr(runner, "gemm_peak_gflops", lambda device: 100.0)
    monkeypatch.setattr(runner, "stream_bandwidth_gbs", lambda device: 10.0)
    cfg = BenchConfig(reps=1, train_px=32, effnet_px=32, gpu_batch=2, threads=1, suites=("gpu",))
    rows = run_benchmark(cfg)["rows"]
    assert [(r["peer"], r["setting"]) for r in rows] == [
        (peer, f"{kind} 32px bf16 channels_last")
        for peer in ("timm:resnetv2_50", "timm:efficientnet_b0")
        for kind in ("train b2", "infer b1", "infer b2")
    ]


def test_gpu_bench_script_runs_end_to_end_on_cpu(tmp_path):
    """``tools/gpu_bench.sh --device cpu``: every step runs and lands in the one output folder."""
    out = tmp_path / "gpu"
    proc = subprocess.run(["bash", str(ROOT / "tools/gpu_bench.sh"), "--device", "cpu", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = (out / "summary.txt").read_text()
    for name in ("cuda_tests", "bf16_steps", "benchmark", "demo_segmentation", "demo_depth"):
        assert f"{name}: " in summary and "FAILED" not in summary
    steps = json.loads((out / "bf16_steps.json").read_text())
    assert [s["model"] for s in steps] == ["nf_resnet26", "nf_regnet_b0"] and all(
        s["grads_finite"]
        and s["logits_dtype"] == "torch.bfloat16"
        and s["fraction_of_params_with_gradient"] == 1.0
        for s in steps
    )
    bench = json.loads((out / "benchmark_gpu.json").read_text())
    assert len(bench["rows"]) == 6 and (out / "benchmark_gpu.png").exists()
    assert (out / "cuda_tests.xml").exists()


def test_gpu_bench_script_refuses_bad_arguments(tmp_path):
    for argv, msg in ((["--device", "tpu"], "--device must be cuda, cuda:N or cpu"),
                      (["--speed"], "unknown argument '--speed'")):  # fmt: skip
        proc = subprocess.run(["bash", str(ROOT / "tools/gpu_bench.sh"), *argv, "--out", str(tmp_path / "o")],
                              capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 2 and msg in proc.stderr
    assert not (tmp_path / "o").exists()
    if not torch.cuda.is_available():
        proc = subprocess.run(["bash", str(ROOT / "tools/gpu_bench.sh"), "--out", str(tmp_path / "o")],
                              capture_output=True, text=True, env={**os.environ})  # fmt: skip
        assert proc.returncode == 2 and "torch sees no CUDA GPU" in proc.stderr


def test_bf16_steps_refuses_a_missing_gpu(capsys):
    from nf_plugins.bench.bf16_steps import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit) as info:
        main(["--device", "cuda"])
    assert info.value.code == 2 and "is not available" in capsys.readouterr().err
    assert sys.modules  # the module ran in-process

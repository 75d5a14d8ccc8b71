"""The benchmark runs and writes well-formed reports (no timing assertions: speed is measured, not tested)."""

import json
import subprocess
import sys

import pytest
import timm

from nf_plugins.bench import BenchConfig, run_benchmark
from nf_plugins.bench.memory import train_step_peak
from nf_plugins.bench.models import build
from nf_plugins.bench.runner import to_markdown, write_report


def test_timm_own_is_timm_without_the_plugin():
    """``timm-own:`` builds what ``timm.create_model`` gives in a process that never imports nf_plugins."""
    code = (
        "import timm; m = timm.create_model('nf_regnet_b0'); "
        "print(type(m).__module__, sum(p.numel() for p in m.parameters()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    own = build("timm-own:nf_regnet_b0")
    assert [type(own).__module__, str(sum(p.numel() for p in own.parameters()))] == out
    assert type(build("ours:nf_regnet_b0")).__module__.startswith("nf_plugins")
    with pytest.raises(ValueError, match="must start with 'ours:', 'timm:' or 'timm-own:'"):
        build("nf_regnet_b0")


def test_folded_suite_report_is_well_formed(tmp_path):
    report = run_benchmark(BenchConfig(reps=1, infer_px=64, infer_batch=2, suites=("folded",)))
    rows = report["rows"]
    assert {r["setting"] for r in rows} == {"infer b1 64px", "infer b2 64px"}
    for r in rows:
        assert r["value"] > 0 and r["peer_value"] > 0 and r["ratio"] > 0
        assert r["extra"]["max_abs_diff"] <= 1e-5  # folded and recomputed give the same outputs
        assert (
            r["extra"]["max_abs_logit"] > 0.1
        )  # on live weights: zero logits would agree whatever folding did
    env = report["environment"]
    assert env["torch"] == __import__("torch").__version__ and env["timm"] == timm.__version__
    assert env["fp32_gemm_peak_gflops"] > 0
    write_report(report, str(tmp_path / "b.json"), str(tmp_path / "b.md"))
    assert json.loads((tmp_path / "b.json").read_text()) == json.loads(json.dumps(report))
    md = (tmp_path / "b.md").read_text()
    assert md == to_markdown(report) + "\n" and md.count("| folded |") == 4


def test_folded_check_reports_a_wrong_cached_weight(monkeypatch):
    """The folded-vs-recomputed difference is a real check: a cache off by 1% shows in it.

    Timing is stubbed out (this is about the difference, not the speed) to keep the test fast.
    """
    from nf_plugins.bench import runner
    from nf_plugins.layers import ScaledStdConv2d

    monkeypatch.setattr(runner, "gemm_peak_gflops", lambda device: 1.0)
    monkeypatch.setattr(runner, "time_interleaved", lambda fns, *a, **k: dict.fromkeys(fns, 1.0))
    original = ScaledStdConv2d._cached_weight
    monkeypatch.setattr(ScaledStdConv2d, "_cached_weight", lambda self: original(self) * 1.01)
    bench = runner.Benchmark(BenchConfig(reps=1, infer_batch=2))
    bench.folded_vs_recomputed(["nf_regnet_b0"], 32)
    assert min(r.extra["max_abs_diff"] for r in bench.rows) > 1e-3


def test_memory_measurement_runs_in_a_child():
    m = train_step_peak("ours:nf_regnet_b0", 2, 64, "cpu", 1)
    assert m["peak_mib"] > 0 and m["peak_rss_mib"] >= m["peak_mib"] * 0.5


def test_unknown_suite_is_rejected():
    with pytest.raises(ValueError, match=r"unknown benchmark suites \['fast'\]; choose from"):
        run_benchmark(BenchConfig(reps=1, suites=("fast",)))


def test_train_step_flops_count_grouped_convolutions_analytically():
    """Forward + backward FLOPs equal the hand count: torch's own formula over-counts grouped weight grads."""
    import torch

    from nf_plugins.bench.runner import train_step_flops

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 1, bias=False), torch.nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False)
    )
    batch, px = 2, 5
    pixels = batch * px * px
    first = 2 * pixels * 8 * 3  # forward; its backward is the weight gradient only (input needs none)
    grouped = 2 * pixels * 8 * (8 // 4) * 9  # forward; backward = input and weight gradients
    assert train_step_flops(model, batch, px) == 2 * first + 3 * grouped

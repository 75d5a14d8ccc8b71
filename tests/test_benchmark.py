"""The benchmark runs and writes well-formed reports (no timing assertions: speed is measured, not tested)."""

import json
import os
import re
import subprocess
import sys
import time

import pytest
import timm

from nf_plugins.bench import BenchConfig, run_benchmark
from nf_plugins.bench.memory import train_step_peak
from nf_plugins.bench.models import build
from nf_plugins.bench.runner import to_markdown, write_report
from nf_plugins.cli import main as cli_main


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
    with pytest.raises(ValueError, match=r"unknown benchmark suites \(--suites\) \['fast'\]; choose from"):
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


# ---- the tool checks its arguments and outputs before any work (issue 15) ---------------------------


@pytest.fixture
def no_work(monkeypatch):
    """Make any start of the measurements fail the test at once (a real run takes minutes)."""
    from nf_plugins.bench import runner

    def started(*_a, **_k):
        raise AssertionError("the benchmark started measuring before refusing its arguments")

    monkeypatch.setattr(runner, "Benchmark", started)


BAD_ARGS = [
    ("infer_px_zero", ["--infer-px", "0"],
     r"infer_px \(--infer-px\) must be an int >= 32, got 0; the models need at least 32x32 pixels"),
    ("train_px_small", ["--train-px", "16"], r"train_px \(--train-px\) must be an int >= 32, got 16"),
    ("threads_negative", ["--threads", "-3"], r"threads \(--threads\) must be an int >= 1, got -3"),
    ("threads_zero", ["--threads", "0"], r"threads \(--threads\) must be an int >= 1, got 0"),  # was ignored
    ("reps_zero", ["--reps", "0"], r"reps \(--reps\) must be an int >= 1, got 0"),
    ("device_tpu", ["--device", "tpu"], r"device \(--device\) 'tpu' is not a torch device .*use 'cpu' or 'cuda'"),  # noqa: E501
    ("device_meta", ["--device", "meta"], r"device \(--device\) 'meta': the benchmark runs on 'cpu' or 'cuda'"),  # noqa: E501
    ("device_missing_gpu", ["--device", "cuda:99"], r"'cuda:99' is not available: this machine has \d+ CUDA"),
    ("suites", ["--suites", "fast"], r"unknown benchmark suites \(--suites\) \['fast'\]"),
    ("compile_backend", ["--compile-backend", "tvm"], r"compile_backend \(--compile-backend\) must be one of \['inductor'"),  # noqa: E501
    ("train_batches_zero", ["--train-batches", "4", "0"], r"train_batches \(--train-batches\) must be an int >= 1, got 0"),  # noqa: E501
    ("effnet_px_small", ["--effnet-px", "8"], r"effnet_px \(--effnet-px\) must be an int >= 32, got 8"),
    ("stability_runs_zero", ["--stability-runs", "0"], r"stability_runs \(--stability-runs\) must be an int >= 1"),  # noqa: E501
    ("png_suffix", ["--png", "chart.jpg"], r"--png must end in .png, got '.*chart.jpg'"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "msg"), [c[1:] for c in BAD_ARGS], ids=[c[0] for c in BAD_ARGS])
def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys, no_work, argv, msg):
    out = ["--json", str(tmp_path / "b.json"), "--md", str(tmp_path / "b.md")]
    with pytest.raises(SystemExit) as info:
        cli_main(["bench", "--quick", *argv, *out])
    assert info.value.code == 2  # argparse's usage error
    assert re.search(msg, capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def _unwritable(tmp_path, case: str) -> str:
    if case == "parent_is_a_file":
        (tmp_path / "file").write_text("x")
        return str(tmp_path / "file" / "b.json")
    if case == "path_is_a_folder":
        (tmp_path / "b.json").mkdir()
        return str(tmp_path / "b.json")
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder / "b.json")


@pytest.mark.parametrize("flag", ["--json", "--md"])
@pytest.mark.parametrize("case", ["parent_is_a_file", "path_is_a_folder", "read_only_folder"])
def test_unwritable_output_fails_in_under_2_s_and_leaves_nothing(tmp_path, capsys, no_work, case, flag):
    """Before: an unwritable --json failed after 93 s of timing and the table was lost."""
    bad = _unwritable(tmp_path, case)
    other = "--md" if flag == "--json" else "--json"
    before = sorted(tmp_path.rglob("*"))
    argv = ["bench", "--quick", "--suites", "folded", flag, bad, other, str(tmp_path / "other.out")]
    for _ in range(2):  # timed: the second call (the first imports the CLI's modules, once per process)
        start = time.perf_counter()
        with pytest.raises(SystemExit) as info:
            cli_main(argv)
        assert info.value.code == 2 and bad in capsys.readouterr().err
    assert time.perf_counter() - start < 2.0
    assert sorted(tmp_path.rglob("*")) == before  # no partial file, no probe, no temp file


def test_json_and_md_on_the_same_file_are_refused(tmp_path, capsys, no_work):
    with pytest.raises(SystemExit):
        cli_main(["bench", "--quick", "--json", str(tmp_path / "b"), "--md", str(tmp_path / "b")])
    assert "--json and --md are the same file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_write_that_fails_after_the_run_still_prints_the_table(tmp_path, capsys, monkeypatch):
    """The outputs were writable when checked, then the folder turned into a file during the run: the table
    is on stdout, the exit status is 1 and the error names the failure."""
    import nf_plugins.bench
    from nf_plugins.bench import runner

    out = tmp_path / "out"
    out.mkdir()
    row = dict(suite="folded", model="ours:x folded", peer="ours:x recomputed", setting="infer b1 64px",
               unit="ms", value=2.0, peer_value=3.0, ratio=1.5, extra={})  # fmt: skip
    env = dict(torch="t", timm="t", device="cpu", device_name="cpu", threads=1, quick=True,
               fp32_gemm_peak_gflops=1.0)  # fmt: skip

    def fake_run(cfg):
        out.rmdir()
        out.write_text("the folder is gone")
        return {"environment": env, "rows": [row]}

    monkeypatch.setattr(runner, "run_benchmark", fake_run)
    monkeypatch.setattr(nf_plugins.bench, "run_benchmark", fake_run)
    with pytest.raises(SystemExit) as info:
        cli_main(["bench", "--quick", "--json", str(out / "b.json"), "--md", str(out / "b.md")])
    assert info.value.code == 1
    captured = capsys.readouterr()
    assert (
        "| folded | ours:x folded | ours:x recomputed | infer b1 64px | 2.00 ms | 3.00 | 1.50x |"
        in captured.out
    )
    assert "could not write the report" in captured.err and "the table above holds it" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and out.read_text() == "the folder is gone"

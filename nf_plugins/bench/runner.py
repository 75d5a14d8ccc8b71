"""The benchmark suites and their report (JSON + markdown with ours/peer ratios)."""

from __future__ import annotations

import copy
import json
import os
import platform
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import timm
import torch
from tqdm import tqdm

from ..atomic import atomic_write_text
from ..layers import ScaledStdConv2d
from ..models import NormFreeBlock
from .chart import ratio_chart
from .fastpaths import compare_paths, compiled_counters, export_standard_onnx, onnx_runner, onnx_session
from .goals import evaluate as evaluate_goals
from .goals import to_markdown as goals_markdown
from .memory import train_step_peak
from .models import build
from .roofline import roofline_fraction, stream_bandwidth_gbs, train_step_cost
from .timing import gemm_peak_gflops, profile_top_ops, synchronize, time_interleaved


@dataclass
class BenchConfig:
    """What to run. ``quick`` keeps a 2-core CPU run under 3 minutes; ``goals`` runs the suites of
    issue 17's goals at the goals' sizes (see ``run_benchmark``), and takes precedence over ``quick``."""

    quick: bool = True
    goals: bool = False
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    threads: int = torch.get_num_threads()
    reps: int = 3
    train_px: int = 128
    infer_px: int = 224
    infer_batch: int | None = None  # throughput batch; default 8 with quick, else 32
    effnet_px: int | None = None  # None: each EfficientNet's own resolution (224 for B0)
    gpu_batch: int = 64  # the gpu suite's training and inference batch
    stability_runs: int = 5  # repeated batch-1 runs of the stability suite
    train_batches: tuple[int, ...] | None = None  # overrides every training suite's batch sizes
    compile_backend: str = "inductor"  # torch.compile backend of the compiled suite
    suites: tuple[str, ...] | None = None  # None: the preset's suites (see run_benchmark)


@dataclass
class Row:
    suite: str
    model: str
    peer: str | None
    setting: str
    unit: str
    value: float
    peer_value: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """ours / peer for throughputs, peer / ours for latencies and memory: > 1 means ours is better."""
        if self.peer_value is None:
            return None
        if self.unit in ("img/s",):
            return self.value / self.peer_value
        return self.peer_value / self.value


def _train_step(
    model: torch.nn.Module, batch: int, px: int, device: torch.device, channels_last: bool = False, dtype=None
):
    """One SGD step on a fixed random batch (``dtype``: autocast forward and loss in it)."""
    model = model.to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    x = torch.randn(batch, 3, px, px, device=device)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def _infer(
    model: torch.nn.Module, batch: int, px: int, device: torch.device, dtype=None, channels_last=False
):
    model = model.to(device).eval()
    # The same batch for every model, so that paired runs (folded vs recomputed) can be compared.
    x = torch.randn(batch, 3, px, px, generator=torch.Generator().manual_seed(0)).to(device)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)

    def run() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            return model(x)

    return run


def set_weight_cache(model: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    for m in model.modules():
        if isinstance(m, ScaledStdConv2d):
            m.cache_weight = enabled
    return model


@torch.no_grad()
def randomize_zero_init(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random SkipInit gains (0.5-1.5), zero-initialised Scaled WS gains (0.5-1.5) and classifier (std
    0.1) in place; for ours (``NormFreeBlock``) and timm's own NF models (which zero the last conv's gain
    instead of using SkipInit).

    A fresh NF model has these at 0: its logits are exactly 0 whatever its Scaled WS convs compute, so
    comparing two fresh models could never show a difference.
    """
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        gain = getattr(m, "skipinit_gain", None)
        if isinstance(m, NormFreeBlock) or isinstance(gain, torch.Tensor):
            m.skipinit_gain.copy_(torch.rand((), generator=g) + 0.5)
        gain = getattr(m, "gain", None)
        if isinstance(gain, torch.Tensor) and gain.numel() > 1 and not gain.any():
            gain.copy_(torch.rand(gain.shape, generator=g) + 0.5)
    fc = model.get_classifier()
    fc.weight.copy_(torch.randn(fc.weight.shape, generator=g) * 0.1)
    fc.bias.copy_(torch.randn(fc.bias.shape, generator=g) * 0.1)
    return model


def train_step_flops(model: torch.nn.Module, batch: int, px: int) -> int:
    """FLOPs (2 per multiply-add) of forward + backward, from torch's FLOP counter."""
    return train_step_cost(model, batch, px)["flops"]


def _fastest_per_side(sec: dict[tuple[str, str], float]) -> dict[str, tuple[str, str]]:
    """For timings keyed ``(side, layout)``: each side's fastest key."""
    return {side: min((k for k in sec if k[0] == side), key=sec.__getitem__) for side, _ in sec}


def _train_iters(batch: int) -> int:
    """Steps per timed call: about 32 images, so that small batches are not timed on one short step."""
    return 1 if batch >= 32 else max(2, 32 // batch)


class Benchmark:
    def __init__(self, cfg: BenchConfig) -> None:
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        torch.set_num_threads(cfg.threads)
        self.rows: list[Row] = []
        self.profiles: dict[str, list[dict]] = {}
        self.peak_gflops = gemm_peak_gflops(self.device)
        self.bandwidth_gbs = stream_bandwidth_gbs(self.device)
        self.infer_batch = cfg.infer_batch or (8 if cfg.quick else 32)

    def _time(self, fns: dict[str, Callable[[], object]], iters: int) -> dict[str, float]:
        return time_interleaved(fns, self.device, reps=self.cfg.reps, iters=iters)

    def _add(self, row: Row, profile: Callable[[], object] | None = None) -> None:
        """Append ``row``; if it misses a goal, profile ``profile`` (our side's step) while it exists."""
        self.rows.append(row)
        as_dict = {**asdict(row), "ratio": row.ratio}
        missed = [e for e in evaluate_goals([as_dict]) if e["status"] == "missed"]
        if missed and profile is not None:
            self.profiles[f"{row.suite} | {row.model} vs {row.peer} | {row.setting}"] = profile_top_ops(
                profile, self.device
            )

    def _cost_extras(self, model: torch.nn.Module, batch: int, px: int, seconds: float) -> dict:
        """GFLOP/s and the fractions of the GEMM peak and of the roofline bound (FLOPs counted on CPU)."""
        counted = model if self.device.type == "cpu" else copy.deepcopy(model).cpu()
        cost = train_step_cost(counted, batch, px)
        achieved = cost["flops"] / seconds / 1e9
        return {
            "gflops_per_s": achieved,
            "fraction_of_gemm_peak": achieved / self.peak_gflops,
            **roofline_fraction(cost["flops"], cost["bytes"], seconds, self.peak_gflops, self.bandwidth_gbs),
        }

    def train_pairs(
        self, suite: str, pairs: list[tuple[str, str]], batches: list[int], px_of, best_layout: bool = False
    ) -> None:
        """Training throughput of each (ours, peer) pair, interleaved; at the first batch size also the
        achieved fraction of the GEMM peak and of the roofline bound.

        ``best_layout``: each side is timed in NCHW and in channels_last (same weights) and compared at
        its faster layout, per batch; all four rates go in the row.
        """
        for ours, peer in pairs:
            px = px_of(ours)
            models = {}
            for side, spec in (("ours", ours), ("peer", peer)):
                models[side, "nchw"] = build(spec)
                if best_layout:  # the same weights in both layouts
                    models[side, "channels_last"] = copy.deepcopy(models[side, "nchw"])
            check = self._channels_last_check(ours, px) if best_layout else {}
            for batch in batches:
                fns = {
                    key: _train_step(model, batch, px, self.device, channels_last=key[1] == "channels_last")
                    for key, model in models.items()
                }
                sec = self._time(fns, iters=_train_iters(batch))
                best = _fastest_per_side(sec)
                extra = (
                    self._cost_extras(models[best["ours"]], batch, px, sec[best["ours"]])
                    if batch == batches[0]
                    else {}
                )
                if best_layout:
                    extra.update(check)
                    extra.update({f"{side}_layout": layout for side, layout in best.values()})
                    extra.update({f"{side}_{lay}_img_s": batch / sec[side, lay] for side, lay in fns})
                row = Row(
                    suite,
                    ours,
                    peer,
                    f"train b{batch} {px}px",
                    "img/s",
                    batch / sec[best["ours"]],
                    batch / sec[best["peer"]],
                    extra,
                )
                self._add(row, fns[best["ours"]])

    def roofline(self, specs: list[tuple[str, int, int]]) -> None:
        """Each (model, batch, px) training step alone: its GFLOP/s against the GEMM peak and the roofline."""
        for spec, batch, px in specs:
            model = build(spec)
            step = _train_step(model, batch, px, self.device)
            sec = self._time({"s": step}, iters=_train_iters(batch))["s"]
            row = Row(
                "roofline",
                spec,
                None,
                f"train b{batch} {px}px",
                "img/s",
                batch / sec,
                None,
                self._cost_extras(model, batch, px, sec),
            )
            self._add(row)
            self.profiles[f"roofline | {spec} | train b{batch} {px}px"] = profile_top_ops(step, self.device)

    def _channels_last_check(self, spec: str, px: int, keep: bool = False):
        """``spec`` in channels_last against NCHW, outputs and gradients on live weights (random SkipInit
        gains and classifier); with ``keep`` also returns the channels_last model."""
        plain = randomize_zero_init(build(spec))
        fast = copy.deepcopy(plain).to(memory_format=torch.channels_last)
        x = torch.randn(2, 3, px, px, device=self.device)
        check = compare_paths(
            plain.to(self.device),
            fast.to(self.device),
            x,
            fast_x=x.contiguous(memory_format=torch.channels_last),
        )
        check.pop("fast_first_call_s")
        return (fast, check) if keep else check

    def channels_last(self, ours: str, peer: str, batches: list[int], px: int) -> None:
        """Ours in channels_last against the peer at its best layout (the faster of NCHW and
        channels_last, per batch), after checking ours in channels_last equals ours in NCHW (outputs and
        gradients, live weights)."""
        fast, check = self._channels_last_check(ours, px, keep=True)
        m_peer, m_peer_cl = build(peer), build(peer)
        for batch in batches:
            fns = {
                "ours": _train_step(fast, batch, px, self.device, channels_last=True),
                "peer": _train_step(m_peer, batch, px, self.device),
                "peer_cl": _train_step(m_peer_cl, batch, px, self.device, channels_last=True),
            }
            sec = self._time(fns, iters=_train_iters(batch))
            best = min(sec["peer"], sec["peer_cl"])
            extra = {
                **check,
                "peer_nchw_img_s": batch / sec["peer"],
                "peer_channels_last_img_s": batch / sec["peer_cl"],
            }
            row = Row(
                "channels_last",
                f"{ours} channels_last",
                f"{peer} best",
                f"train b{batch} {px}px",
                "img/s",
                batch / sec["ours"],
                batch / best,
                extra,
            )
            self._add(row, fns["ours"])

    def stability(self, ours: str, peer: str, px: int, runs: int) -> None:
        """Batch-1 inference of ``ours`` vs ``peer`` timed ``runs`` times over: the spread of the ratio.

        Each side runs in NCHW and in channels_last (same weights); every run compares each side's
        faster layout in that run.
        """
        infer = {}
        for side, spec in (("ours", ours), ("peer", peer)):
            model = build(spec)
            twin = copy.deepcopy(model)
            infer[side, "nchw"] = _infer(model, 1, px, self.device)
            infer[side, "channels_last"] = _infer(twin, 1, px, self.device, channels_last=True)
        ratios, ours_ms, peer_ms = [], [], []
        layout_wins: Counter[str] = Counter()
        for _ in range(runs):
            sec = self._time(infer, iters=10)
            best = _fastest_per_side(sec)
            layout_wins.update(f"{side}_{layout}" for side, layout in best.values())
            ours_ms.append(1e3 * sec[best["ours"]])
            peer_ms.append(1e3 * sec[best["peer"]])
            ratios.append(sec[best["peer"]] / sec[best["ours"]])
        extra = {
            "runs": runs,
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "ratios": [round(r, 3) for r in ratios],
            "ours_ms": [round(v, 2) for v in ours_ms],
            "peer_ms": [round(v, 2) for v in peer_ms],
            "runs_won_by_layout": dict(layout_wins),
        }
        row = Row(
            "stability",
            ours,
            peer,
            f"infer b1 {px}px fp32",
            "ms",
            statistics.median(ours_ms),
            statistics.median(peer_ms),
            extra,
        )
        ours_layout = max(("nchw", "channels_last"), key=lambda lay: layout_wins[f"ours_{lay}"])
        self._add(row, infer["ours", ours_layout])

    def compiled(self, names: list[str], batch: int, px: int, ipx: int) -> None:
        """``torch.compile`` (``cfg.compile_backend``) training and batch-1 inference against our eager
        model, and training against timm's own compiled the same way.

        Dropout is off on every side (timm's default for these models; ours defaults to the paper's
        head dropout, which costs nothing measurable) so the compiled path can be checked against eager
        value for value. Each compiled module is checked on live weights (outputs, and gradients where
        it trains) at the timed shape; that first call is the compile time (plus one step).
        """
        backend = self.cfg.compile_backend
        x_train = torch.randn(batch, 3, px, px, device=self.device)
        label = f"train b{batch} {px}px"
        for name in names:
            # Every compile starts from a clean dynamo, as in a process of its own: after a compile of the
            # same forward at another input size dynamo marks the sizes dynamic (automatic dynamic shapes),
            # which left the frozen NF-ResNet-50 inference no faster than eager (1.00x, vs 1.71x fresh).
            torch._dynamo.reset()
            ours = randomize_zero_init(build(f"ours:{name}", drop_rate=0.0)).to(self.device).train()
            peer = randomize_zero_init(build(f"timm-own:{name}", drop_rate=0.0)).to(self.device).train()
            c_ours, c_peer = torch.compile(ours, backend=backend), torch.compile(peer, backend=backend)
            before = compiled_counters()
            check = compare_paths(ours, ours, x_train, fast_call=c_ours)
            check_peer = compare_paths(peer, peer, x_train, fast_call=c_peer)
            fns = {
                "eager": _train_step(ours, batch, px, self.device),
                "compiled": _train_step(c_ours, batch, px, self.device),
                "peer_compiled": _train_step(c_peer, batch, px, self.device),
            }
            sec = self._time(fns, iters=_train_iters(batch))
            extra = {
                "compile_s": check.pop("fast_first_call_s"),
                "graph_breaks": compiled_counters()["graph_breaks"] - before["graph_breaks"],
                "fxgraph_cache_hits": compiled_counters()["fxgraph_cache_hits"]
                - before["fxgraph_cache_hits"],
                **check,
            }
            ours_img_s = batch / sec["compiled"]
            row = Row("compiled", f"ours:{name} compiled", f"ours:{name} eager", label, "img/s", ours_img_s,
                      batch / sec["eager"], extra)  # fmt: skip
            self._add(row, fns["compiled"])
            extra = {
                **extra,
                "peer_compile_s": check_peer["fast_first_call_s"],
                "peer_max_abs_diff": check_peer["max_abs_diff"],
                "peer_max_abs_grad_diff": check_peer["max_abs_grad_diff"],
            }
            row = Row("compiled", f"ours:{name} compiled", f"timm-own:{name} compiled", label, "img/s",
                      ours_img_s, batch / sec["peer_compiled"], extra)  # fmt: skip
            self._add(row, fns["compiled"])
            self._compiled_inference(name, ours.eval(), ipx)

    def _compiled_inference(self, name: str, model: torch.nn.Module, px: int) -> None:
        """Batch-1 inference (inference mode), compiled vs eager; then one call at ``px + 32`` pixels
        shows whether a new input size recompiles (dynamo's frame count) and what that call costs.

        Compiled with inductor's ``freezing`` (PyTorch's documented CPU inference setting): parameters
        become constants, so the Scaled WS standardization is folded at compile time and the convs get
        prepacked weights.
        """
        import torch._inductor.config as inductor_config

        torch._dynamo.reset()  # see compiled(): the training graph was compiled at another size
        with inductor_config.patch(freezing=True):
            c_model = torch.compile(model, backend=self.cfg.compile_backend)
            x = torch.randn(1, 3, px, px, device=self.device)

            def under_inference_mode(fn, inp=x):
                def call():
                    with torch.inference_mode():
                        return fn(inp)

                return call

            fns = {"eager": under_inference_mode(model), "compiled": under_inference_mode(c_model)}
            start = time.perf_counter()
            got = fns["compiled"]()
            compile_s = time.perf_counter() - start
            expected = fns["eager"]()
            extra = {
                "compile_s": compile_s,
                "freezing": True,
                "max_abs_diff": _max_diff(got, expected),
                "max_abs_logit": expected.abs().max().item(),
            }
            sec = self._time(fns, iters=10)
            before = compiled_counters()["frames_compiled"]
            resized = under_inference_mode(c_model, torch.randn(1, 3, px + 32, px + 32, device=self.device))
            start = time.perf_counter()
            resized()
            extra["resize_call_s"] = time.perf_counter() - start
            extra["recompiles_on_resize"] = compiled_counters()["frames_compiled"] - before
            row = Row("compiled", f"ours:{name} compiled", f"ours:{name} eager", f"infer b1 {px}px", "ms",
                      1e3 * sec["compiled"], 1e3 * sec["eager"], extra)  # fmt: skip
            self._add(row, fns["compiled"])

    def onnx_runtime(self, names: list[str], px: int) -> None:
        """Batch-1 inference through ONNX Runtime: our folded export (``nf_plugins.deploy``) against our
        PyTorch eager model and against timm's own model exported the standard way (CPU only)."""
        from ..deploy import export_onnx

        x = torch.randn(1, 3, px, px, generator=torch.Generator().manual_seed(0))
        with tempfile.TemporaryDirectory(prefix="nf_bench_onnx_") as tmp:
            for name in names:
                ours = randomize_zero_init(build(f"ours:{name}")).eval()
                peer = randomize_zero_init(build(f"timm-own:{name}")).eval()
                s_ours = onnx_session(
                    export_onnx(ours, Path(tmp) / f"{name}.onnx", (3, px, px)), self.cfg.threads
                )
                extra = {}
                try:
                    s_peer = onnx_session(
                        export_standard_onnx(peer, Path(tmp) / f"own_{name}.onnx", px), self.cfg.threads
                    )
                except Exception as e:  # noqa: BLE001 -- reported in the table: "where that export works"
                    s_peer, extra["peer_export_error"] = None, f"{type(e).__name__}: {e}"[:200]
                with torch.inference_mode():
                    expected, expected_peer = ours(x), peer(x)
                fns = {"eager": _infer(ours, 1, px, self.device), "ort": onnx_runner(s_ours, x)}
                if s_peer is not None:
                    fns["peer_ort"] = onnx_runner(s_peer, x)
                    extra["peer_max_abs_diff"] = _max_diff(fns["peer_ort"](), expected_peer)
                extra = {
                    "max_abs_diff": _max_diff(fns["ort"](), expected),
                    "max_abs_logit": expected.abs().max().item(),
                    **extra,
                }
                sec = self._time(fns, iters=10)
                label = f"infer b1 {px}px"
                self._add(
                    Row(
                        "onnx",
                        f"ours:{name} onnxruntime",
                        f"ours:{name} eager",
                        label,
                        "ms",
                        1e3 * sec["ort"],
                        1e3 * sec["eager"],
                        extra,
                    )
                )
                if s_peer is not None:
                    self._add(
                        Row(
                            "onnx",
                            f"ours:{name} onnxruntime",
                            f"timm-own:{name} onnxruntime",
                            label,
                            "ms",
                            1e3 * sec["ort"],
                            1e3 * sec["peer_ort"],
                            extra,
                        )
                    )

    def inference_pairs(self, suite: str, pairs: list[tuple[str, str]], px: int) -> None:
        for ours, peer in pairs:
            m_ours, m_peer = build(ours), build(peer)
            for batch, unit in ((1, "ms"), (self.infer_batch, "img/s")):
                sec = self._time(
                    {
                        ours: _infer(m_ours, batch, px, self.device),
                        peer: _infer(m_peer, batch, px, self.device),
                    },
                    iters=10 if batch == 1 else 1,
                )
                val = (lambda s: 1e3 * s) if unit == "ms" else (lambda s, b=batch: b / s)
                self.rows.append(
                    Row(
                        suite, ours, peer, f"infer b{batch} {px}px fp32", unit, val(sec[ours]), val(sec[peer])
                    )
                )

    def folded_vs_recomputed(self, names: list[str], px: int) -> None:
        for name in names:
            folded = randomize_zero_init(build(f"ours:{name}"))
            recomputed = set_weight_cache(build(f"ours:{name}"), False)
            recomputed.load_state_dict(folded.state_dict())
            for batch, unit in ((1, "ms"), (self.infer_batch, "img/s")):
                f_run, r_run = (
                    _infer(folded, batch, px, self.device),
                    _infer(recomputed, batch, px, self.device),
                )
                logits = r_run()
                diff = (f_run() - logits).abs().max().item()
                sec = self._time({"folded": f_run, "recomputed": r_run}, iters=10 if batch == 1 else 1)
                val = (lambda s: 1e3 * s) if unit == "ms" else (lambda s, b=batch: b / s)
                self.rows.append(
                    Row(
                        "folded",
                        f"ours:{name} folded",
                        f"ours:{name} recomputed",
                        f"infer b{batch} {px}px",
                        unit,
                        val(sec["folded"]),
                        val(sec["recomputed"]),
                        {"max_abs_diff": diff, "max_abs_logit": logits.abs().max().item()},
                    )
                )

    def scaling(self, name: str, batches: list[int], pxs: list[int]) -> None:
        model = build(f"ours:{name}")
        for batch in batches:
            sec = self._time({"s": _train_step(model, batch, pxs[0], self.device)}, iters=1)["s"]
            self.rows.append(
                Row("scaling", f"ours:{name}", None, f"train b{batch} {pxs[0]}px", "img/s", batch / sec)
            )
        for px in pxs[1:]:
            sec = self._time({"s": _train_step(model, batches[0], px, self.device)}, iters=1)["s"]
            self.rows.append(
                Row("scaling", f"ours:{name}", None, f"train b{batches[0]} {px}px", "img/s", batches[0] / sec)
            )

    def memory(self, pairs: list[tuple[str, str, int]], batches: list[int]) -> None:
        """Peak training memory of each (ours, peer, px), each side in a fresh process."""
        unit = "MiB peak heap" if self.device.type == "cpu" else "MiB max allocated"
        for ours, peer, px in pairs:
            for batch in batches:
                a = train_step_peak(ours, batch, px, self.cfg.device, self.cfg.threads)
                b = train_step_peak(peer, batch, px, self.cfg.device, self.cfg.threads)
                extra = {f"{side}_peak_rss_mib": m["peak_rss_mib"] for side, m in (("ours", a), ("peer", b))
                         if "peak_rss_mib" in m}  # fmt: skip
                self._add(
                    Row(
                        "memory",
                        ours,
                        peer,
                        f"train b{batch} {px}px",
                        unit,
                        a["peak_mib"],
                        b["peak_mib"],
                        extra,
                    )
                )

    def gpu_suite(self, batch: int, px: int, effnet_px: int) -> None:
        """bf16 autocast + channels_last training against BN ResNetV2-50 and EfficientNet-B0 (every side
        in that setting), then batch-1 and batch-``batch`` inference the same way. Meant for a GPU; runs on
        any device (its CPU test uses tiny sizes)."""
        bf16 = torch.bfloat16
        for ours, peer, p in (
            ("ours:nf_resnet50", "timm:resnetv2_50", px),
            ("ours:nf_regnet_b0", "timm:efficientnet_b0", effnet_px),
        ):
            models = {"ours": build(ours), "peer": build(peer)}
            fns = {
                k: _train_step(m, batch, p, self.device, channels_last=True, dtype=bf16)
                for k, m in models.items()
            }
            sec = self._time(fns, iters=_train_iters(batch))
            self._add(
                Row(
                    "gpu",
                    ours,
                    peer,
                    f"train b{batch} {p}px bf16 channels_last",
                    "img/s",
                    batch / sec["ours"],
                    batch / sec["peer"],
                ),
                fns["ours"],
            )
            for b in (1, batch):
                fns = {
                    k: _infer(m, b, p, self.device, dtype=bf16, channels_last=True) for k, m in models.items()
                }
                sec = self._time(fns, iters=10 if b == 1 else 2)
                if b == 1:
                    values = (1e3 * sec["ours"], 1e3 * sec["peer"], "ms")
                else:
                    values = (b / sec["ours"], b / sec["peer"], "img/s")
                self._add(
                    Row("gpu", ours, peer, f"infer b{b} {p}px bf16 channels_last", values[2], *values[:2])
                )


def _max_diff(a, b: torch.Tensor) -> float:
    return (torch.as_tensor(a).float() - b.float().cpu()).abs().max().item()


# the presets' default suites (--suites picks any of SUITES); "gpu" runs by default on a GPU only
QUICK_SUITES = (
    "vs_bn",
    "vs_effnet",
    "vs_timm_own_train",
    "vs_timm_own_infer",
    "folded",
    "scaling",
    "memory",
    "roofline",
)
SUITES = (*QUICK_SUITES, "channels_last", "stability", "compiled", "onnx", "gpu")
GOAL_SUITES = ("vs_effnet", "stability", "channels_last", "compiled", "onnx", "roofline", "memory")
EFFNET_PX = {"efficientnet_b0": 224, "efficientnet_b1": 240, "efficientnet_b2": 260}


COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")  # aot_eager: the autograd tracing without codegen
MIN_PX = 32  # the smallest image the NF models (and their stride-32 peers) take


def check_config(cfg: BenchConfig) -> None:
    """Raise ``ValueError`` naming the setting unless ``cfg`` can run: before any model is built or timed."""
    unknown = sorted(set(cfg.suites or ()) - set(SUITES))
    if unknown:
        raise ValueError(f"unknown benchmark suites (--suites) {unknown}; choose from {list(SUITES)}")
    for name, value, minimum in (
        ("reps", cfg.reps, 1),
        ("threads", cfg.threads, 1),
        ("train_px", cfg.train_px, MIN_PX),
        ("infer_px", cfg.infer_px, MIN_PX),
        ("infer_batch", 1 if cfg.infer_batch is None else cfg.infer_batch, 1),
        ("effnet_px", MIN_PX if cfg.effnet_px is None else cfg.effnet_px, MIN_PX),
        ("gpu_batch", cfg.gpu_batch, 1),
        ("stability_runs", cfg.stability_runs, 1),
        *(("train_batches", b, 1) for b in cfg.train_batches or ()),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            why = f"; the models need at least {MIN_PX}x{MIN_PX} pixels" if name.endswith("px") else ""
            flag = "" if name == "infer_batch" else f" (--{name.replace('_', '-')})"
            raise ValueError(f"{name}{flag} must be an int >= {minimum}, got {value!r}{why}")
    if cfg.compile_backend not in COMPILE_BACKENDS:
        raise ValueError(
            f"compile_backend (--compile-backend) must be one of {list(COMPILE_BACKENDS)}, "
            f"got {cfg.compile_backend!r}"
        )
    check_device(cfg.device)


def check_device(device: str) -> torch.device:
    """``cpu``, or ``cuda``/``cuda:N`` on a machine that has it: the devices the timing synchronises."""
    where = f"device (--device) {device!r}"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"{where} is not a torch device ({e}); use 'cpu' or 'cuda'") from e
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{where}: the benchmark runs on 'cpu' or 'cuda' (or 'cuda:N') only")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (dev.index or 0) >= count:
            raise ValueError(
                f"{where} is not available: this machine has {count} CUDA device(s); use 'cpu'"
                + (f" or 'cuda:0'..'cuda:{count - 1}'" if count else "")
            )
    return dev


def run_benchmark(cfg: BenchConfig) -> dict:
    """Run the suites; returns the JSON-able report (rows, goals, profiles of missed goals)."""
    check_config(cfg)
    bench = Benchmark(cfg)
    g = cfg.goals
    q = cfg.quick and not g
    px, ipx = cfg.train_px, cfg.infer_px

    def batches(default: list[int]) -> list[int]:
        return list(cfg.train_batches) if cfg.train_batches else default

    def effnet_px(name: str) -> int:
        return cfg.effnet_px or EFFNET_PX[name.split(":")[-1].replace("nf_regnet", "efficientnet")]

    def vs_effnet() -> None:
        pair = ("ours:nf_regnet_b0", "timm:efficientnet_b0")
        sizes = batches([16] if q else [4, 8, 16, 32, 64])
        bench.train_pairs("vs_effnet", [pair], sizes, effnet_px, best_layout=True)
        if not (q or g):
            bigger = [(f"ours:nf_regnet_b{i}", f"timm:efficientnet_b{i}") for i in (1, 2)]
            bench.train_pairs("vs_effnet", bigger, batches([16, 32, 64]), effnet_px, best_layout=True)

    both_own = [("ours:nf_resnet50", "timm-own:nf_resnet50"), ("ours:nf_regnet_b0", "timm-own:nf_regnet_b0")]
    regnet_memory = ("ours:nf_regnet_b0", "timm:efficientnet_b0", effnet_px("nf_regnet_b0"))
    suites: dict[str, tuple[str, Callable[[], None]]] = {
        "vs_bn": (
            "NF-ResNet vs BN ResNetV2 (Table 4 analogue)",
            lambda: bench.train_pairs(
                "vs_bn",
                [("ours:nf_resnet50", "timm:resnetv2_50")]
                + ([] if q else [("ours:nf_resnet101", "timm:resnetv2_101")]),
                batches([16, 32] if q else [16, 32, 64]),
                lambda _: px,
            ),
        ),
        "vs_effnet": ("NF-RegNet vs EfficientNet (Table 5 analogue)", vs_effnet),
        "vs_timm_own_train": (
            "ours vs timm's own implementation (training)",
            lambda: bench.train_pairs(
                "vs_timm_own", both_own, batches([16] if q else [16, 32, 64]), lambda _: px
            ),
        ),
        "vs_timm_own_infer": (
            "ours vs timm's own implementation (inference)",
            lambda: bench.inference_pairs("vs_timm_own", both_own, ipx),
        ),
        "folded": (
            "folded vs recomputed Scaled WS",
            lambda: bench.folded_vs_recomputed(["nf_resnet50", "nf_regnet_b0"], ipx),
        ),
        "scaling": (
            "scaling",
            lambda: bench.scaling(
                "nf_regnet_b0",
                batches([8, 16, 32] if q else [8, 16, 32, 64]),
                [px, 2 * px] if q else [px, 160, 192, 224],
            ),
        ),
        "memory": (
            "peak training memory",
            lambda: bench.memory(
                ([] if g else [("ours:nf_resnet50", "timm:resnetv2_50", px)]) + [regnet_memory],
                batches([16, 32]),
            ),
        ),
        "roofline": (
            "roofline and profile of a training step",
            lambda: bench.roofline(
                [("ours:nf_resnet50", 16, px), ("ours:nf_regnet_b0", 16, effnet_px("nf_regnet_b0"))]
            ),
        ),
        "channels_last": (
            "channels_last NF-ResNet-50 vs BN ResNetV2-50 at its best layout",
            lambda: bench.channels_last(
                "ours:nf_resnet50", "timm:resnetv2_50", batches([16] if q else [16, 32, 64]), px
            ),
        ),
        "stability": (
            "batch-1 inference, repeated runs",
            lambda: bench.stability("ours:nf_regnet_b0", "timm-own:nf_regnet_b0", ipx, cfg.stability_runs),
        ),
        "compiled": (
            "torch.compile training and inference",
            lambda: bench.compiled(["nf_resnet50", "nf_regnet_b0"], batches([16])[0], px, ipx),
        ),
        "gpu": (
            "bf16 + channels_last training and inference",
            lambda: bench.gpu_suite(cfg.gpu_batch, px, effnet_px("nf_regnet_b0")),
        ),
    }
    if bench.device.type == "cpu":  # ONNX Runtime's CPU provider against CPU eager only
        suites["onnx"] = (
            "ONNX Runtime batch-1 inference",
            lambda: bench.onnx_runtime(["nf_resnet50", "nf_regnet_b0"], ipx),
        )
    default = GOAL_SUITES if g else QUICK_SUITES if q else [k for k in SUITES if k != "gpu"]
    if bench.device.type == "cuda" and not cfg.suites:
        default = [*default, "gpu"]
    selected = [suites[k] for k in (cfg.suites or default) if k in suites]
    for title, fn in tqdm(selected, desc="benchmark suites", unit="suite"):
        tqdm.write(f"running: {title}")
        fn()
    synchronize(bench.device)
    rows = [{**asdict(r), "ratio": r.ratio} for r in bench.rows]
    return {
        "environment": environment(cfg, bench.peak_gflops, bench.bandwidth_gbs),
        "rows": rows,
        "goals": evaluate_goals(rows),
        "profiles": bench.profiles,
    }


def environment(cfg: BenchConfig, peak: float, bandwidth: float) -> dict:
    env = {
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "device": cfg.device,
        "device_name": torch.cuda.get_device_name()
        if cfg.device.startswith("cuda")
        else platform.processor() or platform.machine(),
        "threads": cfg.threads,
        "cpu_count": os.cpu_count(),
        "quick": cfg.quick and not cfg.goals,
        "goals": cfg.goals,
        "fp32_gemm_peak_gflops": round(peak, 1),
        "memory_bandwidth_gbs": round(bandwidth, 1),
    }
    return env


def to_markdown(report: dict) -> str:
    env = report["environment"]
    preset = ", --goals" if env.get("goals") else ", --quick" if env["quick"] else ""
    bandwidth = (
        f", memory bandwidth {env['memory_bandwidth_gbs']} GB/s" if "memory_bandwidth_gbs" in env else ""
    )
    lines = [
        f"Environment: torch {env['torch']}, timm {env['timm']}, device {env['device']} "
        f"({env['device_name']}), {env['threads']} threads, "
        f"fp32 GEMM peak {env['fp32_gemm_peak_gflops']} GFLOP/s{bandwidth}{preset}",
    ]
    if report.get("goals"):
        lines += ["", "Goals (issue 17):", "", goals_markdown(report["goals"])]
    lines += [
        "",
        "| suite | ours | peer | setting | ours | peer | ratio (>1: ours better) | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        notes = ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in r["extra"].items()
        )
        peer_val = f"{r['peer_value']:.2f}" if r["peer_value"] is not None else "-"
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        lines.append(
            f"| {r['suite']} | {r['model']} | {r['peer'] or '-'} | {r['setting']} | "
            f"{r['value']:.2f} {r['unit']} | {peer_val} | {ratio} | {notes} |"
        )
    for label, ops in (report.get("profiles") or {}).items():
        lines += ["", f"Where the time goes: {label} (torch.profiler, self time per step)", "",
                  "| op | self ms | share | calls |", "|---|---|---|---|"]  # fmt: skip
        lines += [f"| `{o['op']}` | {o['self_ms']:.1f} | {o['share']:.0%} | {o['calls']} |" for o in ops]
    return "\n".join(lines)


def write_report(
    report: dict, json_path: str | None, md_path: str | None, png_path: str | None = None
) -> None:
    """Write the JSON, the markdown and the ratio bar chart (PNG) atomically."""
    for path, text in ((json_path, json.dumps(report, indent=2)), (md_path, to_markdown(report))):
        if path:
            atomic_write_text(path, text + "\n")
    if png_path and any(r["ratio"] is not None for r in report["rows"]):
        ratio_chart(report, png_path)

"""The benchmark suites and their report (JSON + markdown with ours/peer ratios)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count
from tqdm import tqdm

from ..atomic import atomic_write_text
from ..layers import ScaledStdConv2d
from ..models import NormFreeBlock
from .memory import train_step_peak
from .models import build
from .timing import gemm_peak_gflops, synchronize, time_interleaved


@dataclass
class BenchConfig:
    """What to run. ``quick`` keeps a 2-core CPU run under 3 minutes."""

    quick: bool = True
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    threads: int = torch.get_num_threads()
    reps: int = 3
    train_px: int = 128
    infer_px: int = 224
    infer_batch: int | None = None  # throughput batch; default 8 with quick, else 32
    suites: tuple[str, ...] | None = None  # None: all (see run_benchmark)


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
    model: torch.nn.Module, batch: int, px: int, device: torch.device, channels_last: bool = False
):
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
        torch.nn.functional.cross_entropy(model(x), y).backward()
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
    """Random SkipInit gains (0.5-1.5) and classifier (std 0.1) in place.

    A fresh NF model has both at 0: its logits are exactly 0 whatever its Scaled WS convs compute, so
    comparing two fresh models could never show a difference.
    """
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, NormFreeBlock):
            m.skipinit_gain.copy_(torch.rand((), generator=g) + 0.5)
    fc = model.get_classifier()
    fc.weight.copy_(torch.randn(fc.weight.shape, generator=g) * 0.1)
    fc.bias.copy_(torch.randn(fc.bias.shape, generator=g) * 0.1)
    return model


def _conv_backward_flops(
    grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, _out_pad, _groups,
    output_mask, out_shape=None, **kwargs,
) -> int:  # fmt: skip
    """Each gradient a convolution's backward computes (input, weight) costs one forward convolution.

    torch's own formula counts the weight gradient of a grouped convolution as if it were dense
    (``groups`` times too many: 4x the true count for NF-RegNet-B0), so it is replaced here.
    """
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def train_step_flops(model: torch.nn.Module, batch: int, px: int) -> int:
    """FLOPs (2 per multiply-add) of forward + backward, from torch's FLOP counter."""
    model = model.train()
    x = torch.randn(batch, 3, px, px)
    mapping = {torch.ops.aten.convolution_backward: _conv_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


class Benchmark:
    def __init__(self, cfg: BenchConfig) -> None:
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        torch.set_num_threads(cfg.threads)
        self.rows: list[Row] = []
        self.peak_gflops = gemm_peak_gflops(self.device)
        self.infer_batch = cfg.infer_batch or (8 if cfg.quick else 32)

    def _time(self, fns: dict[str, Callable[[], object]], iters: int) -> dict[str, float]:
        return time_interleaved(fns, self.device, reps=self.cfg.reps, iters=iters)

    def train_pairs(
        self,
        suite: str,
        pairs: list[tuple[str, str]],
        batches: list[int],
        px_of,
        channels_last_batches: tuple[int, ...] = (),
    ) -> None:
        """Training throughput of each (ours, peer) pair, interleaved, plus achieved fraction of peak.

        ``channels_last_batches`` repeats those batch sizes with model and input in channels_last.
        """
        runs = [(b, False) for b in batches] + [(b, True) for b in channels_last_batches]
        for ours, peer in pairs:
            px = px_of(ours)
            m_ours, m_peer = build(ours), build(peer)
            for batch, cl in runs:
                sec = self._time(
                    {
                        ours: _train_step(m_ours, batch, px, self.device, channels_last=cl),
                        peer: _train_step(m_peer, batch, px, self.device, channels_last=cl),
                    },
                    iters=1 if batch >= 32 else 2,
                )
                extra = {}
                if self.device.type == "cpu" and batch == batches[0] and not cl:
                    flops = train_step_flops(m_ours, batch, px)
                    extra = {
                        "gflops_per_s": flops / sec[ours] / 1e9,
                        "fraction_of_gemm_peak": flops / sec[ours] / 1e9 / self.peak_gflops,
                    }
                self.rows.append(
                    Row(
                        suite,
                        ours,
                        peer,
                        f"train b{batch} {px}px" + (" channels_last" if cl else ""),
                        "img/s",
                        batch / sec[ours],
                        batch / sec[peer],
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

    def memory(self, pairs: list[tuple[str, str]], batches: list[int], px: int) -> None:
        unit = "MiB peak heap" if self.device.type == "cpu" else "MiB max allocated"
        for ours, peer in pairs:
            for batch in batches:
                a = train_step_peak(ours, batch, px, self.cfg.device, self.cfg.threads)
                b = train_step_peak(peer, batch, px, self.cfg.device, self.cfg.threads)
                extra = {f"{side}_peak_rss_mib": m["peak_rss_mib"] for side, m in (("ours", a), ("peer", b))
                         if "peak_rss_mib" in m}  # fmt: skip
                self.rows.append(
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

    def gpu_extras(self, name: str, px: int) -> None:
        """bf16 autocast and channels_last inference against fp32 (GPU only)."""
        model = build(f"ours:{name}")
        fns = {
            "fp32": _infer(model, 32, px, self.device),
            "bf16": _infer(model, 32, px, self.device, dtype=torch.bfloat16),
            "bf16+channels_last": _infer(
                model, 32, px, self.device, dtype=torch.bfloat16, channels_last=True
            ),
        }
        sec = self._time(fns, iters=5)
        for k in ("bf16", "bf16+channels_last"):
            self.rows.append(
                Row(
                    "gpu",
                    f"ours:{name} {k}",
                    f"ours:{name} fp32",
                    f"infer b32 {px}px",
                    "img/s",
                    32 / sec[k],
                    32 / sec["fp32"],
                )
            )


SUITES = (
    "vs_bn",
    "vs_effnet",
    "vs_timm_own_train",
    "vs_timm_own_infer",
    "folded",
    "scaling",
    "memory",
    "gpu",
)
EFFNET_PX = {"efficientnet_b0": 224, "efficientnet_b1": 240, "efficientnet_b2": 260}


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
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            why = f"; the models need at least {MIN_PX}x{MIN_PX} pixels" if name.endswith("px") else ""
            flag = "" if name == "infer_batch" else f" (--{name.replace('_', '-')})"
            raise ValueError(f"{name}{flag} must be an int >= {minimum}, got {value!r}{why}")
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
    """Run the suites; returns the JSON-able report."""
    check_config(cfg)
    bench = Benchmark(cfg)
    q = cfg.quick
    px = cfg.train_px
    ipx = cfg.infer_px
    suites: dict[str, tuple[str, Callable[[], None]]] = {
        "vs_bn": (
            "NF-ResNet vs BN ResNetV2 (Table 4 analogue)",
            lambda: bench.train_pairs(
                "vs_bn",
                [("ours:nf_resnet50", "timm:resnetv2_50")]
                + ([] if q else [("ours:nf_resnet101", "timm:resnetv2_101")]),
                [16, 32] if q else [16, 32, 64],
                lambda _: px,
                channels_last_batches=(16,) if q else (16, 32),
            ),
        ),
        "vs_effnet": (
            "NF-RegNet vs EfficientNet (Table 5 analogue)",
            lambda: bench.train_pairs(
                "vs_effnet",
                [(f"ours:nf_regnet_b{i}", f"timm:efficientnet_b{i}") for i in ([0] if q else [0, 1, 2])],
                [16] if q else [16, 32, 64],
                lambda s: EFFNET_PX[s.replace("ours:nf_regnet", "efficientnet")],
            ),
        ),
        "vs_timm_own_train": (
            "ours vs timm's own implementation (training)",
            lambda: bench.train_pairs(
                "vs_timm_own",
                [
                    ("ours:nf_resnet50", "timm-own:nf_resnet50"),
                    ("ours:nf_regnet_b0", "timm-own:nf_regnet_b0"),
                ],
                [16] if q else [16, 32, 64],
                lambda _: px,
            ),
        ),
        "vs_timm_own_infer": (
            "ours vs timm's own implementation (inference)",
            lambda: bench.inference_pairs(
                "vs_timm_own",
                [
                    ("ours:nf_resnet50", "timm-own:nf_resnet50"),
                    ("ours:nf_regnet_b0", "timm-own:nf_regnet_b0"),
                ],
                ipx,
            ),
        ),
        "folded": (
            "folded vs recomputed Scaled WS",
            lambda: bench.folded_vs_recomputed(["nf_resnet50", "nf_regnet_b0"], ipx),
        ),
        "scaling": (
            "scaling",
            lambda: bench.scaling(
                "nf_regnet_b0",
                [8, 16, 32] if q else [8, 16, 32, 64],
                [px, 2 * px] if q else [px, 160, 192, 224],
            ),
        ),
        "memory": (
            "peak training memory",
            lambda: bench.memory([("ours:nf_resnet50", "timm:resnetv2_50")], [16, 32], px),
        ),
    }
    if bench.device.type == "cuda":
        suites["gpu"] = ("GPU bf16 / channels_last", lambda: bench.gpu_extras("nf_resnet50", ipx))
    selected = [suites[k] for k in (cfg.suites or suites) if k in suites]  # "gpu" only on a GPU
    for title, fn in tqdm(selected, desc="benchmark suites", unit="suite"):
        tqdm.write(f"running: {title}")
        fn()
    synchronize(bench.device)
    return {
        "environment": environment(cfg, bench.peak_gflops),
        "rows": [{**asdict(r), "ratio": r.ratio} for r in bench.rows],
    }


def environment(cfg: BenchConfig, peak: float) -> dict:
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
        "quick": cfg.quick,
        "fp32_gemm_peak_gflops": round(peak, 1),
    }
    return env


def to_markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"Environment: torch {env['torch']}, timm {env['timm']}, device {env['device']} "
        f"({env['device_name']}), {env['threads']} threads, "
        f"fp32 GEMM peak {env['fp32_gemm_peak_gflops']} GFLOP/s" + (", --quick" if env["quick"] else ""),
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
    return "\n".join(lines)


def write_report(report: dict, json_path: str | None, md_path: str | None) -> None:
    """Write the JSON and markdown atomically."""
    for path, text in ((json_path, json.dumps(report, indent=2)), (md_path, to_markdown(report))):
        if path:
            atomic_write_text(path, text + "\n")

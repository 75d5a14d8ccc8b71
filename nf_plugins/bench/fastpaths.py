"""The fast paths the benchmark times (channels_last, ``torch.compile``, ONNX Runtime), each checked
against the plain eager path on the same weights before it is timed: a fast path that computes
something else has no speed worth reporting."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


def _grads_of(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}


def compare_paths(
    plain: nn.Module,
    fast: nn.Module,
    x: torch.Tensor,
    fast_x: torch.Tensor | None = None,
    fast_call: Callable[[torch.Tensor], torch.Tensor] | None = None,
    grads: bool = True,
) -> dict[str, float]:
    """Largest differences between the plain path and the fast path, in outputs and (``grads``) in the
    gradient of every parameter, under a random cotangent so that every output counts.

    ``fast`` holds the fast path's parameters (the same module as ``plain`` for ``torch.compile``, a
    converted copy for channels_last); ``fast_call`` runs it (default: ``fast`` itself) on ``fast_x``
    (default ``x``). Returns max abs differences, the largest plain output and gradient for scale, and
    ``fast_first_call_s`` (for a compiled path: compilation plus one step).
    """
    fast_call = fast if fast_call is None else fast_call  # not `or`: a compiled module has no truth value
    fast_x = x if fast_x is None else fast_x

    def run(module: nn.Module, call, inp: torch.Tensor):
        module.zero_grad(set_to_none=True)
        torch.manual_seed(0)  # the same dropout masks on both paths
        start = time.perf_counter()
        if not grads:
            with torch.no_grad():
                out = call(inp).float()
            return out, {}, time.perf_counter() - start
        out = call(inp)
        cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.device)
        (out.float() * cotangent).sum().backward()
        got = _grads_of(module)
        module.zero_grad(set_to_none=True)
        return out.detach().float(), got, time.perf_counter() - start

    out_p, g_p, _ = run(plain, plain, x)
    out_f, g_f, first_s = run(fast, fast_call, fast_x)
    if g_p.keys() != g_f.keys():
        raise RuntimeError(
            f"the fast path's gradients cover other parameters: {sorted(g_p.keys() ^ g_f.keys())}"
        )
    result = {
        "max_abs_diff": (out_f - out_p).abs().max().item(),
        "max_abs_logit": out_p.abs().max().item(),
        "fast_first_call_s": first_s,
    }
    if grads:
        result["max_abs_grad_diff"] = max((g_f[k] - g_p[k]).abs().max().item() for k in g_p)
        result["max_abs_grad"] = max(g.abs().max().item() for g in g_p.values())
    return result


def compiled_counters() -> dict[str, int]:
    """torch._dynamo's running totals: frames compiled (every compile and recompile), graph breaks, and
    inductor's on-disk FX graph cache hits (a compile time measured on a warm cache is not a cold one)."""
    from torch._dynamo.utils import counters

    return {
        "frames_compiled": int(counters["frames"]["ok"]),
        "graph_breaks": int(sum(counters["graph_break"].values())),
        "fxgraph_cache_hits": int(counters["inductor"]["fxgraph_cache_hit"]),
    }


def onnx_session(path: str | Path, threads: int):
    """An ONNX Runtime CPU session with all graph optimizations, on ``threads`` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def export_standard_onnx(model: nn.Module, path: str | Path, px: int, opset: int = 17) -> Path:
    """Export a model the standard way (``torch.onnx.export``, no folding), with the same dynamic axes
    as ``nf_plugins.deploy.export_onnx`` gives ours, so both graphs are exported alike."""
    x = torch.randn(1, 3, px, px)
    axes = {"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        # timm's ScaledStdConv2d standardizes with F.batch_norm(training=True) over each filter: exported as
        # a training-mode BatchNormalization, which is what it computes (outputs are checked against eager)
        warnings.filterwarnings(
            "ignore", message="ONNX export mode is set to TrainingMode.EVAL", category=UserWarning
        )
        torch.onnx.export(
            model.eval(), (x,), str(path), dynamo=False, opset_version=opset,
            input_names=["input"], output_names=["logits"], dynamic_axes=axes,
        )  # fmt: skip
    return Path(path)


def onnx_runner(session, x: torch.Tensor) -> Callable[[], object]:
    """A no-argument call of ``session`` on ``x`` (converted once, outside the timing)."""
    feed = {session.get_inputs()[0].name: x.detach().cpu().numpy()}
    return lambda: session.run(None, feed)[0]

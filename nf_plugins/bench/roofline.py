"""Roofline inputs: this machine's memory bandwidth and a training step's bytes moved next to its FLOPs.

The roofline bound of a step is ``min(peak FLOP rate, bandwidth x intensity)`` with intensity = FLOPs /
bytes; a step at that bound cannot go faster without moving fewer bytes or doing fewer FLOPs.

What is counted as bytes moved: for every convolution and matrix multiply of the forward and the
backward pass (``aten.convolution``, ``aten.convolution_backward``, ``aten.mm/addmm/bmm``), each tensor
it reads (input, weight, bias, grad_output) and each tensor it writes (output, grad_input, grad_weight,
grad_bias), once: perfect reuse inside an op, none across ops. Activations, adds, pooling and the
optimizer are not counted (neither are their FLOPs), so this is the traffic of the work the FLOP count
measures.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from .timing import synchronize

aten = torch.ops.aten
COUNTED_OPS = {
    aten.convolution.default,
    aten.convolution_backward.default,
    aten.mm.default,
    aten.addmm.default,
    aten.bmm.default,
}


def conv_backward_flops(
    grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, _out_pad, _groups,
    output_mask, out_shape=None, **kwargs,
) -> int:  # fmt: skip
    """Each gradient a convolution's backward computes (input, weight) costs one forward convolution.

    torch's own formula counts the weight gradient of a grouped convolution as if it were dense
    (``groups`` times too many: 4x the true count for NF-RegNet-B0), so it is replaced here.
    """
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def _tensor_bytes(tree) -> int:
    leaves, _ = tree_flatten(tree)
    return sum(t.numel() * t.element_size() for t in leaves if isinstance(t, torch.Tensor))


class ByteCounterMode(TorchDispatchMode):
    """Counts the bytes read and written by the convolutions and matmuls run inside the ``with`` block."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in COUNTED_OPS:
            self.bytes += _tensor_bytes((args, kwargs)) + _tensor_bytes(out)
        return out


def train_step_cost(model: torch.nn.Module, batch: int, px: int) -> dict[str, int]:
    """FLOPs and bytes moved (see the module docstring) of one forward + backward on the CPU.

    FLOPs as ``runner.train_step_flops`` counts them (grouped-conv weight gradients counted right).
    """
    model = model.train()
    x = torch.randn(batch, 3, px, px)
    mapping = {aten.convolution_backward: conv_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as flops, ByteCounterMode() as moved:
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return {"flops": flops.get_total_flops(), "bytes": moved.bytes}


def stream_bandwidth_gbs(device: torch.device, mib: int = 256, reps: int = 5) -> float:
    """This machine's memory bandwidth in GB/s: the best of ``reps`` copies of a ``mib`` MiB buffer.

    A copy reads and writes the buffer, so it moves 2 x its size (STREAM's "Copy" counts the same).
    The buffer is far larger than any cache, so this is DRAM (or HBM) bandwidth.
    """
    if mib < 1 or reps < 1:
        raise ValueError(f"mib and reps must be >= 1, got {mib}, {reps}")
    import time

    src = torch.ones(mib * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch: page faults are not bandwidth
    synchronize(device)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        dst.copy_(src)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * src.element_size() / best / 1e9


def roofline_fraction(
    flops: int, bytes_moved: int, seconds: float, peak_gflops: float, bw_gbs: float
) -> dict:
    """Achieved FLOP rate over the roofline bound ``min(peak, bandwidth x intensity)``, with its inputs."""
    if min(flops, bytes_moved) <= 0 or seconds <= 0:
        raise ValueError(f"need positive flops, bytes and seconds, got {flops}, {bytes_moved}, {seconds}")
    intensity = flops / bytes_moved
    bound = min(peak_gflops, bw_gbs * intensity)
    achieved = flops / seconds / 1e9
    return {
        "intensity_flop_per_byte": intensity,
        "roofline_bound_gflops": bound,
        "memory_bound": bw_gbs * intensity < peak_gflops,
        "roofline_fraction": achieved / bound,
    }

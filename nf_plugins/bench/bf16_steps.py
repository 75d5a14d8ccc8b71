"""One bf16-autocast SGD step of every paper model (``tools/gpu_bench.sh``): each must give a finite loss
and finite gradients for every parameter. Exit status 1 names the models that did not.

The models get live weights first (random SkipInit gains and classifier, ``randomize_zero_init``): at
the init both are 0, so every backbone gradient would be exactly 0 and trivially finite.

    python -m nf_plugins.bench.bf16_steps --device cuda --json out/bf16_steps.json
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from ..atomic import atomic_write_json
from ..models import PAPER_MODELS, create_model
from .runner import check_device, randomize_zero_init


def bf16_step(name: str, device: torch.device, batch: int, px: int | None) -> dict:
    """Build ``name`` on ``device``, take one bf16-autocast SGD step; loss, gradient scale, seconds."""
    with torch.device(device):  # built in place: initialising the largest models on a CPU takes long
        model = create_model(name, num_classes=1000)
    model = randomize_zero_init(model).train()  # outside: its generator is a CPU one
    size = px or model.pretrained_cfg["input_size"][-1]
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    finite = all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    nonzero = sum(g is not None and bool(g.any()) for g in grads) / len(grads)
    opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {
        "model": name,
        "px": size,
        "batch": batch,
        "logits_dtype": str(logits.dtype),
        "loss": loss.item(),
        "grads_finite": finite,
        "fraction_of_params_with_gradient": nonzero,
        "max_abs_grad": max(g.abs().max().item() for g in grads if g is not None),
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--px", type=int, default=None, help="default: each model's own test resolution")
    p.add_argument("--json", default=None, help="write the per-model results here")
    p.add_argument("--models", nargs="+", default=list(PAPER_MODELS), help="default: every paper model")
    args = p.parse_args(argv)
    try:
        device = check_device(args.device)
    except ValueError as e:
        p.error(str(e))
    if args.batch < 1 or (args.px is not None and args.px < 32):
        p.error(f"--batch must be >= 1 and --px >= 32, got {args.batch}, {args.px}")
    unknown = sorted(set(args.models) - set(PAPER_MODELS))
    if unknown:
        p.error(f"--models {unknown} are not paper models; choose from {list(PAPER_MODELS)}")
    results = []
    for name in args.models:
        r = bf16_step(name, device, args.batch, args.px)
        print(
            f"{name}: {r['px']}px loss {r['loss']:.4f} grads finite {r['grads_finite']} {r['seconds']:.2f} s"
        )
        results.append(r)
    if args.json:
        atomic_write_json(args.json, results)
    bad = [r["model"] for r in results if not (math.isfinite(r["loss"]) and r["grads_finite"])]
    if bad:
        print(f"FAILED: non-finite loss or gradients under bf16 autocast: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Parameter and multiply-add counts, and the model table against the paper's Table 3."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .nf_regnet import VARIANTS

# Paper Table 3: params (M) and "FLOPs" (multiply-adds, B) at the test resolution of appendix D, as
# written in the variant table.
PAPER_TABLE3: dict[str, tuple[float, float]] = {name: (v.params_m, v.macs_b) for name, v in VARIANTS.items()}


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: torch.nn.Module, input_size: tuple[int, int, int]) -> int:
    """Multiply-adds of one eval forward pass at ``input_size`` (C, H, W), by torch's FLOP counter."""
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_size))
    model.train(was_training)
    return counter.get_total_flops() // 2


@dataclass
class ModelRow:
    name: str
    test_px: int
    params_m: float
    macs_b: float
    paper_params_m: float | None
    paper_macs_b: float | None


def model_row(name: str) -> ModelRow:
    import timm

    model = timm.create_model(name)
    size = model.pretrained_cfg.get("test_input_size") or model.pretrained_cfg["input_size"]
    paper = PAPER_TABLE3.get(name, (None, None))
    return ModelRow(name, size[-1], count_params(model) / 1e6, count_macs(model, size) / 1e9, *paper)


def format_table(rows: list[ModelRow]) -> str:
    """A markdown table of ours against the paper."""

    def rel(ours: float, paper: float | None) -> str:
        return f"{100 * (ours / paper - 1):+.1f}%" if paper else "-"

    lines = [
        "| model | test px | params (M) | paper | diff | MACs (B) | paper | diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.test_px} | {r.params_m:.2f} | {r.paper_params_m or '-'} | "
            f"{rel(r.params_m, r.paper_params_m)} | {r.macs_b:.3f} | {r.paper_macs_b or '-'} | "
            f"{rel(r.macs_b, r.paper_macs_b)} |"
        )
    return "\n".join(lines)

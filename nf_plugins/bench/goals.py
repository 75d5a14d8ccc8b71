"""The speed goals of issue 17, matched against the benchmark's rows: which are met, and by how much
each missed one falls short. The README's performance table is this module's markdown."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    """A threshold on one statistic of every row that matches ``suite`` and the three regexes.

    ``stat`` is ``ratio`` (ours over peer, > 1: ours better) or a key of the row's ``extra`` (e.g.
    ``ratio_min`` over repeated runs). ``max_abs_diff``: the row's outputs must also agree with the
    plain path's (``extra["max_abs_diff"]``, and ``extra["peer_max_abs_diff"]`` where present) within it.
    ``threshold`` None: reported, no target.
    """

    key: str
    text: str
    suite: str
    model: str
    peer: str
    setting: str
    threshold: float | None
    stat: str = "ratio"
    max_abs_diff: float | None = None

    def matches(self, row: dict) -> bool:
        return (
            row["suite"] == self.suite
            and re.fullmatch(self.model, row["model"] or "") is not None
            and re.fullmatch(self.peer, row["peer"] or "") is not None
            and re.fullmatch(self.setting, row["setting"]) is not None
        )

    def value(self, row: dict) -> float | None:
        return row["ratio"] if self.stat == "ratio" else row["extra"].get(self.stat)


GOALS: tuple[Goal, ...] = (
    Goal(
        "effnet_small_batch",
        "NF-RegNet-B0 vs EfficientNet-B0 training, each at its faster layout, every batch 4-64 at 224 px",
        "vs_effnet",
        r"ours:nf_regnet_b0",
        r"timm:efficientnet_b0",
        r"train b(4|8|16|32|64) 224px",
        2.0,
    ),
    Goal(
        "b1_stable",
        "NF-RegNet-B0 batch-1 inference vs timm's own, each at its faster layout, worst of 5 runs",
        "stability",
        r"ours:nf_regnet_b0",
        r"timm-own:nf_regnet_b0",
        r"infer b1 \d+px fp32",
        1.5,
        stat="ratio_min",
    ),
    Goal(
        "channels_last",
        "channels_last NF-ResNet-50 vs BN ResNetV2-50 at its best layout, batch 16/32/64",
        "channels_last",
        r"ours:nf_resnet50 channels_last",
        r"timm:resnetv2_50 best",
        r"train b(16|32|64) \d+px",
        1.0,
        max_abs_diff=1e-3,
    ),
    Goal(
        "compile_train",
        "torch.compile training vs our eager",
        "compiled",
        r"ours:nf_(resnet50|regnet_b0) compiled",
        r"ours:nf_\w+ eager",
        r"train b\d+ \d+px",
        1.15,
        max_abs_diff=1e-3,
    ),
    Goal(
        "compile_vs_timm",
        "our compiled training vs timm's own compiled the same way",
        "compiled",
        r"ours:nf_(resnet50|regnet_b0) compiled",
        r"timm-own:nf_\w+ compiled",
        r"train b\d+ \d+px",
        1.0,
        max_abs_diff=1e-3,
    ),
    Goal(
        "compile_infer",
        "torch.compile batch-1 inference vs our eager",
        "compiled",
        r"ours:nf_(resnet50|regnet_b0) compiled",
        r"ours:nf_\w+ eager",
        r"infer b1 \d+px",
        1.3,
        max_abs_diff=1e-3,
    ),
    Goal(
        "onnx_vs_eager",
        "ONNX Runtime (folded export) batch 1 vs our PyTorch eager, outputs within 1e-4",
        "onnx",
        r"ours:nf_(resnet50|regnet_b0) onnxruntime",
        r"ours:nf_\w+ eager",
        r"infer b1 \d+px",
        1.3,
        max_abs_diff=1e-4,
    ),
    Goal(
        "onnx_vs_timm",
        "ONNX Runtime: our folded export vs timm's own exported the standard way, batch 1",
        "onnx",
        r"ours:nf_(resnet50|regnet_b0) onnxruntime",
        r"timm-own:nf_\w+ onnxruntime",
        r"infer b1 \d+px",
        1.3,
        max_abs_diff=1e-4,
    ),
    Goal(
        "memory",
        "peak training memory, NF-RegNet-B0 vs EfficientNet-B0 (ratio: peer / ours)",
        "memory",
        r"ours:nf_regnet_b0",
        r"timm:efficientnet_b0",
        r"train b(16|32) 224px",
        None,
    ),
    Goal(
        "roofline",
        "fraction of the roofline bound min(GEMM peak, bandwidth x intensity), training step",
        "roofline",
        r"ours:nf_(resnet50|regnet_b0)",
        r"",
        r"train b\d+ \d+px",
        None,
        stat="roofline_fraction",
    ),
)


def goals_for_row(row: dict) -> list[Goal]:
    return [g for g in GOALS if g.matches(row)]


def evaluate(rows: list[dict]) -> list[dict]:
    """One entry per (goal, matching row), in goal order; a goal no row matches is listed as not run."""
    out = []
    for goal in GOALS:
        matched = [r for r in rows if goal.matches(r)]
        if not matched:
            out.append(
                {"goal": goal.key, "text": goal.text, "status": "not run", "threshold": goal.threshold}
            )
        for r in matched:
            value = goal.value(r)
            diffs = [r["extra"][k] for k in ("max_abs_diff", "peer_max_abs_diff") if k in r["extra"]]
            agrees = goal.max_abs_diff is None or (bool(diffs) and max(diffs) <= goal.max_abs_diff)
            if goal.threshold is None:
                status = "reported"
            elif value is None:
                status = "no value"
            else:
                status = "met" if value >= goal.threshold and agrees else "missed"
            entry = {
                "goal": goal.key, "text": goal.text, "model": r["model"], "peer": r["peer"],
                "setting": r["setting"], "stat": goal.stat, "value": value, "threshold": goal.threshold,
                "status": status,
            }  # fmt: skip
            if goal.max_abs_diff is not None:
                entry["outputs_agree"] = agrees
            if status == "missed" and value is not None and value < goal.threshold:
                entry["gap"] = goal.threshold - value
            out.append(entry)
    return out


def to_markdown(results: list[dict]) -> str:
    lines = [
        "| goal | ours | peer | setting | value | target | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in results:
        if e["status"] == "not run":
            lines.append(f"| {e['text']} | - | - | - | - | {_target(e)} | not run |")
            continue
        value = (
            "-"
            if e["value"] is None
            else f"{e['value']:.2f}" + ("x" if e["stat"].startswith("ratio") else "")
        )
        status = e["status"]
        if "gap" in e:
            status += f", short by {e['gap']:.2f}x ({e['gap'] / e['threshold']:.0%})"
        if e.get("outputs_agree") is False:
            status += ", outputs differ by more than the tolerance"
        where = f"{e['model']} | {e['peer'] or '-'} | {e['setting']}"
        lines.append(f"| {e['text']} | {where} | {value} | {_target(e)} | {status} |")
    return "\n".join(lines)


def _target(e: dict) -> str:
    return "-" if e["threshold"] is None else f">= {e['threshold']:.2f}x"

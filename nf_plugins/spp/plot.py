"""Draw Signal Propagation Plots: the paper's three panels, one line per model, black dots at stage
ends; and write the statistics as JSON. Outputs are written atomically (temp file + os.replace)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..atomic import atomic_output
from .stats import BlockStats, SppResult

PANELS = (
    ("avg_channel_squared_mean", "Average Channel Squared Mean"),
    ("avg_channel_variance", "Average Channel Variance"),
    ("residual_avg_channel_variance", "Residual Average Channel Variance"),
)


def plot_spp(
    results: Sequence[SppResult],
    out: str | os.PathLike,
    log_scale: bool = False,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Save the SPP of ``results`` to ``out`` (PNG/PDF/SVG by extension)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if not results:
        raise ValueError("nothing to plot: results is empty")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for r in results:
        x = [b.index for b in r.blocks]
        ends = [i for i, b in enumerate(r.blocks) if b.stage_end]
        for ax, (key, _) in zip(axes, PANELS, strict=True):
            y = r.column(key)
            ax.plot(x, y, label=r.model, linewidth=1.4)
            ax.plot([x[i] for i in ends], [y[i] for i in ends], "o", color="black", markersize=4, zorder=3)
    for ax, (_, label) in zip(axes, PANELS, strict=True):
        ax.set_xlabel("Residual block")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if log_scale:
            ax.set_yscale("log", nonpositive="mask")  # exact zeros (e.g. FixUp's branch) are hidden
        else:
            ax.set_ylim(bottom=0)
    # One legend below the panels, so that no curve is hidden behind it (depth-600 curves fill the axes).
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(Line2D([], [], marker="o", color="black", linestyle="", markersize=4))
    labels.append("end of a stage")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=10, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fmt = Path(out).suffix.lstrip(".") or "png"
    try:
        with atomic_output(out, make_dirs=False) as tmp:
            fig.savefig(tmp, dpi=dpi, format=fmt)
        return Path(out)
    finally:
        plt.close(fig)


def write_json(results: Sequence[SppResult], out: str | os.PathLike) -> Path:
    """Save the statistics: a list with one ``{"model", "blocks": [...]}`` object per model."""

    text = json.dumps([r.to_dict() for r in results], indent=1)
    with atomic_output(out, make_dirs=False) as tmp:
        tmp.write_text(text)
    return Path(out)


def read_json(path: str | os.PathLike) -> list[SppResult]:
    """Load statistics written by ``write_json`` (e.g. to redraw a plot without re-running the nets)."""
    keys = {f.name for f in dataclasses.fields(BlockStats)}
    with open(path) as f:
        data = json.load(f)
    results = []
    for i, entry in enumerate(data if isinstance(data, list) else [None]):
        if not isinstance(entry, dict) or not isinstance(entry.get("blocks"), list) or "model" not in entry:
            raise ValueError(f"{path}: entry {i} is not a {{'model': str, 'blocks': [...]}} object")
        for j, blk in enumerate(entry["blocks"]):
            if not isinstance(blk, dict) or set(blk) != keys:
                raise ValueError(
                    f"{path}: {entry['model']} block {j} must have exactly the keys {sorted(keys)}"
                )
        results.append(SppResult(entry["model"], [BlockStats(**b) for b in entry["blocks"]]))
    return results

"""The benchmark's ratios as a horizontal bar chart (PNG beside the markdown), with parity and goals drawn."""

from __future__ import annotations

import os

from ..atomic import atomic_output
from .goals import goals_for_row


def ratio_chart(report: dict, path: str | os.PathLike | None = None):
    """One bar per row that has a ratio (> 1: ours better), a dashed line at parity (1.0) and, on each
    bar that has a goal, a black tick at the goal's threshold; saved to ``path`` (PNG) when given.

    Returns the matplotlib ``Figure`` (its axes' bars are ``fig.axes[0].patches``, in row order).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display needed; keeps an interactive backend if one is set
    from matplotlib.figure import Figure

    rows = [r for r in report["rows"] if r["ratio"] is not None]
    if not rows:
        raise ValueError("the report has no row with a ratio to chart")
    labels = [f"{r['suite']}: {r['model']} vs {r['peer']}, {r['setting']}" for r in rows]
    fig = Figure(figsize=(11, 1.2 + 0.3 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    colours = []
    for i, r in enumerate(rows):
        thresholds = [g.threshold for g in goals_for_row(r) if g.threshold is not None and g.stat == "ratio"]
        colours.append("tab:red" if thresholds and r["ratio"] < max(thresholds) else "tab:blue")
        for t in thresholds:
            ax.plot([t, t], [i - 0.45, i + 0.45], color="black", linewidth=2.5)
    ax.barh(range(len(rows)), [r["ratio"] for r in rows], color=colours, height=0.7)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()  # first row on top, as in the markdown
    ax.set_xlabel("ratio, > 1: ours better (dashed: parity; black tick: goal; red: goal missed)")
    env = report["environment"]
    ax.set_title(f"nf_plugins benchmark, {env['device']} ({env['device_name']}), {env['threads']} threads")
    if path is not None:
        with atomic_output(path, make_dirs=False) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    return fig

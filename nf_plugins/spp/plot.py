"""Draw Signal Propagation Plots: the paper's three panels, one line per model, black dots at stage
ends; and write the statistics as JSON. Outputs are written atomically (temp file + os.replace)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .stats import SppResult

PANELS = (
    ("avg_channel_squared_mean", "Average Channel Squared Mean"),
    ("avg_channel_variance", "Average Channel Variance"),
    ("residual_avg_channel_variance", "Residual Average Channel Variance"),
)


def _atomic_write(path: str | os.PathLike, write) -> Path:
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise FileNotFoundError(f"output directory {path.parent} does not exist; create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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

    if not results:
        raise ValueError("nothing to plot: results is empty")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
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
    axes[0].legend(loc="best", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fmt = Path(out).suffix.lstrip(".") or "png"
    try:
        return _atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt))
    finally:
        plt.close(fig)


def write_json(results: Sequence[SppResult], out: str | os.PathLike) -> Path:
    """Save the statistics: a list with one ``{"model", "blocks": [...]}`` object per model."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump([r.to_dict() for r in results], f, indent=1)

    return _atomic_write(out, write)

"""Result pictures for the segmentation and depth demos: what the model predicts, beside the truth.

* ``segmentation_figure``: per image, image | ground-truth overlay | prediction overlay (the dataset's
  palette blended over the image; VOC's void label 255 painted solid in VOC's own void colour), with the
  image's mIoU (mmseg's ``IoUMetric`` arithmetic) in the row title.
* ``depth_figure``: per image, image | ground truth | prediction in one colour scale (same vmin/vmax for
  both, one colour bar in metres) | absolute error (its own colour bar), with the image's rel and rms.

Panels are drawn pixel for pixel (nearest neighbour, integer upscale, axes placed on whole pixels), so a
PNG pixel inside a panel is exactly the colour of the data under it. ``save_*_examples`` run a trained
mmengine ``Runner``'s model on the first test images and write the PNG atomically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mmcv
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from mmseg.evaluation.metrics import IoUMetric

from nf_plugins.atomic import atomic_output
from nf_plugins.data.labels import IGNORE_INDEX
from nf_plugins.downstream.evaluation.depth_metric import pooled_metrics, pooled_sums

VOID_COLOUR = (224, 224, 192)  # the colour VOC's own palette PNGs give label 255 (void / object outline)
DEPTH_CMAP, ERROR_CMAP, INVALID_GREY = "viridis", "inferno", "0.8"
DPI = 128  # a power of two: figure sizes in inches are then exact, and the PNG is exactly the pixel layout
GAP, BAND, CBAR, CBAR_LABELS = 8, 22, 10, 60  # pixels: between panels, title bands, colour bar, its labels
FONT = 7  # points (12.4 px at DPI 128)


@dataclass
class Example:
    """One image as the model saw it (H, W, 3 RGB uint8), its ground truth and prediction (H, W)."""

    name: str
    image: np.ndarray
    gt: np.ndarray
    pred: np.ndarray

    def __post_init__(self) -> None:
        shapes = {"image": self.image.shape[:2], "gt": self.gt.shape, "pred": self.pred.shape}
        if self.image.ndim != 3 or len(set(shapes.values())) != 1:
            raise ValueError(f"{self.name}: image (H, W, 3), gt and pred (H, W) must match; got {shapes}")


class _Canvas:
    """A figure laid out in whole pixels from the top-left corner, as a PNG is read."""

    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")

    def axes(self, x: int, y: int, w: int, h: int):
        return self.fig.add_axes((x / self.w, 1 - (y + h) / self.h, w / self.w, h / self.h))

    def panel(self, x: int, y: int, data: np.ndarray, scale: int, **imshow):
        """``data`` shown at ``scale`` screen pixels per data pixel, no smoothing, no frame."""
        ax = self.axes(x, y, data.shape[1] * scale, data.shape[0] * scale)
        img = ax.imshow(data, interpolation="nearest", resample=False, **imshow)
        ax.set_axis_off()
        return ax, img

    def text(self, x: int, y: int, s: str, **kw) -> None:
        self.fig.text(x / self.w, 1 - y / self.h, s, fontsize=FONT, va="center", **kw)


def overlay(image: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float = 0.7) -> np.ndarray:
    """``image`` blended with ``palette[mask]`` (weight ``alpha``); void pixels (255) in ``VOID_COLOUR``.

    Written here rather than taken from mmseg's ``SegLocalVisualizer``: its (private) ``_draw_sem_seg``
    paints 255 like background, and the blend itself is one line.
    """
    palette = np.asarray(palette, dtype=np.float64)
    labels = np.unique(mask)
    bad = labels[(labels >= len(palette)) & (labels != IGNORE_INDEX)]
    if bad.size:
        raise ValueError(f"labels {bad.tolist()} have no palette colour ({len(palette)} classes, void 255)")
    void = mask == IGNORE_INDEX
    colour = palette[np.where(void, 0, mask)]
    out = (1 - alpha) * image.astype(np.float64) + alpha * colour
    out[void] = VOID_COLOUR
    return np.rint(out).astype(np.uint8)


def image_miou(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> float:
    """mIoU (%) of one image with mmseg's ``IoUMetric`` arithmetic: classes absent from both are skipped."""
    areas = IoUMetric.intersect_and_union(
        torch.from_numpy(np.asarray(pred, np.int64)), torch.from_numpy(np.asarray(gt, np.int64)),
        num_classes, IGNORE_INDEX,
    )  # fmt: skip
    iou = IoUMetric.total_area_to_metrics(*areas, metrics=["mIoU"])["IoU"]
    return float(np.nanmean(iou) * 100) if not np.isnan(iou).all() else math.nan


def segmentation_figure(
    examples: Sequence[Example], palette: Sequence[Sequence[int]], classes: Sequence[str], scale: int = 3
) -> Figure:
    """Rows of image | ground truth | prediction, each row titled with its mIoU; a class legend below."""
    palette = np.asarray(palette, dtype=np.uint8)
    cell_w = max(e.image.shape[1] for e in examples) * scale
    cell_h = max(e.image.shape[0] for e in examples) * scale
    width = 3 * cell_w + 4 * GAP
    height = BAND + len(examples) * (BAND + cell_h) + 2 * BAND
    c = _Canvas(width, height)
    for col, name in enumerate(("image", "ground truth (void 255 in cream)", "prediction")):
        c.text(GAP + col * (cell_w + GAP), BAND // 2, name, weight="bold")
    present: set[int] = set()
    for row, e in enumerate(examples):
        y = BAND + row * (BAND + cell_h)
        miou = image_miou(e.pred, e.gt, len(palette))
        c.text(GAP, y + BAND // 2, f"{e.name}:  mIoU {miou:.1f}")
        panels = (e.image, overlay(e.image, e.gt, palette), overlay(e.image, e.pred, palette))
        for col, data in enumerate(panels):
            c.panel(GAP + col * (cell_w + GAP), y + BAND, data, scale)
        present |= set(np.unique(e.gt).tolist()) | set(np.unique(e.pred).tolist())
    handles = [Patch(color=palette[k] / 255, label=classes[k]) for k in sorted(present - {IGNORE_INDEX})]
    handles.append(Patch(color=np.array(VOID_COLOUR) / 255, label="void (255)"))
    c.fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=FONT, frameon=False)
    return c.fig


def image_depth_errors(gt: np.ndarray, pred: np.ndarray, min_depth: float, max_depth: float) -> dict:
    """One image's abs_rel and rmse over its valid pixels (``min_depth < gt < max_depth``), as the metric."""
    valid = (gt > min_depth) & (gt < max_depth)
    if not valid.any():
        raise ValueError(f"no ground-truth depth in ({min_depth}, {max_depth}) m in this image")
    m = pooled_metrics(pooled_sums(torch.from_numpy(gt[valid]), torch.from_numpy(pred[valid])))
    return {"abs_rel": m["abs_rel"], "rmse": m["rmse"]}


def depth_figure(
    examples: Sequence[Example], min_depth: float = 1e-3, max_depth: float = 10.0, scale: int = 3
) -> Figure:
    """Rows of image | ground truth | prediction | |error|. Ground truth and prediction share one colour
    scale over the whole figure (one vmin/vmax, colour bar in metres); the error has its own, from 0.
    Ground-truth pixels outside (min_depth, max_depth) are invalid: grey in the truth and error panels."""
    gts = [np.ma.masked_where(~((e.gt > min_depth) & (e.gt < max_depth)), e.gt) for e in examples]
    errs = [np.ma.masked_where(g.mask, np.abs(e.pred - e.gt)) for g, e in zip(gts, examples, strict=True)]
    lo = min(min(g.min() for g in gts), min(e.pred.min() for e in examples))
    hi = max(max(g.max() for g in gts), max(e.pred.max() for e in examples))
    depth_norm = Normalize(float(lo), float(hi))
    err_norm = Normalize(0.0, max(float(max(err.max() for err in errs)), 1e-3))
    depth_cmap = colormaps[DEPTH_CMAP].with_extremes(bad=INVALID_GREY)
    err_cmap = colormaps[ERROR_CMAP].with_extremes(bad=INVALID_GREY)

    cell_w = max(e.image.shape[1] for e in examples) * scale
    cell_h = max(e.image.shape[0] for e in examples) * scale
    xs = [GAP + i * (cell_w + GAP) for i in range(3)]  # image, ground truth, prediction
    xs.append(xs[2] + cell_w + GAP + CBAR + CBAR_LABELS)  # error, after the depth colour bar
    width = xs[3] + cell_w + GAP + CBAR + CBAR_LABELS
    height = BAND + len(examples) * (BAND + cell_h) + GAP
    c = _Canvas(width, height)
    names = ("image", "ground truth", "prediction (same scale)", "|prediction - truth|")
    for x, name in zip(xs, names, strict=True):
        c.text(x, BAND // 2, name, weight="bold")
    for row, (e, gt, err) in enumerate(zip(examples, gts, errs, strict=True)):
        y = BAND + row * (BAND + cell_h)
        m = image_depth_errors(e.gt, e.pred, min_depth, max_depth)
        c.text(GAP, y + BAND // 2, f"{e.name}:  rel {m['abs_rel']:.3f}   rms {m['rmse']:.3f} m")
        c.panel(xs[0], y + BAND, e.image, scale)
        c.panel(xs[1], y + BAND, gt, scale, cmap=depth_cmap, norm=depth_norm)
        _, im = c.panel(xs[2], y + BAND, e.pred, scale, cmap=depth_cmap, norm=depth_norm)
        _, im_err = c.panel(xs[3], y + BAND, err, scale, cmap=err_cmap, norm=err_norm)
        h = e.image.shape[0] * scale
        for x, mappable, label in ((xs[2], im, "depth (m)"), (xs[3], im_err, "error (m)")):
            bar = c.fig.colorbar(mappable, cax=c.axes(x + cell_w + GAP, y + BAND, CBAR, h))
            bar.ax.tick_params(labelsize=FONT - 1)
            bar.set_label(label, fontsize=FONT - 1)
    return c.fig


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` atomically at its own pixel size."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return Path(path)


def _first_predictions(runner, n: int) -> list:
    """The trained model's data samples (prediction, ground truth, image path) for the first ``n`` test
    images, from the runner's own test dataloader and its model's ``test_step``."""
    model, samples = runner.model, []
    model.eval()
    with torch.no_grad():
        for batch in runner.test_loop.dataloader:
            samples.extend(model.test_step(batch))
            if len(samples) >= n:
                break
    return samples[:n]


def _rgb(path: str) -> np.ndarray:
    return mmcv.imread(path, channel_order="rgb")


def save_segmentation_examples(runner, path: str | Path, n: int = 4) -> Path:
    """PNG of ``segmentation_figure`` for the first ``n`` test images, in the dataset's palette."""
    meta = runner.test_loop.dataloader.dataset.metainfo
    examples = [
        Example(
            Path(s.img_path).stem,
            _rgb(s.img_path),
            s.gt_sem_seg.data[0].cpu().numpy(),
            s.pred_sem_seg.data[0].cpu().numpy(),
        )
        for s in _first_predictions(runner, n)
    ]
    return save_png(segmentation_figure(examples, meta["palette"], meta["classes"]), path)


def save_depth_examples(runner, path: str | Path, n: int = 4) -> Path:
    """PNG of ``depth_figure`` for the first ``n`` test images, valid range from the test metric."""
    metric = runner.test_loop.evaluator.metrics[0]
    examples = [
        Example(
            Path(s.img_path).stem,
            _rgb(s.img_path),
            s.gt_depth_map.data[0].cpu().numpy().astype(np.float64),
            s.pred_depth_map.data[0].cpu().numpy().astype(np.float64),
        )
        for s in _first_predictions(runner, n)
    ]
    fig = depth_figure(examples, metric.min_depth_eval, metric.max_depth_eval)
    return save_png(fig, path)

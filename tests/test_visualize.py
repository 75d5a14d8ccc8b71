"""The demos' pictures show what the arrays say: drawn from small synthetic masks and depth maps, the PNG
is read back and its pixels compared with colours computed here (VOC devkit palette values, matplotlib's
colour maps over the scale the data imply), its size with the panel layout, its titles with hand counts."""

import numpy as np
import pytest

pytest.importorskip("mmseg")
from matplotlib import colormaps  # noqa: E402
from PIL import Image  # noqa: E402

from nf_plugins.downstream.visualization import visualize as vis  # noqa: E402

IMAGE_RGB = (100, 150, 200)
VOC = {
    0: (0, 0, 0),
    1: (128, 0, 0),
    15: (192, 128, 128),
}  # VOCdevkit's colour map: background, aeroplane, person
VOID = (224, 224, 192)  # VOCdevkit's colour of label 255


def _voc_meta():
    from mmseg.datasets import PascalVOCDataset

    return PascalVOCDataset.METAINFO["palette"], PascalVOCDataset.METAINFO["classes"]


def _png(fig, path):
    vis.save_png(fig, path)
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _at(png, ax, row, col):
    """The PNG pixel under data pixel (row, col) of the image drawn in ``ax``."""
    x, y = ax.transData.transform((col, row))  # display pixels, origin bottom-left
    return tuple(png[int(png.shape[0] - y), int(x)])


def _close(got, want, tol=1):
    return all(abs(g - w) <= tol for g, w in zip(got, want, strict=True))


def _blend(c):
    """30 % image, 70 % class colour."""
    return tuple(round(0.3 * i + 0.7 * p) for i, p in zip(IMAGE_RGB, VOC[c], strict=True))


def test_segmentation_png_layout_overlay_colours_and_miou(tmp_path):
    """Two rows of image | truth | prediction. Each class's pixel is the 30/70 blend of the image with its
    VOC colour, void (255) is VOC's void colour, and each row's title carries its hand-counted mIoU."""
    palette, classes = _voc_meta()
    h, w, scale = 12, 16, 4
    image = np.empty((h, w, 3), np.uint8)
    image[:] = IMAGE_RGB
    gt = np.zeros((h, w), np.int64)
    gt[:, 8:] = 1  # left half background, right half aeroplane
    gt[:4, :4] = 255  # a void corner
    pred_a = np.ones((h, w), np.int64)  # everything aeroplane
    pred_b = gt.copy()
    pred_b[gt == 255] = 0
    pred_b[6:, 8:] = 15  # lower right quarter called person
    examples = [vis.Example("a", image, gt, pred_a), vis.Example("b", image, gt, pred_b)]
    fig = vis.segmentation_figure(examples, palette, classes, scale=scale)
    png = _png(fig, tmp_path / "seg.png")

    # three panels of w * scale with 8 px gaps; a 22 px column-name band, per row a 22 px title band and
    # the panels, two 22 px bands for the class legend
    assert png.shape == (22 + 2 * (22 + h * scale) + 44, 3 * w * scale + 4 * 8, 3)
    image_a, gt_a, pred_a_ax, image_b, gt_b, pred_b_ax = fig.axes[:6]
    for ax in (image_a, image_b):
        assert _close(_at(png, ax, 8, 2), IMAGE_RGB)
    for ax in (gt_a, gt_b):
        assert _close(_at(png, ax, 8, 2), _blend(0))
        assert _close(_at(png, ax, 8, 12), _blend(1))
        assert _close(_at(png, ax, 1, 1), VOID)
    assert _close(_at(png, pred_a_ax, 8, 2), _blend(1)) and _close(_at(png, pred_a_ax, 1, 1), _blend(1))
    assert _close(_at(png, pred_b_ax, 1, 1), _blend(0)) and _close(_at(png, pred_b_ax, 2, 12), _blend(1))
    assert _close(_at(png, pred_b_ax, 9, 12), _blend(15))

    titles = [t.get_text() for t in fig.texts]
    # void ignored. a: background IoU 0 / 80, aeroplane 96 / 176 -> mean 27.27. b: background 80 / 80,
    # aeroplane 48 / 96, person 0 / 48 -> mean 50.0
    assert "a:  mIoU 27.3" in titles and "b:  mIoU 50.0" in titles
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["background", "aeroplane", "person", "void (255)"]


def test_depth_png_one_scale_for_truth_and_prediction_error_zero_where_equal(tmp_path):
    """Truth and prediction share one colour scale (the data's 2 m..5 m): a depth has the same colour in
    both panels; the error panel is its colour map's zero where prediction equals truth and its top at the
    one wrong block; invalid truth (0 m) is grey; the title has the hand-counted rel and rms."""
    h, w, scale = 12, 16, 4
    image = np.empty((h, w, 3), np.uint8)
    image[:] = IMAGE_RGB
    gt = np.repeat(np.array([2.0, 3.0, 4.0, 5.0]), 4)[None].repeat(h, 0)  # four 4-px column blocks
    gt[:2] = 0.0  # no ground truth in the top rows
    pred = gt.copy()
    pred[:, 12:] = 4.0  # the 5 m block predicted at 4 m
    pred[:2] = 3.0
    fig = vis.depth_figure([vis.Example("room", image, gt, pred)], scale=scale)
    png = _png(fig, tmp_path / "depth.png")

    # image, truth, prediction, colour bar (10 px + 60 px labels), error, colour bar; 8 px gaps
    assert png.shape == (22 + 22 + h * scale + 8, 8 + 4 * (w * scale + 8) + 2 * (10 + 60), 3)
    image_ax, gt_ax, pred_ax, err_ax = fig.axes[:4]

    def viridis(d):  # the scale the data imply: 2 m .. 5 m
        return tuple(colormaps["viridis"]((d - 2.0) / 3.0, bytes=True)[:3])

    assert _close(_at(png, image_ax, 6, 6), IMAGE_RGB)
    for col, depth in ((2, 2.0), (6, 3.0), (10, 4.0), (14, 5.0)):
        assert _close(_at(png, gt_ax, 6, col), viridis(depth)), depth
    for col, depth in ((2, 2.0), (6, 3.0), (10, 4.0), (14, 4.0)):
        assert _close(_at(png, pred_ax, 6, col), viridis(depth)), depth
    # the same 4 m: truth's third block, prediction's fourth block -> the same colour
    assert _at(png, gt_ax, 6, 10) == _at(png, pred_ax, 6, 14)
    assert _close(_at(png, pred_ax, 0, 6), viridis(3.0))  # prediction is drawn where truth is missing

    zero, top = (tuple(colormaps["inferno"](x, bytes=True)[:3]) for x in (0.0, 1.0))
    for col in (2, 6, 10):
        assert _close(_at(png, err_ax, 6, col), zero)
    assert _close(_at(png, err_ax, 6, 14), top)
    grey = (204, 204, 204)  # matplotlib's "0.8"
    assert _close(_at(png, gt_ax, 0, 6), grey) and _close(_at(png, err_ax, 0, 6), grey)

    # 10 valid rows x 16 columns; only the 5 m block (a quarter) is off, by 1 m:
    # rel = 1/4 * 1/5 = 0.05, rms = sqrt(1/4 * 1) = 0.5
    assert "room:  rel 0.050   rms 0.500 m" in [t.get_text() for t in fig.texts]
    labels = [ax.get_ylabel() for ax in fig.axes[4:]]
    assert labels == ["depth (m)", "error (m)"]


def test_bad_examples_are_refused_with_what_is_wrong():
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(
        ValueError, match=r"must match; got \{'image': \(4, 4\), 'gt': \(4, 4\), 'pred': \(2, 4\)"
    ):
        vis.Example("x", image, np.zeros((4, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"labels \[21\] have no palette colour \(21 classes, void 255\)"):
        vis.overlay(image, np.full((4, 4), 21), _voc_meta()[0])
    with pytest.raises(ValueError, match="no ground-truth depth in"):
        vis.image_depth_errors(np.zeros((4, 4)), np.ones((4, 4)), 1e-3, 10.0)

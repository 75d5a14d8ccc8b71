"""nf_plugins.data.labels: the one VOC mask rule and the one depth-PNG/millimetre rule, and that both the
data-preparation side and the mmseg side (transforms) apply them, negative labels included."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.io import savemat

from nf_plugins.data import nyu, voc
from nf_plugins.data.labels import check_seg_mask, depth_png_problem, depth_to_mm, mm_to_depth

BAD_LABELS = r"has labels \[-1\] outside 0\.\.20 and 255"


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.array([[0, 20], [255, 7]], np.int16), None),
        (np.array([[0, -1], [255, 7]], np.int16), BAD_LABELS),
        (np.array([[0, 21], [254, 7]], np.int16), r"has labels \[21, 254\] outside"),
        (np.zeros((2, 2, 3), np.uint8), r"has 3 channels; expected a palette or 8-bit gray PNG"),
    ],
)
def test_seg_mask_rule(mask, message):
    if message is None:
        check_seg_mask(mask, "m.png", (2, 2), "i.jpg")
    else:
        with pytest.raises(ValueError, match=r"mask m\.png " + message):
            check_seg_mask(mask, "m.png", (2, 2), "i.jpg")


def test_seg_mask_size_and_custom_classes():
    with pytest.raises(ValueError, match=r"mask m\.png is 3x2 but image i\.jpg is 4x2 \(WxH\)"):
        check_seg_mask(np.zeros((2, 3), np.uint8), "m.png", (2, 4), "i.jpg")
    check_seg_mask(np.array([[0, 3, 9]]), "m.png", num_classes=4, ignore_index=9)
    with pytest.raises(ValueError, match=r"labels \[4, 255\] outside 0\.\.3 and 9"):
        check_seg_mask(np.array([[0, 4, 255]]), "m.png", num_classes=4, ignore_index=9)


def test_sbd_mat_with_negative_label_is_refused_not_wrapped_to_ignore(tmp_path):
    """An SBD class file holding -1: the uint8 cast would make it 255 (ignore) silently."""
    path = tmp_path / "2008_000002.mat"
    seg = np.array([[0, -1], [15, 0]], np.int16)
    savemat(path, {"GTcls": {"Segmentation": seg}})
    with pytest.raises(ValueError, match=r"2008_000002\.mat has labels \[-1\] outside"):
        voc.read_sbd_mat(str(path))
    savemat(path, {"GTcls": {"Segmentation": np.abs(seg)}})
    np.testing.assert_array_equal(voc.read_sbd_mat(str(path)), [[0, 1], [15, 0]])


def test_validate_seg_sample_refuses_negative_labels():
    """The mmseg side's transform applies the same rule (its input may come from any loader)."""
    pytest.importorskip("mmseg")
    from nf_plugins.downstream.datasets.seg_transforms import ValidateSegSample

    results = dict(img=np.zeros((2, 2, 3), np.uint8), img_path="i.jpg", seg_map_path="m.png")
    ok = np.array([[0, 255], [20, 1]], np.int16)
    assert ValidateSegSample()(dict(results, gt_seg_map=ok))["gt_seg_map"] is ok
    with pytest.raises(ValueError, match=r"mask m\.png " + BAD_LABELS):
        ValidateSegSample()(dict(results, gt_seg_map=np.array([[0, -1], [20, 1]], np.int16)))


def test_depth_to_mm_values():
    """Hand-computed millimetres: rounding to the nearest mm, holes (NaN/inf/0) written as 0."""
    depth = np.array([[1.0, 2.5004, np.nan], [np.inf, 9.9996, 0.0]])
    np.testing.assert_array_equal(depth_to_mm(depth, "d"), [[1000, 2500, 0], [0, 10000, 0]])
    assert depth_to_mm(depth, "d").dtype == np.uint16
    np.testing.assert_allclose(mm_to_depth(np.array([0, 1, 65535], np.uint16)), [0.0, 0.001, 65.535])


@pytest.mark.parametrize(
    ("depth", "message"),
    [
        (np.zeros((2, 2)), r"d has no valid depth"),
        (np.array([[1.0, -0.5]]), r"d has negative depth -0\.5 m"),
        (np.array([[1.0, 1500.0]]), r"d reaches 1500\.0 m, beyond the 10 m .* divide by 1000"),
    ],
)
def test_depth_to_mm_refuses_what_no_kinect_frame_holds(depth, message):
    with pytest.raises(ValueError, match=message):
        depth_to_mm(depth, "d")


def test_depth_png_rule():
    assert depth_png_problem(np.zeros((2, 2), np.uint16)) is None
    assert "uint8" in depth_png_problem(np.zeros((2, 2), np.uint8))
    assert "(2, 2, 3)" in depth_png_problem(np.zeros((2, 2, 3), np.uint16))
    assert "undecodable" in depth_png_problem(None)


def test_depth_png_rule_on_both_sides(tmp_path):
    """nyu.scan_layout (preparation) and LoadCheckedDepthAnnotation (training) refuse the same 8-bit PNG,
    and a PNG written by depth_to_mm loads back as metres with the config's depth_rescale_factor=1e-3."""
    for split in ("train", "test"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "annotations" / split).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "images" / split / "a.jpg"), np.zeros((2, 3, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "annotations" / split / "a.png"), np.full((2, 3), 7, np.uint8))
    with pytest.raises(nyu.NYUFormatError, match=r"train/a\.png: depth PNG is uint8 with shape \(2, 3\)"):
        nyu.scan_layout(tmp_path)
    pytest.importorskip("mmseg")
    from nf_plugins.downstream.datasets.depth_transforms import LoadCheckedDepthAnnotation

    bad = str(tmp_path / "annotations" / "train" / "a.png")
    with pytest.raises(ValueError, match=r"a\.png: depth PNG is uint8 with shape \(2, 3\)"):
        LoadCheckedDepthAnnotation()(dict(depth_map_path=bad, seg_fields=[]))
    metres = np.array([[0.5, 1.2344], [3.0, 9.9994]])
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), depth_to_mm(metres, "good"))
    out = LoadCheckedDepthAnnotation(depth_rescale_factor=1e-3)(dict(depth_map_path=str(good), seg_fields=[]))
    np.testing.assert_allclose(out["gt_depth_map"], metres, atol=0.0005 + 1e-6)

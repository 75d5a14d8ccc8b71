"""nf_plugins.data.synthetic_nyu: ray-cast rooms written in NYUv2's layout, checked against geometry and
against a second PNG decoder (PIL), not against the module's own helpers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nf_plugins.data import nyu, synthetic_nyu
from nf_plugins.data.synthetic_nyu import FOCAL, H, W, mean_depth_rms, render_room, write_dataset


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    root = tmp_path_factory.mktemp("rooms")
    write_dataset(root, num_train=3, num_test=2, seed=7)
    return root


def _png_metres(path) -> np.ndarray:
    """A 16-bit PNG read by PIL (not cv2, which the writer uses), millimetres -> metres."""
    with Image.open(path) as im:
        assert im.mode in ("I;16", "I"), im.mode
        return np.asarray(im, dtype=np.float64) / 1000.0


def test_layout_passes_the_nyu_check(rooms):
    assert nyu.check_layout(rooms) == {"train": 3, "test": 2}
    names = sorted(p.name for p in (rooms / "images" / "train").iterdir())
    assert names == ["room_0000.jpg", "room_0001.jpg", "room_0002.jpg"]


def test_written_depth_decodes_to_the_rendered_metres(rooms):
    """Rendering again from the same seed (train rooms come first) gives what the PNGs hold, to the
    0.5 mm of rounding to millimetres; the JPEG is the rendered image up to compression."""
    rng = np.random.default_rng(7)
    for i in range(3):
        img, depth = render_room(rng)
        decoded = _png_metres(rooms / "annotations" / "train" / f"room_{i:04d}.png")
        assert decoded.shape == depth.shape == (H, W)
        assert np.abs(decoded - depth).max() <= 0.0005 + 1e-6
        with Image.open(rooms / "images" / "train" / f"room_{i:04d}.jpg") as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
        assert np.sqrt(np.mean((rgb - img[..., ::-1]) ** 2)) < 8.0  # BGR written, RGB read


def test_rooms_have_the_geometry_they_claim():
    """Floor pixels lie on one plane at the camera's height (1.2-1.5 m below it); the deepest pixels are
    the flat back wall at 3.5-6 m; every depth is positive and within NYU's 10 m."""
    rng = np.random.default_rng(3)
    for _ in range(5):
        _, depth = render_room(rng)
        assert np.isfinite(depth).all() and depth.min() > 0 and depth.max() <= 6.0
        v = np.arange(H // 2, H)[:, None]  # lower half: rays going down, many of them meet the floor
        dy = -(v - H / 2 + 0.5) / FOCAL
        heights = np.round(-dy * depth[H // 2 :].astype(np.float64), 4).ravel()  # 0.1 mm bins
        values, counts = np.unique(heights, return_counts=True)
        assert counts.max() >= heights.size // 10 and 1.2 <= values[counts.argmax()] <= 1.5
        back = depth.max()
        assert synthetic_nyu.BACK_MIN <= back <= synthetic_nyu.BACK_MAX
        assert (depth == back).sum() >= 4  # a wall, not one pixel


def test_mean_depth_rms_against_numpy(rooms):
    """Mean over all valid train pixels and pooled rms over all test pixels, recomputed from PIL reads."""
    train = np.concatenate(
        [_png_metres(p).ravel() for p in sorted((rooms / "annotations/train").glob("*.png"))]
    )
    test = np.concatenate(
        [_png_metres(p).ravel() for p in sorted((rooms / "annotations/test").glob("*.png"))]
    )
    mean = train[train > 0].mean()
    rms = np.sqrt(np.mean((test[test > 0] - mean) ** 2))
    got_mean, got_rms = mean_depth_rms(rooms)
    assert got_mean == pytest.approx(mean, rel=1e-12) and got_rms == pytest.approx(rms, rel=1e-12)
    assert 1.0 < got_mean < 6.0 and got_rms > 0.1


def test_same_seed_same_files_other_seed_other_rooms(tmp_path):
    write_dataset(tmp_path / "a", 1, 1, seed=5)
    write_dataset(tmp_path / "b", 1, 1, seed=5)
    write_dataset(tmp_path / "c", 1, 1, seed=6)
    png = "annotations/test/room_0000.png"
    assert (tmp_path / "a" / png).read_bytes() == (tmp_path / "b" / png).read_bytes()
    assert (tmp_path / "a" / png).read_bytes() != (tmp_path / "c" / png).read_bytes()

"""A small deterministic depth dataset in NYUv2's on-disk layout, with exactly known depth.

Scenes are rooms seen from inside (floor, ceiling, side and back walls) with boxes standing on the floor,
ray-cast with a pinhole camera so every pixel's depth is known exactly; surfaces get random albedo,
texture and a light at the camera. The data are written exactly as ``nf-plugins prepare-nyu`` writes NYUv2
(``images/{train,test}/*.jpg``, 16-bit millimetre ``annotations/{train,test}/*.png``). Used by the depth
demo and the tests; never downloads anything.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .labels import MAX_DEPTH_M, depth_to_mm, mm_to_depth

# A wide-angle (85 degree) camera at 96x64 so that CPU training is short. Both sides are multiples of the
# backbone's stride 32: the 3x2 final feature grid is then the same for training crops and test images.
W, H, FOCAL = 96, 64, 52.0
BACK_MIN, BACK_MAX = 3.5, 6.0  # back-wall distance (m): room depths of NYU's indoor scenes
MIN_VALID_M = 1e-3  # the depth metric's min_depth_eval: below it a pixel has no depth


def render_room(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One RGB image (H, W, 3, uint8 BGR) and its z-depth in metres (H, W)."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    dx, dy = (u - W / 2 + 0.5) / FOCAL, -(v - H / 2 + 0.5) / FOCAL  # ray (dx, dy, 1); y up
    cam_h, ceil_h = rng.uniform(1.2, 1.5), rng.uniform(0.9, 1.3)  # camera height, ceiling above camera
    back, half_w = rng.uniform(BACK_MIN, BACK_MAX), rng.uniform(1.2, 2.4)
    x_off = rng.uniform(-0.5, 0.5) * half_w
    inf = np.full((H, W), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        planes = {  # z at which each ray meets each plane (only where it hits it in front of the camera)
            "back": np.full((H, W), back),
            "floor": np.where(dy < 0, -cam_h / dy, inf),
            "ceiling": np.where(dy > 0, ceil_h / dy, inf),
            "left": np.where(dx < 0, (x_off - half_w) / dx, inf),
            "right": np.where(dx > 0, (x_off + half_w) / dx, inf),
        }
    depth = np.minimum.reduce(list(planes.values()))
    surface = np.argmin(np.stack(list(planes.values())), axis=0)
    for b in range(rng.integers(1, 4)):  # boxes on the floor: front face (z = z0) and top face (y = top)
        z0 = rng.uniform(1.2, back - 0.6)
        x0 = rng.uniform(x_off - half_w, x_off + half_w - 0.5)
        x1, top, z1 = x0 + rng.uniform(0.4, 1.2), -cam_h + rng.uniform(0.3, 1.2), z0 + rng.uniform(0.4, 1.0)
        xs, ys = dx * z0, dy * z0
        front = (xs >= x0) & (xs <= x1) & (ys <= top) & (ys >= -cam_h) & (z0 < depth)
        with np.errstate(divide="ignore", invalid="ignore"):
            zt = np.where(dy < 0, top / dy, inf)
        top_hit = (zt >= z0) & (zt <= z1) & (dx * zt >= x0) & (dx * zt <= x1) & (zt < depth) & ~front
        depth = np.where(front, z0, np.where(top_hit, zt, depth))
        surface = np.where(front | top_hit, 5 + b, surface)
    albedo = rng.uniform(0.25, 1.0, size=(8, 3))
    normals_dot = {0: 1.0, 1: -dy, 2: dy, 3: -dx, 4: dx}  # cos(angle) between ray and surface normal
    cos = np.ones((H, W))
    for s, c in normals_dot.items():
        cos = np.where(surface == s, np.abs(c) / np.sqrt(dx**2 + dy**2 + 1), cos)
    x3, y3 = dx * depth, dy * depth
    texture = 0.85 + 0.15 * np.sign(np.sin(4 * x3) * np.sin(4 * y3) * np.sin(4 * depth))  # world checkerboard
    light = cos * texture / (1.0 + 0.08 * depth**2)
    img = albedo[surface] * light[..., None] * 255 * 1.6 + rng.normal(0, 3, (H, W, 3))
    return np.clip(img, 0, 255).astype(np.uint8), depth.astype(np.float32)


def write_dataset(root: Path, num_train: int, num_test: int, seed: int = 0) -> None:
    """``num_train``/``num_test`` rooms ``room_XXXX`` in the NYU layout, exactly as prepare-nyu writes it."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", num_train), ("test", num_test)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, depth = render_room(rng)
            name = f"room_{i:04d}"
            cv2.imwrite(str(root / "images" / split / f"{name}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            mm = depth_to_mm(depth, f"synthetic room {split}/{name}")
            cv2.imwrite(str(root / "annotations" / split / f"{name}.png"), mm)


def mean_depth_rms(root: Path) -> tuple[float, float]:
    """Training-set mean depth, and the rms of predicting it over all valid test pixels (pooled, as the
    headline metric; valid = in (``MIN_VALID_M``, ``MAX_DEPTH_M``) as the metric's defaults)."""

    def load(split: str) -> list[np.ndarray]:
        files = sorted((root / "annotations" / split).glob("*.png"))
        return [mm_to_depth(cv2.imread(str(p), cv2.IMREAD_UNCHANGED)) for p in files]

    train = np.concatenate([d[d > MIN_VALID_M].ravel() for d in load("train")])
    mean = float(train.mean())
    test = np.concatenate([d[(d > MIN_VALID_M) & (d < MAX_DEPTH_M)].ravel() for d in load("test")])
    return mean, float(np.sqrt(np.mean((test - mean) ** 2)))

"""A small deterministic segmentation dataset in the exact on-disk formats of VOC2012 and SBD.

Images are textured backgrounds with filled shapes (ellipses, rectangles, triangles); each object's
class sets its colour family, so a few hundred CPU iterations learn it. VOC masks are palette PNGs
with the 255 "void" outline VOC draws around objects; SBD masks are ``GTcls.Segmentation`` in
MATLAB ``.mat`` files (scipy). Used by the demo and the tests; never downloads anything.
"""

from __future__ import annotations

import os
import os.path as osp
import shutil

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy.io import savemat

from nf_plugins.data.voc import save_palette_png

# class index -> base RGB colour (VOC labels: 1 aeroplane, 7 car, 8 cat, 12 dog, 15 person)
CLASS_COLOURS: dict[int, tuple[int, int, int]] = {
    1: (220, 40, 40),
    7: (40, 200, 60),
    8: (50, 80, 230),
    12: (230, 210, 40),
    15: (200, 60, 220),
}


def _sample(
    rng: np.random.Generator, size: tuple[int, int], void_border: bool
) -> tuple[Image.Image, np.ndarray]:
    w, h = size
    bg = rng.normal(120, 25, (h // 8 + 1, w // 8 + 1, 3)).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(bg).resize((w, h), Image.BILINEAR)
    mask = Image.new("L", (w, h), 0)
    outline = Image.new("L", (w, h), 0)
    draw_img, draw_mask, draw_out = ImageDraw.Draw(img), ImageDraw.Draw(mask), ImageDraw.Draw(outline)
    classes = list(CLASS_COLOURS)
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.choice(classes))
        colour = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in CLASS_COLOURS[cls])
        bw, bh = int(rng.integers(w // 5, w // 2)), int(rng.integers(h // 5, h // 2))
        x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        box = [x0, y0, x0 + bw, y0 + bh]
        kind = int(rng.integers(3))
        for draw, fill in ((draw_img, colour), (draw_mask, cls)):
            if kind == 0:
                draw.ellipse(box, fill=fill)
            elif kind == 1:
                draw.rectangle(box, fill=fill)
            else:
                draw.polygon([(x0, y0 + bh), (x0 + bw // 2, y0), (x0 + bw, y0 + bh)], fill=fill)
        if void_border:
            draw_out.rectangle(box, outline=255, width=1) if kind == 1 else draw_out.ellipse(box, outline=255)
    img = img.filter(ImageFilter.GaussianBlur(0.6))
    m = np.asarray(mask).copy()
    if void_border:  # VOC marks object boundaries as void (255)
        m[np.asarray(outline) == 255] = 255
    return img, m


def make_synthetic_voc(
    root: str,
    n_train: int = 60,
    n_val: int = 20,
    n_sbd_extra: int = 40,
    size: tuple[int, int] = (96, 72),
    seed: int = 0,
) -> dict[str, int]:
    """Write ``root/VOCdevkit/VOC2012`` and ``root/benchmark_RELEASE`` like the real releases.

    SBD covers ``n_sbd_extra`` images outside VOC's segmentation splits plus a few VOC train and val
    images (as the real SBD does), so the trainaug list is ``n_train + n_sbd_extra``. Image sizes vary
    around ``size``. Returns the expected split sizes.
    """
    rng = np.random.default_rng(seed)
    voc = osp.join(root, "VOCdevkit", "VOC2012")
    sbd = osp.join(root, "benchmark_RELEASE", "dataset")
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        os.makedirs(osp.join(voc, d), exist_ok=True)
    for d in ("cls", "img"):
        os.makedirs(osp.join(sbd, d), exist_ok=True)
    total = n_train + n_val + n_sbd_extra
    ids = [f"2008_{i:06d}" for i in range(1, total + 1)]
    train, val, extra = ids[:n_train], ids[n_train : n_train + n_val], ids[n_train + n_val :]
    for img_id in ids:
        wh = (size[0] + int(rng.integers(-8, 9)), size[1] + int(rng.integers(-8, 9)))
        in_sbd = img_id in extra or img_id in train[:3] or img_id in val[:2]
        img, mask = _sample(rng, wh, void_border=True)
        img.save(osp.join(voc, "JPEGImages", img_id + ".jpg"), quality=95)
        if img_id not in extra:
            save_palette_png(mask, osp.join(voc, "SegmentationClass", img_id + ".png"))
        if in_sbd:
            sbd_mask = np.where(mask == 255, 0, mask).astype(np.uint8)  # SBD has no void outline
            gt = {
                "Segmentation": sbd_mask,
                "Boundaries": np.zeros((0, 0)),
                "CategoriesPresent": np.unique(sbd_mask),
            }
            savemat(osp.join(sbd, "cls", img_id + ".mat"), {"GTcls": gt})
            shutil.copy(osp.join(voc, "JPEGImages", img_id + ".jpg"), osp.join(sbd, "img", img_id + ".jpg"))
    sbd_ids = extra + train[:3] + val[:2]
    half = len(sbd_ids) // 2
    for name, lst in (("train", train), ("val", val), ("trainval", train + val)):
        with open(osp.join(voc, "ImageSets", "Segmentation", name + ".txt"), "w") as f:
            f.writelines(i + "\n" for i in lst)
    for name, lst in (("train", sbd_ids[:half]), ("val", sbd_ids[half:])):
        with open(osp.join(sbd, name + ".txt"), "w") as f:
            f.writelines(i + "\n" for i in lst)
    return dict(train=n_train, aug=n_sbd_extra, trainaug=n_train + n_sbd_extra, val=n_val)

"""Convert NYU Depth v2 into mmseg's NYU layout (``images/{train,test}/*.jpg``, ``annotations/...png``).

The paper configs need both sources (README "NYUv2 depth"):

* mmseg's own NYU zip: frames sampled from the raw training sequences (BTS's list, ~24k, raw depth with
  holes) in ``nyu/nyu_{train,test}.txt`` + files, handed to mmseg's converter
  (``mmseg/.mim/tools/dataset_converters/nyu.py``) unchanged. The configs train on its ``train`` part::

      python tools/prepare_nyu.py nyu.zip -o data/nyu

* the official labeled set: ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5, read with h5py) plus the
  official ``splits.mat`` (``trainNdxs``/``testNdxs``, 1-based, 795/654 images), with the filled-in
  ``depths`` that Laina et al. score against. The configs test on its ``test`` part::

      python tools/prepare_nyu.py nyu_depth_v2_labeled.mat --splits splits.mat -o data/nyu_labeled

Either way the result is checked (every image decodes in full and has a 16-bit depth PNG of the same
size: a truncated JPEG/PNG is an error naming the file, not a grey patch in training); ``--check DIR``
runs only that check. Depth is written in millimetres (``LoadDepthAnnotation(depth_rescale_factor=1e-3)``
gives metres); pixels without depth are 0. Files are written atomically and nothing is overwritten.
This script imports no torch/mmseg so that it starts fast; it only needs h5py, scipy, numpy, cv2, PIL, tqdm.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm


def _load_light_module(name: str):
    """``nf_plugins/<name>.py`` loaded by path: importing it as ``nf_plugins....`` would first import torch,
    timm and mmseg (8.5 s vs 0.6 s start-up); the modules used here need only PIL and the stdlib."""
    path = Path(__file__).resolve().parents[1] / "nf_plugins" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"nf_plugins_{name.replace('/', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


decoded_size = _load_light_module("downstream/image_files").decoded_size
atomic_write_bytes = _load_light_module("atomic").atomic_write_bytes

SPLITS = ("train", "test")
OFFICIAL_COUNTS = {"train": 795, "test": 654}


class NYUFormatError(ValueError):
    """Input that does not match the official NYU files or mmseg's NYU layout."""


def _encode(ext: str, array: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, array, params or [])
    if not ok:
        raise RuntimeError(f"cv2 could not encode a {array.dtype} {array.shape} array as {ext}")
    return buf.tobytes()


def _make_out_dirs(out_dir: Path) -> None:
    for kind in ("images", "annotations"):
        for split in SPLITS:
            d = out_dir / kind / split
            if d.is_dir() and any(d.iterdir()):
                raise FileExistsError(f"{d} is not empty; refusing to overwrite: choose an empty --out-dir")
            d.mkdir(parents=True, exist_ok=True)


def read_splits(splits_path: Path, num_images: int, mat_path: Path) -> dict[str, np.ndarray]:
    """The official 1-based ``trainNdxs``/``testNdxs``, checked against the labeled file's size."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(splits_path))
    except (ValueError, NotImplementedError, OSError) as e:
        raise NYUFormatError(f"{splits_path}: not a readable MATLAB splits file ({e})") from e
    keys = {"train": "trainNdxs", "test": "testNdxs"}
    missing = [k for k in keys.values() if k not in mat]
    if missing:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise NYUFormatError(
            f"{splits_path}: missing {missing} (found {found}); expected the official NYU splits.mat"
        )
    out = {split: np.asarray(mat[key]).reshape(-1).astype(np.int64) for split, key in keys.items()}
    for split, idx in out.items():
        bad = idx[(idx < 1) | (idx > num_images)]
        if bad.size:
            raise NYUFormatError(
                f"{splits_path}: {keys[split]} has indices {bad[:5].tolist()} outside 1..{num_images}, the "
                f"image count of {mat_path} (indices are 1-based): splits and labeled file do not match"
            )
        if np.unique(idx).size != idx.size:
            raise NYUFormatError(f"{splits_path}: {keys[split]} repeats indices")
    shared = np.intersect1d(out["train"], out["test"])
    if shared.size:
        raise NYUFormatError(
            f"{splits_path}: indices {shared[:5].tolist()} are in both trainNdxs and testNdxs"
        )
    return out


def convert_labeled_mat(mat_path: Path, splits_path: Path, out_dir: Path, jpeg_quality: int = 95) -> dict:
    """Write ``nyu_XXXX.jpg``/``.png`` (XXXX = 1-based index in the .mat) for both official splits."""
    import h5py

    try:
        f = h5py.File(mat_path, "r")
    except OSError as e:
        raise NYUFormatError(
            f"{mat_path}: not an HDF5 (MATLAB v7.3) file ({e}); "
            "expected the official nyu_depth_v2_labeled.mat"
        ) from e
    with f:
        missing = [k for k in ("images", "depths") if k not in f]
        if missing:
            raise NYUFormatError(
                f"{mat_path}: missing dataset(s) {missing} (found {sorted(f.keys())}); expected the official "
                "nyu_depth_v2_labeled.mat with 'images' and 'depths'"
            )
        images, depths = f["images"], f["depths"]
        # MATLAB stores column-major: images (N, 3, W, H), depths (N, W, H) as seen by h5py.
        if images.ndim != 4 or images.shape[1] != 3 or depths.ndim != 3:
            raise NYUFormatError(
                f"{mat_path}: 'images' has shape {images.shape} and 'depths' {depths.shape}; expected "
                "(N, 3, W, H) and (N, W, H) as h5py reads the official file"
            )
        if images.shape[0] != depths.shape[0] or images.shape[2:] != depths.shape[1:]:
            raise NYUFormatError(
                f"{mat_path}: 'images' {images.shape} and 'depths' {depths.shape} disagree in count or size"
            )
        splits = read_splits(splits_path, images.shape[0], mat_path)
        for split, idx in splits.items():
            if idx.size != OFFICIAL_COUNTS[split]:
                print(f"note: {split} split has {idx.size} images (official: {OFFICIAL_COUNTS[split]})")
        _make_out_dirs(out_dir)
        total = sum(idx.size for idx in splits.values())
        with tqdm(total=total, desc="NYUv2 labeled -> mmseg layout", unit="img") as bar:
            for split, idx in splits.items():
                for i in idx:
                    rgb = np.ascontiguousarray(np.asarray(images[i - 1]).transpose(2, 1, 0))
                    depth_m = np.asarray(depths[i - 1], dtype=np.float64).T
                    depth_mm = np.where(np.isfinite(depth_m) & (depth_m > 0), np.round(depth_m * 1000.0), 0)
                    depth_mm = np.clip(depth_mm, 0, 65535).astype(np.uint16)
                    name = f"nyu_{i:04d}"
                    jpg = _encode(
                        ".jpg", rgb[..., ::-1].astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
                    )
                    atomic_write_bytes(out_dir / "images" / split / f"{name}.jpg", jpg)
                    atomic_write_bytes(
                        out_dir / "annotations" / split / f"{name}.png", _encode(".png", depth_mm)
                    )
                    bar.update()
    return {split: int(idx.size) for split, idx in splits.items()}


def convert_mmseg_zip(src: Path, out_dir: Path) -> None:
    """mmseg's NYU zip/directory, reorganised by mmseg's own converter script."""
    spec = importlib.util.find_spec("mmseg")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("mmsegmentation is needed to convert its NYU zip: pip install -e '.[mm]'")
    script = Path(spec.submodule_search_locations[0]) / ".mim/tools/dataset_converters/nyu.py"
    if not script.is_file():
        raise FileNotFoundError(f"{script} is missing; reinstall mmsegmentation 1.2.x")
    mod_spec = importlib.util.spec_from_file_location("_mmseg_nyu_converter", script)
    converter = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(converter)
    _make_out_dirs(out_dir)
    if src.suffix == ".zip":
        with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(src) as zf:
            zf.extractall(tmp)
            if not (Path(tmp) / "nyu").is_dir():
                raise NYUFormatError(f"{src}: no top-level 'nyu/' folder; expected mmseg's NYU zip")
            converter.reorganize(os.path.join(tmp, "nyu"), str(out_dir))
    else:
        converter.reorganize(str(src), str(out_dir))


def check_layout(root: Path) -> dict[str, int]:
    """Every ``images/<split>/X.jpg`` has ``annotations/<split>/X.png``: 16-bit, one channel, same size."""
    counts = {}
    for split in SPLITS:
        img_dir, ann_dir = root / "images" / split, root / "annotations" / split
        if not img_dir.is_dir():
            raise NYUFormatError(f"{img_dir} does not exist; expected mmseg's NYU layout under {root}")
        imgs = sorted(img_dir.rglob("*.jpg"))
        for img_path in tqdm(imgs, desc=f"checking {split}", unit="img", leave=False):
            png = ann_dir / img_path.relative_to(img_dir).with_suffix(".png")
            if not png.is_file():
                raise NYUFormatError(f"{img_path} has no depth map {png}")
            depth = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
            if depth is None:
                raise NYUFormatError(f"{png}: not a readable PNG")
            if depth.dtype != np.uint16 or depth.ndim != 2:
                raise NYUFormatError(
                    f"{png}: depth PNG is {depth.dtype} with shape {depth.shape}; expected a single-channel "
                    "16-bit PNG of depth in millimetres (write it with tools/prepare_nyu.py)"
                )
            try:
                w, h = decoded_size(img_path)
                decoded_size(png)  # cv2 reads a truncated PNG without an error; PIL does not
            except ValueError as e:
                raise NYUFormatError(str(e)) from e
            if depth.shape != (h, w):
                raise NYUFormatError(f"{png}: depth {depth.shape} does not match image {img_path} ({h}, {w})")
        counts[split] = len(imgs)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "source", type=Path, nargs="?", help="nyu_depth_v2_labeled.mat, or mmseg's nyu.zip / folder"
    )
    p.add_argument("--splits", type=Path, help="official splits.mat (required with a .mat source)")
    p.add_argument("-o", "--out-dir", type=Path, help="default: data/nyu_labeled for a .mat, else data/nyu")
    p.add_argument("--check", type=Path, metavar="DIR", help="only check an existing mmseg NYU layout")
    args = p.parse_args(argv)
    try:
        if args.check is not None:
            root = args.check
        elif args.source is None:
            p.error("give a source (.mat or mmseg's nyu.zip) or --check DIR")
        elif not args.source.exists():
            raise FileNotFoundError(f"{args.source} does not exist")
        elif args.source.suffix == ".mat":
            if args.splits is None:
                p.error("a .mat source needs --splits splits.mat (the official NYU train/test split)")
            root = args.out_dir or Path("data/nyu_labeled")
            convert_labeled_mat(args.source, args.splits, root)
        else:
            root = args.out_dir or Path("data/nyu")
            convert_mmseg_zip(args.source, root)
        counts = check_layout(root)
    except (NYUFormatError, FileExistsError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"NYU layout OK at {root}: " + ", ".join(f"{k} {v} images" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

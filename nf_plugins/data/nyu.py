"""Convert NYU Depth v2 into mmseg's NYU layout (``images/{train,test}/*.jpg``, ``annotations/...png``).

The paper configs need both sources (README "NYUv2 depth"):

* mmseg's own NYU zip: frames sampled from the raw training sequences (BTS's list, ~24k, raw depth with
  holes) in ``nyu/nyu_{train,test}.txt`` + files, handed to mmseg's converter
  (``mmseg/.mim/tools/dataset_converters/nyu.py``) does: :func:`reorganize`. The configs train on its
  ``train`` part::

      nf-plugins prepare-nyu nyu.zip -o data/nyu   (or: python tools/prepare_nyu.py ...)

* the official labeled set: ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5, read with h5py) plus the
  official ``splits.mat`` (``trainNdxs``/``testNdxs``, 1-based, 795/654 images), with the filled-in
  ``depths`` that Laina et al. score against. The configs test on its ``test`` part::

      nf-plugins prepare-nyu nyu_depth_v2_labeled.mat --splits splits.mat -o data/nyu_labeled

Either way the result is checked (every image decodes in full and has a 16-bit depth PNG of the same
size: a truncated JPEG/PNG is an error naming the file, not a grey patch in training); ``--check DIR``
runs only that check. Depth is written in millimetres (``LoadDepthAnnotation(depth_rescale_factor=1e-3)``
gives metres); pixels without depth are 0. Files are written atomically and nothing is overwritten.

Values are checked, not cast: depth must be metres in [0, 10] (the NYU toolbox's ``depth_rel2depth_abs``
clips the Kinect's depth at ``maxDepth = 10``; millimetres would saturate 16-bit PNGs), every image needs
some valid depth, and images must be uint8 (as in the official file) or floats whose scale is stated
with ``--float-images 0-1|0-255``. Names from the zip's lists must stay inside the zip (mmseg's converter
moves each listed file), and the output folder is checked writable before any work.
Data preparation imports no mmseg/mmcv/mmengine (a machine that only prepares data needs none of them);
besides the package it needs h5py, scipy, numpy, cv2, PIL and tqdm.
"""

from __future__ import annotations

import argparse
import shutil
import stat
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_write_bytes
from ..outputs import check_output_dir
from ..progress import Progress, progress
from . import safe_paths
from .image_files import decoded_size
from .labels import MAX_DEPTH_M, MM_PER_M, depth_png_problem, depth_to_mm

FLOAT_IMAGE_SCALE = {"0-1": 255.0, "0-255": 1.0}  # --float-images: factor to 0-255


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
            safe_paths.check_inside(d, out_dir, "output folder ")
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
    out = {}
    for split, key in keys.items():
        raw = np.asarray(mat[key]).reshape(-1)
        if not np.issubdtype(raw.dtype, np.number) or np.issubdtype(raw.dtype, np.complexfloating):
            raise NYUFormatError(f"{splits_path}: {key} is {raw.dtype}, expected numbers (1-based indices)")
        fractional = raw[~np.isfinite(raw) | (raw != np.round(raw))] if raw.dtype.kind == "f" else raw[:0]
        if fractional.size:  # astype(int) would truncate 2.9 to 2: a different image, silently
            raise NYUFormatError(
                f"{splits_path}: {key} has non-integer indices {fractional[:5].tolist()}; "
                "indices are whole 1-based image numbers"
            )
        out[split] = raw.astype(np.int64)
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


def _image_uint8(rgb: np.ndarray, where: str, float_images: str | None) -> np.ndarray:
    """``rgb`` as uint8 by the stated rule: integers must lie in 0-255; floats are scaled by the range
    given in ``--float-images`` and must lie in it (a cast would turn [0, 1] floats into a black image)."""
    if rgb.dtype == np.uint8:
        return rgb
    lo, hi = (float(rgb.min()), float(rgb.max())) if rgb.size else (0.0, 0.0)
    if rgb.dtype.kind in "iu":
        if lo < 0 or hi > 255:
            raise NYUFormatError(f"{where} holds integers in {lo:g}..{hi:g}, outside 0..255")
        return rgb.astype(np.uint8)
    limit = float(float_images.split("-")[1])
    if not (np.isfinite(lo) and np.isfinite(hi) and lo >= 0 and hi <= limit):
        raise NYUFormatError(f"{where} holds values in {lo:g}..{hi:g}, outside --float-images {float_images}")
    return np.round(rgb * FLOAT_IMAGE_SCALE[float_images]).astype(np.uint8)


def _depth_mm(depth_m: np.ndarray, where: str) -> np.ndarray:
    """:func:`labels.depth_to_mm`, its refusals as :class:`NYUFormatError`."""
    try:
        return depth_to_mm(depth_m, where)
    except ValueError as e:
        raise NYUFormatError(str(e)) from e


def convert_labeled_mat(
    mat_path: Path, splits_path: Path, out_dir: Path, jpeg_quality: int = 95, float_images: str | None = None
) -> dict:
    """Write ``nyu_XXXX.jpg``/``.png`` (XXXX = 1-based index in the .mat) for both official splits.

    ``float_images`` ('0-1' or '0-255') states the scale of float images; uint8 needs none. A value
    error stops the run and removes the files it wrote, so no partial split is left.
    """
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
        for key in ("images", "depths"):  # an HDF5 link or virtual dataset would read another file
            if not isinstance(f.get(key, getlink=True), h5py.HardLink) or f[key].is_virtual:
                raise NYUFormatError(
                    f"{mat_path}: '{key}' is a link or virtual dataset that reads data from elsewhere; "
                    "expected the official nyu_depth_v2_labeled.mat, which stores it in the file"
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
        if images.dtype.kind == "f" and float_images not in FLOAT_IMAGE_SCALE:
            raise NYUFormatError(
                f"{mat_path}: 'images' are {images.dtype}, not uint8: pass --float-images 0-1 or "
                "--float-images 0-255 to say which value is white (a plain cast would make [0, 1] black)"
            )
        if images.dtype.kind not in "fiu":
            raise NYUFormatError(f"{mat_path}: 'images' are {images.dtype}; expected uint8 RGB")
        splits = read_splits(splits_path, images.shape[0], mat_path)
        for split, idx in splits.items():
            if idx.size != OFFICIAL_COUNTS[split]:
                print(f"note: {split} split has {idx.size} images (official: {OFFICIAL_COUNTS[split]})")
        if images.dtype.kind == "f":
            scale = FLOAT_IMAGE_SCALE[float_images]
            print(f"note: images are {images.dtype} in {float_images}: scaled by {scale:g}, rounded to uint8")
        _make_out_dirs(out_dir)
        written: list[Path] = []
        try:
            _write_labeled(images, depths, splits, out_dir, mat_path, jpeg_quality, float_images, written)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
    return {split: int(idx.size) for split, idx in splits.items()}


def _write_labeled(images, depths, splits, out_dir, mat_path, jpeg_quality, float_images, written) -> None:
    """The conversion loop of :func:`convert_labeled_mat`; appends each file it writes to ``written``."""
    total = sum(idx.size for idx in splits.values())
    with Progress(total, "NYUv2 labeled -> mmseg layout", "img") as bar:
        for split, idx in splits.items():
            for i in idx:
                where = f"{mat_path}: 'images' image {i} ({split})"
                rgb = np.ascontiguousarray(np.asarray(images[i - 1]).transpose(2, 1, 0))
                rgb = _image_uint8(rgb, where, float_images)
                depth_m = np.asarray(depths[i - 1], dtype=np.float64).T
                depth_mm = _depth_mm(depth_m, where.replace("'images'", "'depths'"))
                name = f"nyu_{i:04d}"
                bgr = np.ascontiguousarray(rgb[..., ::-1])
                jpg = _encode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                for path, data in (
                    (out_dir / "images" / split / f"{name}.jpg", jpg),
                    (out_dir / "annotations" / split / f"{name}.png", _encode(".png", depth_mm)),
                ):
                    written.append(path)
                    atomic_write_bytes(path, data)
                bar.update()


def convert_mmseg_zip(src: Path, out_dir: Path) -> None:
    """mmseg's NYU zip (or its extracted ``nyu/`` folder): checked lists, then :func:`reorganize`."""
    if src.suffix == ".zip":
        with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(src) as zf:
            for info in zf.infolist():  # zipfile would write a link's target text as a file
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise NYUFormatError(
                        f"{src}: member {info.filename!r} is a symbolic link; mmseg's NYU zip holds only "
                        "files and folders"
                    )
            zf.extractall(tmp)  # zipfile drops '..' and absolute prefixes from member names
            if not (Path(tmp) / "nyu").is_dir():
                raise NYUFormatError(f"{src}: no top-level 'nyu/' folder; expected mmseg's NYU zip")
            moves = check_mmseg_lists(Path(tmp) / "nyu", f"{src}: nyu/", "is not in the archive")
            _make_out_dirs(out_dir)
            reorganize(Path(tmp) / "nyu", out_dir, moves)
    else:
        moves = check_mmseg_lists(src, f"{src}/", f"is not in {src}")
        _make_out_dirs(out_dir)
        reorganize(src, out_dir, moves)


def reorganize(raw_dir: Path, out_dir: Path, moves: list[tuple[str, str]]) -> None:
    """Move each checked ``(item, target)`` of :func:`check_mmseg_lists` from ``raw_dir`` to ``out_dir``.

    What ``reorganize`` in mmseg's ``tools/dataset_converters/nyu.py`` does (``shutil.move`` of every
    listed file to ``images|annotations/<split>/<name minus /rgb or /sync_depth>``), written here because
    that script imports mmengine at its top (data preparation must not need it) and because the targets
    come from the checked list instead of a second parse. ``tests/test_depth_nyu.py`` compares the result
    with mmseg's own script on the same zip.
    """
    for item, target in moves:
        shutil.move(str(raw_dir / item), str(out_dir / target))


def check_mmseg_lists(raw_dir: Path, label: str, not_found: str) -> list[tuple[str, str]]:
    """Check ``nyu_{train,test}.txt`` as mmseg's ``reorganize`` reads them, before anything moves; returns
    the ``(item, target)`` pairs to move, in list order (train, then test; each line's image, then depth).

    mmseg ``shutil.move``s ``raw_dir/<item>`` to ``out/images|annotations/<split>/<item minus /rgb or
    /sync_depth>``, so every item must be a file inside ``raw_dir`` (no ``..``, no link out of it) and
    every target a plain, unique file name; otherwise a list could move files from or to anywhere.
    """
    entries = []  # (list name, line number, item, target)
    for split in SPLITS:
        name = f"nyu_{split}.txt"
        if not (raw_dir / name).is_file():
            raise NYUFormatError(f"{label}{name} is missing; expected mmseg's NYU zip or folder")
        for n, line in enumerate((raw_dir / name).read_text().splitlines(), 1):
            where = f"{label}{name}, line {n}: "
            fields = line.split()[:2]
            if len(fields) == 1:
                raise NYUFormatError(f"{where}{line!r}: expected '<image> <depth> [focal]'")
            columns = zip(("images", "annotations"), fields, ("/rgb", "/sync_depth"), strict=False)
            for kind, raw, tag in columns:  # a blank line has no fields (mmseg skips it)
                item = raw.strip("/")  # as mmseg: its lists start with '/'
                safe_paths.check_relative_name(item, where)
                safe_paths.check_inside(raw_dir / item, raw_dir, where)
                entries.append((name, n, item, f"{kind}/{split}/{item.replace(tag, '')}"))
    for name in (f"nyu_{split}.txt" for split in SPLITS):
        if not any(e[0] == name for e in entries):
            raise NYUFormatError(f"{label}{name} lists no images")
    for name, n, item, target in entries:
        where, path = f"{label}{name}, line {n}: ", raw_dir / item
        if path.is_dir():
            raise NYUFormatError(f"{where}{path} is a folder, not a file")
        if not path.is_file():
            raise NYUFormatError(f"{where}{item!r} {not_found}")
        if "/" in target.split("/", 2)[2]:
            raise NYUFormatError(f"{where}{item!r} becomes {target}: mmseg's names must not hold folders")
    seen: dict[str, tuple[str, int]] = {}
    for name, n, item, target in entries:
        for key in (target, item):
            if key in seen:
                prev_name, prev_n = seen[key]
                prev = f"line {prev_n}" if prev_name == name else f"{prev_name}, line {prev_n}"
                raise NYUFormatError(f"{label}{name}, line {n}: {key} is already listed on {prev}")
            seen[key] = (name, n)
    return [(item, target) for _, _, item, target in entries]


def check_layout(root: Path) -> dict[str, int]:
    """Image counts per split of :func:`scan_layout`, with its warning about images without depth."""
    counts, no_depth = scan_layout(root)
    _warn_no_depth(counts, no_depth)
    return counts


def _warn_no_depth(counts: dict[str, int], no_depth: dict[str, list[Path]]) -> None:
    for split, pngs in no_depth.items():
        if pngs:
            names = ", ".join(map(str, pngs[:5])) + (", ..." if len(pngs) > 5 else "")
            print(
                f"warning: {len(pngs)} of {counts[split]} {split} images have no valid depth (0 everywhere): "
                f"{names}; they add nothing to training and are skipped by the metric",
                file=sys.stderr,
            )


def scan_layout(root: Path) -> tuple[dict[str, int], dict[str, list[Path]]]:
    """Every ``images/<split>/X.jpg`` has ``annotations/<split>/X.png``: 16-bit, one channel, same size,
    depth within the sensor's 10 m. Returns image counts and, per split, the depth maps that are all 0."""
    counts, no_depth = {}, {}
    max_mm = int(MAX_DEPTH_M * MM_PER_M)
    for split in SPLITS:
        img_dir, ann_dir = root / "images" / split, root / "annotations" / split
        if not img_dir.is_dir():
            raise NYUFormatError(f"{img_dir} does not exist; expected mmseg's NYU layout under {root}")
        imgs = sorted(img_dir.rglob("*.jpg"))
        no_depth[split] = []
        for img_path in progress(imgs, f"checking {split}", "img"):
            png = ann_dir / img_path.relative_to(img_dir).with_suffix(".png")
            for path, what in ((img_path, "an image file"), (png, "a depth PNG")):
                if path.is_dir():
                    raise NYUFormatError(f"{path} is a folder, not {what}; replace it with the file")
            if not png.is_file():
                raise NYUFormatError(f"{img_path} has no depth map {png}")
            depth = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
            if depth is None:
                raise NYUFormatError(f"{png}: not a readable PNG")
            problem = depth_png_problem(depth)
            if problem:
                raise NYUFormatError(f"{png}: {problem} (write it with nf-plugins prepare-nyu)")
            try:
                w, h = decoded_size(img_path)
                decoded_size(png)  # cv2 reads a truncated PNG without an error; PIL does not
            except ValueError as e:
                raise NYUFormatError(str(e)) from e
            if depth.shape != (h, w):
                raise NYUFormatError(f"{png}: depth {depth.shape} does not match image {img_path} ({h}, {w})")
            deepest = int(depth.max())
            if deepest > max_mm:
                raise NYUFormatError(
                    f"{png}: depth up to {deepest} mm ({deepest / MM_PER_M:.1f} m), "
                    f"beyond the {MAX_DEPTH_M:g} m "
                    "the NYU toolbox clips Kinect depth to: the PNG must hold millimetres (metres x 1000), "
                    "not a finer or saturated scale"
                )
            if deepest == 0:
                no_depth[split].append(png)
        counts[split] = len(imgs)
    return counts, no_depth


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nf-plugins prepare-nyu``'s arguments."""
    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument(
        "source", type=Path, nargs="?", help="nyu_depth_v2_labeled.mat, or mmseg's nyu.zip / folder"
    )
    parser.add_argument("--splits", type=Path, help="official splits.mat (required with a .mat source)")
    parser.add_argument(
        "-o", "--out-dir", type=Path, help="default: data/nyu_labeled for a .mat, else data/nyu"
    )
    parser.add_argument("--check", type=Path, metavar="DIR", help="only check an existing mmseg NYU layout")
    parser.add_argument(
        "--float-images",
        choices=sorted(FLOAT_IMAGE_SCALE),
        help="a .mat whose 'images' are floats: the range they use (0-1 is scaled by 255); uint8 needs none",
    )


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Convert (or, with ``--check``, only check) and print the split sizes. The output folder and the
    source are checked before anything is read: a bad ``-o`` fails before gigabytes of input."""
    if args.check is not None:
        root = args.check
    else:
        if args.source is None:
            parser.error("give a source (.mat or mmseg's nyu.zip) or --check DIR")
        is_mat = args.source.suffix == ".mat"
        if is_mat and args.splits is None:
            parser.error("a .mat source needs --splits splits.mat (the official NYU train/test split)")
        root = args.out_dir or Path("data/nyu_labeled" if is_mat else "data/nyu")
        check_output_dir(root, "-o/--out-dir")
        if not args.source.exists():
            raise FileNotFoundError(f"{args.source} does not exist")
        if is_mat:
            convert_labeled_mat(args.source, args.splits, root, float_images=args.float_images)
        else:
            convert_mmseg_zip(args.source, root)
    counts, no_depth = scan_layout(root)
    _warn_no_depth(counts, no_depth)
    empty = sum(map(len, no_depth.values()))
    summary = ", ".join(f"{k} {v} images" for k, v in counts.items())
    if empty:
        summary += f"; {empty} image{'s' if empty > 1 else ''} without depth (see the warning)"
    print(f"NYU layout OK at {root}: {summary}")

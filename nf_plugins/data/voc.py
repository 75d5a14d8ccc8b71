"""Pascal VOC 2012 + SBD -> mmseg's VOCaug layout (what ``configs/_base_/datasets/pascal_voc12_aug.py``
reads): ``VOCdevkit/VOC2012/SegmentationClassAug/*.png`` from SBD's ``cls/*.mat`` and the split files
``ImageSets/Segmentation/aug.txt`` (SBD minus VOC train/val) and ``trainaug.txt`` (10,582 ids).

Same conversion as mmseg's ``tools/dataset_converters/voc_aug.py``, plus what it lacks: safe tar
extraction, label and size checks naming the file, atomic writes and a count check that says which
list is short. Command line (``nf-plugins prepare-voc``, or ``python tools/prepare_voc.py``)::

    nf-plugins prepare-voc --voc-tar VOCtrainval_11-May-2012.tar --sbd-tar benchmark.tgz --out data
    nf-plugins prepare-voc --voc-dir data/VOCdevkit/VOC2012 --sbd-dir data/benchmark_RELEASE

Result: data/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,SegmentationClassAug} and
ImageSets/Segmentation/{train,val,aug,trainaug}.txt (1,464 + 9,118 = 10,582 train, 1,449 val).

Nothing is read or written outside --out and the VOC/SBD folders: archives extract only their plain
files and folders (links are skipped and named), a member named outside --out refuses the archive,
split ids must be VOC ids (2007_000032), and the output folders are checked before any work.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import re
import sys
import tarfile
from collections.abc import Iterable

import numpy as np
from PIL import Image
from scipy.io import loadmat

from nf_plugins.atomic import atomic_output, atomic_write_text
from nf_plugins.data.image_files import decoded_array, decoded_size, require_file
from nf_plugins.data.labels import check_seg_mask
from nf_plugins.data.safe_paths import check_inside, check_relative_name
from nf_plugins.errors import UserInputError
from nf_plugins.outputs import check_output_dir
from nf_plugins.progress import progress

TRAINAUG_LEN = 10582  # VOC2012 train + SBD train/val, minus VOC2012 val
VAL_LEN = 1449
# Every id in VOC2007-2012 and SBD is year_index, e.g. 2007_000032 (VOC2012 train) or 2008_000002 (SBD);
# ids become file names, so anything else (a/../x, /abs/x) is refused rather than joined into a path.
VOC_ID = re.compile(r"\d{4}_\d{6}")


class UnsafeMemberError(tarfile.FilterError):
    """A tar member whose name is absolute, has ``..`` or resolves outside the extraction folder."""

    def __init__(self, tarinfo: tarfile.TarInfo, message: str) -> None:
        self.tarinfo = tarinfo
        super().__init__(message)


def voc_palette() -> list[int]:
    """The VOC colour map (bit-interleaved), 256 RGB triplets flattened, as in the devkit's PNGs."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def _check_member_name(m: tarfile.TarInfo, tar_path: str, dest: str) -> None:
    try:
        check_relative_name(m.name, f"{tar_path}: member ")
        check_inside(osp.join(dest, m.name), dest, f"{tar_path}: member {m.name!r} would be written at ")
    except ValueError as e:
        raise UnsafeMemberError(m, f"{e}; nothing of this archive was extracted") from e


def _describe(m: tarfile.TarInfo) -> str:
    if m.issym() or m.islnk():
        return f"{m.name!r} ({'symbolic' if m.issym() else 'hard'} link to {m.linkname!r})"
    return f"{m.name!r} ({'FIFO' if m.isfifo() else 'device' if m.isdev() else f'type {m.type!r}'})"


def safe_extract(tar_path: str, dest: str) -> list[str]:
    """Extract the plain files and folders of a VOC/SBD tarball; returns the members it skipped.

    Every name is checked first (relative, no ``..``, inside ``dest`` even through links already on
    disk), so an archive with one bad name extracts nothing. Links and special files are never
    extracted: the releases' data are plain files, and the ``data`` filter of Python < 3.11.13 / 3.12.11
    can be bypassed with crafted links (CVE-2025-4517); a link that split ids could walk through
    (``cls/a -> .`` with id ``a/../../x``) does not exist on disk. The filter still checks each file.
    """
    if not osp.isfile(tar_path):
        raise FileNotFoundError(f"archive {tar_path!r} does not exist")
    with tarfile.open(tar_path) as tar:
        members = tar.getmembers()
        for m in members:
            _check_member_name(m, tar_path, dest)
        plain = [m for m in members if m.isfile() or m.isdir()]
        for m in progress(plain, f"extract {osp.basename(tar_path)}", "file"):
            tar.extract(m, dest, filter="data")
    return [_describe(m) for m in members if not (m.isfile() or m.isdir())]


def read_sbd_mat(path: str) -> np.ndarray:
    """The class mask ``GTcls.Segmentation`` of an SBD ``cls/*.mat`` file, as uint8."""
    try:
        gt = loadmat(path)["GTcls"]
        seg = np.asarray(gt["Segmentation"][0, 0])
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(f"{path}: not an SBD class file (expected struct GTcls.Segmentation): {e}") from e
    if seg.ndim != 2 or not np.issubdtype(seg.dtype, np.integer):
        raise ValueError(
            f"{path}: GTcls.Segmentation must be a 2-D integer mask, got {seg.dtype} {seg.shape}"
        )
    check_seg_mask(seg, path)  # before the cast, which would wrap -1 to 255 (ignore)
    return seg.astype(np.uint8)


def save_palette_png(mask: np.ndarray, path: str) -> None:
    """Save a label mask as a VOC palette PNG, atomically."""
    img = Image.fromarray(mask, mode="P")
    img.putpalette(voc_palette())
    with atomic_output(path) as tmp:
        img.save(tmp, format="PNG")


def _read_ids(path: str) -> list[str]:
    """The ids of a split file, each a VOC id (:data:`VOC_ID`) listed once."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"split file {path!r} does not exist")
    first_line: dict[str, int] = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            img_id = line.strip()
            if not img_id:
                continue
            if not VOC_ID.fullmatch(img_id):
                raise ValueError(
                    f"{path}, line {n}: {img_id!r} is not a VOC image id (year_index, e.g. 2007_000032); "
                    "ids name files, so nothing else is accepted"
                )
            if img_id in first_line:
                raise ValueError(
                    f"{path}: id {img_id!r} is listed twice (lines {first_line[img_id]} and {n}); "
                    "each image must be listed once, or the split counts it twice"
                )
            first_line[img_id] = n
    return list(first_line)


def _write_ids(path: str, ids: Iterable[str]) -> None:
    atomic_write_text(path, "".join(i + "\n" for i in ids))


def _check_pair(voc_root: str, img_id: str, seg_dir: str) -> None:
    img_path = osp.join(voc_root, "JPEGImages", img_id + ".jpg")
    seg_path = osp.join(voc_root, seg_dir, img_id + ".png")
    require_file(img_path, "an image file", "listed in the splits")
    require_file(seg_path, "a mask PNG", "listed in the splits")
    (w, h), mask = decoded_size(img_path), decoded_array(seg_path)
    check_seg_mask(mask, seg_path, (h, w), img_path)


def prepare_vocaug(
    voc_root: str, sbd_root: str, expect_trainaug: int = TRAINAUG_LEN, expect_val: int = VAL_LEN
) -> dict[str, int]:
    """Convert SBD to ``voc_root/SegmentationClassAug``, write ``aug.txt``/``trainaug.txt``, check all.

    ``voc_root`` is ``.../VOCdevkit/VOC2012``; ``sbd_root`` is ``.../benchmark_RELEASE`` (holding
    ``dataset/cls`` and ``dataset/{train,val}.txt``). Returns the split sizes.
    """
    splits = osp.join(voc_root, "ImageSets", "Segmentation")
    cls_dir = osp.join(sbd_root, "dataset", "cls")
    for p in (osp.join(voc_root, "JPEGImages"), osp.join(voc_root, "SegmentationClass"), splits, cls_dir):
        if not osp.isdir(p):
            raise FileNotFoundError(
                f"{p} is not a directory: expected VOC2012 in {voc_root} and SBD in {sbd_root}"
            )
    out_dir = osp.join(voc_root, "SegmentationClassAug")
    for d in (out_dir, splits):  # outputs: inside voc_root (no link out of it) and writable, before any work
        check_inside(d, voc_root)
        check_output_dir(d, "output folder")
    train, val = _read_ids(osp.join(splits, "train.txt")), _read_ids(osp.join(splits, "val.txt"))
    sbd = _read_ids(osp.join(sbd_root, "dataset", "train.txt")) + _read_ids(
        osp.join(sbd_root, "dataset", "val.txt")
    )
    if len(val) != expect_val:
        raise ValueError(f"{osp.join(splits, 'val.txt')} lists {len(val)} images, expected {expect_val}")
    voc_ids = set(train) | set(val)
    aug = sorted(set(sbd) - voc_ids)
    trainaug = sorted(set(train) | set(aug))
    if len(trainaug) != expect_trainaug:
        raise ValueError(
            f"VOC train ({len(set(train))}) + SBD train/val not in VOC val ({len(aug)}) = {len(trainaug)} "
            f"images, expected {expect_trainaug}: is the SBD release (benchmark.tgz) complete?"
        )
    os.makedirs(out_dir, exist_ok=True)
    for img_id in progress(aug, "SBD .mat -> SegmentationClassAug", "mask"):
        mat = osp.join(cls_dir, img_id + ".mat")
        require_file(mat, "an SBD class file", "listed in SBD's train/val.txt")
        save_palette_png(read_sbd_mat(mat), osp.join(out_dir, img_id + ".png"))
    for img_id in progress(aug, "check aug pairs", "pair"):
        _check_pair(voc_root, img_id, "SegmentationClassAug")
    for img_id in progress(train + val, "check VOC pairs", "pair"):
        _check_pair(voc_root, img_id, "SegmentationClass")
    _write_ids(osp.join(splits, "aug.txt"), aug)
    _write_ids(osp.join(splits, "trainaug.txt"), trainaug)
    return dict(train=len(train), aug=len(aug), trainaug=len(trainaug), val=len(val))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nf-plugins prepare-voc``'s arguments."""
    parser.description, parser.formatter_class = __doc__, argparse.RawDescriptionHelpFormatter
    parser.add_argument("--voc-tar", help="VOCtrainval_11-May-2012.tar")
    parser.add_argument("--sbd-tar", help="SBD benchmark.tgz")
    parser.add_argument("--out", default="data", help="extract the archives here (default: data)")
    parser.add_argument(
        "--voc-dir", help="already extracted VOCdevkit/VOC2012 (default: OUT/VOCdevkit/VOC2012)"
    )
    parser.add_argument(
        "--sbd-dir", help="already extracted benchmark_RELEASE (default: OUT/benchmark_RELEASE)"
    )
    parser.add_argument("--expect-trainaug", type=int, help="count check of trainaug.txt (default: 10,582)")
    parser.add_argument("--expect-val", type=int, help="count check of val.txt (default: 1,449)")


def _check_args(args: argparse.Namespace) -> None:
    """Everything that can be known before extracting: the archives exist, the folders can be written."""
    for flag, tar in (("--voc-tar", args.voc_tar), ("--sbd-tar", args.sbd_tar)):
        if tar and not osp.isfile(tar):
            kind = "is a folder (give it as --voc-dir/--sbd-dir)" if osp.isdir(tar) else "does not exist"
            raise FileNotFoundError(f"{flag} {tar} {kind}")
    if args.voc_tar or args.sbd_tar:
        check_output_dir(args.out, "--out")
    if args.voc_dir:  # an extracted VOC2012: its SegmentationClassAug and split lists are written
        check_output_dir(args.voc_dir, "--voc-dir")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Extract the archives given, convert SBD, check every pair and the counts, print the split sizes."""
    voc_dir = args.voc_dir or osp.join(args.out, "VOCdevkit", "VOC2012")
    sbd_dir = args.sbd_dir or osp.join(args.out, "benchmark_RELEASE")
    _check_args(args)
    for tar in (args.voc_tar, args.sbd_tar):
        try:
            skipped = safe_extract(tar, args.out) if tar else []
        except tarfile.TarError as e:  # a bad archive is the user's to fix: one line, not a traceback
            raise UserInputError(str(e)) from e
        if skipped:  # the releases hold only files and folders: say what was left out, and why
            print(
                f"prepare-voc: warning: {tar}: {len(skipped)} link or special member(s) not extracted "
                f"(only plain files and folders are): {', '.join(skipped[:5])}"
                + (", ..." if len(skipped) > 5 else ""),
                file=sys.stderr,
            )
    expect_trainaug = TRAINAUG_LEN if args.expect_trainaug is None else args.expect_trainaug
    expect_val = VAL_LEN if args.expect_val is None else args.expect_val
    counts = prepare_vocaug(voc_dir, sbd_dir, expect_trainaug, expect_val)
    print(f"VOCaug ready in {voc_dir}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))

"""Data preparation (``nf-plugins prepare-voc`` / ``prepare-nyu``, the tools) under hostile and wrong input.

Security: no archive member, split entry or pre-planted link makes a tool read or write outside its
extraction and output folders. Every case snapshots the whole tmp tree outside the tool's folders
(paths, file types, link targets and bytes) before and after the run, and requires them equal.
Data checks: NYU value ranges (depth in metres within the sensor's 10 m, images uint8 or explicitly
scaled floats), split ids and indices, and output paths checked before any expensive work.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
scipy_io = pytest.importorskip("scipy.io")

from nf_plugins.data.synthetic_voc import make_synthetic_voc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


from nf_plugins.cli import main as nf_plugins_main  # noqa: E402


def _exit_status(command: str, argv: list[str]) -> int:
    """``nf-plugins COMMAND ARGV`` in process: 0, or the status of its one-line error (2, the CLI's
    convention; the tools' own ``main`` returned 1 before they became thin wrappers)."""
    try:
        return nf_plugins_main([command, *argv])
    except SystemExit as e:
        return e.code


def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Every path under ``root`` (links not followed) outside ``skip``: file type, link target, bytes."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if any(p == s or s in p.parents for s in skip):
                continue
            mode = os.lstat(p).st_mode
            content = os.readlink(p) if stat.S_ISLNK(mode) else p.read_bytes() if stat.S_ISREG(mode) else None
            found[str(p.relative_to(root))] = (stat.S_IFMT(mode), content)
    return found


# ================================================================ VOC + SBD
def _voc_src(root: Path) -> dict[str, int]:
    return make_synthetic_voc(str(root), n_train=4, n_val=2, n_sbd_extra=3, size=(48, 40))


def _voc_run(voc: Path, sbd: Path, trainaug: int, val: int, capsys) -> tuple[int, str]:
    args = ["--voc-dir", str(voc), "--sbd-dir", str(sbd)]
    rc = _exit_status("prepare-voc", args + ["--expect-trainaug", str(trainaug), "--expect-val", str(val)])
    return rc, capsys.readouterr().err


def _append_id(path: Path, img_id: str) -> None:
    path.write_text(path.read_text() + img_id + "\n")


def _copy_pair(src_voc: Path, img_id: str, stem: Path) -> None:
    """An image + mask pair at ``stem``.jpg/.png (somewhere outside the VOC folder)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src_voc / "JPEGImages" / f"{img_id}.jpg", stem.with_suffix(".jpg"))
    shutil.copy(src_voc / "SegmentationClass" / f"{img_id}.png", stem.with_suffix(".png"))


def _tar_tree(out: Path, src: Path, top: str, extra=()) -> Path:
    """A release-like tar of ``src/top``, plus ``extra`` hand-made members ``(TarInfo, bytes | None)``."""
    with tarfile.open(out, "w") as tar:
        tar.add(src / top, arcname=top)
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def _member(name: str, kind: int, link: str = "", data: bytes | None = None):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o755 if kind == tarfile.DIRTYPE else 0o644
    if data is not None:
        info.size = len(data)
    return info, data


def test_sbd_tar_with_relative_symlinks_and_dotdot_id_writes_nothing_outside(tmp_path, capsys):
    """The issue's attack: symlinks ``SegmentationClassAug/a -> .`` and ``cls/a -> d1/d2`` (both inside the
    extraction folder, so tarfile's ``data`` filter allows them) make the SBD id ``a/../../../../x`` read
    ``benchmark_RELEASE/x.mat`` and write ``x.png`` one folder above ``--out``."""
    src = tmp_path / "src"
    counts = _voc_src(src)
    mat = (src / "benchmark_RELEASE/dataset/cls").iterdir().__next__().read_bytes()
    sbd_train = (src / "benchmark_RELEASE/dataset/train.txt").read_text() + "a/../../../../x\n"
    extra = [
        _member("VOCdevkit/VOC2012/SegmentationClassAug", tarfile.DIRTYPE),
        _member("VOCdevkit/VOC2012/SegmentationClassAug/a", tarfile.SYMTYPE, "."),
        _member("benchmark_RELEASE/dataset/cls/d1/d2", tarfile.DIRTYPE),
        _member("benchmark_RELEASE/dataset/cls/a", tarfile.SYMTYPE, "d1/d2"),
        _member("benchmark_RELEASE/x.mat", tarfile.REGTYPE, data=mat),
        _member("benchmark_RELEASE/dataset/train.txt", tarfile.REGTYPE, data=sbd_train.encode()),
    ]
    voc_tar = _tar_tree(tmp_path / "voc.tar", src, "VOCdevkit")
    sbd_tar = _tar_tree(tmp_path / "sbd.tar", src, "benchmark_RELEASE", extra)
    out = tmp_path / "out"
    before = snapshot(tmp_path, skip=(out,))
    args = ["--voc-tar", str(voc_tar), "--sbd-tar", str(sbd_tar), "--out", str(out)]
    rc = _exit_status(
        "prepare-voc", args + ["--expect-trainaug", str(counts["trainaug"] + 1), "--expect-val", "2"]
    )
    err = capsys.readouterr().err
    assert snapshot(tmp_path, skip=(out,)) == before  # today: x.png appears next to out/
    assert rc == 2
    assert "sbd.tar: 2 link or special member(s) not extracted" in err  # the links never reach the disk
    assert "'VOCdevkit/VOC2012/SegmentationClassAug/a' (symbolic link to '.')" in err
    assert not os.path.lexists(out / "VOCdevkit/VOC2012/SegmentationClassAug/a")
    assert not os.path.lexists(out / "benchmark_RELEASE/dataset/cls/a")
    assert "line 5: 'a/../../../../x' is not a VOC image id" in err  # and the id is refused on its own


LINK_MEMBERS = {
    "voc_symlink": ("voc", _member("VOCdevkit/VOC2012/JPEGImages/link", tarfile.SYMTYPE, "."),
                    "symbolic link to '.'"),
    "voc_hardlink": ("voc", _member("VOCdevkit/VOC2012/hard.txt", tarfile.LNKTYPE,
                                    "VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt"), "hard link to"),
    "sbd_symlink": ("sbd", _member("benchmark_RELEASE/dataset/cls/link", tarfile.SYMTYPE, "../img"),
                    "symbolic link to '../img'"),
    "sbd_hardlink": ("sbd", _member("benchmark_RELEASE/dataset/hard.txt", tarfile.LNKTYPE,
                                    "benchmark_RELEASE/dataset/train.txt"), "hard link to"),
    "sbd_fifo": ("sbd", _member("benchmark_RELEASE/dataset/pipe", tarfile.FIFOTYPE), "FIFO"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(LINK_MEMBERS))
def test_tar_links_are_never_extracted(tmp_path, capsys, case):
    """A link or special member (even one pointing inside, which the ``data`` filter allows) never reaches
    the disk, so no id or later write can walk through it; the run says which members it left out."""
    which, member, kind = LINK_MEMBERS[case]
    src = tmp_path / "src"
    counts = _voc_src(src)
    voc_tar = _tar_tree(tmp_path / "voc.tar", src, "VOCdevkit", [member] if which == "voc" else [])
    sbd_tar = _tar_tree(tmp_path / "sbd.tar", src, "benchmark_RELEASE", [member] if which == "sbd" else [])
    out = tmp_path / "out"
    before = snapshot(tmp_path, skip=(out,))
    args = ["--voc-tar", str(voc_tar), "--sbd-tar", str(sbd_tar), "--out", str(out)]
    rc = _exit_status(
        "prepare-voc", args + ["--expect-trainaug", str(counts["trainaug"]), "--expect-val", "2"]
    )
    err = capsys.readouterr().err
    assert rc == 0, err  # the release's own files are all there
    assert not os.path.lexists(out / member[0].name)  # today: the link or FIFO is created
    assert f"{which}.tar: 1 link or special member(s) not extracted" in err
    assert f"{member[0].name!r} ({kind}" in err
    assert snapshot(tmp_path, skip=(out,)) == before


@pytest.mark.parametrize("name", ["../escaped.txt", "/abs/escaped.txt", "VOCdevkit/../../escaped.txt"])
def test_tar_member_names_outside_refuse_the_whole_archive(tmp_path, capsys, name):
    src = tmp_path / "src"
    _voc_src(src)
    voc_tar = _tar_tree(tmp_path / "voc.tar", src, "VOCdevkit", [_member(name, tarfile.REGTYPE, data=b"x")])
    out = tmp_path / "out"
    before = snapshot(tmp_path, skip=(out,))
    assert _exit_status("prepare-voc", ["--voc-tar", str(voc_tar), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"voc.tar: member {name!r}" in err and "nothing of this archive was extracted" in err
    assert snapshot(tmp_path, skip=(out,)) == before and not out.exists()


def _bad_id_case(case: str, src: Path, outside: Path) -> tuple[str, str, int, int]:
    """Plant what the hostile id needs, return (split file, id, trainaug count, val count) for today's code
    to get as far as it can."""
    voc, cls = src / "VOCdevkit/VOC2012", src / "benchmark_RELEASE/dataset/cls"
    split, kind = case.rsplit("_", 1)
    if split.startswith("sbd"):
        some_mat = next(cls.iterdir())
        if kind == "dotdot":  # real folders, so the kernel can walk 'a/..'; 5 ups from cls and SCA/a
            (voc / "SegmentationClassAug/a").mkdir(parents=True)
            (cls / "a").mkdir()
            shutil.copy(some_mat, src.parent / "x.mat")
            img_id = "a/../../../../../x"
        else:
            shutil.copy(some_mat, outside / "y.mat")
            img_id = str(outside / "y")
        path = src / "benchmark_RELEASE/dataset" / f"{split[4:]}.txt"
        return str(path), img_id, 8, 2
    first = (voc / "ImageSets/Segmentation/train.txt").read_text().split()[0]
    if kind == "dotdot":  # JPEGImages/../../../../z -> one folder above src
        _copy_pair(voc, first, src.parent / "z")
        img_id = "../../../../z"
    else:
        _copy_pair(voc, first, outside / "z")
        img_id = str(outside / "z")
    path = voc / "ImageSets/Segmentation" / f"{split[4:]}.txt"
    return str(path), img_id, 8 if split == "voc_train" else 7, 3 if split == "voc_val" else 2


BAD_ID_CASES = [
    f"{s}_{k}" for s in ("voc_train", "voc_val", "sbd_train", "sbd_val") for k in ("dotdot", "abs")
]


@pytest.mark.parametrize("case", BAD_ID_CASES)
def test_split_ids_that_are_paths_are_refused(tmp_path, capsys, case):
    """Ids in each of the four split inputs (VOC train/val, SBD train/val) are file names: ``..`` and
    absolute ids would read or write outside the folders; they must match the VOC id pattern."""
    src, outside = tmp_path / "src", tmp_path / "outside"
    outside.mkdir()
    _voc_src(src)
    split_file, img_id, trainaug, val = _bad_id_case(case, src, outside)
    _append_id(Path(split_file), img_id)
    voc, sbd = src / "VOCdevkit/VOC2012", src / "benchmark_RELEASE"
    before = snapshot(tmp_path, skip=(voc / "SegmentationClassAug", voc / "ImageSets/Segmentation"))
    rc, err = _voc_run(voc, sbd, trainaug, val, capsys)
    assert snapshot(tmp_path, skip=(voc / "SegmentationClassAug", voc / "ImageSets/Segmentation")) == before
    assert rc == 2  # today: exit 0 with the outside pair listed (VOC), or a PNG written outside (SBD)
    assert f"{Path(split_file).name}, line" in err and f"{img_id!r} is not a VOC image id" in err
    assert not (voc / "ImageSets/Segmentation/trainaug.txt").exists()


@pytest.mark.parametrize("folder", ["SegmentationClassAug", "ImageSets/Segmentation"])
def test_output_folder_linked_outside_is_refused(tmp_path, capsys, folder):
    """A folder source whose output folder is a symlink out of the VOC folder: nothing is written there."""
    src, outside = tmp_path / "src", tmp_path / "outside"
    counts = _voc_src(src)
    voc = src / "VOCdevkit/VOC2012"
    if folder == "ImageSets/Segmentation":  # the split files are read from there too: move them along
        shutil.move(voc / folder, outside)
    else:
        outside.mkdir()
    (voc / folder).symlink_to(outside)
    before = snapshot(tmp_path)
    rc, err = _voc_run(voc, src / "benchmark_RELEASE", counts["trainaug"], counts["val"], capsys)
    assert snapshot(tmp_path) == before  # today: the PNGs or aug.txt/trainaug.txt land in outside/
    assert rc == 2 and f"{voc / folder} resolves to {outside.resolve()}, outside {voc.resolve()}" in err


def test_output_files_planted_as_links_never_write_through(tmp_path, capsys):
    """A symlink or hard link planted at an output file's name is replaced, never written through: the
    outside files keep their bytes (the writers go through a temp file + ``os.replace``)."""
    src, outside = tmp_path / "src", tmp_path / "outside"
    counts = _voc_src(src)
    outside.mkdir()
    voc = src / "VOCdevkit/VOC2012"
    aug_id = (src / "benchmark_RELEASE/dataset/train.txt").read_text().split()[0]
    for name in ("victim_sym.png", "victim_hard.txt"):
        (outside / name).write_bytes(b"precious")
    (voc / "SegmentationClassAug").mkdir()
    (voc / "SegmentationClassAug" / f"{aug_id}.png").symlink_to(outside / "victim_sym.png")
    os.link(outside / "victim_hard.txt", voc / "ImageSets/Segmentation/aug.txt")
    rc, err = _voc_run(voc, src / "benchmark_RELEASE", counts["trainaug"], counts["val"], capsys)
    assert rc == 0, err
    assert [(outside / n).read_bytes() for n in ("victim_sym.png", "victim_hard.txt")] == [b"precious"] * 2
    assert not (voc / "SegmentationClassAug" / f"{aug_id}.png").is_symlink()


def test_duplicate_ids_are_refused_not_counted_twice(tmp_path, capsys):
    src = tmp_path / "src"
    counts = _voc_src(src)
    voc = src / "VOCdevkit/VOC2012"
    val = voc / "ImageSets/Segmentation/val.txt"
    first = val.read_text().split()[0]
    val.write_text(f"{first}\n{first}\n")  # 1 image listed twice: today it passes --expect-val 2
    rc, err = _voc_run(voc, src / "benchmark_RELEASE", counts["trainaug"], 2, capsys)
    assert rc == 2
    assert f"val.txt: id {first!r} is listed twice (lines 1 and 2)" in err


def test_folder_in_place_of_a_jpeg_is_named_as_a_folder(tmp_path, capsys):
    src = tmp_path / "src"
    counts = _voc_src(src)
    voc = src / "VOCdevkit/VOC2012"
    img_id = (voc / "ImageSets/Segmentation/train.txt").read_text().split()[0]
    jpg = voc / "JPEGImages" / f"{img_id}.jpg"
    jpg.unlink()
    jpg.mkdir()
    rc, err = _voc_run(voc, src / "benchmark_RELEASE", counts["trainaug"], counts["val"], capsys)
    assert rc == 2
    assert f"{jpg} is a folder, not an image file" in err and "missing" not in err  # today: "is missing"


# ================================================================ NYU
def _scene(i: int, h: int = 24, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    depth = 1.0 + 4.0 * xx / w + 2.0 * yy / h + 0.5 * i  # metres, 1..7.5
    rgb = np.stack([255 * xx / w, 255 * yy / h, np.full_like(xx, 40.0 * i)], -1)
    return rgb.astype(np.uint8), depth.astype(np.float32)


def _nyu_zip(path: Path, lines: dict[str, list[str]] | None = None, extra=()) -> None:
    """mmseg's NYU zip (``nyu/<scene>/rgb_X.jpg``, ``sync_depth_X.png`` in mm, ``nyu/nyu_<split>.txt``);
    ``lines`` adds list entries, ``extra`` adds (ZipInfo, bytes) members."""
    with zipfile.ZipFile(path, "w") as zf:
        for split, ids in (("train", [1, 2]), ("test", [3])):
            entries = []
            for i in ids:
                rgb, depth = _scene(i)
                zf.writestr(f"nyu/s{i}/rgb_{i:05d}.jpg", cv2.imencode(".jpg", rgb)[1].tobytes())
                mm = (depth * 1000).astype(np.uint16)
                zf.writestr(f"nyu/s{i}/sync_depth_{i:05d}.png", cv2.imencode(".png", mm)[1].tobytes())
                entries.append(f"/s{i}/rgb_{i:05d}.jpg /s{i}/sync_depth_{i:05d}.png 518.8579")
            entries += (lines or {}).get(split, [])
            zf.writestr(f"nyu/nyu_{split}.txt", "\n".join(entries) + "\n")
        for info, data in extra:
            zf.writestr(info, data)


@pytest.fixture
def nyu_scratch(tmp_path, monkeypatch):
    """Temp folders (the zip's extraction folder) go under tmp_path/scratch, so the snapshot sees them."""
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


def _victims(tmp_path: Path) -> None:
    rgb, depth = _scene(9)
    cv2.imwrite(str(tmp_path / "victim.jpg"), rgb)
    cv2.imwrite(str(tmp_path / "victim.png"), (depth * 1000).astype(np.uint16))


NYU_ENTRY_CASES = {  # the zip is extracted to scratch/tmpXXXX/nyu: 3 ups reach tmp_path
    "train_image_dotdot": ("train", "../../../victim.jpg /s1/sync_depth_00001.png 1"),
    "train_depth_dotdot": ("train", "/s1/rgb_00001.jpg ../../../victim.png 1"),
    "test_image_dotdot": ("test", "../../../victim.jpg /s3/sync_depth_00003.png 1"),
    "test_depth_dotdot": ("test", "/s3/rgb_00003.jpg ../../../victim.png 1"),
    "train_image_abs": ("train", "{tmp}/victim.jpg /s1/sync_depth_00001.png 1"),
    "test_depth_abs": ("test", "/s3/rgb_00003.jpg {tmp}/victim.png 1"),
}


@pytest.mark.parametrize("case", sorted(NYU_ENTRY_CASES))
def test_nyu_zip_list_entries_cannot_reach_outside(tmp_path, nyu_scratch, capsys, case):
    """mmseg's converter ``shutil.move``s each listed file: a ``..`` entry would move a file from outside
    the extraction folder to outside ``-o``. Every entry of both lists must stay inside the zip."""
    split, line = NYU_ENTRY_CASES[case]
    _victims(tmp_path)
    _nyu_zip(tmp_path / "nyu.zip", {split: [line.format(tmp=tmp_path)]})
    out = tmp_path / "o" / "nyu"
    before = snapshot(tmp_path, skip=(out,))
    rc = _exit_status("prepare-nyu", [str(tmp_path / "nyu.zip"), "-o", str(out)])
    err = capsys.readouterr().err
    assert snapshot(tmp_path, skip=(out,)) == before  # today: victim.* moved to tmp_path/o/
    assert rc == 2 and f"nyu_{split}.txt, line {3 if split == 'train' else 2}:" in err  # after the good lines
    if "dotdot" in case:
        assert "'..' is not allowed" in err
    else:  # mmseg reads '/x/y' as 'x/y' inside the zip (its lists start with '/'): it is simply not there
        assert "is not in the archive" in err
    assert not any(out.rglob("*.*"))  # checked before anything is moved


def test_nyu_zip_symlink_entry_is_refused(tmp_path, nyu_scratch, capsys):
    """A zip entry with symlink mode bits: zipfile would write the link text as a file; refused by name."""
    info = zipfile.ZipInfo("nyu/s1/evil.jpg")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    _nyu_zip(tmp_path / "nyu.zip", extra=[(info, "../../../victim.jpg")])
    _victims(tmp_path)
    before = snapshot(tmp_path, skip=(tmp_path / "o",))
    rc = _exit_status("prepare-nyu", [str(tmp_path / "nyu.zip"), "-o", str(tmp_path / "o")])
    assert rc == 2 and "nyu.zip: member 'nyu/s1/evil.jpg' is a symbolic link" in capsys.readouterr().err
    assert snapshot(tmp_path, skip=(tmp_path / "o",)) == before


def test_nyu_folder_source_with_symlink_out_is_refused_hardlink_is_harmless(tmp_path, capsys):
    """A folder source (what mmseg's converter also accepts): a listed file that is a symlink resolving
    outside the folder is refused; a hard link is the file itself, and the outside name keeps its bytes."""
    _victims(tmp_path)
    zip_path = tmp_path / "nyu.zip"
    _nyu_zip(zip_path)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(tmp_path / "src")
    src = tmp_path / "src/nyu"
    linked = src / "s1/rgb_00001.jpg"
    linked.unlink()
    linked.symlink_to(tmp_path / "victim.jpg")
    before = snapshot(tmp_path, skip=(tmp_path / "o",))
    rc = _exit_status("prepare-nyu", [str(src), "-o", str(tmp_path / "o")])
    assert rc == 2  # today: 0, the link moved into o/
    err = capsys.readouterr().err
    assert f"nyu_train.txt, line 1: {linked} resolves to {tmp_path / 'victim.jpg'}, outside {src}" in err
    assert snapshot(tmp_path, skip=(tmp_path / "o",)) == before
    linked.unlink()
    os.link(tmp_path / "victim.jpg", linked)
    victim = (tmp_path / "victim.jpg").read_bytes()
    assert _exit_status("prepare-nyu", [str(src), "-o", str(tmp_path / "o2")]) == 0, capsys.readouterr().err
    assert (tmp_path / "victim.jpg").read_bytes() == victim


def test_nyu_duplicate_list_entries_are_refused(tmp_path, nyu_scratch, capsys):
    _nyu_zip(tmp_path / "nyu.zip", {"train": ["/s1/rgb_00001.jpg /s1/sync_depth_00001.png 518.8579"]})
    assert _exit_status("prepare-nyu", [str(tmp_path / "nyu.zip"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nyu_train.txt, line 3: images/train/s1_00001.jpg is already listed on line 1" in err


# ---------------------------------------------------------------- labeled .mat: values and indices
def _labeled_mat(path: Path, n: int = 4, images=None, depths=None) -> None:
    scenes = [_scene(i) for i in range(n)]
    imgs = np.stack([rgb.transpose(2, 1, 0) for rgb, _ in scenes]) if images is None else images
    deps = np.stack([d.T for _, d in scenes]) if depths is None else depths
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=imgs)
        f.create_dataset("depths", data=deps)


def _splits(path: Path, train=(1, 3), test=(2, 4)) -> None:
    arr = {
        "trainNdxs": np.asarray(train, float).reshape(-1, 1),
        "testNdxs": np.asarray(test, float).reshape(-1, 1),
    }
    scipy_io.savemat(path, arr)


def _depths(scale: float = 1.0) -> np.ndarray:
    return np.stack([d.T for _, d in (_scene(i) for i in range(4))]) * scale


def _images(kind: str) -> np.ndarray:
    u8 = np.stack([rgb.transpose(2, 1, 0) for rgb, _ in (_scene(i) for i in range(4))])
    return {"u8": u8, "float01": u8.astype(np.float32) / 255.0, "float0255": u8.astype(np.float32)}[kind]


def _run_mat(tmp_path: Path, capsys, *flags: str, **mat) -> tuple[int, str, str]:
    _labeled_mat(tmp_path / "l.mat", **mat)
    _splits(tmp_path / "s.mat")
    rc = _exit_status(
        "prepare-nyu",
        [str(tmp_path / "l.mat"), "--splits", str(tmp_path / "s.mat"), "-o", str(tmp_path / "o"), *flags],
    )
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize("link", ["external", "soft"])
def test_nyu_mat_datasets_must_live_in_the_file(tmp_path, capsys, link):
    """The labeled .mat is HDF5: 'images' as an external link would read (any) other file's data."""
    _labeled_mat(tmp_path / "other.h5")
    with h5py.File(tmp_path / "l.mat", "w") as f:
        f.create_dataset("depths", data=_depths())
        f.create_dataset("real_images", data=_images("u8"))
        f["images"] = (
            h5py.ExternalLink(str(tmp_path / "other.h5"), "images")
            if link == "external"
            else h5py.SoftLink("/real_images")
        )
    _splits(tmp_path / "s.mat")
    rc = _exit_status(
        "prepare-nyu",
        [str(tmp_path / "l.mat"), "--splits", str(tmp_path / "s.mat"), "-o", str(tmp_path / "o")],
    )
    assert rc == 2  # today: converts the other file's images, exit 0
    assert (
        "l.mat: 'images' is a link or virtual dataset that reads data from elsewhere"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "o").exists()


def test_nyu_depth_in_millimetres_is_refused(tmp_path, capsys):
    rc, out, err = _run_mat(tmp_path, capsys, depths=_depths(1000.0))  # today: every pixel 65535, "layout OK"
    assert rc == 2 and "layout OK" not in out
    deepest = 1000 * (1 + 4 * 31 / 32 + 2 * 23 / 24)  # scene 0's far corner, in "metres" x 1000
    assert f"'depths' image 1 (train) reaches {deepest:.1f} m" in err and "millimetres? divide by 1000" in err
    assert not any((tmp_path / "o").rglob("*.png"))


def test_nyu_negative_depth_is_refused(tmp_path, capsys):
    d = _depths()
    d[1, 0, 0] = -0.5
    rc, _, err = _run_mat(tmp_path, capsys, depths=d)
    assert rc == 2 and "'depths' image 2 (test) has negative depth -0.5 m" in err
    assert [p for p in (tmp_path / "o").rglob("*") if p.is_file()] == []  # train's 1 and 3 were removed


def test_nyu_image_without_any_valid_depth_is_refused(tmp_path, capsys):
    d = _depths()
    d[2] = 0.0  # image 3 (train): no pixel with depth
    rc, _, err = _run_mat(tmp_path, capsys, depths=d)
    assert rc == 2 and "'depths' image 3 (train) has no valid depth (0 everywhere)" in err


def test_nyu_float_images_need_an_explicit_range(tmp_path, capsys):
    """Floats in [0, 1] cast to uint8 became black JPEGs. Rule: uint8 as is; float images only with
    ``--float-images 0-1`` (x 255) or ``0-255`` (rounded), and their values must lie in that range."""
    rc, out, err = _run_mat(tmp_path, capsys, images=_images("float01"))
    assert rc == 2 and "layout OK" not in out
    assert "'images' are float32, not uint8: pass --float-images 0-1 or --float-images 0-255" in err
    shutil.rmtree(tmp_path / "o", ignore_errors=True)
    rc, out, err = _run_mat(tmp_path, capsys, "--float-images", "0-1", images=_images("float01"))
    assert rc == 0, err
    assert "images are float32 in 0-1: scaled by 255" in out
    rgb, _ = _scene(0)
    jpg = cv2.imread(str(tmp_path / "o/images/train/nyu_0001.jpg"))[..., ::-1]
    assert np.abs(jpg.astype(int) - rgb.astype(int)).mean() < 2.0  # the picture, not a black frame


def test_nyu_float_images_outside_the_stated_range_are_refused(tmp_path, capsys):
    rc, _, err = _run_mat(tmp_path, capsys, "--float-images", "0-1", images=_images("float0255"))
    assert rc == 2 and "'images' image 1 (train) holds values in 0..247, outside --float-images 0-1" in err


@pytest.mark.parametrize("bad", [2.9, float("nan")])
def test_nyu_split_indices_must_be_integers(tmp_path, capsys, bad):
    _labeled_mat(tmp_path / "l.mat")
    _splits(tmp_path / "s.mat", train=(1, bad), test=(2, 4))  # today: 2.9 -> 2 silently
    rc = _exit_status(
        "prepare-nyu",
        [str(tmp_path / "l.mat"), "--splits", str(tmp_path / "s.mat"), "-o", str(tmp_path / "o")],
    )
    assert rc == 2
    assert f"trainNdxs has non-integer indices [{bad}]" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- the layout check
def _layout(root: Path, depth_mm: np.ndarray) -> Path:
    for split in ("train", "test"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        rgb, _ = _scene(0)
        cv2.imwrite(str(root / "images" / split / "a.jpg"), rgb)
        cv2.imwrite(str(root / "annotations" / split / "a.png"), depth_mm)
    return root


def test_nyu_check_refuses_saturated_depth(tmp_path, capsys):
    root = _layout(tmp_path / "nyu", np.full((24, 32), 65535, np.uint16))
    rc = _exit_status("prepare-nyu", ["--check", str(root)])
    cap = capsys.readouterr()
    assert rc == 2 and "layout OK" not in cap.out  # today: "NYU layout OK"
    assert "a.png: depth up to 65535 mm (65.5 m), beyond the 10 m" in cap.err


def test_nyu_check_counts_images_without_depth(tmp_path, capsys):
    root = _layout(tmp_path / "nyu", np.zeros((24, 32), np.uint16))
    (root / "annotations/train/a.png").unlink()
    cv2.imwrite(str(root / "annotations/train/a.png"), (_scene(0)[1] * 1000).astype(np.uint16))
    assert _exit_status("prepare-nyu", ["--check", str(root)]) == 0
    cap = capsys.readouterr()
    assert "warning: 1 of 1 test images have no valid depth (0 everywhere): " in cap.err
    assert "test/a.png" in cap.err and "NYU layout OK" in cap.out and "1 image without depth" in cap.out


def test_nyu_check_names_a_folder_in_place_of_a_file(tmp_path, capsys):
    root = _layout(tmp_path / "nyu", (_scene(0)[1] * 1000).astype(np.uint16))
    (root / "annotations/test/a.png").unlink()
    (root / "annotations/test/a.png").mkdir()
    assert _exit_status("prepare-nyu", ["--check", str(root)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{root / 'annotations/test/a.png'} is a folder, not a depth PNG" in err
    )  # today: "has no depth map"


# ================================================================ output paths, before any work
def _unwritable(tmp_path: Path, kind: str) -> Path:
    if kind == "under_a_file":
        (tmp_path / "file").write_text("x")
        return tmp_path / "file" / "out"
    if kind == "is_a_file":
        (tmp_path / "out").write_text("x")
        return tmp_path / "out"
    if kind == "read_only_dir":
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        if os.access(ro, os.W_OK):  # root ignores the mode bits
            pytest.skip("running as root: a 0555 folder is writable")
        return ro / "out"
    target = Path("/sys/nf_plugins_out")  # sysfs refuses new entries, even to root
    try:
        target.mkdir()
    except OSError:
        return target
    target.rmdir()
    pytest.skip("/sys accepts new folders here")


UNWRITABLE = ["under_a_file", "is_a_file", "read_only_dir", "sysfs"]


def _sources_never_read(monkeypatch) -> list[str]:
    """The readers of the sources (tarfile, h5py, scipy's loadmat) record a call and fail, so a test can
    prove that the output check came first (the sources hold garbage too: any other reader would fail
    with its own message, not the output folder's)."""
    reads: list[str] = []

    def reader(name):
        def read(*args, **kwargs):
            reads.append(name)
            raise AssertionError(f"{name} read a source before the output folder was checked")

        return read

    monkeypatch.setattr(tarfile, "open", reader("tarfile.open"))
    monkeypatch.setattr(h5py, "File", reader("h5py.File"))
    monkeypatch.setattr(scipy_io, "loadmat", reader("scipy.io.loadmat"))
    return reads


@pytest.mark.parametrize("kind", UNWRITABLE)
def test_prepare_voc_unwritable_out_fails_fast(tmp_path, kind, monkeypatch, capsys):
    """An unwritable --out is refused (one line, exit 2, nothing created) before the archive is opened."""
    (tmp_path / "voc.tar").write_bytes(b"not a tar")
    out = _unwritable(tmp_path, kind)
    before = snapshot(tmp_path)
    reads = _sources_never_read(monkeypatch)
    rc = _exit_status("prepare-voc", ["--voc-tar", str(tmp_path / "voc.tar"), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and reads == [], (reads, err)
    assert err.startswith("nf-plugins prepare-voc: error: --out ") and err.count("\n") == 1, err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", UNWRITABLE)
def test_prepare_nyu_unwritable_out_fails_fast(tmp_path, kind, monkeypatch, capsys):
    """An unwritable -o is refused (one line, exit 2, nothing created) before the .mat or splits are read."""
    (tmp_path / "l.mat").write_bytes(b"not HDF5")
    (tmp_path / "s.mat").write_bytes(b"not MATLAB")
    out = _unwritable(tmp_path, kind)
    before = snapshot(tmp_path)
    reads = _sources_never_read(monkeypatch)
    argv = [str(tmp_path / "l.mat"), "--splits", str(tmp_path / "s.mat"), "-o", str(out)]
    rc = _exit_status("prepare-nyu", argv)
    err = capsys.readouterr().err
    assert rc == 2 and reads == [], (reads, err)
    assert err.startswith("nf-plugins prepare-nyu: error: -o/--out-dir ") and err.count("\n") == 1, err
    assert snapshot(tmp_path) == before

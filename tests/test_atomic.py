"""nf_plugins.atomic: the one mechanism every writer uses (checkpoints, weights, plots, JSON, masks, ONNX)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from nf_plugins.atomic import (
    atomic_output,
    atomic_output_dir,
    atomic_write_bytes,
    check_output_dir,
    recover_dir_swap,
)

# Writes 200 MiB through atomic_output in 1 MiB chunks with pauses, so the parent can kill it mid-write.
_WRITER = r"""
import sys, time
from nf_plugins.atomic import atomic_output
with atomic_output(sys.argv[1]) as tmp:
    print("writing", flush=True)
    with open(tmp, "wb") as f:
        for _ in range(200):
            f.write(b"n" * (1 << 20)); f.flush(); time.sleep(0.02)
"""


def test_sigkill_mid_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "iter_2.pth"
    target.write_bytes(b"good checkpoint")
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    deadline = time.time() + 60
    while not any(
        p.name.startswith(".iter_2.pth.") and p.stat().st_size > (4 << 20) for p in tmp_path.iterdir()
    ):
        assert time.time() < deadline and proc.poll() is None, "the writer never got going"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"good checkpoint"  # never a truncated file under the real name


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["out.json"]


def test_result_has_a_normal_file_mode_and_suffix_for_format_sniffing(tmp_path):
    with atomic_output(tmp_path / "plot.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path  # same folder: os.replace is atomic
        tmp.write_bytes(b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "plot.png").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_missing_folder_is_created_or_refused(tmp_path):
    assert atomic_write_bytes(tmp_path / "a" / "b" / "w.bin", b"1").read_bytes() == b"1"
    with pytest.raises(FileNotFoundError, match=r"output folder '.*nope' does not exist; create it first"):
        with atomic_output(tmp_path / "nope" / "x.png", make_dirs=False):
            pass


# ---- folders: modes under the umask, and a swap cut short between its two renames ----------------------


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_exported_folder_and_files_get_normal_modes_under_umask_022(tmp_path, umask_022):
    """mkdtemp's 0700 and safetensors' 0600 used to reach the result: others could not read an export."""
    import timm

    from nf_plugins.hub import export_for_hub

    folder = export_for_hub(
        timm.create_model("nf_regnet_b0", num_classes=2), tmp_path / "b0", compute_macs=False
    )
    assert folder.stat().st_mode & 0o777 == 0o755  # what mkdir() gives under umask 022
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {
        "model.safetensors": 0o644,
        "config.json": 0o644,
        "README.md": 0o644,
    }  # what open() gives under umask 022


def test_atomic_output_dir_gives_subfolders_the_umask_modes(tmp_path, umask_022):
    with atomic_output_dir(tmp_path / "out") as tmp:
        os.mkdir(tmp / "sub", mode=0o700)
        fd = os.open(tmp / "sub" / "w.bin", os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    assert [(tmp_path / p).stat().st_mode & 0o777 for p in ("out", "out/sub", "out/sub/w.bin")] == [
        0o755,
        0o755,
        0o644,
    ]


# Replaces folder argv[1] with a new one through atomic_output_dir, but dies (os._exit: no cleanup, as
# kill -9) at the second os.replace: the old folder has been moved aside, the new one not yet moved in.
# atomic.py is imported from its folder under another package name, so the child does not import torch.
_SWAP_KILLER = r"""
import importlib, os, sys, types
pkg = types.ModuleType("nfp"); pkg.__path__ = [os.path.dirname(sys.argv[2])]; sys.modules["nfp"] = pkg
atomic = importlib.import_module("nfp.atomic")
calls = []
real_replace = os.replace
def replace(src, dst):
    calls.append(dst)
    if len(calls) == int(sys.argv[3]):
        os._exit(9)
    real_replace(src, dst)
atomic.os.replace = replace
with atomic.atomic_output_dir(sys.argv[1], overwrite=True) as tmp:
    (tmp / "weights.txt").write_text("new")
"""


def _kill_swap(target, at_call: int) -> None:
    import nf_plugins.atomic

    proc = subprocess.run(
        [sys.executable, "-c", _SWAP_KILLER, str(target), nf_plugins.atomic.__file__, str(at_call)]
    )
    assert proc.returncode == 9


def test_overwrite_killed_between_its_renames_is_restored_by_the_next_run(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "weights.txt").write_text("old")
    _kill_swap(target, at_call=2)
    # the simulated kill hit the window: no folder under the name, the old export under a hidden one
    assert not target.exists()
    assert [p.name for p in tmp_path.glob(".export.old.*/export")] == ["export"]

    with pytest.warns(UserWarning, match="restored .*export from .*killed mid-swap"):
        with pytest.raises(FileExistsError, match="overwrite=True"):
            check_output_dir(target)  # the next run (without --overwrite) finds it and puts it back
    assert (target / "weights.txt").read_text() == "old"
    assert not list(tmp_path.glob(".export.old.*"))

    with atomic_output_dir(target, overwrite=True) as tmp:  # and a real overwrite then works
        (tmp / "weights.txt").write_text("new")
    assert (target / "weights.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".export.tmp.")) == ["export"]


def test_old_copy_left_beside_a_complete_folder_is_dropped(tmp_path):
    """A kill after the second rename (before the old copy's rmtree) leaves a complete folder: keep it."""
    target = tmp_path / "export"
    with atomic_output_dir(target) as tmp:
        (tmp / "weights.txt").write_text("new")
    (tmp_path / ".export.old.abc" / "export").mkdir(parents=True)
    assert recover_dir_swap(target) is None
    assert (target / "weights.txt").read_text() == "new" and not list(tmp_path.glob(".export.old.*"))

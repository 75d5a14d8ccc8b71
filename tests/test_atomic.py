"""nf_plugins.atomic: the one mechanism every writer uses (checkpoints, weights, plots, JSON, masks, ONNX)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from nf_plugins.atomic import atomic_output, atomic_write_bytes

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

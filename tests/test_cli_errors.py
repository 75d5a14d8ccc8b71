"""Every ``nf-plugins`` subcommand answers a bad argument or a missing file with one line and exit status 2.

In process (``nf_plugins.cli.main``), each case fails in its argument checks before any model runs; one
subprocess runs the installed console script. ``--debug`` (before or after the subcommand) re-raises the
error, so Python prints its traceback.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from nf_plugins.cli import main
from nf_plugins.errors import USER_ERRORS

VOC_B0 = "nf_plugins::segmentation/fcn_nf-regnet-b0-d16_4xb4-30k_voc12aug-513x513.py"
# subcommand -> [(case, argv, excerpt of the message)]; "{tmp}" is the test's tmp_path. `demo` takes no file.
CASES: dict[str, list[tuple[str, list[str], str]]] = {
    "demo": [("bad_argument", ["--models", "nf_regnet_b9"], "unknown models ['nf_regnet_b9']; choose from")],
    "bench": [
        (
            "bad_argument",
            ["--threads", "0", "--json", "{tmp}/b.json", "--md", "{tmp}/b.md"],
            "threads (--threads) must be an int >= 1, got 0",
        ),
        (
            "missing_file",
            ["--json", "{tmp}/blocker/b.json", "--md", "{tmp}/b.md"],
            "--json '{tmp}/blocker/b.json' cannot be created: '{tmp}/blocker' is not a folder",
        ),
    ],
    "spp": [
        (
            "bad_argument",
            ["nf_resnet26", "--img-size", "8", "--out", "{tmp}/s.png"],
            "--img-size must be >= 32",
        ),
        ("missing_file", ["--from-json", "{tmp}/missing.json", "--out", "{tmp}/s.png"], "missing.json"),
    ],
    "export-onnx": [
        (
            "bad_argument",
            ["nf_regnet_b8", "--out", "{tmp}/m.onnx"],
            "unknown model 'nf_regnet_b8'; did you mean",
        ),
        (
            "missing_file",
            ["nf_regnet_b0", "--out", "{tmp}/m.onnx", "--checkpoint", "{tmp}/missing.safetensors"],
            "checkpoint_path '{tmp}/missing.safetensors' does not exist",
        ),
    ],
    "validate": [
        (
            "bad_argument",
            ["nf_regnet_b0", "--data-dir", "{tmp}", "--batch-size", "0"],
            "--batch-size must be >= 1",
        ),
        (
            "missing_file",
            ["nf_regnet_b0", "--data-dir", "{tmp}/missing"],
            "--data-dir '{tmp}/missing' does not exist",
        ),
    ],
    "collect-results": [
        ("bad_argument", ["{tmp}", "--output", "{tmp}"], "--output '{tmp}' is a folder; give a file path"),
        ("missing_file", ["{tmp}/run"], "{tmp}/run has no test_metrics.json"),
    ],
    "prepare-voc": [
        ("bad_argument", ["--expect-val", "many"], "argument --expect-val: invalid int value: 'many'"),
        (
            "missing_file",
            ["--voc-tar", "{tmp}/missing.tar", "--out", "{tmp}/data"],
            "--voc-tar {tmp}/missing.tar does not exist",
        ),
    ],
    "prepare-nyu": [
        ("bad_argument", ["{tmp}/l.mat", "-o", "{tmp}/o"], "a .mat source needs --splits splits.mat"),
        ("missing_file", ["{tmp}/missing.zip", "-o", "{tmp}/o"], "{tmp}/missing.zip does not exist"),
    ],
    "train": [
        (
            "bad_argument",
            [VOC_B0, "--work-dir", "{tmp}/w", "--cfg-options", "train_cfg.max_iters=2.5"],
            "train_cfg.max_iters=2.5 must be an integer >= 1",
        ),
        ("missing_file", ["{tmp}/missing.py"], "config file '{tmp}/missing.py' does not exist"),
    ],
    "test": [
        ("bad_argument", ["{tmp}/c.py", "{tmp}/blocker", "--out", "{tmp}"], "--out '{tmp}' is a folder"),
        (
            "missing_file",
            ["{tmp}/c.py", "{tmp}/missing.pth"],
            "checkpoint '{tmp}/missing.pth' does not exist",
        ),
    ],
    "demo-segmentation": [
        ("bad_argument", ["--iters", "0"], "--iters must be at least 1, got 0"),
        (
            "missing_file",
            ["--work-dir", "{tmp}/blocker/w"],
            "cannot be created: '{tmp}/blocker' is not a folder",
        ),
    ],
    "demo-depth": [
        ("bad_argument", ["--lr", "nan"], "--lr must be a positive number, got nan"),
        (
            "missing_file",
            ["--work-dir", "{tmp}/blocker/w"],
            "cannot be created: '{tmp}/blocker' is not a folder",
        ),
    ],
    "train-imagenet": [
        (
            "bad_argument",
            ["{tmp}/c.yaml", "--data-dir", "{tmp}", "--output", "{tmp}/run", "--stop-after-epochs", "0"],
            "--stop-after-epochs must be >= 1, got 0",
        ),
        (
            "missing_file",
            ["{tmp}/missing.yaml", "--data-dir", "{tmp}", "--output", "{tmp}/run"],
            "config {tmp}/missing.yaml does not exist; see configs/imagenet/",
        ),
    ],
    "export-hub": [
        (
            "bad_argument",
            ["nf_regnet_b0", "--out", "{tmp}/hub", "--push", "not a repo"],
            "repo id must look like 'ORG_OR_USER/NAME', got 'not a repo'",
        ),
        (
            "missing_file",
            ["{tmp}/missing.pth", "--out", "{tmp}/hub"],
            "training checkpoint '{tmp}/missing.pth' does not exist",
        ),
    ],
}
ALL = [(command, *case) for command, cases in CASES.items() for case in cases]


def _subcommands(capsys) -> list[str]:
    """The subcommands ``nf-plugins --help`` lists."""
    with pytest.raises(SystemExit):
        main(["--help"])
    return re.search(r"\{([\w,-]+)\}", capsys.readouterr().out).group(1).split(",")


def _fill(items: list[str], tmp: Path) -> list[str]:
    return [item.replace("{tmp}", str(tmp)) for item in items]


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    return tmp_path


def test_every_subcommand_has_its_error_cases(capsys):
    assert set(_subcommands(capsys)) == set(CASES)


def test_an_unknown_flag_is_one_line_naming_the_subcommand(capsys):
    """Generic, so a new subcommand is covered without a new case: argparse's error, one line, exit 2."""
    for command in _subcommands(capsys):
        with pytest.raises(SystemExit) as info:
            main([command, "--no-such-flag"])
        err = capsys.readouterr().err
        assert info.value.code == 2, command
        assert err.count("\n") == 1 and err.startswith(f"nf-plugins {command}: error: "), err
        assert re.search(r"unrecognized arguments: --no-such-flag|the following arguments are required", err)
        assert err.rstrip().endswith(f"(see nf-plugins {command} --help)")


@pytest.mark.parametrize(("command", "case", "argv", "excerpt"), ALL, ids=[f"{c[0]}-{c[1]}" for c in ALL])
def test_bad_argument_and_missing_file_exit_2_with_one_line(tmp, capsys, command, case, argv, excerpt):
    before = sorted(tmp.rglob("*"))
    with pytest.raises(SystemExit) as info:
        main([command, *_fill(argv, tmp)])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.count("\n") == 1 and err.startswith(f"nf-plugins {command}: error: "), err
    assert excerpt.replace("{tmp}", str(tmp)) in err
    assert "Traceback" not in err
    assert sorted(tmp.rglob("*")) == before  # refused before any output was written


@pytest.mark.parametrize(("command", "case", "argv", "excerpt"), ALL, ids=[f"{c[0]}-{c[1]}" for c in ALL])
def test_debug_shows_the_traceback(tmp, capsys, command, case, argv, excerpt):
    """``--debug`` re-raises the error itself (Python then prints its traceback), as a global flag and
    after the subcommand (how ``tools/*.py --debug`` passes it)."""
    for args in (["--debug", command, *_fill(argv, tmp)], [command, "--debug", *_fill(argv, tmp)]):
        with pytest.raises(USER_ERRORS) as info:
            main(args)
        assert excerpt.replace("{tmp}", str(tmp)) in " ".join(str(info.value).split())
        assert capsys.readouterr().err == ""


def test_console_script_exits_2_with_one_line(tmp_path):
    script = Path(sys.executable).with_name("nf-plugins")
    proc = subprocess.run(
        [str(script), "export-onnx", "nf_regnet_b8", "--out", str(tmp_path / "m.onnx")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("nf-plugins export-onnx: error: unknown model 'nf_regnet_b8'; did you mean")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []

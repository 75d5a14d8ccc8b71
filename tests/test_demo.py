"""The README's demo command path: CLI prints the table against the paper and runs the models."""

import subprocess
import sys
from pathlib import Path

import pytest

from nf_plugins.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_demo_cli_prints_table_and_runs_models():
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools/demo.py"), "--models", "nf_regnet_b0", "nf_resnet26"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert "| nf_regnet_b0 | 224 | 8.60 | 8.6 |" in out
    assert "nf_resnet26    logits (2, 10) finite" in out


def test_demo_cli_rejects_unknown_model(capsys):
    """tools/demo.py is ``sys.exit(main(["demo", *argv]))``; its process is tested above, the refusal
    in this process (an interpreter start-up less in the default run)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--models", "nf_regnet_b9"])
    assert exit_info.value.code == 2 and "unknown models ['nf_regnet_b9']" in capsys.readouterr().err

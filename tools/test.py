"""Evaluate a checkpoint with any mmseg config: a thin entry point over ``nf-plugins test``
(:mod:`nf_plugins.downstream.commands.test`, ``--help``). Prints the metrics, writes
<work_dir>/test_metrics.json; exits 1 on a NaN/inf metric.

python tools/test.py CONFIG work_dirs/.../iter_30000.pth
"""

import sys

from nf_plugins.cli import main

if __name__ == "__main__":
    if status := main(["test", *sys.argv[1:]]):  # success returns (no SystemExit for runpy callers)
        sys.exit(status)

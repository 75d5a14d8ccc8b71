"""Depth demo on CPU: render a small NYU-layout dataset, fine-tune the paper's depth model, beat the mean.
A thin entry point over ``nf-plugins demo-depth`` (:mod:`nf_plugins.downstream.commands.demo_depth`).

    python tools/demo_depth.py [--iters 1000] [--work-dir DIR]
"""

import sys

from nf_plugins.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo-depth", *sys.argv[1:]]))

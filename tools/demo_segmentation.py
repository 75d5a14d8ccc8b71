"""Demo: fine-tune an NF-RegNet-B0 FCN on a synthetic Pascal VOC-format dataset on CPU, print mIoU.
A thin entry point over ``nf-plugins demo-segmentation``
(:mod:`nf_plugins.downstream.commands.demo_segmentation`).

    python tools/demo_segmentation.py [--iters 300] [--work-dir DIR]
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))  # before torch is imported
    from nf_plugins.cli import main

    sys.exit(main(["demo-segmentation", *sys.argv[1:]]))

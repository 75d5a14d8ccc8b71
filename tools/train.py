"""Train any mmseg config (mmseg's tools/train.py flags): a thin entry point over ``nf-plugins train``
(:mod:`nf_plugins.downstream.commands.train`, ``--help``); CPU-only torchrun works too (gloo).

python tools/train.py configs/segmentation/fcn_nf-resnet50-d16_4xb4-30k_voc12aug-513x513.py
torchrun --nproc_per_node=4 tools/train.py CONFIG --launcher pytorch
"""

import sys

from nf_plugins.cli import main

if __name__ == "__main__":
    if status := main(["train", *sys.argv[1:]]):  # success returns (no SystemExit for runpy callers)
        sys.exit(status)

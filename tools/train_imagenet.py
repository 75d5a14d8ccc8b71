#!/usr/bin/env python
"""The paper's ImageNet recipe: a thin entry point over ``nf-plugins train-imagenet`` (``--help``).

python tools/train_imagenet.py configs/imagenet/nf_regnet_b0.yaml --data-dir /data/in1k --output runs/b0
torchrun --nproc_per_node=8 tools/train_imagenet.py <config> --data-dir ... --output ...   # DDP
"""

import sys

from nf_plugins.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-imagenet", *sys.argv[1:]]))

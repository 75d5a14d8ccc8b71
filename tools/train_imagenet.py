#!/usr/bin/env python
"""The paper's ImageNet recipe: a thin entry point over :mod:`nf_plugins.train.imagenet` (``--help``).

    python tools/train_imagenet.py configs/imagenet/nf_regnet_b0.yaml --data-dir /data/in1k --output runs/b0
    torchrun --nproc_per_node=8 tools/train_imagenet.py <config> --data-dir ... --output ...   # DDP
"""

from nf_plugins.train.imagenet import main

if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Export a model or a training checkpoint to timm's Hub layout: a thin entry point over
``nf-plugins export-hub`` (``--help``; the logic is :mod:`nf_plugins.hub.cli`).

    python tools/export_hub.py runs/b0/last.pth --out hub/nf_regnet_b0.nf_in1k --tag nf_in1k
"""

import sys

from nf_plugins.cli import main

if __name__ == "__main__":
    sys.exit(main(["export-hub", *sys.argv[1:]]))

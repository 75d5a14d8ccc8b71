"""NYU Depth v2 -> mmseg's NYU layout: a thin entry point over ``nf-plugins prepare-nyu``
(:mod:`nf_plugins.data.nyu`; ``--help``).

    python tools/prepare_nyu.py nyu.zip -o data/nyu
    python tools/prepare_nyu.py nyu_depth_v2_labeled.mat --splits splits.mat -o data/nyu_labeled
"""

import sys

from nf_plugins.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare-nyu", *sys.argv[1:]]))

"""Pascal VOC 2012 + SBD -> mmseg's VOCaug layout: a thin entry point over ``nf-plugins prepare-voc``
(:mod:`nf_plugins.data.voc`; ``--help``).

    python tools/prepare_voc.py --voc-tar VOCtrainval_11-May-2012.tar --sbd-tar benchmark.tgz --out data
"""

import sys

from nf_plugins.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare-voc", *sys.argv[1:]]))

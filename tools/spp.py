"""Signal Propagation Plots: ``python tools/spp.py MODEL [MODEL ...]`` or ``--figure N`` (see --help)."""

import sys

from nf_plugins.cli import main

if __name__ == "__main__":
    sys.exit(main(["spp", *sys.argv[1:]]))

"""Demo: the model table against the paper, then every model once on a random batch."""

import sys

from nf_plugins.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))

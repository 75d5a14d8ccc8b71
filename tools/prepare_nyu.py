"""Convert NYU Depth v2 into mmseg's NYU layout: a thin entry point over :mod:`nf_plugins.data.nyu`
(see its docstring, or ``--help``)."""

import sys

from nf_plugins.data.nyu import main

if __name__ == "__main__":
    sys.exit(main())

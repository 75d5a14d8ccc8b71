"""Per-module mutation score of ``make mutation`` (logic: :mod:`nf_plugins.mutation_report`)."""

import sys
from pathlib import Path

from nf_plugins.mutation_report import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], root=Path(__file__).resolve().parents[1]))

"""Per-module mutation score from mutmut's results (``mutants/**/*.meta``), equivalent mutants excluded.

The equivalent mutants are the backticked mutant names in the table of docs/mutation.md, each with the
reason it cannot change behaviour. Score = killed / (mutants - equivalent), where killed includes
timeouts and "no tests" counts as surviving. Exits 1 when a listed equivalent mutant no longer exists or
was killed (the source moved and mutmut renumbered its mutants: re-check the list; a killed one counts as
killed), or when the score is under ``--min-score``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

KILLED = {
    1: "killed",
    3: "killed",
    36: "timeout",
    24: "timeout",
    -24: "timeout",
    152: "timeout",
    255: "timeout",
}
SURVIVED = {0: "survived", 5: "no tests", 33: "no tests"}


def equivalent_mutants(doc: Path) -> set[str]:
    """Mutant names listed in the equivalent-mutant table of ``doc`` (none before it is written)."""
    if not doc.exists():
        return set()
    return set(re.findall(r"^\| `([\w.]+__mutmut_\d+)` \|", doc.read_text(), flags=re.M))


def load_results(mutants_dir: Path) -> dict[str, dict[str, int | None]]:
    """{source module path: {mutant name: exit code (None if not run yet)}}."""
    results = {}
    for meta in sorted(mutants_dir.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if codes:
            results[str(meta.relative_to(mutants_dir))[: -len(".meta")]] = codes
    return results


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    """Print the per-module table; 1 when a listed equivalent mutant is stale or the score is too low.

    ``--mutants`` and ``--doc`` default to ``mutants/`` and ``docs/mutation.md`` under ``root`` (the
    working directory unless given).
    """
    root = Path.cwd() if root is None else root
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=root / "mutants")
    parser.add_argument("--doc", type=Path, default=root / "docs" / "mutation.md")
    parser.add_argument("--min-score", type=float, default=0.0, help="fail below this score (percent)")
    parser.add_argument("--survivors", action="store_true", help="list surviving, non-equivalent mutants")
    args = parser.parse_args(argv)
    results = load_results(args.mutants)
    if not results:
        print(f"no mutmut results under {args.mutants}: run `make mutation` first", file=sys.stderr)
        return 1
    equivalent = equivalent_mutants(args.doc)
    known = {name for codes in results.values() for name in codes}
    stale = sorted(equivalent - known)
    header = f"{'module':45} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'no tests':>8} "
    print(header + f"{'not run':>7} {'equiv.':>6} {'score':>7}")
    total: Counter = Counter()
    survivors = []
    for module, codes in results.items():
        c: Counter = Counter()
        for name, code in codes.items():
            if name in equivalent and code in KILLED:  # a test sees it: not equivalent, the list is stale
                stale.append(name)
                c[KILLED[code]] += 1
            elif name in equivalent:
                c["equivalent"] += 1
            elif code is None:
                c["not run"] += 1
            elif code in KILLED:
                c[KILLED[code]] += 1
            elif code in SURVIVED:
                c[SURVIVED[code]] += 1
                survivors.append(name)
            else:  # segfault / suspicious: the mutant broke the test run, so it was detected
                c["killed"] += 1
        c["mutants"] = len(codes)
        total.update(c)
        print(_row(module, c))
    print(_row("TOTAL", total))
    if args.survivors:
        print("\nsurviving (not listed as equivalent):", *survivors, sep="\n  ")
    if stale:
        print(f"\n{len(stale)} listed equivalent mutants are gone or killed; re-check docs/mutation.md:")
        print(*(f"  {name}" for name in stale), sep="\n")
        return 1
    return 0 if _score(total) >= args.min_score else 1


def _score(c: Counter) -> float:
    denom = c["mutants"] - c["equivalent"] - c["not run"]
    return 100.0 * (c["killed"] + c["timeout"]) / denom if denom else 0.0


def _row(name: str, c: Counter) -> str:
    return (
        f"{name:45} {c['mutants']:7d} {c['killed']:6d} {c['timeout']:7d} {c['survived']:8d} "
        f"{c['no tests']:8d} {c['not run']:7d} {c['equivalent']:6d} {_score(c):6.1f}%"
    )

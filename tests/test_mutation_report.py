"""nf_plugins.mutation_report: the score excludes only equivalent mutants that are still equivalent."""

from __future__ import annotations

import json

from nf_plugins import mutation_report as report

M = "nf_plugins.models.normfree.x_f__mutmut_"


def _write(tmp_path, codes: dict[str, int | None], listed: list[str]) -> list[str]:
    meta = tmp_path / "mutants" / "nf_plugins" / "models" / "normfree.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    doc = tmp_path / "mutation.md"
    doc.write_text("| mutant | why |\n|---|---|\n" + "".join(f"| `{n}` | reason |\n" for n in listed))
    return ["--mutants", str(tmp_path / "mutants"), "--doc", str(doc)]


def test_score_is_killed_over_non_equivalent(tmp_path, capsys):
    # 1 and 3 are killed (pytest's "tests failed" and "interrupted"), 0 survived, 5 "no tests".
    args = _write(tmp_path, {M + "1": 1, M + "2": 3, M + "3": 0, M + "4": 0, M + "5": 5}, [M + "4"])
    assert report.main([*args, "--min-score", "50"]) == 0
    total = capsys.readouterr().out.splitlines()[-1].split()
    assert total[1:] == ["5", "2", "0", "1", "1", "0", "1", "50.0%"]  # 2 / (5 - 1 equivalent)
    assert report.main([*args, "--min-score", "51"]) == 1


def test_a_listed_mutant_that_is_gone_or_killed_fails_the_report(tmp_path, capsys):
    # Mutant 2 is listed as equivalent but a test kills it: mutmut renumbered after a source edit.
    args = _write(tmp_path, {M + "1": 0, M + "2": 1}, [M + "1", M + "2", M + "9"])
    assert report.main(args) == 1
    out = capsys.readouterr().out
    assert f"  {M}2\n" in out and f"  {M}9\n" in out and f"  {M}1\n" not in out
    assert out.splitlines()[1].split()[1:4] == ["2", "1", "0"]  # the killed one counts as killed

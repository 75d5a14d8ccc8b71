"""docs/bad_inputs.md names a test for every bad input: each of those tests must exist.

The Test column of every table is parsed: ``test_x[case]`` is ``test_x`` in the section's test file (the
file the section's intro names, else the document's, ``tests/test_bad_inputs.py``); ``...[case]`` refers to
the previous full name; ``tests/x.py::test_y`` names the file, ``::test_z`` the file named just before, and
a bare ``tests/x.py`` the file alone. Test functions are collected from the AST of ``tests/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "docs" / "bad_inputs.md"
_DEFAULT_FILE = re.compile(r"[Tt]ests?\s+in\s+`(tests/[\w/]+\.py)`\s+unless\s+another\s+file\s+is\s+named")


def _cells(row: str) -> list[str]:
    """A markdown table row's cells; a ``|`` inside backticks or escaped does not split."""
    cells, current, in_code, prev = [], "", False, ""
    for ch in row.strip().strip("|"):
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code and prev != "\\":
            cells.append(current.strip())
            current = ""
        else:
            current += ch
        prev = ch
    return [*cells, current.strip()]


def _sections(text: str) -> list[list[tuple[int, str]]]:
    """The document's lines (numbered from 1) split at each heading."""
    sections: list[list[tuple[int, str]]] = [[]]
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            sections.append([])
        sections[-1].append((number, line))
    return sections


def catalogue_references(text: str) -> list[tuple[int, str, str]]:
    """(line number, test file, test function) for every test named in a Test column of ``text``;
    the test function is '' where a file alone is named."""
    refs: list[tuple[int, str, str]] = []
    doc_file = "tests/test_bad_inputs.py"
    for index, section in enumerate(_sections(text)):
        prose = " ".join(line for _, line in section if not line.startswith("|"))
        match = _DEFAULT_FILE.search(prose)  # wrapped over lines in the document
        if match and index == 0:
            doc_file = match.group(1)
        section_file = match.group(1) if match else doc_file
        test_col, last_name, last_file = None, None, section_file
        for number, line in section:
            if not line.startswith("|"):
                test_col = None
                continue
            cells = _cells(line)
            if test_col is None:  # a table's header row
                test_col = cells.index("Test") if "Test" in cells else -1
                last_name, last_file = None, section_file
                continue
            if test_col < 0 or set(line) <= set("|-: ") or test_col >= len(cells):
                continue
            for item in re.findall(r"`([^`]+)`", cells[test_col]):
                if item.startswith("tests/") and "::" not in item:  # a file alone
                    refs.append((number, item, ""))
                    last_file = item
                    continue
                file, _, name = item.partition("::") if "::" in item else ("", "", item)
                file = file or (last_file if item.startswith("::") else section_file)
                if name.startswith("..."):
                    if last_name is None:
                        raise ValueError(f"line {number}: {item!r} has no previous test name to refer to")
                    name, file = last_name, last_file
                name = name.split("[")[0]
                refs.append((number, file, name))
                last_name, last_file = name, file
    return refs


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")
    }


def broken_references(text: str) -> list[str]:
    """Every reference of ``text`` whose file or test function does not exist, as 'line N: file::name'."""
    broken, cache = [], {}
    for number, file, name in catalogue_references(text):
        path = ROOT / file
        if not path.is_file():
            broken.append(f"line {number}: {file} does not exist")
            continue
        if name and name not in cache.setdefault(file, _test_functions(path)):
            broken.append(f"line {number}: {file}::{name} does not exist")
    return broken


def test_every_test_named_in_the_catalogue_exists():
    text = CATALOGUE.read_text()
    refs = catalogue_references(text)
    rows = [line for line in text.splitlines() if line.startswith("| `") or line.startswith("| ")]
    assert len(refs) >= 60 and len(rows) >= 60, (len(refs), len(rows))  # the tables were parsed
    assert broken_references(text) == []


def test_the_catalogue_parser_resolves_and_flags_references():
    """Each rule of the module docstring on a small catalogue, and a wrong name is reported."""
    text = """Every row is asserted by the named test in `tests/test_bad_inputs.py`
unless another file is named.

## A

| Input | Test |
|---|---|
| a `x | y` | `test_create_model_errors[unknown_name]` |
| b | `...[typo_regnet]`, `tests/test_hub.py::test_export_never_overwrites_and_rejects_bad_names` |
| c | `::test_no_such_test`, `tests/test_spp.py` |

## B

Tests in `tests/test_downstream_faults.py` unless another file is named.

| Input | Test |
|---|---|
| d | `test_atomic_backend_keeps_the_old_file_when_a_write_fails`, `...[x]` |
| e | same |
"""
    refs = [(file, name) for _, file, name in catalogue_references(text)]
    assert refs == [
        ("tests/test_bad_inputs.py", "test_create_model_errors"),
        ("tests/test_bad_inputs.py", "test_create_model_errors"),
        ("tests/test_hub.py", "test_export_never_overwrites_and_rejects_bad_names"),
        ("tests/test_hub.py", "test_no_such_test"),
        ("tests/test_spp.py", ""),
        ("tests/test_downstream_faults.py", "test_atomic_backend_keeps_the_old_file_when_a_write_fails"),
        ("tests/test_downstream_faults.py", "test_atomic_backend_keeps_the_old_file_when_a_write_fails"),
    ]
    assert broken_references(text) == ["line 10: tests/test_hub.py::test_no_such_test does not exist"]

"""The package's one-way layering, read from the source of every module (imports inside functions too).

utilities -> layers -> models -> (spp, hub, bench, data, train, downstream, ...) -> cli: no module imports
one on a higher layer, the packages on the top layer import each other without a cycle, data preparation
imports only the utilities (so it runs without mmseg/mmcv), and only the OpenMMLab side imports OpenMMLab.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "nf_plugins"
UTILITIES = {"errors", "outputs", "atomic", "progress", "_quiet", "distributed"}
RANK = {**dict.fromkeys(UTILITIES, 0), "layers": 1, "models": 2, "": 2, "cli": 4}  # "": nf_plugins/__init__
APPLICATION = 3  # every other top-level module or package: spp, hub, bench, data, train, downstream, ...
OPENMMLAB = ("mmseg", "mmcv", "mmengine")
MM_SIDE = {"downstream", "registry"}  # the only places allowed to import OpenMMLab


def _imports(path: Path, module_level: bool = False) -> set[str]:
    """Absolute names of everything ``path`` imports (relative imports resolved, ``from x import y``
    counted as both ``x`` and ``x.y``); ``module_level``: only those run on import (not in functions)."""
    package = list(path.relative_to(PKG.parent).with_suffix("").parts)[:-1]
    tree = ast.parse(path.read_text(), str(path))
    nodes = ast.walk(tree)
    if module_level:
        skip = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
        inner = {id(n) for f in ast.walk(tree) if isinstance(f, skip) for n in ast.walk(f)}
        nodes = (n for n in ast.walk(tree) if id(n) not in inner)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return found


def _top(module: str) -> str:
    """``nf_plugins.downstream.models.backbone`` -> ``downstream``; ``nf_plugins`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _modules(module_level: bool = False) -> dict[str, set[str]]:
    return {
        ".".join(p.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__"): _imports(
            p, module_level
        )
        for p in sorted(PKG.rglob("*.py"))
    }


MODULES = _modules()
ON_IMPORT = _modules(module_level=True)


def _rank(top: str) -> int:
    return RANK.get(top, APPLICATION)


def test_the_scan_sees_the_package():
    """The checks below are only as good as the scan: it must find the known edges."""
    assert "nf_plugins.models.normfree" in MODULES and len(MODULES) > 60
    assert any(_top(m) == "layers" for m in MODULES["nf_plugins.models.normfree"])
    assert any(m.startswith("mmseg") for m in MODULES["nf_plugins.downstream.models.backbone"])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_runs_up_a_layer(module):
    here = _top(module)
    up = sorted(t for t in MODULES[module] if t.startswith("nf_plugins") and _rank(_top(t)) > _rank(here))
    assert not up, f"{module} (layer {_rank(here)}) imports a higher layer: {up}"


def test_application_packages_import_each_other_without_a_cycle():
    edges = {
        (_top(m), _top(t))
        for m, targets in MODULES.items()
        for t in targets
        if t.startswith("nf_plugins.")
        and _rank(_top(m)) == _rank(_top(t)) == APPLICATION
        and _top(m) != _top(t)
    }
    tops = {a for a, _ in edges} | {b for _, b in edges}
    reach = {a: {b for x, b in edges if x == a} for a in tops}
    for _ in tops:  # transitive closure, small graph
        for a in tops:
            reach[a] |= set(itertools.chain.from_iterable(reach[b] for b in reach[a]))
    cycles = sorted(a for a in tops if a in reach[a])
    assert not cycles, f"import cycle through {cycles}: {sorted(edges)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _top(m) == "data"))
def test_data_preparation_imports_only_utilities(module):
    own = {t for t in MODULES[module] if t.startswith("nf_plugins.") and _top(t) != "data"}
    assert {_top(t) for t in own} <= UTILITIES, f"{module} imports {sorted(own)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _top(m) not in MM_SIDE))
def test_only_the_openmmlab_side_imports_openmmlab_on_import(module):
    """Elsewhere OpenMMLab is imported inside the function that needs it (reading a config, quieting
    mmengine's logger), so importing the module, and every core command, works without the [mm] extra;
    data preparation does not import it at all."""
    names = MODULES[module] if _top(module) == "data" else ON_IMPORT[module]
    mm = sorted(t for t in names if t.split(".")[0] in OPENMMLAB)
    assert not mm, f"{module} imports {mm}; OpenMMLab code belongs in nf_plugins.downstream"


def test_module_level_scan_skips_function_bodies():
    """_quiet imports mmengine only inside a function: seen by the full scan, not by the on-import one."""
    assert any(t.startswith("mmengine") for t in MODULES["nf_plugins._quiet"])
    assert not any(t.startswith("mmengine") for t in ON_IMPORT["nf_plugins._quiet"])

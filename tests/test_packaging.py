"""Packaging (issue 18): what a plain ``pip install nf-plugins`` (a wheel, not this checkout) gives.

The wheel is built offline from a copy of the working tree and installed into a fresh virtual environment
that sees this environment's dependencies through a ``.pth`` (no network, no second copy of torch); from a
folder outside the checkout, its configs resolve through mmengine as ``nf_plugins::...`` and equal the
checkout's, and its ``nf-plugins`` command lists every command. The core commands that draw (``spp``,
``bench``'s chart) are run with the core dependencies of pyproject.toml checked to cover every module
they import.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
VOC = "segmentation/fcn_nf-resnet50-d16_4xb4-30k_voc12aug-513x513.py"
DEPTH = "depth/uproj_nf-regnet-b0_8xb32-7.5k_nyu-304x228.py"


def _run(cmd: list, **kwargs) -> str:
    """Run ``cmd``; on failure, fail the test with its output (not just the exit status)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, **kwargs)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built without network or build isolation from a copy of the working tree (a build
    writes build/ and an .egg-info beside its sources, which must not land in the shared checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("nf_plugins", "configs"):  # nf_plugins/.mim/configs stays a link to ../../configs
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check"]
    _run([*pip, "--no-build-isolation", "--no-deps", "--no-index", src, "-w", tmp / "dist"])
    (whl,) = (tmp / "dist").glob("nf_plugins-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel installed (``uv``, no index, no dependencies); this
    environment's site-packages are added through a ``.pth`` only after the install, so the installer
    never sees the checkout's editable nf-plugins, and a bare path line does not run that install's
    own ``.pth`` finder."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", root])
    python = root / "bin" / "python"
    uv = Path(sys.executable).parent / "uv"  # installed by tools/setup_env.sh, pinned in constraints.txt
    _run([uv, "pip", "install", "-q", "--python", python, "--no-deps", "--no-index", "--offline", wheel])
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (purelib / "_nf_plugins_test_deps.pth").write_text("\n".join(ours) + "\n")
    return root


def _jsonable(cfg_dict: dict) -> dict:
    """A config as JSON sees it (tuples as lists), so that two processes' configs compare equal."""
    return json.loads(json.dumps(cfg_dict, default=repr))


def _without_scope(obj, scope: str):
    """``obj`` without the ``_scope_=scope`` tags mmengine puts on entries inherited through ``scope::``."""
    if isinstance(obj, dict):
        return {k: _without_scope(v, scope) for k, v in obj.items() if not (k == "_scope_" and v == scope)}
    if isinstance(obj, list):
        return [_without_scope(v, scope) for v in obj]
    return obj


PROBE = """
import contextlib, importlib, importlib.metadata, io, json, sys, warnings
warnings.simplefilter("ignore")
import nf_plugins
import nf_plugins.downstream  # as a user does first: registers our modules and the nf_plugins:: scope
from nf_plugins.cli import COMMANDS
from mmengine.config import Config
from mmengine.hub import get_config

voc = Config.fromfile("user_voc.py")  # _base_ = "nf_plugins::<VOC>", as a user's own config inherits it
depth = get_config("nf_plugins::<DEPTH>")
commands = {}
for name, (module, _help) in COMMANDS.items():
    mod = importlib.import_module(module)
    commands[name] = [mod.__file__, *(callable(getattr(mod, f, None)) for f in ("add_arguments", "run"))]
# the console script's own entry point, as venv/bin/nf-plugins calls it
(script,) = importlib.metadata.entry_points(group="console_scripts", name="nf-plugins")
help_text = io.StringIO()
with contextlib.redirect_stdout(help_text), contextlib.suppress(SystemExit):
    sys.argv = ["nf-plugins", "--help"]
    script.load()()
print(json.dumps({
    "nf_plugins": nf_plugins.__file__,
    "downstream": sys.modules["nf_plugins.downstream"].__file__,
    "voc": voc.to_dict(),
    "depth": depth.to_dict(),
    "depth_file": depth.filename,
    "commands": commands,
    "entry_point": [script.value, script.dist.locate_file("").as_posix()],
    "help": help_text.getvalue(),
}, default=repr))
"""


@pytest.fixture(scope="module")
def probe(venv, tmp_path_factory) -> dict:
    """What the fresh environment resolves, run from a folder outside the checkout (one process: each
    start imports torch and mmseg)."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    (cwd / "user_voc.py").write_text(f'_base_ = "nf_plugins::{VOC}"\n')
    script = PROBE.replace("<VOC>", VOC).replace("<DEPTH>", DEPTH)
    out = _run([venv / "bin" / "python", "-c", script], cwd=cwd)
    return json.loads(out.strip().splitlines()[-1])


def test_wheel_ships_every_config(wheel):
    """Every file under configs/ is in the wheel at nf_plugins/.mim/configs/, beside the model index that
    mmengine reads first."""
    names = set(zipfile.ZipFile(wheel).namelist())
    prefix = "nf_plugins/.mim/configs/"
    shipped = {n[len(prefix) :] for n in names if n.startswith(prefix)}
    in_checkout = {p.relative_to(ROOT / "configs").as_posix() for p in (ROOT / "configs").rglob("*.*")}
    assert shipped == {p for p in in_checkout if "__pycache__" not in p}
    assert VOC in shipped and DEPTH in shipped
    assert "nf_plugins/.mim/model-index.yml" in names


def test_installed_wheel_resolves_nf_plugins_configs(probe, venv):
    """From the wheel, outside the checkout: the VOC config inherited as ``nf_plugins::`` and the depth
    config got by ``mmengine.hub.get_config`` are the wheel's files and equal the checkout's configs
    loaded by path, mmseg:: bases and our relative _base_ files included."""
    from mmengine.config import Config

    site = Path(probe["nf_plugins"]).resolve().parents[1]
    assert site.is_relative_to(venv.resolve()), probe["nf_plugins"]  # the wheel, not the checkout
    assert Path(probe["downstream"]).resolve().is_relative_to(site)
    assert Path(probe["depth_file"]).resolve() == site / "nf_plugins" / ".mim" / "configs" / DEPTH

    voc, depth = probe["voc"], probe["depth"]
    assert _without_scope(voc, "nf_plugins") == _jsonable(Config.fromfile(ROOT / "configs" / VOC).to_dict())
    assert depth == _jsonable(Config.fromfile(ROOT / "configs" / DEPTH).to_dict())
    # ours (the file and its relative _base_) ...
    assert voc["model"]["backbone"]["type"] == "NFBackbone"
    assert voc["model"]["backbone"]["model_name"] == "nf_resnet50"
    assert depth["model"]["backbone"]["model_name"] == "nf_regnet_b0"
    assert depth["train_dataloader"]["dataset"]["type"] == "CheckedNYUDataset"
    # ... and what only mmseg's bases set: its VOC evaluator and data list, its runtime's dist backend
    assert voc["val_evaluator"]["type"] == "IoUMetric"
    assert voc["train_dataloader"]["dataset"]["type"] == "ConcatDataset"
    assert depth["env_cfg"]["dist_cfg"]["backend"] == "nccl"


def test_installed_wheel_has_every_command(probe, venv):
    """The wheel's ``nf-plugins`` lists every command of the table, and each command's module is in the
    wheel with the add_arguments/run pair that nf_plugins.cli calls."""
    from nf_plugins.cli import COMMANDS

    site = Path(probe["nf_plugins"]).resolve().parents[1]
    assert set(probe["commands"]) == set(COMMANDS)
    for name, (file, has_add_arguments, has_run) in probe["commands"].items():
        assert Path(file).resolve().is_relative_to(site), name
        assert has_add_arguments and has_run, name
    assert os.access(venv / "bin" / "nf-plugins", os.X_OK)
    value, dist_folder = probe["entry_point"]
    assert value == "nf_plugins.cli:main" and Path(dist_folder).resolve() == site
    listed = probe["help"]
    for name in COMMANDS:
        assert f"\n    {name} " in listed or f"\n    {name}\n" in listed, f"{name} not in:\n{listed}"


# ---- the checkout (editable install) resolves the same names -------------------------------------------


CHECKOUT_PROBE = """
import json, warnings
warnings.simplefilter("ignore")
import nf_plugins.downstream  # registers the nf_plugins:: scope
from mmengine.hub import get_config

cfg = get_config("nf_plugins::<DEPTH>")
print(json.dumps({"file": cfg.filename, "cfg": cfg.to_dict()}, default=repr))
"""


def test_scope_resolves_in_the_checkout(tmp_path):
    """In this editable install too, mmengine finds ``nf_plugins::`` configs (through the .mim link to
    configs/), run from a folder outside the checkout: inside it, a leftover nf_plugins.egg-info of an
    in-tree build can make mmengine's distribution lookup right by accident."""
    from mmengine.config import Config

    from nf_plugins.mim import config_path

    out = _run([sys.executable, "-c", CHECKOUT_PROBE.replace("<DEPTH>", DEPTH)], cwd=tmp_path)
    got = json.loads(out.strip().splitlines()[-1])
    assert Path(got["file"]).resolve() == ROOT / "configs" / DEPTH == config_path(f"nf_plugins::{DEPTH}")
    assert got["cfg"] == _jsonable(Config.fromfile(ROOT / "configs" / DEPTH).to_dict())


def test_scope_entries_build_from_mmseg_registries():
    """Entries inherited through ``nf_plugins::`` (tagged ``_scope_="nf_plugins"`` by mmengine) build from
    the scope's registries, whose parents are mmseg's."""
    import mmseg.datasets.transforms as mmseg_transforms
    from mmengine.registry import TRANSFORMS

    with TRANSFORMS.switch_scope_and_registry("nf_plugins") as registry:
        assert registry.scope == "nf_plugins"  # not mmengine's fallback to the calling registry
        assert registry.get("LoadAnnotations") is mmseg_transforms.LoadAnnotations


def test_config_path_errors():
    """A misspelt name gets the closest shipped configs; another scope and paths out of the shipped
    folder are refused."""
    from nf_plugins.mim import config_path, shipped_configs

    assert VOC in shipped_configs() and DEPTH in shipped_configs()
    with pytest.raises(FileNotFoundError, match=f"did you mean 'nf_plugins::{VOC}'"):
        config_path("nf_plugins::" + VOC.replace("513x513", "512x512"))
    with pytest.raises(ValueError, match="not an nf_plugins:: config"):
        config_path("mmseg::_base_/default_runtime.py")
    for outside in ("../pyproject.toml", str(ROOT / "pyproject.toml")):
        with pytest.raises(FileNotFoundError, match="no shipped config"):
            config_path(outside)


# ---- core commands need only the core dependencies -----------------------------------------------------

DRAW = """
import sys, sysconfig
before = set(sys.modules)
from nf_plugins.bench.chart import ratio_chart
from nf_plugins.cli import main

out = sys.argv[1]
main(["spp", "nf_resnet26", "--img-size", "32", "--batch-size", "2", "--no-progress",
      "--out", out + "/spp.png", "--json", out + "/spp.json"])
row = {"suite": "s", "model": "m", "peer": "p", "setting": "x", "ratio": 1.5, "extra": {}}
env = {"device": "cpu", "device_name": "cpu", "threads": 1}
ratio_chart({"rows": [row], "environment": env}, out + "/bench.png")
site = tuple(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
new = {m.partition(".")[0] for m in set(sys.modules) - before}
installed = [m for m in new if (getattr(sys.modules.get(m), "__file__", None) or "").startswith(site)]
print("imported:", *sorted(installed))
"""


def _core_closure() -> set[str]:
    """pyproject.toml's core dependencies and, recursively, what they require (installed metadata)."""
    todo = list(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    seen: set[str] = set()
    while todo:
        req = Requirement(todo.pop())
        name = canonicalize_name(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        todo += importlib.metadata.requires(name) or []
    return seen


def test_core_commands_import_only_core_dependencies(tmp_path):
    """``nf-plugins spp`` (plot and statistics) and the benchmark's ratio chart run, and every installed
    module they import belongs to a core dependency: matplotlib is core, no extra is needed."""
    last = _run([sys.executable, "-c", DRAW, tmp_path], cwd=tmp_path).strip().splitlines()[-1]
    assert last.startswith("imported: ")
    imported = last.split()[1:]
    for png in ("spp.png", "bench.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert json.loads((tmp_path / "spp.json").read_text())[0]["model"] == "nf_resnet26"

    dists = importlib.metadata.packages_distributions()
    core = _core_closure() | {"nf-plugins"}
    assert "matplotlib" in imported  # the plots were drawn here, not skipped
    outside = {
        m: dists.get(m)
        for m in imported
        if m not in sys.stdlib_module_names and not {canonicalize_name(d) for d in dists.get(m, [])} & core
    }
    assert not outside, f"modules from outside the core dependencies of pyproject.toml: {outside}"

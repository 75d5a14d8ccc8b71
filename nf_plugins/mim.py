"""The configs shipped with the package, by their OpenMMLab ``nf_plugins::`` names.

As in the OpenMMLab packages, the configs travel inside the package as ``nf_plugins/.mim/configs`` (in a
source checkout that folder is a link to ``configs/``; a wheel holds a copy), so mmengine resolves
``nf_plugins::segmentation/...`` and ``nf_plugins::depth/...`` from an installed package, once
:func:`register_scope` has told it the scope (``import nf_plugins.downstream`` does). This module imports
no mmengine: :func:`config_path` works in an environment without the ``[mm]`` extra.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import did_you_mean

SCOPE = "nf_plugins"
CONFIGS = (Path(__file__).parent / ".mim" / "configs").resolve()  # in a checkout: configs/ itself


def shipped_configs() -> list[str]:
    """Every shipped config, as the relative name ``config_path`` takes (``segmentation/fcn_...py``)."""
    files = [p for p in CONFIGS.rglob("*") if p.is_file() and p.suffix in (".py", ".yaml")]
    return sorted(p.relative_to(CONFIGS).as_posix() for p in files)


def config_path(name: str) -> Path:
    """The file of a shipped config, named ``nf_plugins::segmentation/fcn_...py`` or without the scope.

    Raises ``FileNotFoundError`` naming the closest shipped configs when there is no such config.
    """
    scope, sep, rel = name.rpartition("::")
    if sep and scope != SCOPE:
        raise ValueError(f"{name!r}: not an {SCOPE}:: config; give 'nf_plugins::segmentation/...' or a path")
    path = (CONFIGS / rel).resolve()
    if not path.is_file() or not path.is_relative_to(CONFIGS):
        names = [f"{SCOPE}::{c}" for c in shipped_configs()]
        hint = did_you_mean(f"{SCOPE}::{rel}", names, otherwise=f"the shipped configs are under {CONFIGS}")
        raise FileNotFoundError(f"no shipped config {SCOPE}::{rel}; {hint}")
    return path


def resolve_config(path: str | os.PathLike) -> Path:
    """A config argument as a file: a ``scope::name`` through :func:`config_path` (which refuses another
    scope and names the closest shipped configs), anything else as the path it is."""
    return config_path(str(path)) if "::" in str(path) else Path(path)


def register_scope() -> None:
    """Let mmengine resolve ``nf_plugins::`` names (``_base_``, ``mmengine.hub.get_config``).

    mmengine accepts only the scopes in its ``MODULE2PACKAGE`` table (its own packages) and offers no hook
    for others, so the scope is added to that table; mmengine then reads ``.mim/configs`` of the folder
    ``get_installed_path`` gives, as it does for mmseg's. The table's value is this module, not the
    distribution name: for a distribution that function answers ``<site-packages>/nf_plugins``, which an
    editable install does not have, and for any other name it asks ``importlib`` where the module is,
    which is right for a wheel and a checkout alike.
    """
    from mmengine.config.utils import MODULE2PACKAGE

    MODULE2PACKAGE.setdefault(SCOPE, "nf_plugins.mim")

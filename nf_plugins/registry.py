"""mmengine registries of the ``nf_plugins`` scope: one child of each of mmseg's registries.

A config that inherits ours through ``_base_ = "nf_plugins::..."`` has each of our entries tagged
``_scope_="nf_plugins"`` by mmengine, which then builds them from the registries of that scope: it imports
``nf_plugins.registry`` (hence this module's place at the package top) and searches the registry tree for
the scope. Each child here finds what it lacks in its mmseg parent, where ``nf_plugins.downstream``
registers our modules, so such an entry builds exactly as it does under mmseg's scope. ``import nf_plugins``
does not import this module (it imports mmseg).
"""

from __future__ import annotations

from mmengine.registry import Registry
from mmseg import registry as _mmseg

from .mim import SCOPE

_PARENTS = {name: reg for name, reg in vars(_mmseg).items() if isinstance(reg, Registry)}
globals().update(
    {
        name: Registry(parent.name, parent=parent, scope=SCOPE, locations=["nf_plugins.downstream"])
        for name, parent in _PARENTS.items()
    }
)
__all__ = sorted(_PARENTS)

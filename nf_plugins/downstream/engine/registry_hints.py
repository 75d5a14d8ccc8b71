"""mmengine's "X is not in the mmseg::model registry" errors, with the closest registered type names."""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Iterator

from nf_plugins.errors import did_you_mean

_NOT_IN_REGISTRY = re.compile(r"^(?P<type>[\w.]+) is not in the (?P<scope>\w+)::(?P<registry>\w+) registry")


def registered_names(scope: str, registry_name: str) -> list[str]:
    """Every type name a ``scope::registry_name`` build can resolve (the scope's registry and its parents)."""
    from mmengine import registry as root

    modules = [root] if scope == "mmengine" else [importlib.import_module(f"{scope}.registry"), root]
    for module in modules:
        for reg in vars(module).values():
            if isinstance(reg, root.Registry) and reg.name == registry_name:
                names: set[str] = set()
                while reg is not None:
                    reg.import_from_location()
                    names |= set(reg.module_dict)
                    reg = reg.parent
                return sorted(names)
    return []


@contextlib.contextmanager
def registry_hints() -> Iterator[None]:
    """Turn mmengine's "X is not in the mmseg::model registry" into one that names the closest types."""
    try:
        yield
    except KeyError as e:
        match = _NOT_IN_REGISTRY.match(str(e.args[0]) if e.args else "")
        if match is None:
            raise
        names = registered_names(match["scope"], match["registry"])
        hint = did_you_mean(match["type"].split(".")[-1], names, otherwise=f"registered: {', '.join(names)}")
        raise KeyError(
            f"config type={match['type']!r} is not a registered {match['registry']} "
            f"({match['scope']}::{match['registry']} registry); {hint}"
        ) from e

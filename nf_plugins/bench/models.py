"""The models a benchmark compares, built by name.

``timm-own:<name>`` builds timm's own implementation by calling timm's entrypoint function directly
(``timm.models.nfnet.<name>``), which is exactly what ``timm.create_model`` returns when nf_plugins
is not imported; importing nf_plugins only replaces the registry entry, not that function.
"""

from __future__ import annotations

import timm
import timm.models.nfnet
from torch import nn

from ..models import create_model


def build(spec: str, num_classes: int = 1000, **kwargs) -> nn.Module:
    """``ours:nf_resnet50``, ``timm:resnetv2_50`` (any timm name) or ``timm-own:nf_regnet_b0``;
    ``kwargs`` (e.g. ``drop_rate``) go to the model's constructor."""
    source, _, name = spec.partition(":")
    if source == "ours":
        model = create_model(name, num_classes=num_classes, **kwargs)
        if type(model).__module__.startswith("timm"):
            raise ValueError(f"{spec!r} is not one of our models")
        return model
    if source == "timm":
        return create_model(name, num_classes=num_classes, **kwargs)
    if source == "timm-own":
        fn = getattr(timm.models.nfnet, name, None)
        if fn is None:
            raise ValueError(f"timm.models.nfnet has no entrypoint {name!r}")
        return fn(num_classes=num_classes, **kwargs)
    raise ValueError(f"model spec {spec!r} must start with 'ours:', 'timm:' or 'timm-own:'")

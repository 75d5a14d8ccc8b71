"""Per-family adapters: which modules are residual blocks, and where each block's branch ends.

A Signal Propagation Plot needs, for every residual block, the block's output and the output of its
residual branch *before* it is merged with the skip path. No model exposes the latter generically,
so each supported family names the submodule whose output is the branch end. Stages are the
containers that hold consecutive blocks (``stages.0``, ``layer1``, ``stages.0.blocks``...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

BranchEnd = Callable[[nn.Module], nn.Module]


@dataclass(frozen=True)
class BlockFamily:
    """A family of residual blocks and how to find the end of their residual branch."""

    name: str
    block_types: tuple[type[nn.Module], ...]
    branch_end: BranchEnd


@dataclass(frozen=True)
class BlockSpec:
    """One residual block of a model, located for the SPP hooks."""

    index: int
    name: str
    stage: int
    stage_end: bool
    block: nn.Module
    branch_end: nn.Module


_FAMILIES: list[BlockFamily] = []


def register_family(family: BlockFamily) -> BlockFamily:
    """Teach the SPP a new block family (later registrations take precedence)."""
    _FAMILIES.insert(0, family)
    return family


def supported_families() -> list[str]:
    return [f.name for f in reversed(_FAMILIES)]


def _se_or(last: str) -> BranchEnd:
    """timm ``resnet`` blocks: the SE module (if any) follows the last norm on the branch."""
    return lambda m: m.se if getattr(m, "se", None) is not None else getattr(m, last)


def _register_builtin_families() -> None:
    from timm.models import nfnet, resnet, resnetv2

    from ..models.normfree import NormFreeBlock

    # Our NF blocks: conv3's output is f(x), before the alpha * skipinit_gain scaling.
    register_family(BlockFamily("nf_plugins NormFreeNet", (NormFreeBlock,), lambda m: m.conv3))
    register_family(
        BlockFamily(
            "timm resnetv2",
            (resnetv2.PreActBottleneck, resnetv2.PreActBasic, resnetv2.Bottleneck),
            lambda m: m.norm3 if isinstance(m, resnetv2.Bottleneck) else getattr(m, "conv3", m.conv2),
        )
    )
    register_family(BlockFamily("timm resnet", (resnet.Bottleneck,), _se_or("bn3")))
    register_family(BlockFamily("timm resnet (basic)", (resnet.BasicBlock,), _se_or("bn2")))
    # timm's NF blocks: drop_path's output includes attn_gain * attn_last, before skipinit/alpha.
    register_family(BlockFamily("timm nfnet", (nfnet.NormFreeBlock,), lambda m: m.drop_path))


_register_builtin_families()

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _family_of(module: nn.Module) -> BlockFamily | None:
    for family in _FAMILIES:
        if isinstance(module, family.block_types):
            return family
    return None


def find_blocks(model: nn.Module) -> list[BlockSpec]:
    """All residual blocks of ``model`` in forward order, with stage indices and stage ends.

    Raises ``ValueError`` naming the composite module types found when no block is recognised.
    """
    found: list[tuple[str, nn.Module, BlockFamily]] = []
    for name, module in model.named_modules():
        family = _family_of(module)
        if family is not None and not any(name.startswith(n + ".") for n, _, _ in found):
            found.append((name, module, family))
    if not found:
        types = sorted(
            {
                type(m).__name__
                for n, m in model.named_modules()
                if n and next(m.children(), None) is not None and not isinstance(m, _CONTAINERS)
            }
        )
        raise ValueError(
            f"cannot read the residual blocks of {type(model).__name__}: found module types "
            f"{types[:20] or 'none'}; supported block families: {supported_families()}. "
            "Register an adapter with nf_plugins.spp.register_family(BlockFamily(...))."
        )
    parents = [name.rsplit(".", 1)[0] if "." in name else "" for name, _, _ in found]
    stage_of: dict[str, int] = {}
    specs = []
    for i, ((name, module, family), parent) in enumerate(zip(found, parents, strict=True)):
        stage = stage_of.setdefault(parent, len(stage_of))
        stage_end = i + 1 == len(found) or parents[i + 1] != parent
        branch_end = family.branch_end(module)
        specs.append(BlockSpec(i, name, stage, stage_end, module, branch_end))
    return specs

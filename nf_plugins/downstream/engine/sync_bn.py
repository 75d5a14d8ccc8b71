"""Distributed runs: the CPU (gloo) set-up of ``--launcher pytorch``, and the SyncBN conversion that keeps
timm's norm-act layers."""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import convert_sync_batchnorm as mmengine_convert_sync_batchnorm
from timm.layers import BatchNormAct2d
from timm.layers import convert_sync_batchnorm as timm_convert_sync_batchnorm
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def setup_cpu_distributed(cfg: Config) -> None:
    """Make ``--launcher pytorch`` work without GPUs: gloo, CPU DDP, per-process BN instead of SyncBN.

    mmengine's pytorch launcher calls ``torch.cuda.set_device`` and wraps the model with
    ``device_ids=[LOCAL_RANK]``; both fail on CPU. With GPUs present nothing is changed.
    """
    if cfg.launcher == "none" or torch.cuda.is_available():
        return
    if cfg.launcher != "pytorch":
        raise ValueError(
            f"CPU-only distributed runs support --launcher pytorch (torchrun), got {cfg.launcher!r}"
        )
    cfg.setdefault("env_cfg", {}).setdefault("dist_cfg", {})["backend"] = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    wrapper = dict(cfg.get("model_wrapper_cfg", None) or dict(type="MMDistributedDataParallel"))
    wrapper["device_ids"] = None
    cfg.model_wrapper_cfg = wrapper
    heads = _per_process_bn(cfg.get("model"))
    if cfg.get("sync_bn", None) or heads:
        print_log(
            "SyncBN needs GPUs: keeping per-process BatchNorm on CPU", logger="current", level=logging.WARNING
        )
        cfg.sync_bn = None


def _per_process_bn(node: Any) -> int:
    """Turn every ``SyncBN``/``MMSyncBN`` norm_cfg in a model config into ``BN`` (DDP refuses
    SyncBatchNorm in CPU modules; mmengine reverts it only in non-distributed runs). Returns the count."""
    count = 0
    if isinstance(node, dict):
        if node.get("type") in ("SyncBN", "MMSyncBN"):
            node["type"] = "BN"
            count += 1
        for value in node.values():
            count += _per_process_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += _per_process_bn(value)
    return count


# cfg.sync_bn values: "timm" converts with timm's converter, which keeps the activation of timm's norm-act
# layers (BatchNormAct2d -> SyncBatchNormAct); "torch"/"mmcv" are mmengine's own conversions.
SYNC_BN_CHOICES = ("timm", "torch", "mmcv")


def check_sync_bn(sync_bn: str) -> None:
    """Raise ``ValueError`` unless ``sync_bn`` is one of :data:`SYNC_BN_CHOICES`."""
    if sync_bn not in SYNC_BN_CHOICES:
        raise ValueError(f"cfg.sync_bn must be one of {SYNC_BN_CHOICES} or None, got {sync_bn!r}")


def _bn_with_own_forward(model: nn.Module, allowed: tuple[type, ...] = ()) -> list[str]:
    """Names of BatchNorm subclasses whose ``forward`` does more than batch norm (timm's BatchNormAct2d
    applies its activation inside): a plain SyncBatchNorm in their place silently drops that."""
    plain = (_BatchNorm.forward, nn.SyncBatchNorm.forward)
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, _BatchNorm) and type(m).forward not in plain and not isinstance(m, allowed)
    ]


def convert_sync_bn(model: nn.Module, sync_bn: str) -> nn.Module:
    """The SyncBN conversion our runner applies to the model of a distributed run (``cfg.sync_bn``).

    mmengine's own conversion ("torch"/"mmcv") replaces every ``_BatchNorm`` by a plain SyncBatchNorm,
    which drops the activation timm keeps inside ``BatchNormAct2d`` (every ReLU of a ``resnetv2``), so
    it is refused for such models. "timm" uses ``timm.layers.convert_sync_batchnorm``: norm-act layers
    become ``SyncBatchNormAct`` (same activation), every other BatchNorm (mmseg's heads) torch's
    SyncBatchNorm, parameters and running statistics shared with the original modules.
    """
    check_sync_bn(sync_bn)
    lossy = _bn_with_own_forward(model, allowed=(BatchNormAct2d,) if sync_bn == "timm" else ())
    if lossy:
        raise ValueError(
            f"cfg.sync_bn={sync_bn!r} would replace {len(lossy)} BatchNorm layers that do more than batch "
            f"norm (e.g. {lossy[0]}: {type(model.get_submodule(lossy[0])).__name__}, whose activation would "
            "be dropped) by a plain SyncBatchNorm; "
            + ("set sync_bn='timm' (timm's converter keeps norm-act layers)" if sync_bn != "timm" else
               "convert this model yourself")
        )  # fmt: skip
    if sync_bn == "timm":
        return timm_convert_sync_batchnorm(model)
    return mmengine_convert_sync_batchnorm(model, sync_bn)

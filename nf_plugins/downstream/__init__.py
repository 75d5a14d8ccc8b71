"""OpenMMLab integration: importing this registers our backbone, heads, datasets, transforms and hooks
into mmseg/mmengine registries (configs load it with ``custom_imports``). Laid out like mmseg: ``models``,
``datasets`` (with transforms), ``evaluation``, ``engine``, ``visualization``; data preparation, which
needs no mmseg, is ``nf_plugins.data``.

``import nf_plugins`` never imports this module, so timm users need no mmcv/mmseg.
"""

from .models import depth_head, depth_loss, seg_head  # noqa: F401, I001
from .datasets import depth_transforms, seg_datasets, seg_transforms  # noqa: F401
from .evaluation import depth_metric  # noqa: F401
from .engine import checkpoint_io, hooks  # noqa: F401
from .models.backbone import NFBackbone, dilate_last_stage
from .engine.hooks import GlobalLossCurveHook, NonFiniteLossHook
from .datasets.seg_datasets import CheckedNYUDataset, CheckedPascalVOCDataset
from .models.seg_head import GammaReLU, NFFCNHead
from .datasets.seg_transforms import RandomRescale, ValidateSegSample
from .._quiet import quiet_mmengine_logs_if_requested  # noqa: I001
from ..mim import register_scope

quiet_mmengine_logs_if_requested()  # an entry point that asked for quiet output gets it from mmengine too
register_scope()  # configs may inherit ours as `_base_ = "nf_plugins::segmentation/..."` (nf_plugins.mim)

__all__ = [
    "CheckedNYUDataset",
    "CheckedPascalVOCDataset",
    "GammaReLU",
    "GlobalLossCurveHook",
    "NFBackbone",
    "NFFCNHead",
    "NonFiniteLossHook",
    "RandomRescale",
    "ValidateSegSample",
    "checkpoint_io",
    "dilate_last_stage",
    "hooks",
    "seg_datasets",
    "seg_head",
    "seg_transforms",
]

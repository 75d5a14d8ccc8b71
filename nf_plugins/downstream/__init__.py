"""OpenMMLab integration: importing this registers our backbone, heads, datasets, transforms and hooks
into mmseg/mmengine registries (configs load it with ``custom_imports``).

``import nf_plugins`` never imports this module, so timm users need no mmcv/mmseg.
"""

from . import depth_head, depth_loss, depth_metric, depth_transforms  # noqa: F401, I001  (NYUv2 depth)
from . import checkpoint_io, hooks, seg_datasets, seg_head, seg_transforms
from .backbone import NFBackbone, dilate_last_stage
from .hooks import GlobalLossCurveHook, NonFiniteLossHook
from .seg_datasets import CheckedNYUDataset, CheckedPascalVOCDataset
from .seg_head import GammaReLU, NFFCNHead
from .seg_transforms import RandomRescale, ValidateSegSample
from .._quiet import quiet_mmengine_logs_if_requested  # noqa: I001

quiet_mmengine_logs_if_requested()  # an entry point that asked for quiet output gets it from mmengine too

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

"""NF-ResNet and NF-RegNet models, registered into timm on import."""

from . import nf_regnet, nf_resnet
from ._factory import OUR_TAG, create_model, timm_weight_tags
from .normfree import NfCfg, NormFreeBlock, NormFreeNet

PAPER_MODELS: tuple[str, ...] = (*nf_resnet.model_cfgs, *nf_regnet.model_cfgs)

__all__ = [
    "OUR_TAG",
    "PAPER_MODELS",
    "create_model",
    "NfCfg",
    "NormFreeBlock",
    "NormFreeNet",
    "timm_weight_tags",
]

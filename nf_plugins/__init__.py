"""nf_plugins: the paper's Normalizer-Free ResNets and NF-RegNets as timm models.

``import nf_plugins`` registers ``nf_resnet26..288`` and ``nf_regnet_b0..b5`` into timm. It does not
import mmcv/mmseg: the OpenMMLab integration lives in ``nf_plugins.downstream``.
"""

from . import models
from .models import PAPER_MODELS

__version__ = "0.1.0"
__all__ = ["PAPER_MODELS", "__version__", "models"]

"""Weights in timm's Hugging Face Hub format: export a model or training checkpoint, publish it.

Loading needs nothing from here: after ``import nf_plugins``,
``timm.create_model("hf-hub:ORG/REPO", pretrained=True)`` or ``"local-dir:/path"`` rebuilds the
architecture named in ``config.json`` and loads ``model.safetensors`` strictly.
"""

from .checkpoint import load_training_checkpoint, model_from_training_checkpoint
from .export import export_for_hub, push_folder_to_hub, validate_repo_id
from .model_card import CITATION, model_card

__all__ = [
    "CITATION",
    "export_for_hub",
    "load_training_checkpoint",
    "model_card",
    "model_from_training_checkpoint",
    "push_folder_to_hub",
    "validate_repo_id",
]

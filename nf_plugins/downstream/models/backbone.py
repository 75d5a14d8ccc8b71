"""timm models (ours and timm's own) as mmseg backbones, dilated to the paper's output stride 16.

mmseg's ``TIMMBackbone`` builds ``features_only`` models, which cannot load an ImageNet checkpoint
saved from the classification model (the feature wrapper renames every key), does not dilate the
first block of the last stage, and re-runs timm's ``init_weights`` over loaded weights. This thin
wrapper builds the classification model, loads the checkpoint strictly, then prunes the head and
returns ``forward_intermediates`` features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import timm
import torch
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import nn

import nf_plugins  # noqa: F401  (registers the paper's models into timm)
from nf_plugins.downstream.models import timm_extra  # noqa: F401  (resnetv2_200, the BN baseline timm lacks)
from nf_plugins.errors import did_you_mean
from nf_plugins.models._factory import check_checkpoint_file, check_model_name
from nf_plugins.models._weights import load_checkpoint_checked


def dilate_last_stage(model: nn.Module, dilation: int = 2) -> list[nn.Conv2d]:
    """Give every 3x3 conv of the last stage stride 1 and ``dilation`` (paper appendix H).

    timm's ``output_stride`` keeps the first block of the dilated stage at the previous dilation
    (1); the paper dilates all 3x3 convs of the final stage. Returns the 3x3 convs it set.
    """
    stages = getattr(model, "stages", None)
    if not isinstance(stages, nn.Sequential) or len(stages) == 0:
        raise TypeError(f"{type(model).__name__} has no `stages`; cannot dilate its last stage")
    convs = [m for m in stages[-1].modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    for conv in convs:
        if conv.stride != (1, 1) or not isinstance(conv.padding, tuple):
            raise ValueError(
                f"last-stage conv {conv} is not a stride-1 static-padding conv; build it at OS16"
            )
        conv.dilation = (dilation, dilation)
        conv.padding = (dilation, dilation)
    return convs


@MODELS.register_module()
class NFBackbone(BaseModule):
    """A timm model (e.g. ``nf_resnet50``, ``resnetv2_50``) returning features at ``out_indices``.

    Args:
        model_name: timm model name, ``name.tag`` or ``hf-hub:org/repo``.
        pretrained: load timm's pretrained weights for ``model_name``.
        checkpoint_path: ImageNet checkpoint of the classification model (.safetensors/.pth), loaded
            strictly before the classifier is removed.
        out_indices: feature indices, 0 = stem, 1-4 = stages (4 = final features).
        output_stride: 16 dilates every 3x3 conv of the last stage by 2 (the paper's setting);
            8 and 32 are timm's ``output_stride``.
        drop_path_rate: stochastic depth (the paper uses none downstream).
        in_chans: input channels.
    """

    def __init__(
        self,
        model_name: str,
        pretrained: bool = False,
        checkpoint_path: str | None = None,
        out_indices: Sequence[int] = (4,),
        output_stride: int = 16,
        drop_path_rate: float = 0.0,
        in_chans: int = 3,
        init_cfg: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(init_cfg)
        own = (
            "model_name",
            "pretrained",
            "checkpoint_path",
            "out_indices",
            "output_stride",
            "drop_path_rate",
        )
        for key in kwargs:  # extra kwargs go to timm; a near-miss of our own is a typo, not a timm option
            hint = did_you_mean(key, own, n=1, cutoff=0.8)
            if hint:
                raise TypeError(f"model.backbone got unknown key {key!r}; {hint}")
        if not isinstance(model_name, str) or not model_name:
            raise TypeError(f"model.backbone.model_name must be a timm model name, got {model_name!r}")
        try:  # the factory's checks, as an mmseg config key (a KeyError, as mmseg's registry raises)
            check_model_name(model_name, key="model.backbone.model_name")
        except ValueError as e:
            raise KeyError(str(e)) from None
        check_checkpoint_file(
            checkpoint_path,
            named=f"model.backbone.checkpoint_path={checkpoint_path!r}",
            fix="pass ImageNet weights of the classification model (e.g. from configs/imagenet/), or set "
            "model.backbone.checkpoint_path=None to start from random weights",
        )
        try:
            model = timm.create_model(
                model_name,
                pretrained=pretrained,
                output_stride=output_stride,
                drop_path_rate=drop_path_rate,
                in_chans=in_chans,
                **kwargs,
            )
        except (RuntimeError, ValueError, TypeError) as e:
            raise type(e)(f"model.backbone ({model_name!r}): {e}") from e
        if checkpoint_path:
            try:
                load_checkpoint_checked(model, checkpoint_path)  # strict, no dtype cast, finite
            except RuntimeError as e:
                raise RuntimeError(
                    f"model.backbone.checkpoint_path={checkpoint_path!r} does not fit {model_name}: {e}"
                ) from e
        self.out_indices = tuple(int(i) for i in out_indices)
        num_feats = len(model.feature_info)
        if not self.out_indices or any(not 0 <= i < num_feats for i in self.out_indices):
            raise ValueError(
                f"model.backbone.out_indices={tuple(out_indices)} out of range for {model_name}: "
                f"valid indices are 0..{num_feats - 1} (0 = stem, {num_feats - 1} = final features)"
            )
        self.out_channels = [model.feature_info[i]["num_chs"] for i in self.out_indices]
        self.output_stride = output_stride
        if output_stride == 16:
            dilate_last_stage(model, 2)
        model.prune_intermediate_layers(list(self.out_indices), prune_head=True)
        self.model = model
        # timm initialised (or loaded) the weights: mmengine must not call timm's init_weights again.
        self._is_init = True

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(
            x, indices=list(self.out_indices), norm=True, intermediates_only=True
        )

    def no_weight_decay(self) -> set[str]:
        """Names (relative to this module) of the parameters the paper does not decay."""
        return {n for n, p in self.named_parameters() if p.ndim <= 1}

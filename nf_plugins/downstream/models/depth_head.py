"""Up-projection depth decoder of Laina et al. (2016) as an mmseg decode head (paper appendix H.2).

Final-stage features -> 1x1 reduction -> four up-projection blocks (each: 2x zero-unpooling, then
``5x5 conv -> act -> 3x3 conv`` plus a ``5x5 conv`` projection branch, summed, act; resolution x2,
width /2) -> 3x3 conv to one depth channel. The result (stride 2 for a stride-32 backbone) is
bilinearly upsampled to the input size by mmseg's ``predict_by_feat`` and to the target size in
``loss_by_feat``, so mmseg's ``DepthEstimator`` and ``DepthMetric`` drive it unchanged.

``norm_cfg=None`` builds the normalizer-free variant for NF backbones: Scaled WS convs and
gamma-scaled ReLUs from :mod:`nf_plugins.layers`, the unpooled map scaled by 2 (so its mean square
equals the input's although 3 of 4 pixels are zeros) and the two branches summed with
``1/sqrt(2)`` (unit variance at initialisation, as everywhere in an NF network). ``norm_cfg=dict(type=
'BN')`` gives Laina's original conv-BN-ReLU blocks for the BN baselines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor, nn

from nf_plugins.layers import GammaAct, ScaledStdConv2d


def unpool2x(x: Tensor) -> Tensor:
    """Laina's 2x unpooling: each value goes to the top-left of a 2x2 cell, the other three are 0."""
    n, c, h, w = x.shape
    out = x.new_zeros(n, c, h, 2, w, 2)
    out[:, :, :, 0, :, 0] = x
    return out.view(n, c, 2 * h, 2 * w)


def _conv(
    in_ch: int, out_ch: int, k: int, norm_cfg: dict | None, act: bool, act_name: str = "relu"
) -> nn.Module:
    """conv(-BN)(-ReLU) for BN heads; Scaled WS conv (-gamma ReLU) when ``norm_cfg`` is None."""
    if norm_cfg is not None:
        act_cfg = dict(type="ReLU") if act else None
        return ConvModule(in_ch, out_ch, k, padding=k // 2, norm_cfg=norm_cfg, act_cfg=act_cfg)
    conv = ScaledStdConv2d(in_ch, out_ch, k)
    return nn.Sequential(conv, GammaAct(act_name)) if act else conv


class UpProjection(nn.Module):
    """One up-projection block: resolution x2, ``in_ch -> out_ch`` channels."""

    def __init__(self, in_ch: int, out_ch: int, norm_cfg: dict | None = None, act_name: str = "relu") -> None:
        super().__init__()
        self.normfree = norm_cfg is None
        self.branch = nn.Sequential(
            _conv(in_ch, out_ch, 5, norm_cfg, act=True, act_name=act_name),
            _conv(out_ch, out_ch, 3, norm_cfg, act=False),
        )
        self.projection = _conv(in_ch, out_ch, 5, norm_cfg, act=False)
        self.act = GammaAct(act_name) if self.normfree else nn.ReLU(inplace=True)
        # NF: unpooling keeps 1 of 4 pixels, so x2 restores the mean square; the branch sum is /sqrt(2).
        self.unpool_gain = 2.0 if self.normfree else 1.0
        self.sum_gain = 1.0 / math.sqrt(2.0) if self.normfree else 1.0

    def forward(self, x: Tensor) -> Tensor:
        x = unpool2x(x) * self.unpool_gain if self.normfree else unpool2x(x)
        out = self.branch(x) + self.projection(x)
        return self.act(out * self.sum_gain if self.normfree else out)


@MODELS.register_module()
class UpProjectionHead(BaseDecodeHead):
    """Laina et al. up-projection decoder predicting metric depth (one channel).

    Args:
        in_channels: channels of the backbone's last feature map (``in_index=-1``).
        channels: width after the 1x1 reduction (Laina: ``in_channels // 2``; default).
        num_blocks: up-projection blocks, each doubling resolution and halving width (4).
        norm_cfg: ``None`` for the normalizer-free head (NF backbones), ``dict(type='BN')`` for BN.
        min_depth, max_depth: range predictions are clipped to at inference (metrics take logs).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int | None = None,
        num_blocks: int = 4,
        norm_cfg: dict | None = None,
        act_name: str = "relu",
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        dropout_ratio: float = 0.0,
        loss_decode: dict | Sequence[dict] = dict(type="BerHuLoss"),  # noqa: B006 - mmseg style
        **kwargs,
    ) -> None:
        if not isinstance(in_channels, int):
            raise TypeError(
                f"UpProjectionHead takes the last stage only: in_channels must be int, got {in_channels}"
            )
        channels = channels or in_channels // 2
        if channels >> num_blocks < 1:
            raise ValueError(f"UpProjectionHead: channels={channels} cannot be halved {num_blocks} times")
        super().__init__(
            in_channels,
            channels,
            num_classes=1,
            out_channels=1,
            threshold=0.0,  # unused for regression; silences the binary-segmentation warning
            dropout_ratio=dropout_ratio,
            norm_cfg=norm_cfg,
            loss_decode=loss_decode,
            **kwargs,
        )
        self.min_depth, self.max_depth = min_depth, max_depth
        self.reduce = _conv(in_channels, channels, 1, norm_cfg, act=False)
        widths = [channels >> i for i in range(num_blocks + 1)]
        self.up_blocks = nn.Sequential(
            *(UpProjection(widths[i], widths[i + 1], norm_cfg, act_name) for i in range(num_blocks))
        )
        # Laina's 3x3 prediction conv; keeps mmseg's name so init_cfg (Normal std 0.01) applies to it.
        self.conv_seg = nn.Conv2d(widths[-1], 1, kernel_size=3, padding=1)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        x = self._transform_inputs(inputs)
        return self.cls_seg(self.up_blocks(self.reduce(x)))

    def _stack_batch_gt(self, batch_data_samples) -> Tensor:
        if not batch_data_samples or "gt_depth_map" not in batch_data_samples[0]:
            raise KeyError(
                "UpProjectionHead.loss needs `gt_depth_map` in the data samples: load it with "
                "LoadDepthAnnotation and pack it with PackSegInputs"
            )
        return torch.stack([s.gt_depth_map.data for s in batch_data_samples], dim=0)

    def loss_by_feat(self, seg_logits: Tensor, batch_data_samples) -> dict:
        gt = self._stack_batch_gt(batch_data_samples)
        pred = resize(seg_logits, size=gt.shape[2:], mode="bilinear", align_corners=self.align_corners)
        losses_decode = (
            self.loss_decode if isinstance(self.loss_decode, nn.ModuleList) else [self.loss_decode]
        )
        loss: dict[str, Tensor] = {}
        for loss_fn in losses_decode:
            value = loss_fn(pred, gt)
            loss[loss_fn.loss_name] = loss.get(loss_fn.loss_name, 0) + value
        return loss

    def predict_by_feat(self, seg_logits: Tensor, batch_img_metas: list[dict]) -> Tensor:
        depth = super().predict_by_feat(seg_logits, batch_img_metas)
        return depth.clamp(self.min_depth, self.max_depth)

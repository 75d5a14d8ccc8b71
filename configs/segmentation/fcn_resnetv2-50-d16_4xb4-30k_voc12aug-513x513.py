# BN ResNetV2-50 baseline (pre-activation, timm's resnetv2) with a BN FCN head; paper Table 6 BN column.
_base_ = "./_base_/fcn-bn_d16_4xb4-30k_voc12aug-513x513.py"
model = dict(
    backbone=dict(model_name="resnetv2_50", checkpoint_path="checkpoints/resnetv2_50_in1k.safetensors")
)

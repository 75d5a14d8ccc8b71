# BN baseline (pre-activation ResNetV2-200); the decoder uses Laina's original conv-BN-ReLU blocks.
_base_ = "./uproj_nf-resnet50_8xb32-7.5k_nyu-304x228.py"
model = dict(
    backbone=dict(model_name="resnetv2_200", checkpoint_path="checkpoints/resnetv2_200_in1k.safetensors"),
    decode_head=dict(norm_cfg=dict(_delete_=True, type="BN")),
)

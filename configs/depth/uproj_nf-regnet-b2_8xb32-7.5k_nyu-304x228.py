_base_ = "./uproj_nf-resnet50_8xb32-7.5k_nyu-304x228.py"
model = dict(
    backbone=dict(model_name="nf_regnet_b2", checkpoint_path="checkpoints/nf_regnet_b2_in1k.safetensors"),
    decode_head=dict(in_channels=1064),
)

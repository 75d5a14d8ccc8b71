_base_ = "./uproj_nf-resnet50_8xb32-7.5k_nyu-304x228.py"
model = dict(
    backbone=dict(model_name="nf_resnet200", checkpoint_path="checkpoints/nf_resnet200_in1k.safetensors")
)

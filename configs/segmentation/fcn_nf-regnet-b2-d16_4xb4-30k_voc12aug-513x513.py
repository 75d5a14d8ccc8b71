# NF-RegNet-B2 FCN on Pascal VOC, same recipe as the NF-ResNets (the paper reports no RegNet mIoU).
_base_ = "./_base_/fcn_d16_4xb4-30k_voc12aug-513x513.py"
model = dict(
    backbone=dict(model_name="nf_regnet_b2", checkpoint_path="checkpoints/nf_regnet_b2_in1k.safetensors"),
    decode_head=dict(in_channels=1064),
)

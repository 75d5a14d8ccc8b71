# NF-RegNet-B1 FCN on Pascal VOC, same recipe as the NF-ResNets (the paper reports no RegNet mIoU).
_base_ = "./_base_/fcn_d16_4xb4-30k_voc12aug-513x513.py"
model = dict(
    backbone=dict(model_name="nf_regnet_b1", checkpoint_path="checkpoints/nf_regnet_b1_in1k.safetensors"),
    decode_head=dict(in_channels=960),
)

# NF-ResNet-101 FCN on Pascal VOC (paper Table 6: 74.4/76.7/77.6/78.4 mIoU for RN50/101/152/200).
_base_ = "./_base_/fcn_d16_4xb4-30k_voc12aug-513x513.py"
model = dict(
    backbone=dict(model_name="nf_resnet101", checkpoint_path="checkpoints/nf_resnet101_in1k.safetensors")
)

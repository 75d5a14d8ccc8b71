# "Fine-tune today" (README): the paper's VOC recipe (appendix H) on timm's published ImageNet weights
# nf_regnet_b1.ra2_in1k, in timm's own architecture (widths rounded up to multiples of 8, ReLU
# squeeze-excite, no SkipInit gains), NOT the paper-exact NF-RegNet-B1 of fcn_nf-regnet-b1-d16_... .
# NFBackbone builds it dilated at output stride 16 and loads the weights from the Hugging Face Hub
# (timm/nf_regnet_b1.ra2_in1k, cached by huggingface_hub; HF_HUB_OFFLINE=1 uses the cache only).
# Schedule, head and hyper-parameters are the paper recipe's, unchanged: timm's final conv is 960 wide,
# as the paper's B1, so even the head input is the same as fcn_nf-regnet-b1-d16_... .
_base_ = "./_base_/fcn_d16_4xb4-30k_voc12aug-513x513.py"
model = dict(
    backbone=dict(model_name="nf_regnet_b1.ra2_in1k", pretrained=True, checkpoint_path=None),
    decode_head=dict(in_channels=960),
)

# "Fine-tune today" (README): the paper's VOC recipe (appendix H) on timm's published ImageNet weights
# nf_resnet50.ra2_in1k, in timm's own architecture (2x2 avg-pool + 1x1 conv transition shortcuts, no
# SkipInit gains), NOT the paper-exact NF-ResNet-50 of fcn_nf-resnet50-d16_... . NFBackbone builds it
# dilated at output stride 16 as the paper does and loads the weights from the Hugging Face Hub
# (timm/nf_resnet50.ra2_in1k, cached by huggingface_hub; HF_HUB_OFFLINE=1 uses the cache only).
# Schedule, head and hyper-parameters are the paper recipe's, unchanged: the backbone forces no difference
# (2048 final channels as the paper's ResNet-50, ImageNet mean/std as mmseg's data preprocessor).
_base_ = "./_base_/fcn_d16_4xb4-30k_voc12aug-513x513.py"
model = dict(backbone=dict(model_name="nf_resnet50.ra2_in1k", pretrained=True, checkpoint_path=None))

# "Fine-tune today" (README): the paper's NYUv2 recipe (appendix H.2: up-projection decoder, berHu loss)
# on timm's published ImageNet weights nf_resnet50.ra2_in1k, in timm's own architecture (2x2 avg-pool +
# 1x1 conv transition shortcuts, no SkipInit gains), NOT the paper-exact NF-ResNet-50 of
# uproj_nf-resnet50_... . The weights come from the Hugging Face Hub (timm/nf_resnet50.ra2_in1k, cached
# by huggingface_hub; HF_HUB_OFFLINE=1 uses the cache only). Everything else is the paper config's,
# unchanged: the backbone forces no difference (2048 final channels, stride-32 features, ImageNet mean/std).
_base_ = "./uproj_nf-resnet50_8xb32-7.5k_nyu-304x228.py"
model = dict(backbone=dict(model_name="nf_resnet50.ra2_in1k", pretrained=True, checkpoint_path=None))

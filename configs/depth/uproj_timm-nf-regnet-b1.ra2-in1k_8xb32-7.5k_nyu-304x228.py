# "Fine-tune today" (README): the paper's NYUv2 recipe (appendix H.2: up-projection decoder, berHu loss)
# on timm's published ImageNet weights nf_regnet_b1.ra2_in1k, in timm's own architecture (widths rounded
# up to multiples of 8, ReLU squeeze-excite, no SkipInit gains), NOT the paper-exact NF-RegNet-B1 of
# uproj_nf-regnet-b1_... . The weights come from the Hugging Face Hub (timm/nf_regnet_b1.ra2_in1k, cached
# by huggingface_hub; HF_HUB_OFFLINE=1 uses the cache only). Everything else is the paper config's,
# unchanged: timm's final conv is 960 wide, as the paper's B1, so the decoder input is the same too.
_base_ = "./uproj_nf-regnet-b1_8xb32-7.5k_nyu-304x228.py"
model = dict(backbone=dict(model_name="nf_regnet_b1.ra2_in1k", pretrained=True, checkpoint_path=None))

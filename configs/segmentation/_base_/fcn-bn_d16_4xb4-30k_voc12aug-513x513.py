# BN baselines (timm's pre-activation BN ResNetV2): the same recipe and FCN head, but with BatchNorm + ReLU
# in the head (mmseg's FCNHead) and BatchNorm synchronised across GPUs (4 images per GPU).
_base_ = "./fcn_d16_4xb4-30k_voc12aug-513x513.py"
norm_cfg = dict(type="SyncBN", requires_grad=True)
# Only the head type changes: every other head setting is inherited from the NF base.
model = dict(decode_head=dict(type="FCNHead", norm_cfg=norm_cfg))
# BatchNorm synchronised across GPUs by timm's converter (tools/train.py's runner): timm's BatchNormAct2d
# keeps its ReLU inside the norm module, which mmengine's own "torch" conversion would drop.
sync_bn = "timm"

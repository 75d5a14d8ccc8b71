# BN baselines (timm's pre-activation BN ResNetV2): the same recipe and FCN head, but with BatchNorm + ReLU
# in the head (mmseg's FCNHead) and BatchNorm synchronised across GPUs (4 images per GPU).
_base_ = "./fcn_d16_4xb4-30k_voc12aug-513x513.py"
norm_cfg = dict(type="SyncBN", requires_grad=True)
model = dict(
    decode_head=dict(
        _delete_=True,
        type="FCNHead",
        in_channels=2048,
        in_index=0,
        channels=256,
        num_convs=2,
        kernel_size=3,
        dilation=6,
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=21,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    )
)
sync_bn = "torch"

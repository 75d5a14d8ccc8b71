# Paper appendix H recipe on top of mmseg's own bases: FCN on an output-stride-16 backbone, Pascal VOC
# 2012 train + SBD aug (10,582 images), val2012 (1,449); 30k iters at batch 16 (4 GPUs x 4), SGD
# Nesterov 0.9, lr 0.003 x0.1 at 70%/90%, wd 5e-5 (none on gains/biases/norms), random rescale
# [0.5, 2.0] + flip + 513 crop, single-scale eval padded to 513 ("a single 513 pixel center crop").
# Model configs next to this file set only the backbone (and the head for BN baselines).
_base_ = [
    "mmseg::_base_/models/fcn_r50-d8.py",
    "mmseg::_base_/datasets/pascal_voc12_aug.py",
    "mmseg::_base_/default_runtime.py",
    "mmseg::_base_/schedules/schedule_40k.py",
]
custom_imports = dict(imports=["nf_plugins.downstream"], allow_failed_imports=False)

crop_size = (513, 513)
num_classes = 21
data_root = "data/VOCdevkit/VOC2012"  # made by tools/prepare_voc.py
dataset_type = "CheckedPascalVOCDataset"  # mmseg's PascalVOCDataset + "how to prepare" errors

model = dict(
    data_preprocessor=dict(size=crop_size, test_cfg=dict(size=crop_size)),
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type="NFBackbone",
        model_name="nf_resnet50",
        pretrained=False,
        # ImageNet weights of the classification model (configs/imagenet/ recipe); a missing file is an
        # error. Set it to None to train from scratch.
        checkpoint_path="checkpoints/nf_resnet50_in1k.safetensors",
        out_indices=(4,),
        output_stride=16,
        drop_path_rate=0.0,  # the paper adds no regularization downstream
    ),
    # Two 3x3 convs (256 channels, as He et al. 2020) dilated by 6, then a 1x1 classifier.
    decode_head=dict(
        _delete_=True,
        type="NFFCNHead",
        in_channels=2048,
        in_index=0,
        channels=256,
        num_convs=2,
        kernel_size=3,
        dilation=6,
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=num_classes,
        align_corners=False,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    ),
    auxiliary_head=None,
)

train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    dict(type="ValidateSegSample", num_classes=num_classes),
    dict(type="RandomRescale", ratio_range=(0.5, 2.0)),
    dict(type="RandomCrop", crop_size=crop_size),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    dict(type="ValidateSegSample", num_classes=num_classes),
    dict(type="PackSegInputs"),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    dataset=dict(
        _delete_=True,
        type="ConcatDataset",
        datasets=[
            dict(
                type=dataset_type,
                data_root=data_root,
                data_prefix=dict(img_path="JPEGImages", seg_map_path="SegmentationClass"),
                ann_file="ImageSets/Segmentation/train.txt",
                pipeline=train_pipeline,
            ),
            dict(
                type=dataset_type,
                data_root=data_root,
                data_prefix=dict(img_path="JPEGImages", seg_map_path="SegmentationClassAug"),
                ann_file="ImageSets/Segmentation/aug.txt",
                pipeline=train_pipeline,
            ),
        ],
    ),
)
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 30000
optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    optimizer=dict(type="SGD", lr=0.003, momentum=0.9, nesterov=True, weight_decay=5e-5),
    # no decay on Scaled WS gains, SkipInit gains (both match "gain"), biases and norm layers
    paramwise_cfg=dict(bias_decay_mult=0.0, norm_decay_mult=0.0, custom_keys={"gain": dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(
        type="MultiStepLR",
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[int(0.7 * max_iters), int(0.9 * max_iters)],
        gamma=0.1,
    )
]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=3000)
# Checkpoints are written atomically (temp file + rename): a kill mid-save never leaves a truncated one.
default_hooks = dict(
    checkpoint=dict(
        by_epoch=False, interval=3000, max_keep_ckpts=2, backend_args=dict(backend="atomic_local")
    )
)
custom_hooks = [dict(type="NonFiniteLossHook")]  # a NaN/inf loss stops training before it is saved
randomness = dict(seed=0)
# the recipe's global batch: 4 GPUs x 4 images; `--auto-scale-lr` rescales lr for other batch sizes
auto_scale_lr = dict(enable=False, base_batch_size=16)

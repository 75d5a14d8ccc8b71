# NYUv2 depth, paper appendix H.2 / Table 7: NF-ResNet-50 final-stage features -> Laina et al.
# up-projection decoder, berHu loss; 7,500 iters at batch 256 (8 GPUs x 32), SGD Nesterov lr 0.16, cosine.
# Data (README "NYUv2 depth"): training frames from the raw sequences (mmseg's NYU zip),
#   python tools/prepare_nyu.py nyu.zip -o data/nyu
# test set: the labeled file's 654 test images with their filled-in depth (Laina's ground truth),
#   python tools/prepare_nyu.py nyu_depth_v2_labeled.mat --splits splits.mat -o data/nyu_labeled
# Only the deltas to mmseg's own NYU dataset config and runtime are stated here.
_base_ = ["mmseg::_base_/datasets/nyu.py", "mmseg::_base_/default_runtime.py"]
custom_imports = dict(imports=["nf_plugins.downstream"], allow_failed_imports=False)

crop_size = (228, 304)  # (h, w): the paper's 304x228 centre crop
model = dict(
    type="DepthEstimator",
    data_preprocessor=dict(
        type="SegDataPreProcessor",
        mean=[123.675, 116.28, 103.53],  # ImageNet statistics, as the backbones were trained with
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=0,
        size=crop_size,  # training batches are all 304x228 crops; test images are not padded
    ),
    backbone=dict(
        type="NFBackbone",
        model_name="nf_resnet50",
        checkpoint_path="checkpoints/nf_resnet50_in1k.safetensors",  # ImageNet weights (classification model)
        out_indices=(4,),
        output_stride=32,  # Laina's decoder starts from the undilated stride-32 final stage
    ),
    decode_head=dict(
        type="UpProjectionHead",
        in_channels=2048,
        norm_cfg=None,  # normalizer-free head: Scaled WS convs + gamma-scaled ReLU
        max_depth=10.0,
        loss_decode=dict(type="BerHuLoss", threshold_ratio=0.2),
    ),
    test_cfg=dict(mode="whole"),
)

meta_keys = ("img_path", "depth_map_path", "ori_shape", "img_shape", "pad_shape", "scale_factor", "flip",
             "flip_direction", "category_id")  # fmt: skip
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadCheckedDepthAnnotation", depth_rescale_factor=1e-3),  # mm -> m
    dict(type="Resize", scale=(320, 240), keep_ratio=False),  # downsample 640x480 by 2 (Laina)
    dict(type="DepthCenterCrop", crop_size=crop_size[::-1]),  # mmcv takes (w, h)
    dict(type="RandomFlip", prob=0.5),
    # mmcv images are BGR, so the luma weights are given in B, G, R order.
    dict(type="RandomGrayscale", prob=0.3, keep_channels=True, channel_weights=(0.114, 0.587, 0.299)),
    # brightness +-0.1255 of 255 = 32; saturation x[0.5, 1.5]; hue +-0.2 of a full turn = 36 of OpenCV's 180;
    # no contrast change (range 1..1). mmseg applies each with probability 1/2.
    dict(
        type="PhotoMetricDistortion",
        brightness_delta=32,
        contrast_range=(1.0, 1.0),
        saturation_range=(0.5, 1.5),
        hue_delta=36,
    ),
    dict(type="PackSegInputs", meta_keys=meta_keys),
]
# Evaluation as Laina et al.'s evaluateNYU.m: the image downsampled by 2 and centre-cropped to 304x228 (as in
# training), the prediction resized bilinearly to the full 640x480 frame (mmseg's DepthEstimator resizes to
# ori_shape) and scored against the full-resolution ground truth (loaded after the resize and crop).
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(320, 240), keep_ratio=False),
    dict(type="DepthCenterCrop", crop_size=crop_size[::-1]),
    dict(type="LoadCheckedDepthAnnotation", depth_rescale_factor=1e-3),
    dict(type="PackSegInputs", meta_keys=meta_keys),
]
# CheckedNYUDataset: mmseg's NYUDataset + errors naming the prepare command for missing/empty folders.
# train_set="dense" refuses a training folder of fewer than 10,000 frames. The 795 labeled images instead:
#   --cfg-options train_dataloader.dataset.train_set=labeled795 \
#                 train_dataloader.dataset.data_root=data/nyu_labeled
train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    dataset=dict(
        type="CheckedNYUDataset",
        data_root="data/nyu",
        data_prefix=dict(img_path="images/train", depth_map_path="annotations/train"),
        train_set="dense",
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    dataset=dict(type="CheckedNYUDataset", data_root="data/nyu_labeled", pipeline=test_pipeline),
)
test_dataloader = val_dataloader
# Headline: every metric pooled over all valid pixels of the test set (Laina et al., the paper's "percentage
# of pixels"); mmseg's per-image means beside them as per_image/<name>. No Eigen crop (Laina uses none);
# valid = 1 mm < depth < 10 m (all pixels of the filled-in labeled depth; the holes of raw depth maps).
val_evaluator = dict(_delete_=True, type="NYUDepthMetric", min_depth_eval=1e-3, max_depth_eval=10.0)
test_evaluator = val_evaluator

max_iters = 7500
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="SGD", lr=0.16, momentum=0.9, nesterov=True, weight_decay=5e-5),
    # no decay on Scaled WS gains, SkipInit gains (both match "gain"), biases and norms (paper appendix B.1)
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, custom_keys={"gain": dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(type="CosineAnnealingLR", T_max=max_iters, eta_min=0.0, by_epoch=False, begin=0, end=max_iters)
]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=1500)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(
        type="CheckpointHook",
        by_epoch=False,
        interval=1500,  # no save_best: val is the test split; the paper reports the final iteration
        backend_args=dict(backend="atomic_local"),  # temp file + rename: never a truncated checkpoint
    ),  # fmt: skip
    sampler_seed=dict(type="DistSamplerSeedHook"),
    visualization=dict(type="SegVisualizationHook"),
)
custom_hooks = [dict(type="NonFiniteLossHook")]  # a NaN/inf loss stops training before it is saved
# 8 GPUs x 32 = the paper's batch 256; on other setups mmengine rescales lr linearly with --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=256)

"""A shipped VOC or NYU config shrunk for a short CPU run: the one place the demos and tests shrink one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from mmengine.config import Config

from nf_plugins.downstream.engine.config import set_data_root

LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def _datasets(dataset: Any) -> Iterator[Any]:
    """``dataset`` and the members of a ``ConcatDataset`` (VOC's train + SBD aug), each with a pipeline."""
    yield from dataset.get("datasets", None) or [dataset]


def small_run_config(
    config: str | os.PathLike,
    data_root: str | os.PathLike,
    work_dir: str | os.PathLike,
    crop: tuple[int, int] = (64, 64),
    max_iters: int = 4,
    batch_size: int = 2,
    lr: float | None = None,
    val_interval: int | None = None,
    image_size: tuple[int, int] | None = None,
) -> Config:
    """``config`` shrunk for CPU: ``crop`` (h, w) training crops, ``batch_size``, ``max_iters`` steps, no
    ImageNet weights, no data-loading processes.

    The crop sizes ``RandomCrop`` (VOC) and ``DepthCenterCrop`` (NYU, train and test). ``image_size`` (h, w),
    if given, is the size every ``Resize`` gives (the depth demo's rooms). The lr schedule keeps its shape
    over ``max_iters`` (MultiStepLR steps at 70%/90%, cosine to the end); a checkpoint is written at the
    end. Everything else (model, head, transforms, optimizer) stays the config's own.
    """
    cfg = Config.fromfile(str(config))
    set_data_root(cfg, str(data_root))
    cfg.work_dir = str(work_dir)
    cfg.model.backbone.checkpoint_path = None
    cfg.model.backbone.pretrained = False
    cfg.model.data_preprocessor.size = crop
    cfg.model.data_preprocessor.test_cfg = dict(size_divisor=16)
    for key in LOADERS:
        loader = cfg[key]
        loader.num_workers = 0
        loader.persistent_workers = False
        for dataset in _datasets(loader.dataset):
            for t in dataset.pipeline:
                if t["type"] == "RandomCrop":
                    t["crop_size"] = crop
                elif t["type"] == "DepthCenterCrop":
                    t["crop_size"] = crop[::-1]  # mmcv takes (w, h)
                elif t["type"] == "Resize" and image_size is not None:
                    t["scale"] = image_size[::-1]
    cfg.train_dataloader.batch_size = batch_size
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = val_interval or max_iters
    for sched in cfg.param_scheduler:
        sched["end"] = max_iters
        if sched["type"] == "MultiStepLR":
            sched["milestones"] = [int(0.7 * max_iters), int(0.9 * max_iters)]
        elif sched["type"] == "CosineAnnealingLR":
            sched["T_max"] = max_iters
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = lr
    cfg.default_hooks.checkpoint.interval = max_iters
    cfg.default_hooks.logger.interval = 1
    cfg.env_cfg.cudnn_benchmark = False
    return cfg

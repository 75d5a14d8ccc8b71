"""Pascal VOC and NYUv2 datasets that say how to prepare the data when it is missing or empty."""

from __future__ import annotations

import os.path as osp
from typing import Any

from mmseg.datasets import NYUDataset, PascalVOCDataset
from mmseg.registry import DATASETS

PREPARE_CMD = (
    "python tools/prepare_voc.py --voc-tar VOCtrainval_11-May-2012.tar --sbd-tar benchmark.tgz --out data"
)
PREPARE_NYU_CMD = (
    "python tools/prepare_nyu.py nyu_depth_v2_labeled.mat --splits splits.mat -o data/nyu_labeled"
)
PREPARE_NYU_DENSE_CMD = "python tools/prepare_nyu.py nyu.zip -o data/nyu"
# NYU training sets by size: "dense" = frames sampled from the raw training sequences (Laina et al. ~12k,
# BTS/mmseg's nyu.zip ~24k, DenseDepth ~50k); "labeled795" = the official labeled training split.
NYU_TRAIN_SETS = {"dense": (10_000, None), "labeled795": (795, 795)}


class _CheckedDatasetMixin:
    """Before mmseg reads anything: every folder/split file the config names exists. After: not empty.

    An empty split is an error, not a dataset: mmengine's ``InfiniteSampler`` would loop forever
    without yielding a batch, and a test set of 0 images reports metrics of nothing.
    """

    dataset_name = ""
    prepare_cmd = ""

    def _check_paths(self, data_root: str | None, ann_file: str, data_prefix: dict | None) -> None:
        root = data_root or ""
        needed = [("data_root", root)] if root else []
        if ann_file:
            needed.append(("ann_file", osp.join(root, ann_file)))
        needed += [(f"data_prefix.{k}", osp.join(root, v)) for k, v in (data_prefix or {}).items() if v]
        for key, path in needed:
            if not osp.exists(path):
                raise FileNotFoundError(
                    f"{self.dataset_name} {key} not found: {path!r}. Prepare it with\n  {self.prepare_cmd}\n"
                    "or point tools/train.py / tools/test.py at your copy with --data-root DIR"
                )

    def load_data_list(self) -> list[dict]:
        data_list = super().load_data_list()  # type: ignore[misc]
        if not data_list:
            where = self.ann_file or self.data_prefix.get("img_path")  # type: ignore[attr-defined]
            raise ValueError(
                f"{self.dataset_name} split {where!r} has no images (empty split file or folder); "
                f"re-run\n  {self.prepare_cmd}"
            )
        return data_list


@DATASETS.register_module()
class CheckedPascalVOCDataset(_CheckedDatasetMixin, PascalVOCDataset):
    """mmseg's ``PascalVOCDataset`` with clear errors for a missing data root, split or folder, or an
    empty split."""

    dataset_name = "Pascal VOC"
    prepare_cmd = PREPARE_CMD

    def __init__(self, ann_file: str, data_root: str | None = None, **kwargs: Any) -> None:
        self._check_paths(data_root, ann_file, kwargs.get("data_prefix"))
        super().__init__(ann_file=ann_file, data_root=data_root, **kwargs)


@DATASETS.register_module()
class CheckedNYUDataset(_CheckedDatasetMixin, NYUDataset):
    """mmseg's ``NYUDataset`` with clear errors for a missing data root or folder, or an empty split.

    ``train_set`` ("dense" or "labeled795", see ``NYU_TRAIN_SETS``) also checks that a training folder
    holds that set: 7,500 steps at batch 256 are ~2,400 epochs of the 795 labeled images, so training the
    paper's recipe on them by mistake must fail, not quietly overfit.
    """

    dataset_name = "NYUv2"
    prepare_cmd = PREPARE_NYU_CMD

    def __init__(self, data_root: str | None = None, train_set: str | None = None, **kwargs: Any) -> None:
        if train_set is not None and train_set not in NYU_TRAIN_SETS:
            raise ValueError(f"train_set={train_set!r}: choose one of {sorted(NYU_TRAIN_SETS)} or None")
        self.train_set = train_set
        if train_set == "dense":
            self.prepare_cmd = PREPARE_NYU_DENSE_CMD
        prefix = kwargs.get("data_prefix") or dict(img_path="images", depth_map_path="annotations")
        self._check_paths(data_root, kwargs.get("ann_file", ""), prefix)
        super().__init__(data_root=data_root, **kwargs)

    def load_data_list(self) -> list[dict]:
        data_list = super().load_data_list()
        if self.train_set is None:
            return data_list
        low, high = NYU_TRAIN_SETS[self.train_set]
        n = len(data_list)
        if n >= low and (high is None or n <= high):
            return data_list
        where = self.data_prefix.get("img_path")
        if self.train_set == "dense":
            raise ValueError(
                f"NYUv2 training folder {where!r} has {n} images, but train_set='dense' (the paper configs' "
                f"default) expects the frames sampled from the raw training sequences (at least {low:,}; "
                f"mmseg's nyu.zip has ~24k). Prepare them with\n  {PREPARE_NYU_DENSE_CMD}\nor train on the "
                "795 labeled images with\n  --cfg-options train_dataloader.dataset.train_set=labeled795 "
                "train_dataloader.dataset.data_root=data/nyu_labeled"
            )
        raise ValueError(
            f"NYUv2 training folder {where!r} has {n} images, but train_set='labeled795' expects the "
            f"{low} images of the official split (splits.mat trainNdxs). Prepare them with\n"
            f"  {PREPARE_NYU_CMD}"
        )

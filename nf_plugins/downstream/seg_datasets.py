"""Pascal VOC and NYUv2 datasets that say how to prepare the data when it is missing or empty."""

from __future__ import annotations

import os.path as osp
from typing import Any

from mmseg.datasets import NYUDataset, PascalVOCDataset
from mmseg.registry import DATASETS

PREPARE_CMD = (
    "python tools/prepare_voc.py --voc-tar VOCtrainval_11-May-2012.tar --sbd-tar benchmark.tgz --out data"
)
PREPARE_NYU_CMD = "python tools/prepare_nyu.py nyu_depth_v2_labeled.mat --splits splits.mat -o data/nyu"


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
    """mmseg's ``NYUDataset`` with clear errors for a missing data root or folder, or an empty split."""

    dataset_name = "NYUv2"
    prepare_cmd = PREPARE_NYU_CMD

    def __init__(self, data_root: str | None = None, **kwargs: Any) -> None:
        prefix = kwargs.get("data_prefix") or dict(img_path="images", depth_map_path="annotations")
        self._check_paths(data_root, kwargs.get("ann_file", ""), prefix)
        super().__init__(data_root=data_root, **kwargs)

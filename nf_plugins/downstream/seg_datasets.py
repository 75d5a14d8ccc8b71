"""Pascal VOC dataset that says how to prepare the data when it is missing."""

from __future__ import annotations

import os.path as osp
from typing import Any

from mmseg.datasets import PascalVOCDataset
from mmseg.registry import DATASETS

PREPARE_CMD = (
    "python tools/prepare_voc.py --voc-tar VOCtrainval_11-May-2012.tar --sbd-tar benchmark.tgz --out data"
)


@DATASETS.register_module()
class CheckedPascalVOCDataset(PascalVOCDataset):
    """mmseg's ``PascalVOCDataset`` with a clear error for a missing data root, split or folder."""

    def __init__(self, ann_file: str, data_root: str | None = None, **kwargs: Any) -> None:
        root = data_root or ""
        prefix = kwargs.get("data_prefix") or {}
        needed = [("data_root", root)] if root else []
        needed.append(("ann_file", osp.join(root, ann_file)))
        needed += [(f"data_prefix.{k}", osp.join(root, v)) for k, v in prefix.items() if v]
        for key, path in needed:
            if not osp.exists(path):
                raise FileNotFoundError(
                    f"Pascal VOC {key} not found: {path!r}. Prepare VOC2012 + SBD with\n  {PREPARE_CMD}\n"
                    "or point tools/train.py / tools/test.py at your copy with --data-root DIR"
                )
        super().__init__(ann_file=ann_file, data_root=data_root, **kwargs)

"""ImageNet folders for ``tools/train_imagenet.py``: one class list for both splits, checked before training.

timm's ``create_dataset`` maps each folder's own class list (a ``val/`` missing one class of ``train/``
shifts every label), falls back to the data root when a split folder is missing (validation would run on
the training images), drops empty class folders, and skips undecodable images with a log line that names
only the sample index. Here the class list comes from ``train/`` and is passed to both readers as timm's
``class_map``; every mismatch is an error naming the folders; skipped training images are named and
counted, and a validation image that does not decode is an error (a substituted image is a wrong top-1).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from pathlib import Path

from PIL import Image
from timm.data import ImageDataset
from timm.data.readers.img_extensions import get_img_extensions
from timm.data.readers.reader_image_folder import ReaderImageFolder
from timm.utils.misc import natural_key

_logger = logging.getLogger(__name__)

TRAIN_NAMES = ("train", "training")
VAL_NAMES = ("val", "validation", "valid", "eval", "evaluation")
_MAX_CONSECUTIVE_SKIPS = 10  # timm's default (TIMM_DATASET_MAX_RETRIES)


def find_split(root: Path, split: str, what: str) -> Path:
    """The folder of ``split`` under ``root`` (its name, else the usual synonyms); never ``root`` itself."""
    names = (split, *(TRAIN_NAMES if split in TRAIN_NAMES else VAL_NAMES if split in VAL_NAMES else ()))
    for name in dict.fromkeys(names):
        if (root / name).is_dir():
            return root / name
    hint = " (or pass --no-val to train without validation)" if what == "validation" else ""
    raise FileNotFoundError(
        f"--data-dir {root} has no {what} folder: looked for {', '.join(dict.fromkeys(names))}; "
        f"create it in the ImageFolder layout <split>/<class>/<image>{hint}"
    )


def class_folders(split_dir: Path) -> dict[str, int]:
    """Class folder name -> number of images directly inside it, in timm's (natural) order.

    Errors for images outside any class folder and for empty class folders: timm would label the former
    with the class ``''`` and silently drop the latter, which shifts every later class index.
    """
    exts = get_img_extensions(as_set=True)
    counts: dict[str, int] = {}
    loose: list[str] = []
    with os.scandir(split_dir) as entries:
        for entry in entries:
            if entry.is_dir():
                with os.scandir(entry.path) as files:
                    counts[entry.name] = sum(
                        f.is_file() and os.path.splitext(f.name)[1].lower() in exts for f in files
                    )
            elif os.path.splitext(entry.name)[1].lower() in exts:
                loose.append(entry.name)
    if loose:
        raise ValueError(
            f"{split_dir} holds {len(loose)} images outside any class folder (e.g. {sorted(loose)[0]}); "
            "move each into <split>/<class>/"
        )
    empty = sorted(name for name, n in counts.items() if n == 0)
    if empty:
        raise ValueError(
            f"{split_dir}: {len(empty)} class folders hold no images: {', '.join(empty[:10])}"
            f"{' ...' if len(empty) > 10 else ''}; an empty class would shift every later label "
            "(remove the folder, or add its images)"
        )
    if not counts:
        raise ValueError(f"{split_dir} has no class folders; expected <split>/<class>/<image>")
    return {name: counts[name] for name in sorted(counts, key=natural_key)}


def check_same_classes(train: list[str], val: list[str], train_dir: Path, val_dir: Path) -> None:
    """Raise naming the classes one split has and the other lacks."""
    if train == val:
        return
    only_train, only_val = sorted(set(train) - set(val)), sorted(set(val) - set(train))
    raise ValueError(
        f"the class folders of {train_dir} ({len(train)}) and {val_dir} ({len(val)}) differ: "
        f"missing from {val_dir.name}/: {only_train[:10] or 'none'}, missing from {train_dir.name}/: "
        f"{only_val[:10] or 'none'}; both splits need the same class folders (labels are folder indices)"
    )


class CheckedImageFolder(ImageDataset):
    """timm's ImageFolder dataset with a fixed class map; undecodable images named (and counted).

    ``skip_corrupt=True`` (training) replaces an undecodable image by the next one, as timm does, but logs
    its path and counts it in ``skipped`` (a counter shared with DataLoader workers); ``False``
    (validation) raises naming the file. timm's own loop logs only the index, hence this ``__getitem__``.
    """

    def __init__(self, split_dir: Path, class_to_idx: dict[str, int], skip_corrupt: bool) -> None:
        reader = ReaderImageFolder(str(split_dir), class_map=class_to_idx)
        super().__init__(str(split_dir), reader=reader)
        self.skip_corrupt = skip_corrupt
        self.skipped = multiprocessing.Value("i", 0)

    def __getitem__(self, index: int):
        for _ in range(_MAX_CONSECUTIVE_SKIPS):
            path, target = self.reader.samples[index]
            try:
                with Image.open(path) as image:
                    img = image.convert(self.input_img_mode)  # decodes every pixel
                break
            except OSError as e:
                if not self.skip_corrupt:
                    raise ValueError(
                        f"{path}: not a decodable image ({type(e).__name__}: {e}); validation scores every "
                        "image, so replace or remove the file"
                    ) from e
                with self.skipped.get_lock():
                    self.skipped.value += 1
                _logger.warning("skipped undecodable training image %s (%s: %s)", path, type(e).__name__, e)
                index = (index + 1) % len(self.reader)
        else:
            raise RuntimeError(
                f"{_MAX_CONSECUTIVE_SKIPS} consecutive training images do not decode (last: {path})"
            )
        if self.transform is not None:
            img = self.transform(img)
        return img, target

    def take_skipped(self) -> int:
        """Images skipped since the last call (all workers), and reset the count."""
        with self.skipped.get_lock():
            n, self.skipped.value = self.skipped.value, 0
        return n


def build_datasets(
    data_dir: Path, train_split: str, val_split: str | None, num_classes: int
) -> tuple[CheckedImageFolder, CheckedImageFolder | None]:
    """Training and validation datasets with train/'s class list; ``val_split=None``: no validation.

    Checks, before any model is built: split folders exist, no empty class folder, identical class folders
    in both splits, no more classes than ``num_classes``, and every image found is read by timm's reader.
    """
    train_dir = find_split(data_dir, train_split, "training")
    classes = class_folders(train_dir)
    names = list(classes)
    if len(names) > num_classes:
        raise ValueError(
            f"{train_dir} has {len(names)} class folders but num_classes={num_classes}: labels "
            f"{num_classes}..{len(names) - 1} have no logit; set num_classes={len(names)} (--set) or remove "
            "folders"
        )
    if len(names) < num_classes:
        _logger.warning("%s has %d class folders, the model %d outputs", train_dir, len(names), num_classes)
    class_to_idx = {name: i for i, name in enumerate(names)}
    val = None
    if val_split is not None:
        val_dir = find_split(data_dir, val_split, "validation")
        if val_dir.resolve() == train_dir.resolve():
            raise ValueError(f"the training and validation folders are the same: {train_dir}")
        val_classes = class_folders(val_dir)
        check_same_classes(names, list(val_classes), train_dir, val_dir)
        val = CheckedImageFolder(val_dir, class_to_idx, skip_corrupt=False)
        _check_all_read(val, sum(val_classes.values()))
    train = CheckedImageFolder(train_dir, class_to_idx, skip_corrupt=True)
    _check_all_read(train, sum(classes.values()))
    return train, val


def _check_all_read(dataset: CheckedImageFolder, expected: int) -> None:
    """timm labels an image by its leaf folder: one in a nested folder would be dropped silently."""
    if len(dataset) != expected:
        raise ValueError(
            f"{dataset.reader.root}: {expected} images in class folders but timm's reader maps "
            f"{len(dataset)}; timm labels an image by its leaf folder, so nested sub-folders are not allowed "
            "(use <split>/<class>/<image>)"
        )

"""small_run_config: the one CPU shrinking of a shipped config (demos and tests), on a VOC and an NYU config.

Expected values are the arguments and the shipped config's own (loaded separately by path); a config loaded
by its ``nf_plugins::`` name is the file's.
"""

from pathlib import Path

import pytest

pytest.importorskip("mmseg")
from mmengine.config import Config  # noqa: E402

from nf_plugins.downstream.engine.config import load_config  # noqa: E402
from nf_plugins.downstream.engine.cpu_config import small_run_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VOC = ROOT / "configs/segmentation/fcn_nf-regnet-b0-d16_4xb4-30k_voc12aug-513x513.py"
NYU = ROOT / "configs/depth/uproj_nf-regnet-b0_8xb32-7.5k_nyu-304x228.py"
LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def _datasets(loader) -> list:
    return list(loader.dataset.get("datasets", None) or [loader.dataset])


def _steps(dataset, kind: str) -> list:
    return [t for t in dataset.pipeline if t["type"] == kind]


def test_voc_config_shrinks_crop_batch_schedule_and_keeps_the_rest(tmp_path):
    shipped = Config.fromfile(str(VOC))
    cfg = small_run_config(
        VOC, tmp_path / "d", tmp_path / "w", crop=(48, 40), max_iters=10, batch_size=3, lr=0.05
    )
    crops = [t["crop_size"] for ds in _datasets(cfg.train_dataloader) for t in _steps(ds, "RandomCrop")]
    assert crops == [(48, 40), (48, 40)]  # VOC train and SBD aug, both members of the ConcatDataset
    assert cfg.model.data_preprocessor.size == (48, 40)
    assert cfg.train_dataloader.batch_size == 3 and cfg.optim_wrapper.optimizer.lr == 0.05
    assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval, cfg.default_hooks.checkpoint.interval) == (
        10,
    ) * 3
    assert [(s["type"], s["end"], s.get("milestones")) for s in cfg.param_scheduler] == [
        ("MultiStepLR", 10, [7, 9])  # the shipped steps at 70% and 90% of 30k, over 10 iterations
    ]
    assert [s.get("milestones") for s in shipped.param_scheduler] == [[21000, 27000]]
    for key in LOADERS:
        assert cfg[key].num_workers == 0 and cfg[key].persistent_workers is False
        assert {ds.data_root for ds in _datasets(cfg[key])} == {str(tmp_path / "d")}
    assert cfg.model.backbone.checkpoint_path is None and cfg.model.backbone.pretrained is False
    assert cfg.work_dir == str(tmp_path / "w")
    # the rest is the config's own: model, optimizer, test pipeline
    assert cfg.model.decode_head == shipped.model.decode_head
    assert cfg.optim_wrapper.optimizer.momentum == shipped.optim_wrapper.optimizer.momentum
    assert cfg.test_dataloader.dataset.pipeline == shipped.test_dataloader.dataset.pipeline


def test_nyu_config_shrinks_resize_centre_crop_and_cosine_schedule(tmp_path):
    shipped = Config.fromfile(str(NYU))
    cfg = small_run_config(
        NYU, tmp_path / "d", tmp_path / "w", crop=(64, 96), max_iters=40, batch_size=4, image_size=(64, 96)
    )
    for key in LOADERS:  # train and test: mmcv's (w, h) order, 96 wide and 64 high
        (ds,) = _datasets(cfg[key])
        assert [t["scale"] for t in _steps(ds, "Resize")] == [(96, 64)]
        assert [t["crop_size"] for t in _steps(ds, "DepthCenterCrop")] == [(96, 64)]
        assert ds.data_root == str(tmp_path / "d") and cfg[key].num_workers == 0
    assert cfg.model.data_preprocessor.size == (64, 96)
    ((kind, t_max, end),) = [(s["type"], s["T_max"], s["end"]) for s in cfg.param_scheduler]
    assert (kind, t_max, end) == ("CosineAnnealingLR", 40, 40)
    assert cfg.train_cfg.max_iters == cfg.train_cfg.val_interval == 40
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.optim_wrapper.optimizer.lr == shipped.optim_wrapper.optimizer.lr  # lr=None keeps the config's
    assert cfg.model.decode_head == shipped.model.decode_head


def test_a_shipped_config_loads_by_its_scope_name_as_by_its_path():
    by_name = load_config(f"nf_plugins::depth/{NYU.name}", None, None, "none")
    by_path = load_config(str(NYU), None, None, "none")
    assert by_name.model == by_path.model and by_name.work_dir == by_path.work_dir
    with pytest.raises(
        FileNotFoundError, match=r"no shipped config nf_plugins::depth/uproj_nf-regnet-b9\.py; did you"
    ):
        load_config("nf_plugins::depth/uproj_nf-regnet-b9.py", None, None, "none")

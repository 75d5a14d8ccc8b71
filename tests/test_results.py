"""``nf-plugins collect-results``: README Tables 6/7 from recipe work dirs, wrong runs refused.

Fixture work dirs hold what ``tools/test.py`` leaves: ``test_metrics.json`` and mmengine's dump of the
config (a hand-written minimal one, plus one dump of a shipped config). The expected tables are written
out by hand below.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from nf_plugins import results as res

ROOT = Path(__file__).resolve().parents[1]
VOC_CFG = "fcn_nf-resnet50-d16_4xb4-30k_voc12aug-513x513"
VOC_TEST = "dict(type='CheckedPascalVOCDataset', ann_file='ImageSets/Segmentation/val.txt')"
NYU_TEST = "dict(type='CheckedNYUDataset', data_prefix=dict(img_path='images/test', depth_map_path='x'))"
NYU = {"d1": 0.8191, "d2": 0.9587, "d3": 0.9893, "rmse": 0.5724, "abs_rel": 0.1409, "per_image/rmse": 0.5}


def _work_dir(root: Path, name: str, model: str, test_set: str, metrics: dict, date: str | None) -> Path:
    work = root / name
    work.mkdir(parents=True)
    config = f"configs/x/{name}.py"
    record = {"config": config, "checkpoint": "iter.pth", "metrics": metrics}
    if date:
        record["date"] = date
    (work / "test_metrics.json").write_text(json.dumps(record))
    (work / f"{name}.py").write_text(
        f"model = dict(backbone=dict(type='NFBackbone', model_name={model!r}))\n"
        f"test_dataloader = dict(dataset={test_set})\n"
    )
    return work


def _date(day: int) -> str:
    return f"2026-11-{day:02d}T10:00:00+00:00"


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    return [
        _work_dir(tmp_path, VOC_CFG, "nf_resnet50", VOC_TEST, {"mIoU": 74.43, "aAcc": 94.1}, _date(2)),
        _work_dir(tmp_path, "fcn_resnetv2-101", "resnetv2_101", VOC_TEST, {"mIoU": 76.96}, _date(3)),
        _work_dir(tmp_path, "uproj_nf-resnet50", "nf_resnet50", NYU_TEST, NYU, _date(4)),
        _work_dir(tmp_path, "fcn_nf-regnet-b0", "nf_regnet_b0", VOC_TEST, {"mIoU": 70.0}, _date(5)),
        _work_dir(tmp_path, "fcn_timm-rn50", "nf_resnet50.ra2_in1k", VOC_TEST, {"mIoU": 72.16}, _date(6)),
    ]


EXPECTED = f"""Paper Table 6 (Pascal VOC val2012 mIoU) against ours:

| backbone | paper mIoU NF | paper mIoU BN | ours NF | ours BN |
|---|---|---|---|---|
| ResNet-50 | 74.4 | 75.4 | 74.4 ({VOC_CFG}, 2026-11-02) | not run yet |
| ResNet-101 | 76.7 | 77.0 | not run yet | 77.0 (fcn_resnetv2-101, 2026-11-03) |
| ResNet-152 | 77.6 | 77.9 | not run yet | not run yet |
| ResNet-200 | 78.4 | 78.0 | not run yet | not run yet |

Paper Table 7 (delta1/delta2/delta3 in %, rms and rel lower is better) against ours:

| backbone | paper NF | paper BN | ours NF | ours BN |
|---|---|---|---|---|
| ResNet-50 | 81.9 / 95.9 / 98.9 / 0.572 / 0.141 | 81.7 / 95.7 / 98.8 / 0.579 / 0.141 | 81.9 / 95.9 / 98.9 / 0.572 / 0.141 (uproj_nf-resnet50, 2026-11-04) | not run yet |
| ResNet-101 | 82.7 / 96.4 / 99.0 / 0.564 / 0.136 | 83.4 / 96.2 / 98.9 / 0.563 / 0.132 | not run yet | not run yet |
| ResNet-152 | 83.2 / 96.4 / 99.1 / 0.558 / 0.135 | 81.6 / 96.0 / 98.9 / 0.579 / 0.140 | not run yet | not run yet |
| ResNet-200 | 84.0 / 96.7 / 99.2 / 0.552 / 0.130 | 84.6 / 96.6 / 99.1 / 0.548 / 0.125 | not run yet | not run yet |

Other backbones:

| task | backbone | ours |
|---|---|---|
| VOC mIoU | nf_regnet_b0 | 70.0 (fcn_nf-regnet-b0, 2026-11-05) |
| VOC mIoU | nf_resnet50.ra2_in1k | 72.2 (fcn_timm-rn50, 2026-11-06) |
"""  # noqa: E501


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    res.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_collect_results_writes_the_tables_from_fixture_work_dirs(runs, tmp_path):
    out = tmp_path / "frag" / "README-fragment.md"
    text = res.run(_args(*map(str, runs), "--output", str(out)))
    assert out.read_text() == text == EXPECTED


def _readme_table(header: str) -> str:
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index(header)
    end = lines.index("", start)
    return "\n".join(lines[start:end])


def test_readme_tables_are_the_commands_output():
    """One source: the README's Tables 6 and 7 are exactly what the module writes (no runs yet)."""
    assert _readme_table("| backbone | paper mIoU NF | paper mIoU BN | ours NF | ours BN |") == res.table6([])
    assert _readme_table("| backbone | paper NF | paper BN | ours NF | ours BN |") == res.table7([])


def test_a_dump_of_the_shipped_voc_config_is_read(tmp_path):
    from mmengine.config import Config

    name = "fcn_nf-resnet101-d16_4xb4-30k_voc12aug-513x513"
    work = tmp_path / "w"
    work.mkdir()
    Config.fromfile(str(ROOT / "configs/segmentation" / f"{name}.py")).dump(str(work / f"{name}.py"))
    record = {"config": f"configs/segmentation/{name}.py", "checkpoint": "c.pth", "metrics": {"mIoU": 76.71}}
    (work / "test_metrics.json").write_text(json.dumps(record))
    run = res.read_run(work)
    assert (run.task, run.model_name, run.config) == ("voc", "nf_resnet101", name)
    assert (
        "| ResNet-101 | 76.7 | 77.0 | 76.7 (fcn_nf-resnet101-d16_4xb4-30k_voc12aug-513x513, "
        in res.table6([run])
    )


@pytest.mark.parametrize(
    "model, test_set, metrics, message",
    [
        ("nf_resnet50", VOC_TEST.replace("val.txt", "train.txt"), {"mIoU": 80.0}, "not VOC val2012"),
        ("nf_resnet50", NYU_TEST.replace("images/test", "images/train"), NYU, "not the NYU test split"),
        ("nf_resnet50", VOC_TEST, NYU, r"metrics \['mIoU'\] missing or not finite for a VOC run"),
        ("nf_resnet50", NYU_TEST, {"mIoU": 74.0}, r"metrics \['d1', 'd2', 'd3', 'rmse', 'abs_rel'\] missing"),
        ("nf_resnet50", VOC_TEST, {"mIoU": None}, "missing or not finite"),
        ("nf_resnet50", "dict(type='ADE20KDataset')", {"mIoU": 40.0}, "neither Pascal VOC"),
    ],
)
def test_runs_of_the_wrong_split_or_task_are_refused(tmp_path, model, test_set, metrics, message):
    work = _work_dir(tmp_path, "w", model, test_set, metrics, _date(2))
    with pytest.raises(ValueError, match=message):
        res.run(_args(str(work)))


def test_missing_files_and_two_runs_for_one_cell_are_refused(runs, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no test_metrics.json; test the run first"):
        res.run(_args(str(runs[0]), str(tmp_path / "empty")))
    (runs[1] / "fcn_resnetv2-101.py").unlink()
    with pytest.raises(FileNotFoundError, match="lacks fcn_resnetv2-101.py, the config mmengine saves"):
        res.run(_args(str(runs[1])))
    twin = _work_dir(tmp_path, "again", "nf_resnet50", VOC_TEST, {"mIoU": 75.0}, None)
    with pytest.raises(ValueError, match="two VOC runs for NF ResNet-50"):
        res.run(_args(str(runs[0]), str(twin)))


def _record(model, checkpoint, weights, top1, top5, size, crop, day):
    cfg = {"input_size": [3, size, size], "crop_pct": crop, "interpolation": "bicubic"}
    keys = ("model", "checkpoint", "weights", "top1", "top5")
    fields = dict(zip(keys, (model, checkpoint, weights, top1, top5), strict=True))
    return {
        "format": "nf_plugins.validate/1",
        **fields,
        "n_images": 50000,
        "data_config": cfg,
        "date": _date(day),
    }


def test_validate_records_give_the_weights_table(tmp_path):
    paths = [tmp_path / "b0.json", tmp_path / "timm.json"]
    paths[0].write_text(
        json.dumps(_record("nf_regnet_b0", "/r/last.pth", "ema", 71.234, 90.0, 224, 0.875, 7))
    )
    paths[1].write_text(json.dumps(_record("nf_resnet50.ra2_in1k", None, None, 80.2, 95.004, 288, 0.94, 8)))
    assert res.run(_args(*map(str, paths))) == (
        "ImageNet weights (nf-plugins validate):\n\n"
        "| weights | top-1 (%) | top-5 (%) | images | eval input | evaluated |\n"
        "|---|---|---|---|---|---|\n"
        "| nf_regnet_b0 (last.pth, ema) | 71.23 | 90.00 | 50000 | 224 px, crop 0.875, bicubic | 2026-11-07 |\n"  # noqa: E501
        "| nf_resnet50.ra2_in1k | 80.20 | 95.00 | 50000 | 288 px, crop 0.94, bicubic | 2026-11-08 |\n"
    )  # fmt: skip
    paths[1].write_text(json.dumps({"top1": 80.2}))
    with pytest.raises(ValueError, match="is not a record of `nf-plugins validate`"):
        res.run(_args(*map(str, paths)))


def test_a_record_without_date_is_dated_by_its_file(tmp_path):
    """test_metrics.json written before tools/test.py recorded the date: the file's own time (UTC)."""
    import datetime
    import os

    work = _work_dir(tmp_path, VOC_CFG, "resnetv2_50", VOC_TEST, {"mIoU": 75.21}, None)
    stamp = datetime.datetime(2026, 10, 1, 23, 30, tzinfo=datetime.timezone.utc).timestamp()
    os.utime(work / "test_metrics.json", (stamp, stamp))
    assert f"| ResNet-50 | 74.4 | 75.4 | not run yet | 75.2 ({VOC_CFG}, 2026-10-01) |" in res.table6(
        [res.read_run(work)]
    )

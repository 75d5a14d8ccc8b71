"""The "ours" columns of the README's Table 6 (VOC mIoU) and Table 7 (NYU depth), from recipe work dirs.

Each work dir must hold what ``tools/test.py`` leaves there: ``test_metrics.json`` (config path, date,
metrics) and mmengine's dump of the config it ran (``<work dir>/<config file name>``), which says the
backbone (``model.backbone.model_name``) and the test set (``test_dataloader.dataset``). A run is put in
a table only when its test set is the paper's (VOC val2012; NYU's ``images/test``) and its metrics are
that task's; anything else is an error naming the work dir. The paper's numbers live here only
(``PAPER_TABLE6``/``PAPER_TABLE7``, from appendix H); the README's tables are this module's output.
JSON records of ``nf-plugins validate`` passed instead of work dirs give the ImageNet weights table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Paper appendix H.1, Table 6: Pascal VOC val2012 mIoU, (NF-ResNet, BN-ResNet).
PAPER_TABLE6: dict[str, tuple[float, float]] = {
    "ResNet-50": (74.4, 75.4),
    "ResNet-101": (76.7, 77.0),
    "ResNet-152": (77.6, 77.9),
    "ResNet-200": (78.4, 78.0),
}
# Paper appendix H.2, Table 7: NYUv2 (delta1 %, delta2 %, delta3 %, rms, rel), NF then BN.
PAPER_TABLE7: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "ResNet-50": ((81.9, 95.9, 98.9, 0.572, 0.141), (81.7, 95.7, 98.8, 0.579, 0.141)),
    "ResNet-101": ((82.7, 96.4, 99.0, 0.564, 0.136), (83.4, 96.2, 98.9, 0.563, 0.132)),
    "ResNet-152": ((83.2, 96.4, 99.1, 0.558, 0.135), (81.6, 96.0, 98.9, 0.579, 0.140)),
    "ResNet-200": ((84.0, 96.7, 99.2, 0.552, 0.130), (84.6, 96.6, 99.1, 0.548, 0.125)),
}
# backbone model_name of our configs -> (table row, column); anything else goes to "other runs"
TABLE_BACKBONES: dict[str, tuple[str, str]] = {
    **{f"nf_resnet{d}": (f"ResNet-{d}", "NF") for d in (50, 101, 152, 200)},
    **{f"resnetv2_{d}": (f"ResNet-{d}", "BN") for d in (50, 101, 152, 200)},
}
NYU_KEYS = ("d1", "d2", "d3", "rmse", "abs_rel")
NOT_RUN = "not run yet"
_VOC_TYPES = ("PascalVOCDataset", "CheckedPascalVOCDataset")
_NYU_TYPES = ("NYUDataset", "CheckedNYUDataset")


@dataclass(frozen=True)
class Run:
    """One tested recipe run: where, which config, when, which backbone, which task and its numbers."""

    work_dir: Path
    config: str
    date: str
    model_name: str
    task: str  # "voc" or "nyu"
    metrics: dict[str, float]

    def cell(self) -> str:
        """The run's numbers as the paper prints them, marked with its config and date."""
        if self.task == "voc":
            value = f"{self.metrics['mIoU']:.1f}"
        else:
            m = self.metrics
            value = " / ".join(
                [f"{100 * m[k]:.1f}" for k in ("d1", "d2", "d3")]
                + [f"{m[k]:.3f}" for k in ("rmse", "abs_rel")]
            )
        return f"{value} ({self.config}, {self.date})"


def _test_set(cfg: Any, where: str) -> tuple[str, Any]:
    try:
        dataset = cfg["test_dataloader"]["dataset"]
        return dataset["type"], dataset
    except (KeyError, TypeError) as e:
        raise ValueError(f"{where}: the config has no test_dataloader.dataset.type") from e


def read_run(work_dir: str | Path) -> Run:
    """The run in ``work_dir``, refused unless it was tested on the paper's split with that task's metrics."""
    from mmengine.config import Config

    work_dir = Path(work_dir)
    path = work_dir / "test_metrics.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{work_dir} has no test_metrics.json; test the run first: "
            f"python tools/test.py CONFIG CHECKPOINT --work-dir {work_dir}"
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        config_path, metrics = Path(record["config"]), record["metrics"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(
            f"{path} is not a test_metrics.json of tools/test.py ({type(e).__name__}: {e})"
        ) from e
    dumped = work_dir / config_path.name
    if not dumped.is_file():
        raise FileNotFoundError(
            f"{work_dir} lacks {config_path.name}, the config mmengine saves beside test_metrics.json: "
            "the backbone and test split cannot be checked; re-run tools/test.py with this --work-dir"
        )
    cfg = Config.fromfile(str(dumped), import_custom_modules=False)
    kind, dataset = _test_set(cfg, str(dumped))
    if kind in _VOC_TYPES:
        task, need = "voc", ("mIoU",)
        ann_file = str(dataset.get("ann_file", ""))
        if not ann_file.replace("\\", "/").endswith("ImageSets/Segmentation/val.txt"):
            raise ValueError(
                f"{work_dir}: tested on ann_file={ann_file!r}, not VOC val2012 "
                "(ImageSets/Segmentation/val.txt), the split of the paper's Table 6"
            )
    elif kind in _NYU_TYPES:
        task, need = "nyu", NYU_KEYS
        img_path = str((dataset.get("data_prefix") or {}).get("img_path", ""))
        if not img_path.rstrip("/").endswith("test"):
            raise ValueError(
                f"{work_dir}: tested on data_prefix.img_path={img_path!r}, not the NYU test split "
                "(images/test) of the paper's Table 7"
            )
    else:
        raise ValueError(f"{work_dir}: test set {kind!r} is neither Pascal VOC (Table 6) nor NYUv2 (Table 7)")
    bad = [k for k in need if not isinstance(metrics.get(k), (int, float)) or not math.isfinite(metrics[k])]
    if bad:
        raise ValueError(
            f"{path}: metrics {bad} missing or not finite for a {task.upper()} run "
            f"(found {sorted(metrics)}); these are not the metrics of this task's test"
        )
    date = record.get("date") or datetime.datetime.fromtimestamp(
        path.stat().st_mtime, datetime.timezone.utc
    ).isoformat(timespec="seconds")
    try:
        model_name = str(cfg["model"]["backbone"]["model_name"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"{dumped}: no model.backbone.model_name (not one of our NFBackbone configs)") from e
    return Run(work_dir, config_path.stem, date[:10], model_name, task, dict(metrics))


def _place(runs: list[Run], task: str) -> tuple[dict[tuple[str, str], Run], list[Run]]:
    """Runs of ``task`` by (row, column) of the paper table, and the rest; two runs for one cell refused."""
    cells: dict[tuple[str, str], Run] = {}
    other = []
    for run in runs:
        if run.task != task:
            continue
        key = TABLE_BACKBONES.get(run.model_name)
        if key is None:
            other.append(run)
        elif key in cells:
            raise ValueError(
                f"two {task.upper()} runs for {key[1]} {key[0]}: {cells[key].work_dir} and {run.work_dir}; "
                "pass one of them"
            )
        else:
            cells[key] = run
    return cells, other


def _cell(cells: dict[tuple[str, str], Run], row: str, column: str) -> str:
    run = cells.get((row, column))
    return run.cell() if run else NOT_RUN


def table6(runs: list[Run]) -> str:
    """README Table 6 (VOC mIoU): the paper's columns and ours."""
    cells, _ = _place(runs, "voc")
    lines = ["| backbone | paper mIoU NF | paper mIoU BN | ours NF | ours BN |", "|---|---|---|---|---|"]
    for row, (nf, bn) in PAPER_TABLE6.items():
        lines.append(f"| {row} | {nf} | {bn} | {_cell(cells, row, 'NF')} | {_cell(cells, row, 'BN')} |")
    return "\n".join(lines)


def _paper7(values: tuple[float, ...]) -> str:
    return " / ".join([f"{v:.1f}" for v in values[:3]] + [f"{v:.3f}" for v in values[3:]])


def table7(runs: list[Run]) -> str:
    """README Table 7 (NYU delta1/2/3 %, rms, rel): the paper's columns and ours."""
    cells, _ = _place(runs, "nyu")
    lines = ["| backbone | paper NF | paper BN | ours NF | ours BN |", "|---|---|---|---|---|"]
    for row, (nf, bn) in PAPER_TABLE7.items():
        ours = f"{_cell(cells, row, 'NF')} | {_cell(cells, row, 'BN')}"
        lines.append(f"| {row} | {_paper7(nf)} | {_paper7(bn)} | {ours} |")
    return "\n".join(lines)


def other_runs(runs: list[Run]) -> str:
    """Runs whose backbone is in neither paper table (NF-RegNets, timm's weights), one row each."""
    rows = [r for task in ("voc", "nyu") for r in _place(runs, task)[1]]
    if not rows:
        return ""
    lines = ["| task | backbone | ours |", "|---|---|---|"]
    lines += [
        f"| {'VOC mIoU' if r.task == 'voc' else 'NYU d1/d2/d3/rms/rel'} | {r.model_name} | {r.cell()} |"
        for r in rows
    ]
    return "\n".join(lines)


def weights_table(records: list[dict[str, Any]]) -> str:
    """ImageNet accuracy of weights, one row per ``nf-plugins validate`` record (README's Weights)."""
    lines = [
        "| weights | top-1 (%) | top-5 (%) | images | eval input | evaluated |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        source = ", ".join(
            filter(None, [Path(r["checkpoint"]).name if r.get("checkpoint") else "", r.get("weights")])
        )
        name = f"{r['model']} ({source})" if source else r["model"]
        top5 = f"{r['top5']:.2f}" if r.get("top5") is not None else "-"
        cfg = r["data_config"]
        size = f"{cfg['input_size'][-1]} px, crop {cfg['crop_pct']}, {cfg['interpolation']}"
        lines.append(f"| {name} | {r['top1']:.2f} | {top5} | {r['n_images']} | {size} | {r['date'][:10]} |")
    return "\n".join(lines)


def fragment(runs: list[Run], records: list[dict[str, Any]] = ()) -> str:
    """The markdown written by ``nf-plugins collect-results``: Tables 6/7 for runs, weights for records."""
    parts = []
    if runs:
        parts += [
            "Paper Table 6 (Pascal VOC val2012 mIoU) against ours:",
            table6(runs),
            "Paper Table 7 (delta1/delta2/delta3 in %, rms and rel lower is better) against ours:",
            table7(runs),
        ]
        extra = other_runs(runs)
        if extra:
            parts += ["Other backbones:", extra]
    if records:
        parts += ["ImageNet weights (nf-plugins validate):", weights_table(list(records))]
    return "\n\n".join(parts) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nf-plugins collect-results`` flags."""
    parser.add_argument(
        "work_dirs",
        nargs="+",
        type=Path,
        help="work dirs of tools/test.py runs, and/or JSON files of nf-plugins validate (weights table)",
    )
    parser.add_argument("--output", type=Path, help="write the markdown here (default: print it)")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> str:
    """Read every work dir and validate JSON (all checked before anything is written), then the tables."""
    from .atomic import atomic_write_text
    from .hub.validate_record import read_validation_record
    from .outputs import check_output_file

    if args.output:
        check_output_file(args.output, "--output")
    records = [read_validation_record(p) for p in args.work_dirs if p.suffix == ".json" and not p.is_dir()]
    runs = [read_run(d) for d in args.work_dirs if not (d.suffix == ".json" and not d.is_dir())]
    text = fragment(runs, records)
    if args.output:
        atomic_write_text(args.output, text)
        print(f"wrote {args.output} ({len(runs)} runs, {len(records)} validate records)")
    else:
        print(text, end="")
    return text

"""``nf-plugins test``: evaluate a checkpoint with any mmseg config; prints the metrics and writes
<work_dir>/test_metrics.json.

The checkpoint must fit the config's model exactly (strict load; every missing, unexpected or mis-shaped
key is named). A metric that is NaN/inf is written as null and the command exits 1.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os.path as osp
import sys

from mmengine.dist import get_rank

from nf_plugins.atomic import atomic_write_json
from nf_plugins.distributed import exit_if_distributed
from nf_plugins.downstream.engine.cli_args import add_runner_args, config_from_args, export_local_rank
from nf_plugins.downstream.engine.registry_hints import registry_hints
from nf_plugins.downstream.engine.runner import build_runner
from nf_plugins.outputs import check_output_dir, check_output_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nf-plugins test`` options (mmseg's tools/test.py, plus ``--data-root``)."""
    parser.add_argument("config", help="test config file path, or nf_plugins::segmentation/... (shipped)")
    parser.add_argument("checkpoint", help="checkpoint file")
    parser.add_argument("--work-dir", help="the dir for logs and test_metrics.json")
    parser.add_argument("--out", help="also save the metrics JSON here")
    parser.add_argument("--show-dir", help="save painted predictions to this dir")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation (config's tta_pipeline)")
    add_runner_args(parser, "test_dataloader.batch_size=2")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Score ``args.checkpoint`` (strictly loaded) on the config's test split; exit 1 on a NaN/inf metric."""
    export_local_rank(args)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f"checkpoint {args.checkpoint!r} does not exist")
    # outputs first: mmengine's Config.fromfile alone takes seconds (it reads mmseg's metafiles)
    if args.out:
        check_output_file(args.out, "--out")
    if args.show_dir:
        check_output_dir(args.show_dir, "--show-dir")
    cfg = config_from_args(args)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        hook = cfg.default_hooks.visualization
        hook.draw, hook.interval = True, 1
        cfg.visualizer.save_dir = args.show_dir
    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    with registry_hints():  # a misspelt `type=` names the closest registered types
        runner = build_runner(cfg, strict_load=True)  # never score weights that did not load
        metrics = runner.test()
    metrics = {k: float(v) for k, v in metrics.items()}
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    if get_rank() == 0:
        record = {k: None if k in bad else v for k, v in metrics.items()}  # JSON has no NaN: null
        date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")  # collect-results
        record_file = dict(config=args.config, checkpoint=args.checkpoint, date=date, metrics=record)
        for path in filter(None, [osp.join(cfg.work_dir, "test_metrics.json"), args.out]):
            atomic_write_json(path, record_file, sort_keys=True)
        print(" ".join(f"{k}={v:.2f}" for k, v in metrics.items()))
    if bad:
        print(
            f"error: metrics {', '.join(bad)} are NaN/inf (written as null): the test split has no valid "
            "ground truth (e.g. no pixel with depth inside the evaluation range, or only ignored labels) "
            "or the predictions are not finite",
            file=sys.stderr,
        )
        exit_if_distributed(1)
        sys.exit(1)
    exit_if_distributed()

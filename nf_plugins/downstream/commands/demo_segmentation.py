"""``nf-plugins demo-segmentation``: fine-tune an NF-RegNet-B0 FCN on a synthetic Pascal VOC-format dataset
on CPU, print mIoU.

Generates a small deterministic dataset in the exact VOC2012 + SBD on-disk formats, converts it with the
same code as ``nf-plugins prepare-voc``, evaluates the untrained model, trains the shipped
``nf_plugins::segmentation/fcn_nf-regnet-b0-...`` config (shrunk: 64 px crops, batch 4, higher lr, no
ImageNet weights offline) and evaluates again with mmseg's IoUMetric. It draws the first validation images
(image | ground truth | prediction) into segmentation_demo.png in the work dir. Exits 1 unless fine-tuning
raised the mIoU.

    nf-plugins demo-segmentation [--iters 300] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import math
import os.path as osp
import sys
import tempfile
import time

from nf_plugins.mim import config_path
from nf_plugins.outputs import refuse_bad_args

CONFIG = "nf_plugins::segmentation/fcn_nf-regnet-b0-d16_4xb4-30k_voc12aug-513x513.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nf-plugins demo-segmentation`` options."""
    parser.add_argument("--iters", type=int, default=200, help="training iterations (default 200)")
    parser.add_argument("--crop", type=int, default=64, help="training crop size (default 64)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument(
        "--lr", type=float, default=0.05, help="SGD lr (the paper's 0.003 assumes ImageNet weights)"
    )
    parser.add_argument("--work-dir", help="where data, logs and checkpoints go (default: a temp dir)")
    parser.add_argument("--verbose", action="store_true", help="show mmengine's logs")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Make the data, score the untrained model, fine-tune, score again; print the table and the picture."""
    refuse_bad_args(  # before minutes of data generation and training
        parser,
        at_least=[
            ("--iters", args.iters, 1),
            ("--crop", args.crop, 32),
            ("--batch-size", args.batch_size, 1),
        ],
        positive=[("--lr", args.lr)],
        output_dirs=[("--work-dir", args.work_dir)],
    )
    from mmengine.logging import MMLogger
    from mmengine.runner import Runner

    from nf_plugins.data.synthetic_voc import make_synthetic_voc
    from nf_plugins.data.voc import prepare_vocaug
    from nf_plugins.downstream.engine.cpu_config import small_run_config
    from nf_plugins.downstream.visualization.visualize import save_segmentation_examples

    work = args.work_dir or tempfile.mkdtemp(prefix="nf_seg_demo_")
    data = osp.join(work, "data")
    t0 = time.time()
    counts = make_synthetic_voc(data, n_train=60, n_val=20, n_sbd_extra=40, size=(96, 72), seed=0)
    voc = osp.join(data, "VOCdevkit", "VOC2012")
    prepare_vocaug(voc, osp.join(data, "benchmark_RELEASE"), counts["trainaug"], counts["val"])
    print(f"synthetic VOC at {voc}: {counts} ({time.time() - t0:.1f} s)")

    def train_and_test(name: str, iters: int) -> tuple[dict, float, Runner]:
        cfg = small_run_config(
            config_path(CONFIG), voc, osp.join(work, name), crop=(args.crop, args.crop),
            max_iters=max(iters, 1), batch_size=args.batch_size, lr=args.lr,
        )  # fmt: skip
        cfg.experiment_name = name
        cfg.log_level = "INFO" if args.verbose else "WARNING"
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
        if iters == 0:
            cfg.train_cfg = cfg.train_dataloader = cfg.optim_wrapper = cfg.param_scheduler = None
        runner = Runner.from_cfg(cfg)
        start = time.time()
        if iters:
            runner.train()
        else:
            runner.model.init_weights()  # the weights training would start from
        metrics = runner.test()
        return metrics, time.time() - start, runner

    if not args.verbose:
        logging.getLogger("mmengine").setLevel(logging.WARNING)
    before, _, _ = train_and_test("untrained", 0)
    after, secs, runner = train_and_test("finetune", args.iters)
    picture = save_segmentation_examples(runner, osp.join(work, "segmentation_demo.png"))
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    print(
        f"\nNF-RegNet-B0 FCN, output stride 16, synthetic VOC val ({counts['val']} images), mmseg IoUMetric"
    )
    print("| model | iterations | train time (s) | mIoU | mAcc | aAcc |")
    print("|---|---|---|---|---|---|")
    for name, iters, t, m in (
        ("untrained", 0, "-", before),
        ("fine-tuned", args.iters, f"{secs:.0f}", after),
    ):
        print(f"| {name} | {iters} | {t} | {m['mIoU']:.2f} | {m['mAcc']:.2f} | {m['aAcc']:.2f} |")
    print(f"work dir: {work}")
    print(f"picture (image | ground truth | prediction, first val images): {picture}")
    if not math.isfinite(after["mIoU"]) or not after["mIoU"] > before["mIoU"]:
        print("FAILED: fine-tuning did not raise the mIoU (or it is not a number)", file=sys.stderr)
        sys.exit(1)

"""Pascal VOC 2012 + SBD (``VOCtrainval_11-May-2012.tar``, ``benchmark.tgz``) -> mmseg's VOCaug layout.

    python tools/prepare_voc.py --voc-tar VOCtrainval_11-May-2012.tar --sbd-tar benchmark.tgz --out data
    python tools/prepare_voc.py --voc-dir data/VOCdevkit/VOC2012 --sbd-dir data/benchmark_RELEASE

Result: data/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,SegmentationClassAug} and
ImageSets/Segmentation/{train,val,aug,trainaug}.txt (1,464 + 9,118 = 10,582 train, 1,449 val).
"""

import argparse
import os.path as osp
import sys

from nf_plugins.downstream.voc import TRAINAUG_LEN, VAL_LEN, prepare_vocaug, safe_extract


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--voc-tar", help="VOCtrainval_11-May-2012.tar")
    p.add_argument("--sbd-tar", help="SBD benchmark.tgz")
    p.add_argument("--out", default="data", help="extract the archives here (default: data)")
    p.add_argument("--voc-dir", help="already extracted VOCdevkit/VOC2012 (default: OUT/VOCdevkit/VOC2012)")
    p.add_argument("--sbd-dir", help="already extracted benchmark_RELEASE (default: OUT/benchmark_RELEASE)")
    p.add_argument("--expect-trainaug", type=int, default=TRAINAUG_LEN, help="count check of trainaug.txt")
    p.add_argument("--expect-val", type=int, default=VAL_LEN, help="count check of val.txt")
    args = p.parse_args(argv)
    for tar in (args.voc_tar, args.sbd_tar):
        if tar:
            safe_extract(tar, args.out)
    voc_dir = args.voc_dir or osp.join(args.out, "VOCdevkit", "VOC2012")
    sbd_dir = args.sbd_dir or osp.join(args.out, "benchmark_RELEASE")
    try:
        counts = prepare_vocaug(voc_dir, sbd_dir, args.expect_trainaug, args.expect_val)
    except (FileNotFoundError, ValueError) as e:
        print(f"prepare_voc: error: {e}", file=sys.stderr)
        return 1
    print(f"VOCaug ready in {voc_dir}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

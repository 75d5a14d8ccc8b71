"""Pascal VOC 2012 + SBD (``VOCtrainval_11-May-2012.tar``, ``benchmark.tgz``) -> mmseg's VOCaug layout.

    python tools/prepare_voc.py --voc-tar VOCtrainval_11-May-2012.tar --sbd-tar benchmark.tgz --out data
    python tools/prepare_voc.py --voc-dir data/VOCdevkit/VOC2012 --sbd-dir data/benchmark_RELEASE

Result: data/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,SegmentationClassAug} and
ImageSets/Segmentation/{train,val,aug,trainaug}.txt (1,464 + 9,118 = 10,582 train, 1,449 val).

Nothing is read or written outside --out and the VOC/SBD folders: archives extract only their plain
files and folders (links are skipped and named), a member named outside --out refuses the archive,
split ids must be VOC ids (2007_000032), and the output folders are checked before any work.
"""

import argparse
import importlib.util
import os.path as osp
import sys
import tarfile
from pathlib import Path


def _outputs_module():
    """``nf_plugins/outputs.py`` loaded by path: the package import pulls in torch and mmseg (20+ s),
    and the argument and output checks must answer before that."""
    path = Path(__file__).resolve().parents[1] / "nf_plugins" / "outputs.py"
    spec = importlib.util.spec_from_file_location("nf_plugins_outputs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_args(args: argparse.Namespace) -> None:
    """Everything that can be known before extracting: the archives exist, the folders can be written."""
    outputs = _outputs_module()
    for flag, tar in (("--voc-tar", args.voc_tar), ("--sbd-tar", args.sbd_tar)):
        if tar and not osp.isfile(tar):
            kind = "is a folder (give it as --voc-dir/--sbd-dir)" if osp.isdir(tar) else "does not exist"
            raise FileNotFoundError(f"{flag} {tar} {kind}")
    if args.voc_tar or args.sbd_tar:
        outputs.check_output_dir(args.out, "--out")
    if args.voc_dir:  # an extracted VOC2012: its SegmentationClassAug and split lists are written
        outputs.check_output_dir(args.voc_dir, "--voc-dir")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--voc-tar", help="VOCtrainval_11-May-2012.tar")
    p.add_argument("--sbd-tar", help="SBD benchmark.tgz")
    p.add_argument("--out", default="data", help="extract the archives here (default: data)")
    p.add_argument("--voc-dir", help="already extracted VOCdevkit/VOC2012 (default: OUT/VOCdevkit/VOC2012)")
    p.add_argument("--sbd-dir", help="already extracted benchmark_RELEASE (default: OUT/benchmark_RELEASE)")
    p.add_argument("--expect-trainaug", type=int, help="count check of trainaug.txt (default: 10,582)")
    p.add_argument("--expect-val", type=int, help="count check of val.txt (default: 1,449)")
    args = p.parse_args(argv)
    voc_dir = args.voc_dir or osp.join(args.out, "VOCdevkit", "VOC2012")
    sbd_dir = args.sbd_dir or osp.join(args.out, "benchmark_RELEASE")
    try:
        _check_args(args)
        from nf_plugins._quiet import filter_third_party_warnings

        filter_third_party_warnings()  # before mmengine/mmseg are imported (their deprecation notices)
        from nf_plugins.data.voc import TRAINAUG_LEN, VAL_LEN, prepare_vocaug, safe_extract

        for tar in (args.voc_tar, args.sbd_tar):
            skipped = safe_extract(tar, args.out) if tar else []
            if skipped:  # the releases hold only files and folders: say what was left out, and why
                print(
                    f"prepare_voc: warning: {tar}: {len(skipped)} link or special member(s) not extracted "
                    f"(only plain files and folders are): {', '.join(skipped[:5])}"
                    + (", ..." if len(skipped) > 5 else ""),
                    file=sys.stderr,
                )
        expect_trainaug = TRAINAUG_LEN if args.expect_trainaug is None else args.expect_trainaug
        expect_val = VAL_LEN if args.expect_val is None else args.expect_val
        counts = prepare_vocaug(voc_dir, sbd_dir, expect_trainaug, expect_val)
    except (OSError, ValueError, tarfile.TarError) as e:  # UnsafeMemberError is a tarfile.FilterError
        print(f"prepare_voc: error: {e}", file=sys.stderr)
        return 1
    print(f"VOCaug ready in {voc_dir}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`hand-pose eval`: score community result files, plot them, run a model on a test split.

  hand-pose eval score --dataset nyu [--gt GT.txt] A.txt B.txt [--json] [--plot-dir DIR]
  hand-pose eval plot  --dataset nyu [--gt GT.txt] A.txt B.txt --labels ours SRNet -o DIR
  hand-pose eval run   --model M.pt --dataset nyu --root PATH -o RESULT.txt [--json]
  hand-pose eval run   --model M.onnx --dataset png --root ../shared/data/real/nyu --encoding nyu_rgb \
                       --camera nyu --json        (real PNG frames; see data/readers/png_folder.py)
  hand-pose eval bag   session.mcap [--model M] [--json]    (a recording of hand-pose record; see bag.py)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import keypoints
from . import metrics
from .result_files import ResultFileError
from .scoring import default_ground_truth, evaluation_intrinsics, score_files, scoring_dataset, summary_table


# ---- argument parsing ----------------------------------------------------------------------

def _add_scoring_arguments(p: argparse.ArgumentParser, files_help: str) -> None:
    p.add_argument("files", nargs="+", type=Path, help=files_help)
    p.add_argument("--dataset", required=True,
                   help=f"joint order and evaluation camera: {', '.join(sorted(keypoints.DATASET_ORDERS))}")
    p.add_argument("--gt", type=Path, default=None,
                   help="ground-truth file in the same format (default: the dataset's file in "
                        "../shared/data/eval when there)")
    p.add_argument("--labels", nargs="+", default=None, help="one name per result file (default: file names)")
    _add_intrinsics_arguments(p)
    p.add_argument("--max-threshold", type=float, default=metrics.MAX_THRESHOLD_MM,
                   help="last success-curve threshold, mm (default 80)")
    p.add_argument("--step", type=float, default=metrics.THRESHOLD_STEP_MM,
                   help="success-curve threshold step, mm (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _add_intrinsics_arguments(p: argparse.ArgumentParser) -> None:
    for name in ("fx", "fy", "cx", "cy"):
        p.add_argument(f"--{name}", type=float, default=None,
                       help=f"override the evaluation camera's {name} (pixels)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="eval_command", metavar="{score,plot,run,bag}")
    sub.required = True

    p = sub.add_parser("score", help="score community-format result files against ground truth")
    _add_scoring_arguments(p, "result files: one line per frame, J x 3 'u v d' values")
    p.add_argument("--plot-dir", type=Path, default=None, help="also write the plots into this folder")

    p = sub.add_parser("plot", help="plot success curves and per-joint errors of result files")
    _add_scoring_arguments(p, "result files to plot on the same axes")
    p.add_argument("-o", "--out-dir", type=Path, required=True, help="folder for the PNG files")

    p = sub.add_parser("run", help="run a model on a dataset's test split, write and score a result file")
    p.add_argument("--model", type=Path, required=True, help="checkpoint (.pt) or ONNX file (.onnx)")
    p.add_argument("--dataset", required=True, help="nyu, icvl, msra, hands2017, synthetic-test, png (a folder of real depth PNGs), ...")
    p.add_argument("--root", type=Path, default=None, help="dataset folder (not needed for synthetic-test)")
    p.add_argument("--split", default="test")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime", "tensorrt"))
    p.add_argument("--device", default=None, help="e.g. cuda, cuda:1, cpu (default: the backend's choice)")
    p.add_argument("--precision", default=None, choices=("fp32", "fp16", "int8"),
                   help="backend precision (default: the backend's choice); measure int8/fp16 accuracy here "
                        "before deploying them")
    p.add_argument("--batch", type=int, default=64, help="frames per inference batch")
    p.add_argument("--cube", default="model", choices=("model", "dataset"),
                   help="crop half-cube: the model's (what the pose node does, default) or each "
                        "frame's from the dataset reader (the reference protocol)")
    p.add_argument("--limit", type=int, default=None, help="only the first N frames (a quick check)")
    p.add_argument("--gt", type=Path, default=None,
                   help="score against this ground-truth file instead of the dataset's labels")
    p.add_argument("--write-gt", type=Path, default=None,
                   help="also write the split's labels as a ground-truth file in the same format "
                        "(for later `eval score` / `eval plot` of several models, e.g. on synthetic-test)")
    _add_intrinsics_arguments(p)
    png = p.add_argument_group("--dataset png (real depth PNG folders; --fx --fy --cx --cy give its camera)")
    png.add_argument("--encoding", default=None, choices=("gray16", "nyu_rgb"),
                     help="16-bit grey PNGs (default) or NYU's RGB-encoded depth")
    png.add_argument("--depth-unit-mm", type=float, default=None,
                     help="mm per PNG count (default 1; SR305 0.125, D405 0.1)")
    png.add_argument("--camera", default=None,
                     help="intrinsics preset from camera.DATASET_INTRINSICS (e.g. nyu); also the label order")
    png.add_argument("--joint-order", default=None,
                     help=f"order of the NAME_uvd.txt / NAME_xyz.txt label rows: "
                          f"{', '.join(sorted(keypoints.DATASET_ORDERS))}")
    noise = p.add_argument_group("robustness: the same frames with depth noise")
    noise.add_argument("--depth-noise-mm", type=int, default=None, metavar="A",
                       help="score every frame --noise-draws times, each with whole-mm noise in [-A, A] on its valid "
                            "pixels, and report the spread of the frame errors (off by default)")
    noise.add_argument("--noise-draws", type=int, default=10, help="noisy copies per frame (default 10)")
    noise.add_argument("--noise-seed", type=int, default=0, help="seed of the noise (default 0)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="result file to write, in the dataset's joint order (default: none; needs a model "
                        "that predicts every labelled joint)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    from .bag import add_bag_arguments
    add_bag_arguments(sub)


def run(args: argparse.Namespace) -> int:
    try:
        if args.eval_command == "bag":
            from .bag import run_bag
            return run_bag(args)
        if args.eval_command == "run":
            from .run_model import run_command
            return run_command(args)
        return _score_or_plot(args)
    except (ResultFileError, ValueError, FileNotFoundError) as e:
        print(f"hand-pose eval {args.eval_command}: error: {e}", file=sys.stderr)
        return 2


def _score_or_plot(args: argparse.Namespace) -> int:
    scoring_dataset(args.dataset)  # an unknown name fails first, listing the known ones
    gt_path = args.gt or default_ground_truth(args.dataset)
    if gt_path is None:
        raise ValueError(f"no ground truth for dataset {args.dataset!r}: pass --gt FILE")
    if args.labels is not None and len(args.labels) != len(args.files):
        raise ValueError(f"{len(args.labels)} --labels for {len(args.files)} result files; give one per file")
    cam = evaluation_intrinsics(args.dataset, args.fx, args.fy, args.cx, args.cy)
    summary = score_files(args.dataset, gt_path, args.files, cam, args.max_threshold, args.step)
    labels = args.labels or [Path(r["file"]).name for r in summary["results"]]
    for label, result in zip(labels, summary["results"]):
        result["label"] = label

    plot_dir = args.out_dir if args.eval_command == "plot" else args.plot_dir
    if plot_dir is not None:
        from .plots import write_plots
        summary["plots"] = [str(p) for p in write_plots(summary["results"], labels, plot_dir, args.dataset)]

    if args.json:
        print(json.dumps(summary))
    else:
        print(summary_table(summary, labels))
        for path in summary.get("plots", []):
            print(f"wrote {path}")
    return 0

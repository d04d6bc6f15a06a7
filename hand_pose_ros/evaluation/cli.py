"""`hand-pose eval`: score community result files, plot them, run a model on a test split.

  hand-pose eval score --dataset nyu [--gt GT.txt] A.txt B.txt [--json] [--plot-dir DIR]
  hand-pose eval plot  --dataset nyu [--gt GT.txt] A.txt B.txt --labels ours SRNet -o DIR
  hand-pose eval run   --model M.pt --dataset nyu --root PATH -o RESULT.txt [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import camera, keypoints
from . import metrics
from .result_files import ResultFileError, read_result_file

# shared/ sits beside the repository (CI clones the repo with shared/ next to it).
_REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_CANDIDATES = (_REPO_ROOT.parent / "shared", Path.cwd().parent / "shared")
# Ground truth of the community evaluation set, relative to shared/.
GROUND_TRUTH_FILES = {
    "nyu": "data/eval/nyu/nyu_test_groundtruth_label.txt",
    "icvl": "data/eval/icvl/icvl_test_groundtruth_label.txt",
}
# Dataset names that score like another one (same joints, same camera table).
DATASET_ALIASES = {"synthetic-test": "synthetic", "synthetic_test": "synthetic"}
SUMMARY_THRESHOLDS_MM = (10, 20, 30, 40)


def scoring_dataset(name: str) -> str:
    """The name whose joint order and evaluation camera apply to `name`."""
    name = name.lower()
    name = DATASET_ALIASES.get(name, name)
    keypoints.order(name)  # ValueError listing the known datasets
    return name


def default_ground_truth(dataset: str) -> Path | None:
    """The community ground-truth file of `dataset` in shared/data/eval, if it is there."""
    relative = GROUND_TRUTH_FILES.get(scoring_dataset(dataset))
    if relative is None:
        return None
    for shared in SHARED_CANDIDATES:
        if (shared / relative).is_file():
            return shared / relative
    return None


def evaluation_intrinsics(dataset: str, fx=None, fy=None, cx=None, cy=None) -> camera.Intrinsics:
    """The community evaluator's camera for `dataset`, with any of fx, fy, cx, cy overridden."""
    overrides = {k: v for k, v in dict(fx=fx, fy=fy, cx=cx, cy=cy).items() if v is not None}
    name = dataset.lower()
    base = camera.EVAL_INTRINSICS.get(DATASET_ALIASES.get(name, name))
    if base is None:
        missing = [k for k in ("fx", "fy", "cx", "cy") if k not in overrides]
        if missing:
            raise ValueError(f"dataset {dataset!r} has no evaluation intrinsics; pass --fx --fy --cx --cy "
                             f"(missing: {', '.join('--' + m for m in missing)})")
        base = camera.Intrinsics(0.0, 0.0, 0.0, 0.0)
    cam = camera.Intrinsics(**{**base.to_dict(), **overrides})
    if cam.fx == 0 or cam.fy == 0:
        raise ValueError(f"focal lengths must be non-zero, got fx={cam.fx}, fy={cam.fy}")
    return cam


def score_files(dataset: str, gt_path, result_paths, intrinsics: camera.Intrinsics,
                max_threshold_mm: float = metrics.MAX_THRESHOLD_MM,
                threshold_step_mm: float = metrics.THRESHOLD_STEP_MM) -> dict:
    """Score result files against one ground-truth file -> the JSON summary of `eval score`."""
    joint_names = keypoints.order(scoring_dataset(dataset))
    gt = read_result_file(gt_path, num_joints=len(joint_names))  # [N, J, 3]
    results = []
    for path in result_paths:
        pred = read_result_file(path, num_joints=len(joint_names), num_frames=len(gt),
                                expected_from=f"ground truth {gt_path} has {len(gt)} frames of "
                                              f"{len(joint_names)} {dataset} joints")
        scored = metrics.score(gt, pred, intrinsics, joint_names, max_threshold_mm, threshold_step_mm)
        results.append({"file": str(path), **scored})
    return {
        "dataset": dataset,
        "gt": str(gt_path),
        "intrinsics": {k: intrinsics.to_dict()[k] for k in ("fx", "fy", "cx", "cy")},
        "joint_names": list(joint_names),
        "results": results,
    }


def summary_table(summary: dict, labels=None) -> str:
    """A readable table: file, mean error, success at 10/20/30/40 mm."""
    labels = labels or [Path(r["file"]).name for r in summary["results"]]
    name_width = max([len("file")] + [len(label) for label in labels])
    header = f"{'file':<{name_width}}  {'mean mm':>8}" + "".join(
        f"  {'<=' + str(t) + 'mm':>7}" for t in SUMMARY_THRESHOLDS_MM)
    cam = summary["intrinsics"]
    cam_text = (f"fx {cam['fx']:g} fy {cam['fy']:g} cx {cam['cx']:g} cy {cam['cy']:g}"
                if isinstance(cam, dict) else f"intrinsics {cam}")
    lines = [f"{summary['dataset']}: ground truth {summary['gt']}, {cam_text}",
             "success = % of frames whose maximum joint error is within the threshold", header]
    for label, result in zip(labels, summary["results"]):
        success = result["max_error_success"]
        row = f"{label:<{name_width}}  {result['mean_error_mm']:8.3f}"
        for t in SUMMARY_THRESHOLDS_MM:
            key = metrics.threshold_key(t)
            row += f"  {100 * success[key]:6.1f}%" if key in success else f"  {'-':>7}"
        lines.append(row)
    return "\n".join(lines)


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
    sub = parser.add_subparsers(dest="eval_command", metavar="{score,plot,run}")
    sub.required = True

    p = sub.add_parser("score", help="score community-format result files against ground truth")
    _add_scoring_arguments(p, "result files: one line per frame, J x 3 'u v d' values")
    p.add_argument("--plot-dir", type=Path, default=None, help="also write the plots into this folder")

    p = sub.add_parser("plot", help="plot success curves and per-joint errors of result files")
    _add_scoring_arguments(p, "result files to plot on the same axes")
    p.add_argument("-o", "--out-dir", type=Path, required=True, help="folder for the PNG files")

    p = sub.add_parser("run", help="run a model on a dataset's test split, write and score a result file")
    p.add_argument("--model", type=Path, required=True, help="checkpoint (.pt) or ONNX file (.onnx)")
    p.add_argument("--dataset", required=True, help="nyu, icvl, msra, hands2017, synthetic-test, ...")
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
    p.add_argument("-o", "--output", type=Path, required=True, help="result file to write")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    try:
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

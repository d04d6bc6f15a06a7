"""Scoring community result files: the evaluation camera and ground truth of each dataset,
the scores of result files and their summary table. Shared by `eval score` / `eval plot`
(cli.py) and `eval run` (run_model.py), which import it; it imports neither.
"""
from __future__ import annotations

from pathlib import Path

from .. import camera, keypoints
from . import metrics
from .result_files import read_result_file

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

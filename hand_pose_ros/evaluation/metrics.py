"""The community evaluation protocol (shared/docs/datasets.md, "Evaluation protocol").

uvd -> xyz with the evaluator's intrinsics, per-frame per-joint Euclidean errors in mm,
mean error, per-joint mean error and three success-rate curves over thresholds 0..80 mm:
frames whose MAX joint error <= T (the headline), frames whose MEAN joint error <= T,
and all joints with error <= T.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..camera import Intrinsics, uvd_to_xyz

MAX_THRESHOLD_MM = 80.0
THRESHOLD_STEP_MM = 1.0


def _as_uvd(name: str, uvd) -> np.ndarray:
    uvd = np.asarray(uvd, dtype=np.float64)
    if uvd.ndim != 3 or uvd.shape[2] != 3:
        raise ValueError(f"{name}: expected uvd of shape [N, J, 3], got {uvd.shape}")
    return uvd


def to_xyz(uvd, intrinsics: Intrinsics | Sequence[Intrinsics]) -> np.ndarray:
    """uvd [N, J, 3] -> xyz [N, J, 3] mm; one Intrinsics for all frames or one per frame."""
    uvd = _as_uvd("uvd", uvd)
    if isinstance(intrinsics, Intrinsics):
        return uvd_to_xyz(uvd, intrinsics)
    cams = list(intrinsics)
    if len(cams) != len(uvd):
        raise ValueError(f"got {len(cams)} intrinsics for {len(uvd)} frames; give one, or one per frame")
    return np.stack([uvd_to_xyz(frame, cam) for frame, cam in zip(uvd, cams)])


def joint_errors_mm(gt_uvd, pred_uvd, intrinsics: Intrinsics | Sequence[Intrinsics]) -> np.ndarray:
    """Euclidean 3D error of every joint of every frame: [N, J] mm."""
    gt_uvd, pred_uvd = _as_uvd("ground truth", gt_uvd), _as_uvd("prediction", pred_uvd)
    if gt_uvd.shape != pred_uvd.shape:
        raise ValueError(f"ground truth {gt_uvd.shape} and prediction {pred_uvd.shape} differ in shape")
    diff = to_xyz(gt_uvd, intrinsics) - to_xyz(pred_uvd, intrinsics)  # [N, J, 3]
    return np.linalg.norm(diff, axis=-1)                                 # [N, J]


def thresholds_mm(max_mm: float = MAX_THRESHOLD_MM, step_mm: float = THRESHOLD_STEP_MM) -> np.ndarray:
    """0, step, 2 step, ..., max (inclusive)."""
    if step_mm <= 0 or max_mm < 0:
        raise ValueError(f"thresholds need step > 0 and max >= 0, got step {step_mm}, max {max_mm}")
    count = int(round(max_mm / step_mm)) + 1
    # Rounded so that 0.1-steps give 0.3, not 0.30000000000000004 (exact comparisons, clean keys).
    return np.round(np.arange(count) * step_mm, 9)


def success_rate(values, thresholds) -> np.ndarray:
    """Fraction of `values` that are <= each threshold: [T]."""
    values = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if values.size == 0:
        raise ValueError("no errors to compute a success rate from")
    return np.searchsorted(values, np.asarray(thresholds, dtype=np.float64), side="right") / values.size


def threshold_key(threshold: float) -> str:
    """JSON key of a threshold: 20.0 -> '20', 2.5 -> '2.5'."""
    return f"{float(threshold):g}"


def _curve(values, thresholds) -> dict[str, float]:
    return {threshold_key(t): float(r) for t, r in zip(thresholds, success_rate(values, thresholds))}


def score(gt_uvd, pred_uvd, intrinsics: Intrinsics | Sequence[Intrinsics], joint_names: Sequence[str],
          max_threshold_mm: float = MAX_THRESHOLD_MM, threshold_step_mm: float = THRESHOLD_STEP_MM) -> dict:
    """Score predictions against ground truth (both uvd [N, J, 3], pixels and mm).

    Returns a JSON-friendly dict: frames, joints, mean_error_mm, median_error_mm,
    per_joint_mm {name: mm}, and the three success curves {threshold key: fraction}:
    max_error_success (headline), mean_error_success, joint_success.
    """
    joint_names = tuple(joint_names)
    errors = joint_errors_mm(gt_uvd, pred_uvd, intrinsics)  # [N, J]
    if errors.shape[1] != len(joint_names):
        raise ValueError(f"{len(joint_names)} joint names for {errors.shape[1]} joints per frame")
    if errors.size == 0:
        raise ValueError("nothing to score: no frames or no joints")
    thresholds = thresholds_mm(max_threshold_mm, threshold_step_mm)
    per_joint = errors.mean(axis=0)  # [J]
    return {
        "frames": int(errors.shape[0]),
        "joints": int(errors.shape[1]),
        "mean_error_mm": float(errors.mean()),
        "median_error_mm": float(np.median(errors)),
        "per_joint_mm": {name: float(e) for name, e in zip(joint_names, per_joint)},
        "max_error_success": _curve(errors.max(axis=1), thresholds),
        "mean_error_success": _curve(errors.mean(axis=1), thresholds),
        "joint_success": _curve(errors, thresholds),
    }

"""The mean keypoint confidence a model gives hands and hand-sized things that are not
hands, so the pose node's `min_confidence` default (ros/pose_node.py DEFAULT_MIN_CONFIDENCE)
is chosen from data, not guessed.

    python -m hand_pose_ros.evaluation.confidence_report --model models/srnet_synthetic.onnx --frames 300 --json

Hand frames: the fixed synthetic test set (full pipeline: localise, crop, infer), counted
only where the hand was localised (mean error <= 100 mm). Non-hand frames: a sphere, an
upright cylinder (a bottle, a forearm end on), a box face and an ellipsoid, hand-sized, at
350-900 mm in front of a wall, rendered exactly (ray casting), with the same estimator.
For each threshold the report gives the share of hands kept and of non-hands rejected,
and suggests the largest threshold that keeps `keep_hands` of the hands.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ..camera import Intrinsics

NON_HAND_SHAPES = ("sphere", "cylinder", "box", "ellipsoid")
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.0, 1.0001, 0.05))
LOCALISED_MM = 100.0  # a hand frame whose mean error is above this found the wrong object


def non_hand_frame(shape: str, rng: np.random.Generator, cam: Intrinsics) -> np.ndarray:
    """[H, W] float32 mm: one hand-sized object that is not a hand, before a wall at 1.5-2 m."""
    v, u = np.mgrid[:cam.height, :cam.width].astype(np.float64)
    rays = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], axis=-1)  # z = 1
    depth = np.full(u.shape, rng.uniform(1500.0, 2000.0))
    centre = np.array([rng.uniform(-120, 120), rng.uniform(-90, 90), rng.uniform(350, 900)])
    if shape in ("sphere", "ellipsoid"):
        radii = np.full(3, rng.uniform(35.0, 65.0))
        if shape == "ellipsoid":
            radii = radii * rng.uniform(0.6, 1.6, 3)
        # |(t * ray - c) / r|^2 = 1, solved for t (= depth, since ray z = 1)
        a = np.sum((rays / radii) ** 2, axis=-1)
        b = -2 * np.sum(rays * centre / radii ** 2, axis=-1)
        c = np.sum((centre / radii) ** 2) - 1
        disc = b * b - 4 * a * c
        hit = disc >= 0
        t = (-b - np.sqrt(np.where(hit, disc, 0))) / (2 * a)
    elif shape == "cylinder":  # axis along y (upright), radius r, height h
        r, h = rng.uniform(30.0, 50.0), rng.uniform(100.0, 250.0)
        a = rays[..., 0] ** 2 + rays[..., 2] ** 2
        b = -2 * (rays[..., 0] * centre[0] + rays[..., 2] * centre[2])
        c = centre[0] ** 2 + centre[2] ** 2 - r * r
        disc = b * b - 4 * a * c
        t = (-b - np.sqrt(np.where(disc >= 0, disc, 0))) / (2 * a)
        hit = (disc >= 0) & (np.abs(t * rays[..., 1] - centre[1]) <= h / 2)
    elif shape == "box":  # a face square to the camera
        half = rng.uniform(40.0, 90.0, 2)
        t = np.full(u.shape, centre[2])
        hit = (np.abs(t * rays[..., 0] - centre[0]) <= half[0]) & (np.abs(t * rays[..., 1] - centre[1]) <= half[1])
    else:
        raise ValueError(f"unknown shape {shape!r}; choose from {NON_HAND_SHAPES}")
    depth = np.where(hit & (t > 0), np.minimum(t, depth), depth)
    return depth.astype(np.float32)


def mean_confidences(estimator, frames) -> tuple[list[float], int]:
    """(mean confidence of each frame where the estimator found something, frames it did not)."""
    values, missed = [], 0
    for depth, cam in frames:
        estimate = estimator.estimate(depth, cam)
        if estimate is None or not estimate.valid:
            missed += 1
            continue
        values.append(float(estimate.mean_confidence))
    return values, missed


def hand_confidences(estimator, count: int) -> tuple[list[float], int]:
    """Mean confidences on the first `count` fixed synthetic test frames where the hand was
    localised, and how many frames were left out (hand not found or the wrong object)."""
    from ..data.synthetic import fixed_test_set

    values, left_out = [], 0
    for sample in fixed_test_set(count):
        estimate = estimator.estimate(sample.depth_mm, sample.cam)
        if estimate is None or not estimate.valid:
            left_out += 1
            continue
        truth = sample.cam.uvd_to_xyz(sample.uvd)
        if float(np.linalg.norm(np.asarray(estimate.xyz) - truth, axis=-1).mean()) > LOCALISED_MM:
            left_out += 1
            continue
        values.append(float(estimate.mean_confidence))
    return values, left_out


def report(hands: list[float], non_hands: list[float], keep_hands: float = 0.99) -> dict:
    """The distributions and, per threshold, hands kept / non-hands rejected."""
    hands_a, non_a = np.asarray(hands), np.asarray(non_hands)

    def summary(a):
        if not a.size:
            return {"count": 0}
        return {"count": int(a.size), "mean": float(a.mean()),
                **{f"p{q}": float(np.percentile(a, q)) for q in (1, 5, 25, 50, 75, 95, 99)}}

    table = [{"threshold": t,
              "hands_kept": float(np.mean(hands_a >= t)) if hands_a.size else None,
              "non_hands_rejected": float(np.mean(non_a < t)) if non_a.size else None} for t in THRESHOLDS]
    eligible = [row["threshold"] for row in table if row["hands_kept"] is not None and row["hands_kept"] >= keep_hands]
    return {"hands": summary(hands_a), "non_hands": summary(non_a), "thresholds": table,
            "keep_hands": keep_hands, "suggested_min_confidence": max(eligible) if eligible else 0.0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model file (.onnx / .pt)")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--frames", type=int, default=300, help="hand frames (fixed synthetic test set)")
    parser.add_argument("--non-hand-frames", type=int, default=200)
    parser.add_argument("--keep-hands", type=float, default=0.99, help="share of hands the suggestion keeps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from ..data.synthetic import fixed_test_set
    from ..inference.estimator import HandPoseEstimator

    estimator = HandPoseEstimator.from_model_file(args.model, backend=args.backend)
    cam = next(iter(fixed_test_set(1))).cam
    rng = np.random.default_rng(args.seed)
    shapes = [NON_HAND_SHAPES[i % len(NON_HAND_SHAPES)] for i in range(args.non_hand_frames)]
    non_hands, not_found = mean_confidences(estimator, ((non_hand_frame(s, rng, cam), cam) for s in shapes))
    hands, left_out = hand_confidences(estimator, args.frames)
    result = report(hands, non_hands, args.keep_hands)
    result.update({"model": args.model, "hand_frames_left_out": left_out, "non_hand_frames_not_found": not_found})
    if args.json:
        print(json.dumps(result))
    else:
        print(f"hands: {result['hands']}\nnon-hands: {result['non_hands']} (+{not_found} with nothing found)")
        for row in result["thresholds"]:
            print(f"  min_confidence {row['threshold']:.2f}: hands kept {row['hands_kept']}, "
                  f"non-hands rejected {row['non_hands_rejected']}")
        print(f"suggested min_confidence (keeps {args.keep_hands:.0%} of hands): {result['suggested_min_confidence']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

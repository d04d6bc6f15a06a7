"""`hand-pose eval run`: a model on a dataset's test split, through the pose node's pipeline
(inference.estimator: localise -> crop -> infer -> recover), written as a community result
file in the dataset's joint order and scored when ground truth exists.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import camera, keypoints
from . import metrics
from .result_files import read_result_file, write_result_file
from .scoring import evaluation_intrinsics, summary_table

# The fixed synthetic test set: every accuracy number of ours is measured on it.
SYNTHETIC_TEST_NAMES = ("synthetic-test", "synthetic_test")
CUBE_CHOICES = ("model", "dataset")


@dataclass
class Predictions:
    """One prediction per test frame, in the dataset's joint order (only the joints the
    model also predicts when `missing_joints` is not empty)."""
    keypoint_names: tuple[str, ...]
    uvd: np.ndarray                        # [N, J, 3] (u px, v px, d mm)
    gt_uvd: np.ndarray | None              # [N, J, 3], None when the split is unlabelled
    cams: list = field(default_factory=list)          # Intrinsics of each frame
    frame_names: list = field(default_factory=list)
    no_hand: list = field(default_factory=list)       # indices of frames where no hand was found
    invalid: list = field(default_factory=list)       # indices with an invalid network output
    seconds: float = 0.0
    missing_joints: tuple = ()                        # labelled joints the model does not predict
    # (network's handedness, labelled handedness) per frame where both are known
    handedness_pairs: list = field(default_factory=list)


def open_test_set(dataset: str, root=None, split: str = "test", limit: int | None = None,
                  reader_options: dict | None = None):
    """(frames to evaluate on, their count or None): a dataset reader, or the fixed synthetic
    test set (rendered in memory; only the first `limit` frames when given).
    reader_options: keyword arguments of the 'png' reader (encoding, depth_unit_mm, camera,
    fx, fy, cx, cy, joint_order); refused for other datasets."""
    reader_options = {k: v for k, v in (reader_options or {}).items() if v is not None}
    if reader_options and dataset.lower() != "png":
        raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in reader_options)}: only for "
                         f"--dataset png, not for {dataset!r}")
    if dataset.lower() in SYNTHETIC_TEST_NAMES:
        from ..data.synthetic import FIXED_TEST_SET, fixed_test_set
        count = FIXED_TEST_SET["count"] if limit is None else min(limit, FIXED_TEST_SET["count"])
        return fixed_test_set(count), count
    if root is None:
        raise ValueError(f"dataset {dataset!r} needs --root (the folder holding it)")
    from ..data.readers import open_dataset
    reader = open_dataset(dataset, root, split, **reader_options)
    return reader, len(reader)


class MissingJointsError(ValueError):
    """The dataset labels joints the model does not predict."""


def model_to_dataset_indices(model_names, dataset_names) -> np.ndarray:
    """Rows of the model's output that give each of the dataset's joints, by name."""
    model_names, dataset_names = tuple(model_names), tuple(dataset_names)
    missing = [n for n in dataset_names if n not in model_names]
    if missing:
        raise MissingJointsError(f"the dataset needs joints {missing} that the model does not predict "
                         f"(model joints: {list(model_names)})")
    return keypoints.indices(dataset_names, of=model_names)


def _frames(samples, count: int | None, limit: int | None):
    """(count or None, iterator over the first `limit` Samples, or all)."""
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit must be >= 1, got {limit}")
        count = limit if count is None else min(count, limit)
        return count, itertools.islice(iter(samples), limit)
    return count, iter(samples)


def with_depth_noise(samples, amplitude_mm: int, draws: int, seed: int = 0):
    """Each Sample `draws` times, each copy with independent whole-millimetre noise, uniform
    in [-amplitude_mm, amplitude_mm], on its valid pixels (zeros stay zero). It shows how far a
    figure moves under noise well below a real sensor's: on one frame that spread is the
    figure's uncertainty."""
    if amplitude_mm < 1:
        raise ValueError(f"--depth-noise-mm must be a whole number >= 1, got {amplitude_mm}")
    if draws < 1:
        raise ValueError(f"--noise-draws must be >= 1, got {draws}")
    rng = np.random.default_rng(seed)
    for sample in samples:
        valid = sample.depth_mm > 0
        for draw in range(draws):
            noise = rng.integers(-amplitude_mm, amplitude_mm + 1, sample.depth_mm.shape).astype(np.float32)
            depth = np.where(valid, np.maximum(sample.depth_mm + noise, 1.0), 0.0).astype(np.float32)
            yield dataclasses.replace(sample, depth_mm=depth, name=f"{sample.name}#noise{draw}")


def _fallback_uvd(sample, estimate, joints: int) -> np.ndarray:
    """A prediction for a frame without a usable estimate, so the file keeps one line per
    frame (and the frame is scored, badly, as the protocol requires): every joint at the
    crop centre when there was one, else at the principal point at the frame's median depth."""
    if estimate is not None:
        return np.repeat(np.asarray(estimate.com_uvd, np.float64)[None], joints, axis=0)
    valid = sample.depth_mm[sample.depth_mm > 0]
    depth = float(np.median(valid)) if valid.size else 0.0
    return np.tile([sample.cam.cx, sample.cam.cy, depth], (joints, 1)).astype(np.float64)


def predict(estimator, samples, batch: int = 64, cube: str = "model", limit: int | None = None,
            progress: bool = True, count: int | None = None, all_joints: bool = True) -> Predictions:
    """Run `estimator` (inference.estimator.HandPoseEstimator) on every Sample of `samples`.

    cube: 'model' = the model's half cube, exactly what the pose node does; 'dataset' = each
    frame's Sample.half_cube_mm (the reference protocol, e.g. 125 mm for late NYU test frames).
    all_joints: every labelled joint must be one the model predicts (ValueError otherwise);
    False keeps only the joints both share (e.g. the 11 of NYU's 14 that are canonical).
    """
    from tqdm import tqdm

    from ..inference.estimator import HandPoseEstimator

    if cube not in CUBE_CHOICES:
        raise ValueError(f"cube must be one of {CUBE_CHOICES}, got {cube!r}")
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    # One estimator per cube size, all sharing the loaded backend.
    estimators = {estimator.half_cube_mm: estimator}

    def estimator_for(sample):
        if cube == "model":
            return estimator
        size = float(sample.half_cube_mm)
        if size not in estimators:
            estimators[size] = HandPoseEstimator(estimator.backend, localiser=estimator.localiser,
                                                 half_cube_mm=size)
        return estimators[size]

    if count is None and hasattr(samples, "__len__"):
        count = len(samples)
    count, frames = _frames(samples, count, limit)
    names = None
    missing: tuple = ()
    uvd, gt, cams, frame_names, no_hand, invalid, handedness_pairs = [], [], [], [], [], [], []
    start = time.perf_counter()
    bar = tqdm(total=count, desc="eval run", unit="frame", file=sys.stderr, disable=not progress)

    def flush(chunk):
        # Consecutive frames with the same cube go to the backend together.
        for chosen, group in itertools.groupby(chunk, key=estimator_for):
            group = list(group)
            estimates = chosen.estimate_batch([(s.depth_mm, s.cam) for s in group])
            for sample, estimate in zip(group, estimates):
                index = len(uvd)
                labelled_side = (sample.meta or {}).get("handedness")
                if estimate is not None and estimate.handedness is not None and labelled_side in ("left", "right"):
                    handedness_pairs.append((estimate.handedness, labelled_side))
                if estimate is not None and estimate.valid:
                    uvd.append(np.asarray(estimate.uvd, np.float64)[to_dataset])
                else:
                    (no_hand if estimate is None else invalid).append(index)
                    uvd.append(_fallback_uvd(sample, estimate, len(names)))
        bar.update(len(chunk))

    chunk = []
    for sample in frames:
        if names is None:
            dataset_names = tuple(sample.keypoint_names)
            names = dataset_names
            if not all_joints:
                names = tuple(n for n in dataset_names if n in estimator.keypoint_names)
                missing = tuple(n for n in dataset_names if n not in names)
                if not names:
                    raise ValueError(f"the model predicts none of the dataset's joints {list(dataset_names)} "
                                     f"(model joints: {list(estimator.keypoint_names)})")
            to_dataset = model_to_dataset_indices(estimator.keypoint_names, names)
            from_labels = keypoints.indices(names, of=dataset_names)
        elif tuple(sample.keypoint_names) != dataset_names:
            raise ValueError(f"frame {sample.name or len(cams)} has joints {list(sample.keypoint_names)}, "
                             f"the first frame {list(dataset_names)}: one dataset, one joint order")
        gt.append(None if sample.uvd is None else np.asarray(sample.uvd, np.float64)[from_labels])
        cams.append(sample.cam)
        frame_names.append(sample.name)
        chunk.append(sample)
        if len(chunk) == batch:
            flush(chunk)
            chunk = []
    if chunk:
        flush(chunk)
    bar.close()
    if names is None:
        raise ValueError("the test set has no frames")
    labelled = all(g is not None for g in gt)
    return Predictions(keypoint_names=names, uvd=np.stack(uvd), gt_uvd=np.stack(gt) if labelled else None,
                       cams=cams, frame_names=frame_names, no_hand=no_hand, invalid=invalid,
                       seconds=time.perf_counter() - start, missing_joints=missing,
                       handedness_pairs=handedness_pairs)


def scoring_intrinsics(dataset: str, cams, fx=None, fy=None, cx=None, cy=None):
    """The camera to score with: the community evaluator's for the public datasets (so our
    numbers compare with published ones), each frame's own camera otherwise (the synthetic
    set renders with the camera stored in its samples); --fx/--fy/--cx/--cy override."""
    # Loose frames of a public dataset ('nyu-frames') score like that dataset.
    name = dataset.lower().removesuffix("-frames")
    overridden = any(v is not None for v in (fx, fy, cx, cy))
    community = name in camera.EVAL_INTRINSICS and not name.startswith("synthetic")
    if community:
        return evaluation_intrinsics(name, fx, fy, cx, cy)
    if overridden:
        return evaluation_intrinsics(dataset, fx, fy, cx, cy)
    return list(cams)


def run_command(args) -> int:
    from ..inference.estimator import HandPoseEstimator

    # A png folder's camera comes from --fx/--fy/--cx/--cy (or its preset/sidecar) and is
    # each frame's own camera; for the public datasets those flags override the scoring camera.
    png = args.dataset.lower() == "png"
    intrinsics = {k: getattr(args, k, None) for k in ("fx", "fy", "cx", "cy")}
    reader_options = {k: getattr(args, k, None) for k in ("encoding", "depth_unit_mm", "camera", "joint_order")}
    if png:
        reader_options.update(intrinsics)
        intrinsics = {}
    samples, count = open_test_set(args.dataset, args.root, args.split, args.limit, reader_options)
    limit = args.limit
    noise = getattr(args, "depth_noise_mm", None)
    if noise is not None:
        if args.gt is not None:
            raise ValueError("--depth-noise-mm scores against the dataset's own labels; leave out --gt")
        count, frames = _frames(samples, count, limit)
        samples = with_depth_noise(frames, noise, args.noise_draws, args.noise_seed)
        count = None if count is None else count * args.noise_draws
        limit = None  # already applied to the source frames
    estimator = HandPoseEstimator.from_model_file(args.model, backend=args.backend, device=args.device,
                                                   precision=args.precision)
    print(f"eval run: {args.model} ({estimator.describe().get('backend', args.backend)}) on "
          f"{args.dataset} {args.split}", file=sys.stderr)
    # Files in the community format need every joint of the dataset's order; a score alone
    # can use the joints model and labels share.
    all_joints = any(x is not None for x in (args.output, args.write_gt, args.gt))
    try:
        predictions = predict(estimator, samples, batch=args.batch, cube=args.cube, limit=limit,
                              count=count, all_joints=all_joints)
    except MissingJointsError as e:
        raise MissingJointsError(f"{e}. -o, --write-gt and --gt need every joint of the dataset's order; "
                                 "leave them out to score the joints the model and the labels share") from None
    frames = len(predictions.uvd)
    if args.output is not None:
        write_result_file(args.output, predictions.uvd)
    print(f"eval run: {frames} frames, {frames / predictions.seconds:.1f} frames/s; "
          f"no hand found in {len(predictions.no_hand)}, invalid output in {len(predictions.invalid)}"
          f"{f'; wrote {args.output}' if args.output is not None else ''}", file=sys.stderr)
    if predictions.missing_joints:
        print(f"eval run: scoring the {len(predictions.keypoint_names)} joints the model and the labels share; "
              f"the model does not predict {list(predictions.missing_joints)}", file=sys.stderr)

    summary = {
        "dataset": args.dataset, "split": args.split, "model": str(args.model),
        "backend": estimator.describe(), "half_cube": args.cube,
        "result_file": None if args.output is None else str(args.output),
        "frames": frames, "keypoint_names": list(predictions.keypoint_names),
        "shared_joints": list(predictions.keypoint_names), "missing_joints": list(predictions.missing_joints),
        "frames_without_hand": len(predictions.no_hand), "frames_with_invalid_output": len(predictions.invalid),
        "seconds": predictions.seconds, "frames_per_second": frames / predictions.seconds,
        "gt": None, "intrinsics": None, "results": [],
        # share of the frames with a labelled side (synthetic) where the network's is right
        "handedness_accuracy": (float(np.mean([said == true for said, true in predictions.handedness_pairs]))
                                if predictions.handedness_pairs else None),
        "handedness_frames": len(predictions.handedness_pairs),
    }
    gt_uvd = predictions.gt_uvd
    if args.gt is not None:
        # With --limit only the first frames ran: they are the first lines of the full file.
        gt_uvd = read_result_file(args.gt, num_joints=len(predictions.keypoint_names),
                                  num_frames=None if args.limit else frames,
                                  expected_from=f"{args.dataset} {args.split} has {frames} frames")
        if len(gt_uvd) < frames:
            raise ValueError(f"{args.gt}: {len(gt_uvd)} lines (frames); expected at least {frames}")
        gt_uvd = gt_uvd[:frames]
        summary["gt"] = str(args.gt)
    elif gt_uvd is not None:
        summary["gt"] = f"{args.dataset} {args.split} labels"
    if gt_uvd is not None:
        cam = scoring_intrinsics(args.dataset, predictions.cams, **intrinsics)
        summary["intrinsics"] = ({k: cam.to_dict()[k] for k in ("fx", "fy", "cx", "cy")}
                                 if isinstance(cam, camera.Intrinsics) else "per-frame")
        scored = metrics.score(gt_uvd, predictions.uvd, cam, predictions.keypoint_names)
        label = "(no result file)" if args.output is None else Path(args.output).name
        summary["results"].append({"file": None if args.output is None else str(args.output), "label": label,
                                   **scored})
        summary["mean_error_mm"] = scored["mean_error_mm"]
        if noise is not None:
            per_frame = metrics.joint_errors_mm(gt_uvd, predictions.uvd, cam).mean(axis=1)
            quantiles = dict(zip(("min", "p25", "median", "p75", "max"),
                                 np.percentile(per_frame, [0, 25, 50, 75, 100]).round(2).tolist()))
            summary["depth_noise"] = {"amplitude_mm": noise, "draws": args.noise_draws, "seed": args.noise_seed,
                                      "frame_mean_error_mm": quantiles}
            print(f"eval run: with +-{noise} mm depth noise, {args.noise_draws} draws per frame: frame mean "
                  f"error min {quantiles['min']}, median {quantiles['median']}, max {quantiles['max']} mm",
                  file=sys.stderr)
        summary["per_joint_error_mm"] = scored["per_joint_mm"]
    else:
        print("eval run: no ground truth for this split: no score", file=sys.stderr)
    if args.write_gt is not None:
        if predictions.gt_uvd is None:
            raise ValueError(f"--write-gt {args.write_gt}: {args.dataset} {args.split} has unlabelled frames")
        summary["gt_file"] = str(write_result_file(args.write_gt, predictions.gt_uvd))

    if args.json:
        print(json.dumps(summary))
    elif summary["results"]:
        print(summary_table(summary, [r["label"] for r in summary["results"]]))
        if predictions.missing_joints:
            print(f"over the {len(predictions.keypoint_names)} shared joints: {', '.join(predictions.keypoint_names)}")
    else:
        where = f"wrote {args.output}" if args.output is not None else "no result file written"
        print(f"{where} ({frames} frames; no ground truth to score against)")
    return 0

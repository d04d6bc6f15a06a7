"""`hand-pose eval bag`: run the pose node's per-frame pipeline offline on every depth frame
of a recording, and score it.

    hand-pose eval bag session.mcap                  # the shipped full model
    hand-pose eval bag session.mcap --model models/other.onnx --json
    hand-pose eval bag session.mcap --animation session.gif

Per frame, as the pose node does with its default parameters (ros/pose_node.py PARAMS, the
same loader): localise near the last hand, crop, infer, recover, reorder to the canonical
keypoints, count the frame as "no hand" below min_confidence, One Euro filter on the
keypoints (reset when the hand is lost or time goes backwards). Unlike the node, no frame
is dropped: a slow model still sees every frame.

With ground truth in the file (the synthetic camera's), it scores the estimates with the
community protocol (evaluation/metrics.py: mean, median, success curves), and compares
with the keypoints the live pose node published, where the file has them. Without ground
truth it reports how often the hand is found and the confidence. Always: the time per
stage. Plots (success curve, error and confidence over time) and a per-frame CSV go to
--out-dir (default: FILE_eval/ beside the recording).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import keypoints
from ..data.session_file import SessionFile, SessionFileError, read_frames, resolve_topics

SUMMARY_THRESHOLDS_MM = (10, 20, 30, 40, 50)
HOLD_KEYPOINTS_S = 0.5   # animation of recorded keypoints: a frame the pose node skipped shows its last answer


# ---------------------------------------------------------------- the pose node, offline
def pose_node_values(model: str | None = None, backend: str = "auto", device: str = "auto") -> dict:
    """The pose node's parameter values with its defaults (its PARAMS table), backend as
    given, and the model: as given, else the shipped full model (model_choice.FULL_MODEL),
    whatever `model_path: auto` would pick on this machine, so scores compare across machines."""
    from ..inference.model_choice import FULL_MODEL
    from ..ros.pose_node import PARAMS

    values = {p.name: p.default for p in PARAMS}
    values["model_path"] = str(model) if model else FULL_MODEL
    values["backend"], values["device"] = backend, device
    return values


@dataclass
class FrameEstimate:
    found: bool
    xyz_mm: np.ndarray | None     # [21, 3] canonical, filtered as the node publishes
    confidence: float             # mean keypoint confidence (0 when no crop was found)
    timings_ms: dict
    reason: str = ""


class OfflineTracker:
    """The pose node's per-frame decisions without the node: seed from the last hand,
    min_confidence, canonical order, One Euro filter."""

    def __init__(self, estimator, values: dict, use_filter: bool = True):
        from ..filters import OneEuroFilter
        from ..ros.pose_node import canonical_order

        self.estimator = estimator
        self.min_confidence = float(values["min_confidence"])
        self.to_canonical = canonical_order(getattr(estimator, "keypoint_names", keypoints.CANONICAL))
        self.filter = (OneEuroFilter(values["filter.min_cutoff"], values["filter.beta"], values["filter.d_cutoff"])
                       if use_filter and values["filter.enabled"] else None)
        self._seed = None
        self._last_stamp: float | None = None

    def _lose(self) -> None:
        self._seed = None
        if self.filter is not None:
            self.filter.reset()
        self._last_stamp = None

    def step(self, depth_mm: np.ndarray, cam, stamp_s: float) -> FrameEstimate:
        start = time.perf_counter()
        estimate = self.estimator.estimate(depth_mm, cam, seed=self._seed)
        if estimate is None:
            self._lose()
            return FrameEstimate(False, None, 0.0, {"total": (time.perf_counter() - start) * 1e3}, "no hand")
        timings = {k: float(v) for k, v in estimate.timings_ms.items()}
        confidence = estimate.mean_confidence
        if not estimate.valid:
            self._lose()
            return FrameEstimate(False, None, 0.0, timings, estimate.reason)
        if confidence < self.min_confidence:
            self._lose()
            return FrameEstimate(False, None, confidence, timings, f"confidence {confidence:.2f} < {self.min_confidence}")
        xyz = np.asarray(estimate.xyz, dtype=np.float64)[self.to_canonical]
        if self.filter is not None:
            if self._last_stamp is not None and stamp_s <= self._last_stamp:
                self.filter.reset()
            self._last_stamp = stamp_s
            smoothed = self.filter(xyz, stamp_s)
            xyz = smoothed if np.isfinite(smoothed).all() else xyz
        self._seed = estimate
        return FrameEstimate(True, xyz, confidence, timings)


def _frame_error_mm(pred, truth) -> float | None:
    if pred is None or truth is None or np.shape(pred) != np.shape(truth):
        return None
    return float(np.linalg.norm(np.asarray(pred) - np.asarray(truth), axis=-1).mean())


def _stats(values) -> dict:
    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if values.size == 0:
        return {"mean": None, "p50": None, "p95": None}
    return {"mean": float(values.mean()), "p50": float(np.percentile(values, 50)),
            "p95": float(np.percentile(values, 95))}


# ---------------------------------------------------------------- evaluating a file
def evaluate(path, model: str | None = None, backend: str = "auto", device: str = "auto", use_filter: bool = True,
             limit: int | None = None, keep_view_frames: bool = False, fps: float = 10.0, log=None) -> dict:
    """Run the pipeline on every depth frame of the session file. Returns the result dict,
    with '_per_frame' (list of dicts) and, with keep_view_frames, '_view_frames'."""
    from ..ros.pose_node import StartupError, describe_estimator, load_estimator

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    with SessionFile(path) as session:
        topics = resolve_topics(session)
        values = pose_node_values(model, backend, device)
        try:
            estimator, model_path = load_estimator(values)
        except StartupError as e:
            raise ValueError(str(e)) from None
        tracker = OfflineTracker(estimator, values, use_filter)
        total = session.topics[topics.depth].count
        view_every, view_limit = _view_selection(session, topics.depth, fps)
        from tqdm import tqdm

        per_frame, view_frames, scored = [], [], []
        first_stamp = None
        wall_start = time.perf_counter()
        bar = None   # made at the first frame: a file that fails to read prints its one error line only
        try:
            for frame in read_frames(session, topics, limit=limit):
                if bar is None:
                    bar = tqdm(total=total if limit is None else min(total, limit), desc="eval bag", unit="frame",
                               file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 10.0)
                first_stamp = frame.stamp_ns if first_stamp is None else first_stamp
                stamp_s = frame.stamp_ns * 1e-9
                result = tracker.step(frame.depth_mm, frame.intrinsics, stamp_s)
                row = {"index": frame.index, "time_s": (frame.stamp_ns - first_stamp) * 1e-9,
                       "hand_found": result.found, "confidence": result.confidence,
                       "error_mm": _frame_error_mm(result.xyz_mm, frame.truth_mm),
                       "live_error_mm": _frame_error_mm(frame.keypoints_mm, frame.truth_mm),
                       "total_ms": result.timings_ms.get("total"), "timings_ms": result.timings_ms}
                per_frame.append(row)
                if result.found and frame.truth_mm is not None:
                    scored.append((result.xyz_mm, frame.truth_mm, frame.intrinsics))
                if keep_view_frames and frame.index % view_every == 0 and len(view_frames) < view_limit:
                    from .session_view import ViewFrame
                    view_frames.append(ViewFrame(frame.depth_mm.copy(), frame.intrinsics, result.xyz_mm,
                                                 frame.truth_mm, frame.joint_names, frame.joint_positions, stamp_s))
                bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        wall_s = time.perf_counter() - wall_start
        has_truth = topics.ground_truth is not None
        frames = len(per_frame)
        if frames == 0:
            raise SessionFileError(f"{session.path}: no depth frame on {topics.depth} to evaluate")
        found = sum(r["hand_found"] for r in per_frame)
        result = {
            "file": str(session.path), "model": str(model_path), "backend": describe_estimator(estimator),
            "filter": tracker.filter is not None, "min_confidence": tracker.min_confidence,
            "depth_topic": topics.depth, "frames": frames, "frames_with_hand": int(found),
            "hand_found_fraction": found / frames,
            "mean_confidence": float(np.mean([r["confidence"] for r in per_frame])),
            "ground_truth": has_truth, "duration_s": (per_frame[-1]["time_s"] if frames else 0.0),
            "timing_ms": {stage: _stats(r["timings_ms"].get(stage) for r in per_frame)
                          for stage in ("localise", "crop", "infer", "recover", "total")},
            "offline_fps": frames / wall_s if wall_s > 0 else None,
        }
        if has_truth:
            result.update(_score(scored, session.path))
            live = [r["live_error_mm"] for r in per_frame if r["live_error_mm"] is not None]
            result["live_keypoints_frames"] = len(live)
            result["live_mean_error_mm"] = float(np.mean(live)) if live else None
        result["robot_hand"] = session.session_metadata.get("robot_hand")
        result["_per_frame"] = per_frame
        result["_view_frames"] = view_frames
        return result


def _score(scored: list, path) -> dict:
    """The community protocol's numbers over the frames with a hand and ground truth."""
    from . import metrics

    if not scored:
        return {"frames_scored": 0, "mean_error_mm": None, "median_error_mm": None, "max_error_success": {}}
    pred_uvd = np.stack([cam.xyz_to_uvd(pred) for pred, _, cam in scored])
    truth_uvd = np.stack([cam.xyz_to_uvd(truth) for _, truth, cam in scored])
    score = metrics.score(truth_uvd, pred_uvd, [cam for _, _, cam in scored], keypoints.CANONICAL)
    return {"frames_scored": score["frames"], "mean_error_mm": score["mean_error_mm"],
            "median_error_mm": score["median_error_mm"],
            "success_at_mm": {str(t): score["max_error_success"].get(metrics.threshold_key(t))
                              for t in SUMMARY_THRESHOLDS_MM},
            "per_joint_mm": score["per_joint_mm"], "max_error_success": score["max_error_success"],
            "_score": score}


def _view_selection(session: SessionFile, depth_topic: str, fps: float) -> tuple[int, int]:
    """(every n-th frame, at most how many) for an animation at `fps`: contiguous, real time."""
    from .session_view import MAX_SECONDS

    count = session.topics[depth_topic].count
    recorded_fps = (count - 1) / session.duration_s if session.duration_s > 0 and count > 1 else fps
    return max(1, int(round(recorded_fps / fps))), max(1, int(round(MAX_SECONDS * fps)))


# ---------------------------------------------------------------- outputs
def _write_text(path: Path, text: str) -> Path:
    """Write through a temporary name, so a half-written file never has the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path


def write_outputs(result: dict, out_dir: Path) -> list[Path]:
    """per_frame.csv, over_time.png (error and confidence per frame) and, with ground truth,
    success.png (the community success curve)."""
    from .plots import _pyplot, _save, plot_success_curves

    per_frame = result["_per_frame"]
    out_dir = Path(out_dir)
    lines = ["index,time_s,hand_found,confidence,error_mm,live_error_mm,total_ms"]
    for r in per_frame:
        cells = [r["index"], f"{r['time_s']:.4f}", int(r["hand_found"]), f"{r['confidence']:.4f}"]
        cells += ["" if r[k] is None else f"{r[k]:.3f}" for k in ("error_mm", "live_error_mm", "total_ms")]
        lines.append(",".join(str(c) for c in cells))
    written = [_write_text(out_dir / "per_frame.csv", "\n".join(lines) + "\n")]

    plt = _pyplot()
    rows = 2 if result["ground_truth"] else 1
    fig, axes = plt.subplots(rows, 1, figsize=(9, 3.2 * rows), dpi=110, sharex=True, squeeze=False)
    t = np.array([r["time_s"] for r in per_frame])
    if result["ground_truth"]:
        ax = axes[0][0]
        error = np.array([np.nan if r["error_mm"] is None else r["error_mm"] for r in per_frame])
        ax.plot(t, error, linewidth=1.5, label=f"offline ({_fmt(result.get('mean_error_mm'))} mm mean)")
        live = np.array([np.nan if r["live_error_mm"] is None else r["live_error_mm"] for r in per_frame])
        if np.isfinite(live).any():
            ax.plot(t, live, "o", markersize=4, alpha=0.8,
                    label=f"live pose node ({_fmt(result.get('live_mean_error_mm'))} mm mean)")
        ax.set_ylabel("mean keypoint error (mm)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right")
        ax.set_title(f"{Path(result['file']).name}: error per frame")
    ax = axes[-1][0]
    confidence = np.array([r["confidence"] for r in per_frame])
    found = np.array([r["hand_found"] for r in per_frame])
    ax.plot(t, confidence, linewidth=1.2, color="tab:green", label="mean keypoint confidence")
    ax.scatter(t[~found], confidence[~found], s=10, color="tab:red", zorder=3, label="no hand")
    ax.axhline(result["min_confidence"], color="0.5", linestyle="--", linewidth=1, label="min_confidence")
    ax.set_ylim(0, 1)
    ax.set_xlabel("time in the recording (s)")
    ax.set_ylabel("confidence")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    if not result["ground_truth"]:
        ax.set_title(f"{Path(result['file']).name}: hand found in {result['hand_found_fraction']:.0%} of frames")
    written.append(_save(fig, out_dir / "over_time.png"))
    if result["ground_truth"] and result.get("_score"):
        written.append(plot_success_curves([result["_score"]], [Path(result["model"]).stem],
                                           out_dir / "success.png", "session"))
    return written


def animation_from_file(path, out, robot_hand: str | None = None, fps: float = 10.0, log=None) -> Path:
    """The session view (evaluation/session_view.py) of a recording from what it recorded:
    the live keypoints (a frame the pose node skipped shows its last answer of the past
    HOLD_KEYPOINTS_S), the ground truth and the joint commands. The first 10 s at `fps`."""
    from .session_view import DEFAULT_ROBOT_HAND, ViewFrame, write_animation

    with SessionFile(path) as session:
        topics = resolve_topics(session)
        every, most = _view_selection(session, topics.depth, fps)
        frames, last_keypoints, last_stamp = [], None, None
        # Every frame is read (the hold needs the skipped frames' keypoints); only kept ones are stored.
        for frame in read_frames(session, topics):
            if frame.keypoints_mm is not None:
                last_keypoints, last_stamp = frame.keypoints_mm, frame.stamp_ns
            if frame.index % every:
                continue
            held = (last_keypoints if last_stamp is not None and
                    0 <= frame.stamp_ns - last_stamp <= HOLD_KEYPOINTS_S * 1e9 else None)
            frames.append(ViewFrame(frame.depth_mm, frame.intrinsics, held, frame.truth_mm, frame.joint_names,
                                    frame.joint_positions, frame.stamp_ns * 1e-9))
            if len(frames) >= most:
                break
        hand = robot_hand or session.session_metadata.get("robot_hand") or DEFAULT_ROBOT_HAND
        title = f"{Path(path).name}: live keypoints, ground truth, {hand} hand"
    if log:
        log(f"[animation] {len(frames)} frames -> {out}")
    return write_animation(frames, out, robot_hand=hand, fps=fps, title=title)


def _fmt(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_text(result: dict) -> str:
    lines = [f"{result['file']}: {result['frames']} frames over {result['duration_s']:.1f} s, model "
             f"{result['model']} ({result['backend']})",
             f"  hand found          {result['frames_with_hand']} of {result['frames']} frames "
             f"({result['hand_found_fraction']:.1%}), mean confidence {result['mean_confidence']:.2f}"]
    if result["ground_truth"]:
        lines.append(f"  keypoint error      mean {_fmt(result.get('mean_error_mm'), 2)} mm, median "
                     f"{_fmt(result.get('median_error_mm'), 2)} mm over {result.get('frames_scored')} frames")
        success = result.get("success_at_mm") or {}
        if success:
            lines.append("  max error <= T      " + ", ".join(
                f"{t} mm: {_fmt(None if v is None else 100 * v)}%" for t, v in success.items()))
        if result.get("live_keypoints_frames"):
            lines.append(f"  live pose node      {_fmt(result.get('live_mean_error_mm'), 2)} mm mean over "
                         f"{result['live_keypoints_frames']} recorded keypoint messages")
    else:
        lines.append("  no ground truth in the file: hand-found rate and confidence only")
    timing = result["timing_ms"]
    lines.append("  time per frame (ms) " + ", ".join(
        f"{stage} {_fmt(timing[stage]['mean'])}" for stage in ("localise", "crop", "infer", "recover", "total")))
    lines.append(f"  offline rate        {_fmt(result.get('offline_fps'))} frames/s")
    for key in ("plots", "animation"):
        for item in ([result[key]] if isinstance(result.get(key), str) else result.get(key) or []):
            lines.append(f"  wrote {item}")
    return "\n".join(lines)


# ---------------------------------------------------------------- command line
def add_bag_arguments(sub) -> None:
    p = sub.add_parser("bag", help="run the pose pipeline offline on a recording (hand-pose record) and score it")
    p.add_argument("file", type=Path, help="session file (.mcap, or a rosbag2 .db3)")
    p.add_argument("--model", default=None,
                   help="model file (default: the shipped full model, inference/model_choice.FULL_MODEL)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime", "tensorrt"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--no-filter", action="store_true", help="score the raw estimates (no One Euro filter)")
    p.add_argument("--limit", type=int, default=None, help="only the first N frames")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="plots and per_frame.csv (default: FILE_eval/ beside the recording)")
    p.add_argument("--no-plots", action="store_true", help="write no plots or CSV")
    p.add_argument("--animation", type=Path, default=None,
                   help="also write the session view with the offline estimates (GIF or MP4 by suffix)")
    p.add_argument("--robot-hand", default=None, help="robot hand of the animation (default: the recorded one)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run_bag(args) -> int:
    from ..ros.run import json_safe

    try:
        result = evaluate(args.file, args.model, args.backend, args.device, use_filter=not args.no_filter,
                          limit=args.limit, keep_view_frames=args.animation is not None)
        if not args.no_plots:
            out_dir = args.out_dir or args.file.with_name(f"{args.file.stem}_eval")
            result["plots"] = [str(p) for p in write_outputs(result, out_dir)]
        if args.animation is not None:
            from .session_view import DEFAULT_ROBOT_HAND, write_animation
            hand = args.robot_hand or result.get("robot_hand") or DEFAULT_ROBOT_HAND
            result["animation"] = str(write_animation(
                result["_view_frames"], args.animation, robot_hand=hand,
                title=f"{args.file.name}: offline estimate, ground truth, {hand} hand"))
    except (SessionFileError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"hand-pose eval bag: error: {e}", file=sys.stderr)
        return 2
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    if args.json:
        print(json.dumps(json_safe(public), sort_keys=True))
    else:
        print(summary_text(public))
    return 0

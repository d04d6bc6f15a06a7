"""Retargeting benchmark: per-frame cost of each retargeter (and of the whole pipeline with
filter and safety) and the fingertip error, on a synthetic motion of the human hand model.

    python -m hand_pose_ros.retarget.bench --json          # one JSON object on stdout
    python -m hand_pose_ros.retarget.bench --hands leap allegro shadow --frames 600

Goals on the 2-core dev machine: analytic <= 1 ms mean, optimisation <= 3 ms mean.
Fingertip error: robot fingertip (forward kinematics of the hand's URDF) vs the human
fingertip relative to the wrist in the hand frame, scaled by the spec's scaling_factor.
`hand-pose bench` may call `run_benchmark()` directly.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time

import numpy as np

GOALS_MS = {"analytic": 1.0, "optimisation": 3.0}


def _cases(spec) -> list:
    """(label, kind, options) for everything this hand can run."""
    cases = [("analytic", "analytic", {})]
    if spec.optimization is not None and spec.robot is not None:  # Shadow: only with a URDF given
        cases += [("optimisation vector", "optimisation", {"method": "vector"}),
                  ("optimisation dexpilot", "optimisation", {"method": "dexpilot"}),
                  ("dex-retargeting torch objective, vector (reference)", "optimisation",
                   {"method": "vector", "objective": "torch"}),
                  ("dex-retargeting torch objective, dexpilot (reference)", "optimisation",
                   {"method": "dexpilot", "objective": "torch"})]
    return cases


def _ms(values) -> dict:
    v = np.asarray(values) * 1e3
    return {"mean": float(v.mean()), "p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99))}


def run_benchmark(hands=("leap",), frames: int = 300, seed: int = 0, progress: bool = True) -> dict:
    from tqdm import tqdm

    from hand_pose_ros.retarget import PipelineConfig, RetargetPipeline, load_hand_spec, make_retargeter
    from hand_pose_ros.retarget.human_hand import motion_sequence, place_in_camera, random_rotation
    from hand_pose_ros.retarget.kinematics import fingertip_errors

    rng = np.random.default_rng(seed)
    local = motion_sequence(frames, seed=seed)
    motion = place_in_camera(local, random_rotation(rng), [0.05, -0.03, 0.55])  # [T, 21, 3] m
    times = np.arange(frames) / 30.0
    results = []
    for hand in hands:
        spec = load_hand_spec(hand)
        for label, kind, options in _cases(spec):
            retargeter = make_retargeter(spec, kind, **options)
            retargeter.retarget(motion[0], "right")  # first-call set-up out of the timing
            retargeter.reset()
            per_frame, commands = [], []
            cpu_start = time.process_time()
            for kp in tqdm(motion, desc=f"{hand} {label}", disable=not progress, file=sys.stderr,
                           leave=False, mininterval=1.0):
                start = time.perf_counter()
                q = retargeter.retarget(kp, "right")
                per_frame.append(time.perf_counter() - start)
                commands.append(q)
            cpu_ms = 1e3 * (time.process_time() - cpu_start) / frames
            commands = np.clip(commands, spec.lower, spec.upper)
            # Wall time is what a node sees; CPU time is steadier on a shared, loaded machine.
            row = {"hand": hand, "retargeter": label, "ms_per_frame": _ms(per_frame),
                   "cpu_ms_per_frame_mean": cpu_ms}
            goal = GOALS_MS[kind] if "reference" not in label else None
            if goal is not None:
                row["goal_ms_mean"] = goal
                row["meets_goal"] = row["ms_per_frame"]["mean"] <= goal
            if kind == "analytic":  # the vectorised path, for offline use
                start = time.perf_counter()
                retargeter.retarget_batch(motion, "right")
                row["batch_ms_per_frame"] = 1e3 * (time.perf_counter() - start) / frames
            if "reference" not in label:  # the node's whole per-message work
                pipeline = RetargetPipeline(spec, make_retargeter(spec, kind, **options), PipelineConfig())
                start = time.perf_counter()
                for kp, t in zip(motion, times):
                    pipeline.update(kp, t)
                row["pipeline_ms_per_frame_mean"] = 1e3 * (time.perf_counter() - start) / frames
            if spec.urdf is not None and spec.optimization is not None:
                err = fingertip_errors(spec, motion, commands) * 1e3  # [T, F] mm
                fingers = list(spec.optimization.fingertip_links)
                row["fingertip_error_mm"] = {"mean": float(err.mean()), "p95": float(np.percentile(err, 95)),
                                             "per_finger_mean": dict(zip(fingers, map(float, err.mean(0))))}
            results.append(row)
            if progress:
                tip = row.get("fingertip_error_mm", {}).get("mean")
                print(f"[bench] {hand:8s} {label:55s} {row['ms_per_frame']['mean']:7.3f} ms/frame "
                      f"({cpu_ms:.3f} ms CPU)"
                      + (f"  fingertip error {tip:5.1f} mm" if tip is not None else ""), file=sys.stderr)
    return {
        "benchmark": "retarget",
        "frames": frames,
        "motion": "retarget.human_hand.motion_sequence at 30 fps (open/pinch/fist/point with wobble)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "processor": platform.processor() or platform.machine(),
                    "load_average_1min": os.getloadavg()[0]},
        "results": results,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hands", nargs="+", default=["leap"], help="robot hands (config/hands/<name>.yaml)")
    parser.add_argument("--frames", type=int, default=300, help="frames of synthetic motion (30 fps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run(args) -> int:
    if args.frames < 10:
        raise SystemExit(f"--frames must be at least 10, got {args.frames}")
    with contextlib.redirect_stdout(sys.stderr):  # libraries' prints must not corrupt the JSON
        report = run_benchmark(args.hands, args.frames, args.seed)
    if args.json:
        print(json.dumps(report))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hand_pose_ros.retarget.bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

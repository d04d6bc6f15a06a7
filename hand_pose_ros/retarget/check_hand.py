"""`hand-pose check-hand SPEC [--urdf URDF] [--json]`: check a robot hand spec against a
URDF before it drives a robot (what a user adding a new hand, or pointing a spec at the
manufacturer's URDF, runs first).

1. Load: the spec, bound to the URDF (spec.py checks names, limits to LIMIT_TOLERANCE,
   held joints and, by forward kinematics at the zero pose, the hand frame).
2. Joint motion: each joint moved by +0.2 rad from a slightly bent pose; which fingertip
   moves, how far, and which way (distal/proximal, radial/ulnar, dorsal/palmar).
   Checks that every finger joint moves a fingertip of its own group.
3. Canonical poses of the human hand model (open, spread, fist, point, pinch, grasp,
   relaxed) through every retargeter the hand supports; the fingertip error of the spec's
   optimisation retargeter (vector), and pose checks: no finger joint pinned at a limit in
   the open hand, fingertips apart; fist closed; point; pinch closes; wrist held. They fail
   the run for the analytic and vector retargeters; for DexPilot (fingertips only) they are
   warnings.

JSON keys: hand, urdf, description, tip_error_mm (mean over poses and fingers, vector
optimiser), failed_checks (list of strings; empty = pass), joint_motion, poses.
Exit status 0 when nothing failed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys

import numpy as np

POSES = ("open", "spread", "fist", "point", "pinch", "grasp", "relaxed")
LONG_FINGERS = ("index", "middle", "ring", "pinky")
AXIS_WORDS = (("distal", "proximal"), ("radial", "ulnar"), ("dorsal", "palmar"))  # hand frame +x/-x ...
MOTION_STEP = 0.2          # rad
MOVES_MM = 1.0             # a joint "moves" a fingertip when it shifts it by more than this per step
PINNED_RAD = 0.02          # a joint this close to a limit is "at" it
MIN_TIP_GAP_MM = 10.0      # open hand: robot fingertips at least this far apart


def _direction(delta_mm: np.ndarray) -> str:
    """'palmar 12.3 mm (distal 2.0)' for a displacement in the hand frame."""
    order = np.argsort(-np.abs(delta_mm))
    words = [f"{AXIS_WORDS[a][0 if delta_mm[a] > 0 else 1]} {abs(delta_mm[a]):.1f}" for a in order if abs(delta_mm[a]) >= 0.5]
    return (words[0] + " mm" + (f" ({', '.join(words[1:])})" if len(words) > 1 else "")) if words else "none"


def joint_motion(spec) -> tuple[dict, list]:
    """Per joint: each fingertip's displacement for +MOTION_STEP rad; and the failed checks."""
    fingers = list(spec.optimization.fingertip_links)
    links = [spec.optimization.fingertip_links[f] for f in fingers]
    # Slightly bent, so joints that only act on a bent finger (Allegro's twists) show.
    base = np.clip(0.3, spec.lower, spec.upper)
    held = {n for n, urdf_name in spec.robot.joint_names.items() if urdf_name in spec.robot.held}
    start = spec.robot.link_positions(base, links)
    report, failed = {}, []
    for i, joint in enumerate(spec.joints):
        q = base.copy()
        step = MOTION_STEP if base[i] + MOTION_STEP <= joint.upper else -MOTION_STEP
        q[i] += step
        delta = (spec.robot.link_positions(q, links) - start) * 1000 * np.sign(step)   # [F, 3] mm per +step
        size = np.linalg.norm(delta, axis=1)
        moved = {f: _direction(d) for f, d, s in zip(fingers, delta, size) if s > MOVES_MM}
        report[joint.name] = {"group": joint.group, "held": joint.name in held, "fingertips": moved}
        if joint.name in held or joint.group == "wrist":
            continue
        if not moved:
            failed.append(f"joint {joint.name}: moves no fingertip by more than {MOVES_MM} mm per {MOTION_STEP} rad")
        elif joint.group in fingers and fingers[int(np.argmax(size))] != joint.group:
            failed.append(f"joint {joint.name} (group {joint.group}) moves the {fingers[int(np.argmax(size))]} "
                          f"tip most: wrong group, or the URDF's chains are swapped")
    return report, failed


def _pinned(spec, q) -> list:
    """Finger joints within PINNED_RAD of a limit that is not their rest (0) position."""
    out = []
    for joint, value in zip(spec.joints, q):
        if joint.group in ("wrist", "thumb"):
            continue
        for limit in (joint.lower, joint.upper):
            if abs(value - limit) < PINNED_RAD and abs(limit) > 0.05:
                out.append(f"{joint.name}={value:.3f}")
    return out


def pose_checks(spec, label: str, tips_mm: dict, q: dict) -> list:
    """Failed pose checks for one retargeter: tips_mm[pose] [F, 3] robot tips (hand frame, mm),
    q[pose] [N] clipped commands."""
    fingers = list(spec.optimization.fingertip_links)
    idx = {f: i for i, f in enumerate(fingers)}
    long = [f for f in LONG_FINGERS if f in idx]
    reach = {p: np.linalg.norm(t, axis=1) for p, t in tips_mm.items()}
    failed = []
    open_tips = tips_mm["open"]
    gaps = [(np.linalg.norm(open_tips[idx[a]] - open_tips[idx[b]]), a, b)
            for i, a in enumerate(fingers) for b in fingers[i + 1:]]
    gap, a, b = min(gaps)
    if gap < MIN_TIP_GAP_MM:
        failed.append(f"{label}: open hand brings the {a} and {b} tips within {gap:.1f} mm")
    pinned = _pinned(spec, q["open"])
    if pinned:
        failed.append(f"{label}: open hand drives finger joints to their limits: {', '.join(pinned)}")
    for f in long:
        if reach["fist"][idx[f]] > 0.75 * reach["open"][idx[f]]:
            failed.append(f"{label}: fist leaves the {f} tip at {reach['fist'][idx[f]]:.0f} mm from the wrist "
                          f"(open {reach['open'][idx[f]]:.0f})")
        straight = f == "index"
        ratio = reach["point"][idx[f]] / reach["open"][idx[f]]
        if (straight and ratio < 0.9) or (not straight and ratio > 0.85):
            failed.append(f"{label}: point: the {f} tip is at {ratio:.0%} of its open reach")
    if "thumb" in idx and "index" in idx:
        pinch = {p: np.linalg.norm(tips_mm[p][idx["thumb"]] - tips_mm[p][idx["index"]]) for p in ("open", "pinch")}
        if pinch["pinch"] > 0.4 * pinch["open"]:
            failed.append(f"{label}: pinch leaves thumb and index tips {pinch['pinch']:.0f} mm apart "
                          f"(open {pinch['open']:.0f})")
    held = [i for i, j in enumerate(spec.joints) if j.group == "wrist"]
    for p, value in q.items():
        if held and not np.allclose(value[held], spec.safe_pose[held]):
            failed.append(f"{label}: {p} moves the wrist joints, which are held")
    return failed


def check_hand(spec_name, urdf=None) -> dict:
    from hand_pose_ros.retarget import make_retargeter
    from hand_pose_ros.retarget.human_hand import named_pose
    from hand_pose_ros.retarget.kinematics import HandKinematics, fingertip_errors
    from hand_pose_ros.retarget.spec import SpecError, load_hand_spec

    report = {"hand": str(spec_name), "urdf": None if urdf is None else str(urdf), "description": None,
              "tip_error_mm": None, "failed_checks": [], "joint_motion": {}, "poses": {}}
    try:
        spec = load_hand_spec(spec_name, urdf=urdf)
    except SpecError as e:
        report["failed_checks"].append(f"load: {e}")
        return report
    report["hand"] = spec.name
    if spec.robot is None or spec.optimization is None:
        report["failed_checks"].append(f"load: {spec.source} has no URDF or no optimization section (fingertip "
                                       "links): give --urdf, or add them to the spec")
        return report
    report["urdf"] = str(spec.urdf)
    report["description"] = spec.robot.description.label
    report["joint_motion"], failed = joint_motion(spec)
    report["failed_checks"] += failed

    fingers = list(spec.optimization.fingertip_links)
    links = [spec.optimization.fingertip_links[f] for f in fingers]
    kinematics = HandKinematics(spec)
    human = {p: named_pose(p) for p in POSES}
    for label, kind, options in (("analytic", "analytic", {}), ("vector", "optimisation", {"method": "vector"}),
                                 ("dexpilot", "optimisation", {"method": "dexpilot"})):
        retargeter = make_retargeter(spec, kind, **options)
        q, tips, errors = {}, {}, {}
        for pose, keypoints in human.items():
            retargeter.reset()
            for _ in range(5):  # a held pose: let the warm-started optimiser settle
                command = retargeter.retarget(keypoints, "right")
            q[pose] = np.clip(command, spec.lower, spec.upper)
            tips[pose] = kinematics.link_positions(q[pose], links) * 1000
            errors[pose] = float(fingertip_errors(spec, keypoints[None], q[pose][None]).mean() * 1000)
        report["poses"][label] = {"tip_error_mm": errors, "mean_tip_error_mm": float(np.mean(list(errors.values())))}
        failed = pose_checks(spec, label, tips, q)
        if label == "dexpilot":
            # DexPilot matches fingertips only (no phalanx vectors), so a robot finger longer
            # than the scaled human's curls or hyperextends in the open hand: reported, not failed.
            report["poses"][label]["warnings"] = failed
        else:
            report["failed_checks"] += failed
    report["tip_error_mm"] = report["poses"]["vector"]["mean_tip_error_mm"]
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="robot hand: a name in config/hands (leap, allegro, shadow) or a spec YAML path")
    parser.add_argument("--urdf", default=None, help="URDF file to check the spec against instead of its own "
                                                     "(e.g. the manufacturer's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run(args) -> int:
    with contextlib.redirect_stdout(sys.stderr):  # nlopt's and libraries' prints must not corrupt the JSON
        report = check_hand(args.spec, args.urdf)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['hand']}: {report['description'] or '-'} ({report['urdf']})")
        for joint, motion in report["joint_motion"].items():
            moves = "; ".join(f"{f} {d}" for f, d in motion["fingertips"].items()) or "no fingertip"
            print(f"  {joint:10s} +{MOTION_STEP} rad: {moves}{'  (held)' if motion['held'] else ''}")
        for label, pose in report["poses"].items():
            per_pose = ", ".join(f"{p} {e:.1f}" for p, e in pose["tip_error_mm"].items())
            print(f"  {label:9s} mean fingertip error {pose['mean_tip_error_mm']:.1f} mm ({per_pose})")
        print(f"tip error (vector): {report['tip_error_mm'] if report['tip_error_mm'] is None else round(report['tip_error_mm'], 1)} mm")
        print("failed checks:" + ("".join(f"\n  - {c}" for c in report["failed_checks"]) or " none"))
    return 1 if report["failed_checks"] else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hand-pose check-hand", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

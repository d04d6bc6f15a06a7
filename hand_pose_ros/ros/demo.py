"""`hand-pose demo` (what `make demo` runs): synthetic depth camera -> pose node ->
retargeting node for ~15 s on this machine, then a report in out/demo/:

  report.md / report.json   input and output rates, latency p50 / p99 (image stamp to
                            published keypoints), mean keypoint error against the synthetic
                            ground truth, dropped frames, retargeting rate, the pose node's
                            per-frame timing breakdown
  frame.png                 one depth frame with the estimated skeleton (and the ground truth)
  hand_3d.png               the same frame's keypoints in 3D (matplotlib)
  session.mcap              the recording of the measuring window (`hand-pose replay` it)
  session.gif               the session view from it (depth + skeleton, 3D hand, robot hand)

Uses the shipped model that fits the machine (--model auto, inference/model_choice.py: the
fast model on a CPU, the full one on a big GPU). When it is not there yet, says so
loudly and uses a randomly initialised SRNet of that size instead: the pipeline and timings are real,
the keypoints (and so the error) are meaningless.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

from .. import keypoints
from ..inference import model_choice
from . import launch_plan
from .params import resolve_share_path, share_dir
from .record import SessionCapture
from .run import _fmt, install_stop_signals, json_safe, run_pipeline

BANNER = "!" * 78


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of measuring (default 15)")
    parser.add_argument("--out", default="out/demo", help="report directory (default out/demo)")
    parser.add_argument("--model", default=model_choice.AUTO,
                        help=f"model file, or auto (default): {model_choice.FAST_MODEL} on a CPU or small "
                             f"Jetson, {model_choice.FULL_MODEL} on a big GPU")
    parser.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "torch", "tensorrt"))
    parser.add_argument("--robot-hand", default=launch_plan.ARGUMENTS["robot_hand"][0])
    parser.add_argument("--no-retarget", action="store_true", help="do not start the retargeting node")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object on stdout")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- model choice
def random_model(out_dir: Path, preset: str) -> Path:
    """A randomly initialised SRNet of that preset (model.config.PRESETS) as ONNX (made once, reused)."""
    path = out_dir / f"random_srnet_{preset}.onnx"
    if path.is_file():
        return path
    import torch

    from ..inference.export import export_onnx
    from ..model import SRNet, SRNetConfig
    from ..model.config import preset_fields

    _log(f"[demo] exporting a randomly initialised {preset} SRNet to ONNX (once, ~15 s) ...")
    torch.manual_seed(0)
    config = SRNetConfig(**preset_fields(preset))
    return export_onnx(SRNet(config).eval(), config, path)


def choose_model(requested: str, out_dir: Path) -> tuple[Path, bool]:
    """(model path, is_random). 'auto': model_choice.choose_model, said in the log."""
    if requested and requested != model_choice.AUTO:
        path = resolve_share_path(requested)
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        return path, False
    choice = model_choice.choose_model(model_choice.AUTO)
    shipped = resolve_share_path(choice.model_path)
    if shipped.is_file():
        _log(f"[demo] model auto -> {choice.model_path}: {choice.reason}")
        return shipped, False
    _log(f"\n{BANNER}\n[demo] WARNING: the trained model {shipped} is not there yet.\n"
         "[demo] Using a RANDOMLY INITIALISED model instead: the pipeline, rates and latencies are\n"
         "[demo] real, but the keypoints are meaningless and the keypoint error is not a result.\n"
         f"{BANNER}\n")
    return random_model(out_dir, "fast" if choice.model_path == model_choice.FAST_MODEL else "full"), True


def model_card(model_path: Path) -> dict | None:
    """The model card next to the model (same stem, .json), if any: offline accuracy etc."""
    card = model_path.with_suffix(".json")
    if card.is_file():
        try:
            return json.loads(card.read_text())
        except ValueError:
            return None
    return None


# ---------------------------------------------------------------- one frame for the pictures
class Snapshot:
    """After measuring: catch one depth frame together with the keypoints and the ground
    truth of the same stamp, and the camera intrinsics."""

    def __init__(self, node):
        self.node = node
        self.depth: dict[int, object] = {}
        self.joints: dict[int, np.ndarray] = {}
        self.truth: dict[int, np.ndarray] = {}
        self.camera_info = None
        self.found: tuple | None = None
        self._lock = threading.Lock()

    def capture(self, launch_args: dict, timeout_s: float = 8.0) -> tuple | None:
        from geometry_msgs.msg import PoseArray
        from sensor_msgs.msg import CameraInfo, Image

        from . import conversions
        from .common import qos_profile

        def keep(table, convert):
            def callback(msg):
                with self._lock:
                    table[conversions.stamp_key(msg.header.stamp)] = convert(msg)
                    while len(table) > 60:
                        table.pop(next(iter(table)))
            return callback

        def on_info(msg):
            self.camera_info = msg

        n = self.node
        subs = [n.create_subscription(Image, launch_args["depth_topic"], keep(self.depth, lambda m: m),
                                      qos_profile("sensor_data", 5)),
                n.create_subscription(PoseArray, launch_plan.JOINTS_TOPIC,
                                      keep(self.joints, conversions.pose_array_to_keypoints), 10),
                n.create_subscription(PoseArray, launch_plan.GROUND_TRUTH_TOPIC,
                                      keep(self.truth, conversions.pose_array_to_keypoints), 10),
                n.create_subscription(CameraInfo, launch_args["camera_info_topic"], on_info,
                                      qos_profile("sensor_data", 5))]
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline and self.found is None:
                with self._lock:
                    common = [k for k in self.joints if k in self.depth and k in self.truth]
                    if common and self.camera_info is not None:
                        k = common[-1]
                        image = self.depth[k]
                        depth = conversions.image_msg_to_depth_mm(image)
                        cam = conversions.camera_info_to_intrinsics(self.camera_info)
                        self.found = (depth, cam, self.joints[k], self.truth[k])
                time.sleep(0.05)
        finally:
            for s in subs:
                n.destroy_subscription(s)
        return self.found


def frame_png(path: Path, depth, cam, pred_xyz, truth_xyz) -> None:
    """The depth frame with the estimated skeleton in finger colours over the ground truth
    drawn as a thin white skeleton."""
    from PIL import Image

    from .overlay import colourise_depth, draw_disc, draw_line, draw_skeleton

    hand_d = float(np.median(pred_xyz[:, 2]))
    rgb = colourise_depth(depth, max(hand_d - 150.0, 1.0), hand_d + 300.0)  # contrast on the hand
    truth_uv = cam.xyz_to_uvd(truth_xyz)[:, :2]
    for a, b in keypoints.edges(keypoints.CANONICAL):
        draw_line(rgb, truth_uv[a], truth_uv[b], (255, 255, 255), 1)
    for uv in truth_uv:
        draw_disc(rgb, uv, 1, (255, 255, 255))
    draw_skeleton(rgb, cam.xyz_to_uvd(pred_xyz)[:, :2])
    Image.fromarray(rgb).save(path)


def hand_3d_png(path: Path, pred_xyz, truth_xyz, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(6, 6))
    ax = fig.add_subplot(projection="3d")
    edges = keypoints.edges(keypoints.CANONICAL)
    for xyz, style, label in ((truth_xyz, dict(color="0.6", linestyle="--", linewidth=1), "ground truth"),
                              (pred_xyz, None, "estimate")):
        for k, (a, b) in enumerate(edges):
            kw = style or dict(color=keypoints.colour_of(keypoints.CANONICAL[b]), linewidth=2)
            # plot x, z, -y: camera optical frame shown with up = -y, depth going away
            ax.plot(xyz[[a, b], 0], xyz[[a, b], 2], -xyz[[a, b], 1], label=label if k == 0 else None, **kw)
    ax.scatter(pred_xyz[:, 0], pred_xyz[:, 2], -pred_xyz[:, 1], c=[keypoints.colour_of(n) for n in keypoints.CANONICAL], s=15)
    both = np.concatenate([pred_xyz, truth_xyz])
    centre, half = both.mean(0), max(np.ptp(both, axis=0).max() / 2, 60.0)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[2] - half, centre[2] + half)
    ax.set_zlim(-centre[1] - half, -centre[1] + half)
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("z (mm, depth)")
    ax.set_zlabel("-y (mm)")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- report
def report_markdown(r: dict) -> str:
    lines = ["# hand_pose_ros demo", "",
             f"{r['date']} on {r['machine']}", "",
             f"Model: `{r['model']}`" + ("  \n**RANDOMLY INITIALISED MODEL: the trained model was not found; keypoints "
                                         "and error are meaningless, rates and latencies are real.**"
                                         if r["random_model"] else ""), ""]
    if r.get("model_card_error_mm") is not None:
        lines += [f"Offline mean error of this model on the fixed synthetic test set (model card): "
                  f"{r['model_card_error_mm']:.2f} mm", ""]
    lines += ["| measurement | value |", "|---|---|",
              f"| measured for | {_fmt(r.get('duration_s'))} s (start-up {_fmt(r.get('startup_s'))} s excluded) |",
              f"| frames in / out | {r.get('frames_in')} / {r.get('frames_out')} |",
              f"| camera publishing (frames seen on any of its topics) / pose node receiving (its diagnostics) | "
              f"{_fmt(r.get('camera_fps'))} / {_fmt(r.get('pose_input_fps'))} fps |",
              f"| input rate | {_fmt(r.get('input_fps'))} fps |",
              f"| output rate (keypoints) | {_fmt(r.get('fps'))} fps |",
              f"| latency image stamp -> keypoints, p50 / p99 | {_fmt(r.get('latency_ms_p50'))} / "
              f"{_fmt(r.get('latency_ms_p99'))} ms |",
              f"| same, as the pose node measures it when publishing (p50, its last 300 frames) | "
              f"{_fmt(r.get('pose_node_latency_ms_p50'))} ms |",
              f"| mean keypoint error vs ground truth | {_fmt(r.get('mean_error_mm'), 2)} mm "
              f"({r.get('error_frames')} frames) |",
              f"| dropped frames (pose node, newest-frame policy) | {r.get('frames_dropped')} |",
              f"| retargeting: fresh commands (one per keypoint message) | {_fmt(r.get('retarget_fresh_fps'))} fps "
              f"({r.get('retarget_commands_for_keypoints')} commands) |",
              f"| retargeting: repeated commands (timer holding / ramping) | {_fmt(r.get('retarget_repeat_fps'))} fps "
              f"({r.get('retarget_repeated_commands')} commands) |",
              f"| retargeting latency image stamp -> joint command, p50 / p99 | "
              f"{_fmt(r.get('retarget_latency_ms_p50'))} / {_fmt(r.get('retarget_latency_ms_p99'))} ms |",
              ""]
    timings = r.get("pose_node_timings_ms") or {}
    if timings:
        lines += ["Pose node, mean time per frame (ms):", "", "| stage | ms |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in sorted(timings.items())]
        lines += ["", "`node_overhead` = the node's own per-frame cost without the model's inference call "
                  "(decode, localise, crop, recover, filter, conversions, publishing), wall time; "
                  "`node_overhead_cpu` = the same as CPU time of the node's worker thread, which other "
                  "processes competing for the CPU do not inflate. Goal: <= 3 ms. TF, markers and the "
                  "debug image are built only while subscribed (none during the demo).", ""]
    if r.get("images"):
        lines += [f"![{name}]({name})" for name in r["images"]] + [""]
    if r.get("session"):
        lines += [f"Recording of the measuring window: `{r['session']}` ({r.get('session_frames')} depth frames, "
                  f"{r.get('session_megabytes')} MB). Replay it with `{r['replay_command']}`.", ""]
    if r.get("animation"):
        lines += [f"![session view]({r['animation']})", ""]
    for e in r.get("errors", []):
        lines.append(f"- error: {e}")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    install_stop_signals()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        model, is_random = choose_model(args.model, out_dir)
    except (FileNotFoundError, ImportError, RuntimeError) as e:
        print(f"hand-pose demo: {e}", file=sys.stderr)
        return 2
    launch_args = launch_plan.with_defaults({
        "use_synthetic_camera": "true", "backend": args.backend, "model": str(model),
        "robot_hand": args.robot_hand, "retarget": str(not args.no_retarget).lower()})
    if not args.no_retarget:
        try:
            launch_plan.plan(launch_args, share_dir())
        except ValueError as e:
            _log(f"[demo] retargeting not available ({e}); running without it")
            launch_args["retarget"] = "false"

    snapshot: list[Snapshot] = []
    capture = SessionCapture(out_dir, launch_args)   # out/demo/session.mcap + session.gif

    def watch(node):
        capture.attach(node)
        snapshot.append(Snapshot(node))
        return snapshot[0]

    def after_window(snap):
        capture.stop()
        snap.capture(launch_args)

    result = run_pipeline(launch_args, args.duration, args.startup_timeout, log=_log,
                          extra=watch, after_window=after_window)
    recorded = capture.finish()
    result["errors"] += recorded.pop("errors")
    result.update(recorded)
    card = model_card(model)
    result.update({
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node() or 'unknown'} ({platform.machine()}, {os.cpu_count()} CPUs, "
                   f"Python {platform.python_version()})",
        "model": str(model), "random_model": is_random,
        "model_card_error_mm": (card or {}).get("mean_error_mm"),
        "images": [],
    })
    found = snapshot[0].found if snapshot else None
    if found is not None:
        depth, cam, pred, truth = found
        frame_png(out_dir / "frame.png", depth, cam, pred, truth)
        hand_3d_png(out_dir / "hand_3d.png", pred, truth,
                    "estimate (colour) vs ground truth (grey)" + (" - RANDOM MODEL" if is_random else ""))
        result["images"] = ["frame.png", "hand_3d.png"]
    else:
        result["errors"].append("no frame with keypoints and ground truth could be captured for the pictures")
    (out_dir / "report.json").write_text(json.dumps(json_safe(result), indent=2, sort_keys=True) + "\n")
    markdown = report_markdown(result)
    (out_dir / "report.md").write_text(markdown)
    if args.json:
        print(json.dumps(json_safe(result), sort_keys=True))
    else:
        print(markdown)
        print(f"(written to {out_dir / 'report.md'} and report.json)")
    if result.get("replay_command"):
        _log(f"[demo] replay the recording with: {result['replay_command']}")
    if is_random:
        _log(f"\n{BANNER}\n[demo] REMINDER: this ran a RANDOMLY INITIALISED model (no shipped model file was found).\n{BANNER}")
    return 0 if result["ok"] else 1

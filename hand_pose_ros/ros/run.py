"""`hand-pose run`: start the nodes of launch/pose.launch.py from Python (no `ros2 launch`
needed), watch them, and measure the pipeline.

    hand-pose run --synthetic --duration 8 --json
    hand-pose run --depth-topic /camera/depth/image_rect_raw --camera-info-topic /camera/depth/camera_info

Each node runs in its own process, started from the same console script with the same
parameter YAML files (`--ros-args --params-file ...`) and overrides as the launch file: both
read hand_pose_ros/ros/launch_plan.py. A monitor node in this process measures input and
output rates, latency from the image stamp to the published joints (p50 / p99), the mean
keypoint error against /synthetic_camera/ground_truth (synthetic camera only), dropped
frames and the retargeting output rate. With --duration the nodes are stopped cleanly
(SIGINT, like ros2 launch) after that many seconds of measuring; the clock starts when the
first keypoints arrive (model loading and the synthetic camera's pre-rendering excluded).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import launch_plan
from .params import share_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--synthetic", action="store_true", help="start the synthetic depth camera too")
    parser.add_argument("--duration", type=float, default=None,
                        help="measure for this many seconds after the first keypoints, then stop (default: until Ctrl-C)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the measurements on stdout")
    parser.add_argument("--depth-topic", default=launch_plan.ARGUMENTS["depth_topic"][0])
    parser.add_argument("--camera-info-topic", default=launch_plan.ARGUMENTS["camera_info_topic"][0])
    parser.add_argument("--rviz", action="store_true", help="also start rviz2 (when installed)")
    add_pipeline_arguments(parser, startup_timeout=120.0, log_level="info",
                           startup_help="seconds to wait for the first keypoints before measuring anyway")


def add_pipeline_arguments(parser, startup_timeout: float, log_level: str, startup_help: str) -> None:
    """The options of the nodes this module starts (shared by `hand-pose run` and `record --synthetic`)."""
    parser.add_argument("--robot-hand", default=launch_plan.ARGUMENTS["robot_hand"][0],
                        help="robot hand to retarget to (config/retarget_<hand>.yaml)")
    parser.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "torch", "tensorrt"))
    parser.add_argument("--model", default="", help="model file (default: model_path of config/pose.yaml)")
    parser.add_argument("--no-retarget", action="store_true", help="do not start the retargeting node")
    parser.add_argument("--startup-timeout", type=float, default=startup_timeout, help=startup_help)
    parser.add_argument("--log-level", default=log_level, choices=("debug", "info", "warn", "error"),
                        help="log level of the started nodes")


def launch_arguments(args) -> dict[str, str]:
    """The launch arguments (as pose.launch.py takes them) for these command-line options."""
    return launch_plan.with_defaults({
        "depth_topic": args.depth_topic,
        "camera_info_topic": args.camera_info_topic,
        "use_synthetic_camera": str(bool(args.synthetic)).lower(),
        "backend": args.backend,
        "model": str(Path(args.model).resolve()) if args.model else "",
        "robot_hand": args.robot_hand,
        "retarget": str(not args.no_retarget).lower(),
        "rviz": str(bool(args.rviz)).lower(),
    })


# ---------------------------------------------------------------- commands
def format_parameter_value(value) -> str:
    """A value as `-p name:=value` parses it back (YAML): bools lower-case, lists as YAML."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_parameter_value(v) for v in value) + "]"
    return str(value)


def find_executable(package: str, executable: str) -> list[str] | None:
    """The command that runs a node's executable, or None when it is not installed.

    This package's console scripts sit next to the Python running us (venv bin/) or in
    <prefix>/lib/hand_pose_ros (colcon); other packages' executables are looked up through
    ament_index (ROS install), then PATH.
    """
    candidates = []
    if package == launch_plan.PACKAGE:
        candidates.append(Path(sys.executable).parent / executable)
    try:
        from ament_index_python.packages import get_package_prefix

        candidates.append(Path(get_package_prefix(package)) / "lib" / package / executable)
    except (ImportError, LookupError, ValueError, OSError):  # OSError: no AMENT_PREFIX_PATH
        pass
    on_path = shutil.which(executable)
    if on_path:
        candidates.append(Path(on_path))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return [str(c)]
    return None


def node_command(node: launch_plan.NodeLaunch, share, executable_cmd: list[str], log_level: str = "info") -> list[str]:
    """Command line for one node: the same files and overrides as the launch file's Node()."""
    cmd = list(executable_cmd) + list(node.arguments) + ["--ros-args", "-r", f"__node:={node.name}"]
    for path in node.params_paths(share):
        cmd += ["--params-file", str(path)]
    for name, value in node.overrides.items():
        cmd += ["-p", f"{name}:={format_parameter_value(value)}"]
    for src, dst in node.remappings:
        cmd += ["-r", f"{src}:={dst}"]
    cmd += ["--log-level", log_level]
    return cmd


def parse_node_command(cmd: list[str]) -> dict:
    """Inverse of node_command, for checks: executable name, params files, overrides, remaps."""
    ros = cmd.index("--ros-args")
    out = {"executable": Path(cmd[0]).name, "arguments": cmd[1:ros], "params_files": [],
           "overrides": {}, "remappings": [], "name": None}
    i = ros + 1
    while i < len(cmd):
        flag, value = cmd[i], cmd[i + 1] if i + 1 < len(cmd) else None
        if flag == "--params-file":
            out["params_files"].append(value)
        elif flag == "-p":
            key, _, v = value.partition(":=")
            out["overrides"][key] = v
        elif flag == "-r":
            src, _, dst = value.partition(":=")
            if src == "__node":
                out["name"] = dst
            else:
                out["remappings"].append((src, dst))
        i += 2
    return out


# ---------------------------------------------------------------- processes
@dataclass
class Started:
    node: launch_plan.NodeLaunch
    process: subprocess.Popen
    command: list[str]
    exit_code: int | None = None
    stopped_by_us: bool = False


@dataclass
class Pipeline:
    """The started node processes and the monitor."""
    started: list[Started] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def failed(self) -> list[Started]:
        """Nodes that exited on their own (a crash or a start-up error)."""
        return [s for s in self.started if s.process.poll() is not None and not s.stopped_by_us]

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGINT every node (what ros2 launch does first), then SIGTERM, then SIGKILL."""
        for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            alive = [s for s in self.started if s.process.poll() is None]
            if not alive:
                break
            for s in alive:
                s.stopped_by_us = True
                s.process.send_signal(sig)
            deadline = time.monotonic() + wait_s
            for s in alive:
                try:
                    s.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        for s in self.started:
            s.exit_code = s.process.poll()


def node_environment(share) -> dict[str, str]:
    """The started nodes' environment: ours, plus the DDS profile (launch_plan.dds_environment)."""
    return dict(os.environ, PYTHONUNBUFFERED="1", **launch_plan.dds_environment(share))


def start_nodes(launch_args: dict, log_level: str = "info", log=None) -> Pipeline:
    """Start every node of the plan that is installed; log the ones that are not."""
    log = log or _stderr
    share = share_dir()
    pipeline = Pipeline()
    env = node_environment(share)
    for node in launch_plan.plan(launch_args, share):
        exe = find_executable(node.package, node.executable)
        if exe is None:
            reason = f"{node.package}/{node.executable} is not installed here"
            if node.ours:
                raise RuntimeError(f"cannot start {node.name}: {reason} (run `make setup` / `pip install -e .`)")
            log(f"[run] skipping {node.name}: {reason}")
            pipeline.skipped.append(node.name)
            continue
        cmd = node_command(node, share, exe, log_level)
        log(f"[run] starting {node.name}: {' '.join(_short(c) for c in cmd)}")
        # Children's stdout goes to our stderr: our stdout carries only the JSON result.
        process = subprocess.Popen(cmd, env=env, stdout=sys.stderr.fileno(), stderr=sys.stderr.fileno(),
                                   stdin=subprocess.DEVNULL)
        pipeline.started.append(Started(node, process, cmd))
    return pipeline


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- measuring
class MonitorThread:
    """rclpy + a PipelineMonitor node spinning in a background thread of this process."""

    def __init__(self, camera_info_topic: str, extra=None):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from .monitor import PipelineMonitor

        self.context = rclpy.context.Context()
        # No rclpy signal handlers: Ctrl-C must reach this process's main thread as
        # KeyboardInterrupt so it can stop the nodes and report, not just end the monitor.
        try:
            from rclpy.signals import SignalHandlerOptions
            rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        except (ImportError, TypeError):  # an rclpy without the option: its handler chains to ours
            rclpy.init(context=self.context)
        self.node = rclpy.create_node("hand_pose_monitor", context=self.context)
        self.monitor = PipelineMonitor(self.node, camera_info_topic)
        self.extra = extra(self.node) if extra else None
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="monitor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # shutdown races end the spin; nothing to report
            pass

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        if self.context.ok():
            self.context.shutdown()
        self._thread.join(timeout=3.0)


def run_pipeline(launch_args: dict, duration_s: float | None, startup_timeout_s: float = 120.0,
                 log_level: str = "info", log=None, extra=None, after_window=None) -> dict:
    """Start the nodes, wait for the first keypoints, measure for `duration_s` (None: until
    Ctrl-C), stop everything and return the measurements (+ 'errors', 'ok').

    extra(node): optional factory of more subscriptions on the monitor node (the demo's
    snapshot); after_window(extra): called after measuring, before the nodes stop.
    """
    log = log or _stderr
    started_at = time.monotonic()
    watcher = MonitorThread(launch_args["camera_info_topic"], extra)
    pipeline = Pipeline()
    errors: list[str] = []
    result: dict = {}
    try:
        pipeline = start_nodes(launch_args, log_level, log)
        startup_s = _wait_for_output(watcher.monitor, pipeline, startup_timeout_s, log)
        if startup_s is None:
            errors.append(f"no keypoints on {launch_plan.JOINTS_TOPIC} within {startup_timeout_s:.0f} s "
                          "of start-up (is a hand in view? see the node logs above)")
        watcher.monitor.start_window()
        log(f"[run] measuring for {duration_s:.1f} s" if duration_s else "[run] running: Ctrl-C to stop")
        _measure(watcher.monitor, pipeline, duration_s, log)
        watcher.monitor.end_window()
        if after_window is not None and not pipeline.failed():
            after_window(watcher.extra)
        result = watcher.monitor.summary()
        result["startup_s"] = None if startup_s is None else round(startup_s, 2)
    except KeyboardInterrupt:
        watcher.monitor.end_window()
        result = watcher.monitor.summary()
        # Ctrl-C in a terminal reaches the nodes too: their exit is ours, not a crash.
        for s in pipeline.started:
            s.stopped_by_us = True
        if duration_s is not None:
            errors.append("interrupted before the measuring time was over")
    except (RuntimeError, ValueError) as e:
        errors.append(str(e))
        watcher.monitor.end_window()
        result = watcher.monitor.summary()  # the same keys as always, whatever was measured
    finally:
        pipeline.stop()
        watcher.close()
    for s in pipeline.started:
        if not s.stopped_by_us and not any(f"node {s.node.name} " in e for e in errors):
            errors.append(f"node {s.node.name} exited on its own with code {s.exit_code} (see its log above)")
    result.update({
        "launch_arguments": launch_args,
        "nodes": {s.node.name: s.exit_code for s in pipeline.started},
        "skipped_nodes": pipeline.skipped,
        "wall_s": round(time.monotonic() - started_at, 2),
        "errors": errors,
    })
    result["ok"] = not errors and (result.get("frames_out") or 0) > 0
    return result


def _wait_for_output(monitor, pipeline: Pipeline, timeout_s: float, log) -> float | None:
    start = time.monotonic()
    next_note = start + 10.0
    while time.monotonic() - start < timeout_s:
        if monitor.first_output_time is not None:
            took = monitor.first_output_time - start
            log(f"[run] first keypoints after {took:.1f} s")
            return took
        failed = pipeline.failed()
        if failed:
            raise RuntimeError(f"node {failed[0].node.name} exited during start-up with code "
                               f"{failed[0].process.poll()} (see its log above)")
        if time.monotonic() > next_note:
            seen = "camera frames arrive" if monitor.first_input_time else "no camera frames yet"
            log(f"[run] waiting for the first keypoints ({time.monotonic() - start:.0f} s, {seen})")
            next_note += 10.0
        time.sleep(0.05)
    return None


def _measure(monitor, pipeline: Pipeline, duration_s: float | None, log) -> None:
    end = None if duration_s is None else time.monotonic() + duration_s
    next_report = time.monotonic() + 5.0
    while end is None or time.monotonic() < end:
        failed = pipeline.failed()
        if failed:
            raise RuntimeError(f"node {failed[0].node.name} exited with code {failed[0].process.poll()} "
                               "while running (see its log above)")
        if time.monotonic() >= next_report:
            s = monitor.summary()
            log(f"[run] in {s['input_fps']:.1f} fps, out {s['fps']:.1f} fps, latency p50 "
                f"{_fmt(s['latency_ms_p50'])} ms, error {_fmt(s['mean_error_mm'])} mm")
            next_report += 5.0
        time.sleep(0.05)


def _fmt(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def json_safe(value):
    """NaN / inf -> None, recursively (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def print_summary(result: dict, file=sys.stderr) -> None:
    rows = [
        ("frames in / out", f"{result.get('frames_in')} / {result.get('frames_out')}"),
        ("input / output rate", f"{_fmt(result.get('input_fps'))} / {_fmt(result.get('fps'))} fps"),
        ("latency p50 / p99", f"{_fmt(result.get('latency_ms_p50'))} / {_fmt(result.get('latency_ms_p99'))} ms"),
        ("mean keypoint error", f"{_fmt(result.get('mean_error_mm'), 2)} mm over {result.get('error_frames')} frames"),
        ("dropped frames (pose node)", str(result.get("frames_dropped"))),
        ("retargeting, fresh commands", f"{_fmt(result.get('retarget_fresh_fps'))} fps "
                                        f"({result.get('retarget_commands_for_keypoints')} commands)"),
        ("retargeting, repeated commands", f"{_fmt(result.get('retarget_repeat_fps'))} fps "
                                           f"({result.get('retarget_repeated_commands')} commands)"),
    ]
    for key, value in rows:
        print(f"  {key:<28} {value}", file=file)
    for e in result.get("errors", []):
        print(f"  error: {e}", file=file)


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def install_stop_signals() -> None:
    """Ctrl-C and `kill` (SIGTERM) both end a run cleanly: nodes stopped, numbers reported.
    SIGINT is set explicitly because a shell starts background jobs with it ignored."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)


def run(args) -> int:
    install_stop_signals()
    try:
        launch_args = launch_arguments(args)
        launch_plan.plan(launch_args, share_dir())  # validate (e.g. robot hand) before starting anything
    except ValueError as e:
        print(f"hand-pose run: {e}", file=sys.stderr)
        return 2
    result = run_pipeline(launch_args, args.duration, args.startup_timeout, args.log_level)
    if args.json:
        print(json.dumps(json_safe(result), sort_keys=True))
    else:
        print_summary(result, file=sys.stdout)
    return 0 if result["ok"] else 1

"""The pose node's own per-frame cost: everything it does for a frame except the model's
inference call, step by step (`hand-pose bench --node`; goal: <= 3 ms CPU per frame).

    hand-pose bench --node [--node-frames 300] [--node-outputs joints all] [--model M] [--threads 1] [--json]

The real node (parameters, estimator, publishers) gets the synthetic camera's frames (its
generator and defaults: the animated hand, sensor noise, 640 x 480, played forwards then
backwards) one at a time on the bench thread, each through the path a camera frame takes:

  receive      rclpy turning the serialised Image into a Python message (what the executor
               does before the callback) and the image callback
  decode, localise, crop, recover, filter, checks (projection, border test, handedness)
  joints       palm orientation, ~/handedness and the PoseArray, built and published
  tf, markers, debug_image   built and published only while someone subscribes
  diagnostics  the /diagnostics status, published once per diagnostics_period_s (as the
               node's timer does), so its share per frame is its cost over the frames in between
  other        the rest of the frame's handling (total minus the steps above)

Inference runs for real (it evicts the caches the node's own work then refills, as on the
robot) and is left out: its thread CPU time is measured around the backend's call and
subtracted. CPU time is this thread's (time.thread_time), which other processes competing
for the CPU do not inflate; wall time is reported beside it. "process CPU" is the whole
process's CPU time per frame (all threads: DDS included) minus inference, a cross-check.
With one inference thread (the default here) ONNX Runtime has no helper threads whose
spinning would count there.

Outputs: "joints" = subscribers on ~/joints, ~/handedness and /diagnostics only (the demo:
retargeting node and monitor), so TF, markers and the debug image are skipped; "all" = rviz
open as well (/tf, ~/markers, ~/debug_image). The subscribers run in a child process
(`python -m hand_pose_ros.ros.bench_node --listen ...`) on a ROS domain of the bench's own,
so nothing of a running robot hears the bench and the bench hears nothing of it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

# Every step of a frame, in the order the node runs them (see the module docstring).
STEPS = ("receive", "decode", "localise", "crop", "recover", "filter", "checks", "joints", "tf", "markers",
         "debug_image", "diagnostics", "other")
OUTPUTS = {"joints": "subscribers on ~/joints, ~/handedness, /diagnostics",
           "all": "and on /tf, ~/markers, ~/debug_image (rviz open)"}
DOMAIN_IDS = range(101, 200)  # away from 0 (people) and 1..100 (the tests' domains)
DISCOVERY_TIMEOUT_S = 30.0


def _stats(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    if not v.size:
        return {"p50": float("nan"), "mean": float("nan")}
    return {"p50": float(np.percentile(v, 50)), "mean": float(v.mean())}


def _camera_frames(log, loop_s: float | None = None, cache: bool = True):
    """(messages' serialised bytes [N], Intrinsics, frame_id) of the synthetic camera's
    sequence, with its parameter defaults (loop_s: another length, in s). cache: keep the
    pre-rendered sequence in the camera's cache directory (shared with the camera node)."""
    from pathlib import Path

    from rclpy.serialization import serialize_message

    from . import conversions, synthetic_camera

    defaults = {p.name: p.default for p in synthetic_camera.PARAMS}
    cam = synthetic_camera.scaled_intrinsics(defaults["intrinsics"], defaults["width"], defaults["height"])
    source = synthetic_camera.FrameSource(defaults["seed"], cam, defaults["noise"])
    cache_dir = Path(os.path.expanduser(defaults["cache_dir"])) if cache and defaults["cache_dir"] else None
    source.prerender(loop_s or defaults["loop_s"], defaults["rate_hz"], cache_dir, log=log)
    depth = source.loop[0]
    header = conversions.Header(frame_id=defaults["frame_id"])
    order = [synthetic_camera.ping_pong_index(i, len(depth)) for i in range(max(1, 2 * len(depth) - 2))]
    serialised = [serialize_message(conversions.depth_to_image_msg(depth[i], header)) for i in range(len(depth))]
    return [serialised[i] for i in order], cam, defaults["frame_id"]


def _type_name(msg_type) -> str:
    return f"{msg_type.__module__.rsplit('.', 1)[0]}:{msg_type.__name__}"  # geometry_msgs.msg:PoseArray


def _output_publishers(pose) -> dict:
    """{output: [(publisher, its topic)]} of the node, for the subscriber sets."""
    core = [pose.pub_joints, pose.pub_handedness, pose.pub_diagnostics]
    extra = [p for p in (pose.tf._publisher if pose.tf else None, pose.pub_markers, pose.pub_debug) if p is not None]
    return {"joints": core, "all": core + extra}


class Listener:
    """Subscribers in a child process on the bench's domain; waits until the node sees them."""

    def __init__(self, publishers, domain_id: int):
        topics = [f"{p.topic_name}={_type_name(p.msg_type)}" for p in publishers]
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id))
        self.proc = subprocess.Popen([sys.executable, "-m", __name__, "--listen", *topics], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
        while not all(p.get_subscription_count() for p in publishers):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bench's subscriber process exited with code {self.proc.returncode}")
            if time.monotonic() > deadline:
                self.close()
                missing = [p.topic_name for p in publishers if not p.get_subscription_count()]
                raise RuntimeError(f"no subscriber discovered on {missing} within {DISCOVERY_TIMEOUT_S:.0f} s")
            time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _run_frames(pose, node, serialised, count: int, offset: int, progress) -> dict:
    """Hand `count` frames to the node; per frame, every step's (wall, cpu) ms."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    period_s = pose.p["diagnostics_period_s"]
    rows = {"wall": {s: [] for s in STEPS}, "cpu": {s: [] for s in STEPS}}
    totals = {"wall": [], "cpu": []}
    inference = {"wall": [], "cpu": []}
    states: dict[str, int] = {}
    diagnostics_count = 0
    last_diagnostics = time.perf_counter()
    start_wall, start_process = time.perf_counter(), time.process_time()
    for i in range(count):
        wall, cpu = time.perf_counter(), time.thread_time()
        msg = deserialize_message(serialised[(offset + i) % len(serialised)], Image)
        msg.header.stamp = node.get_clock().now().to_msg()
        pose._on_image(msg)
        msg = pose._slot.take(timeout=0)
        receive = ((time.perf_counter() - wall) * 1e3, (time.thread_time() - cpu) * 1e3)
        pose._handle(msg)
        frame_wall, frame_cpu = pose.last_frame_ms
        diagnostics = None
        if time.perf_counter() - last_diagnostics >= period_s:  # what the node's timer does
            last_diagnostics = time.perf_counter()
            pose._publish_diagnostics()
            diagnostics = pose.last_diagnostics_ms
            diagnostics_count += 1
        states[pose._state] = states.get(pose._state, 0) + 1
        if "infer" not in frame_wall:
            progress(1)
            continue  # no hand found: nothing was inferred nor published
        inference["wall"].append(frame_wall["infer"])
        inference["cpu"].append(frame_cpu["infer"])
        for kind, frame, own, index in (("wall", frame_wall, frame_wall["node_overhead"], 0),
                                        ("cpu", frame_cpu, frame_wall["node_overhead_cpu"], 1)):
            # node_overhead(_cpu): the whole _handle without inference and the debug image
            values = {"receive": receive[index], **{step: frame[step] for step in STEPS if step in frame}}
            if diagnostics is not None:
                values["diagnostics"] = diagnostics[index]
            total = receive[index] + own + frame.get("debug_image", 0.0) + values.get("diagnostics", 0.0)
            values["other"] = total - sum(values.values())
            for step, value in values.items():
                rows[kind][step].append(value)
            totals[kind].append(total)
        progress(1)
    elapsed_s = time.perf_counter() - start_wall
    process_cpu_ms = (time.process_time() - start_process) * 1e3 - float(np.sum(inference["cpu"]))
    measured = len(totals["cpu"])
    steps = {}
    for step in STEPS:
        cpu_values, wall_values = rows["cpu"][step], rows["wall"][step]
        if not cpu_values:
            continue
        steps[step] = {"frames": len(cpu_values), "cpu_ms": _stats(cpu_values), "wall_ms": _stats(wall_values),
                       # over every measured frame, 0 where the step did not run (its share of the total)
                       "cpu_ms_per_frame": float(np.sum(cpu_values)) / max(1, measured)}
    return {"frames": count, "frames_measured": measured, "states": states, "frames_per_s": count / elapsed_s,
            "diagnostics_publishes": diagnostics_count, "steps": steps,
            "total": {"cpu_ms": _stats(totals["cpu"]), "wall_ms": _stats(totals["wall"])},
            "process_cpu_ms_per_frame": process_cpu_ms / max(1, count),
            "inference": {"cpu_ms": _stats(inference["cpu"]), "wall_ms": _stats(inference["wall"])}}


def bench_node(model, frames: int = 300, outputs=("joints", "all"), threads: int = 1, warmup: int = 5,
               log=None, loop_s: float | None = None, cache: bool = True) -> dict:
    """The node's own per-frame cost (see the module docstring) as a JSON-ready dict.
    loop_s, cache: the camera sequence's length (default: the camera's) and whether it is cached."""
    import rclpy
    from tqdm import tqdm

    from .pose_node import PoseNode, describe_estimator

    log = log or (lambda text: print(f"[bench --node] {text}", file=sys.stderr, flush=True))
    unknown = [o for o in outputs if o not in OUTPUTS]
    if unknown or not outputs:
        raise ValueError(f"--node-outputs {list(outputs)}: choose from {list(OUTPUTS)}")
    if frames < 1 or warmup < 0:
        raise ValueError(f"--node-frames must be >= 1 (got {frames}) and --warmup >= 0 (got {warmup})")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    domain_id = DOMAIN_IDS[os.getpid() % len(DOMAIN_IDS)]
    load_before = os.getloadavg()[0]
    serialised, cam, frame_id = _camera_frames(log, loop_s, cache)
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=domain_id,
               args=["--ros-args", "-p", f"model_path:={model}", "-p", f"cpu_threads:={threads}"])
    report = {"model": str(model), "inference_threads": threads, "frames": frames, "warmup": warmup,
              "camera": f"synthetic camera {cam.width}x{cam.height}, {len(serialised)} frames looped",
              "domain_id": domain_id, "cpu_count": os.cpu_count(), "scenarios": []}
    try:
        node = rclpy.create_node("hand_pose", context=context)
        pose = PoseNode(node=node)
        pose.stop()  # frames are handed over on this thread, not through the worker
        for timer in list(node.timers):
            node.destroy_timer(timer)  # the diagnostics timer: nothing spins this node
        report["backend"] = describe_estimator(pose.estimator)
        pose._on_camera_info(_camera_info(cam, frame_id))
        publishers = _output_publishers(pose)
        offset = 0
        for output in outputs:
            listener = Listener(publishers[output], domain_id)
            try:
                unwanted = [p.topic_name for p in publishers["all"]
                            if p not in publishers[output] and p.get_subscription_count()]
                if unwanted:
                    raise RuntimeError(f"something else subscribes to {unwanted} on ROS domain {domain_id}")
                log(f"outputs '{output}' ({OUTPUTS[output]}): {warmup} warm-up + {frames} frames")
                with tqdm(total=warmup + frames, desc=f"node bench, {output}", unit="frame", file=sys.stderr,
                          mininterval=2.0) as bar:
                    _run_frames(pose, node, serialised, warmup, offset, bar.update)
                    result = _run_frames(pose, node, serialised, frames, offset + warmup, bar.update)
                offset += warmup + frames
            finally:
                listener.close()
            result["outputs"] = output
            result["subscribed"] = [p.topic_name for p in publishers[output]]
            report["scenarios"].append(result)
    finally:
        context.try_shutdown()
    report["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return report


def _camera_info(cam, frame_id):
    from . import conversions

    return conversions.camera_info_msg(cam, conversions.Header(frame_id=frame_id))


def format_report(report: dict) -> str:
    """The table for people: one column pair (CPU, wall) per output set."""
    scenarios = report["scenarios"]
    lines = [f"pose node's own work per frame, inference excluded ({report['backend']}, "
             f"{report['inference_threads']} inference thread(s)): {report['frames']} frames of the "
             f"{report['camera']}; load average {report['load_average_1min'][0]:.1f} -> "
             f"{report['load_average_1min'][1]:.1f} on {report['cpu_count']} CPUs"]
    header = f"{'step (ms)':<16}" + "".join(f" | {s['outputs'] + ': CPU p50':>17} {'mean':>6} {'wall p50':>9}"
                                             f" {'mean':>6}" for s in scenarios)
    lines.append(header)
    for step in STEPS:
        if not any(step in s["steps"] for s in scenarios):
            continue
        cells = []
        for s in scenarios:
            row = s["steps"].get(step)
            if row is None:
                cells.append(f" | {'skipped':>17} {'':>6} {'':>9} {'':>6}")
            else:
                cells.append(f" | {row['cpu_ms']['p50']:>17.3f} {row['cpu_ms']['mean']:>6.3f} "
                             f"{row['wall_ms']['p50']:>9.3f} {row['wall_ms']['mean']:>6.3f}")
        name = step if step != "diagnostics" else "diagnostics*"
        lines.append(f"{name:<16}" + "".join(cells))
    lines.append(f"{'TOTAL':<16}" + "".join(f" | {s['total']['cpu_ms']['p50']:>17.3f} {s['total']['cpu_ms']['mean']:>6.3f} "
                                            f"{s['total']['wall_ms']['p50']:>9.3f} {s['total']['wall_ms']['mean']:>6.3f}"
                                            for s in scenarios))
    lines.append(f"{'process CPU':<16}" + "".join(f" | {'':>17} {s['process_cpu_ms_per_frame']:>6.3f} {'':>9} {'':>6}"
                                                  for s in scenarios))
    lines.append(f"{'(inference)':<16}" + "".join(f" | {s['inference']['cpu_ms']['p50']:>17.1f} "
                                                  f"{s['inference']['cpu_ms']['mean']:>6.1f} "
                                                  f"{s['inference']['wall_ms']['p50']:>9.1f} "
                                                  f"{s['inference']['wall_ms']['mean']:>6.1f}" for s in scenarios))
    for s in scenarios:
        states = ", ".join(f"{k} {v}" for k, v in sorted(s["states"].items()))
        lines.append(f"{s['outputs']}: {s['frames_measured']} of {s['frames']} frames with a hand ({states}); "
                     f"{s['frames_per_s']:.1f} frames/s with inference; subscribed: {', '.join(s['subscribed'])}")
    lines.append("* diagnostics: per publish (once per second); TOTAL's mean carries its share per frame. "
                 "CPU = the node thread's CPU time (not inflated by a loaded machine); wall is.")
    return "\n".join(lines)


# ---------------------------------------------------------------- the subscriber process
def listen(topics) -> int:
    """Subscribe to `topic=package.msg:Type` pairs and spin until terminated."""
    import importlib
    import signal

    import rclpy

    from rclpy.signals import SignalHandlerOptions

    # SIGTERM sets a flag that the spin loop reads. rclpy's own handler would shut the context
    # down under the executor (ExternalShutdownException, or a RuntimeError from inside a
    # message conversion): a traceback at the end of every few benchmarks.
    stopping = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("bench_listener")
    for item in topics:
        topic, _, type_name = item.partition("=")
        module, _, name = type_name.partition(":")
        node.create_subscription(getattr(importlib.import_module(module), name), topic, lambda msg: None, 10)
    try:
        while not stopping:
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}",
                                     description="The subscriber process of `hand-pose bench --node`.")
    parser.add_argument("--listen", nargs="+", metavar="TOPIC=package.msg:Type", required=True)
    return listen(parser.parse_args(argv).listen)


if __name__ == "__main__":
    sys.exit(main())

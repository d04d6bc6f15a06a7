"""Per-frame cost of the pose node, measured in one process without a camera or DDS load:

    python -m hand_pose_ros.ros.bench_node [--model M] [--frames 60] [--threads 2] [--all-outputs] [--json]

Builds the real node (parameters, estimator, publishers), then feeds it synthetic depth
frames (HandMotion, 640x480) through the same per-frame path a camera frame takes (decode,
localise, crop, infer, recover, filter, conversions, publishing). Reports the mean and p50
of every stage, and the node's own cost without the inference call, as wall time and as
the worker's CPU time (goal: <= 3 ms). --all-outputs adds subscribers to /tf, the markers
and the debug image, so those are built and published too (as with rviz open).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from .demo import SHIPPED_MODEL
from .params import resolve_share_path


def bench(model: str, frames: int = 60, threads: int = 0, all_outputs: bool = False, warmup: int = 5) -> dict:
    import rclpy
    from sensor_msgs.msg import Image
    from tf2_msgs.msg import TFMessage
    from visualization_msgs.msg import MarkerArray

    from ..camera import DATASET_INTRINSICS
    from ..data.synthetic import HandMotion, SyntheticConfig
    from . import conversions
    from .pose_node import PoseNode

    cam = DATASET_INTRINSICS["synthetic"]
    motion = HandMotion(0)
    print(f"[bench_node] rendering {min(frames, 30)} synthetic frames ...", file=sys.stderr)
    depths = [motion.render_frame(i / 30.0, cam, SyntheticConfig())[0] for i in range(min(frames, 30))]

    context = rclpy.context.Context()
    rclpy.init(context=context, args=["--ros-args", "-p", f"model_path:={model}", "-p", f"cpu_threads:={threads}",
                                      "-p", "diagnostics_period_s:=60.0"])
    try:
        node = rclpy.create_node("hand_pose", context=context)
        pose = PoseNode(node=node)
        pose.stop()  # frames are handed over directly below, not through the worker thread
        if all_outputs:
            listener = rclpy.create_node("bench_listener", context=context)
            for msg_type, topic in ((TFMessage, "/tf"), (MarkerArray, "/hand_pose/markers"),
                                    (Image, "/hand_pose/debug_image")):
                listener.create_subscription(msg_type, topic, lambda m: None, 1)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (pose.pub_markers.get_subscription_count()
                                                       and pose.pub_debug.get_subscription_count()):
                time.sleep(0.05)
        pose._on_camera_info(conversions.camera_info_msg(cam, conversions.Header(frame_id="bench")))
        messages = [conversions.depth_to_image_msg(d, conversions.Header(frame_id="bench")) for d in depths]
        for i in range(warmup + frames):
            if i == warmup:
                pose._timings.clear()
            msg = messages[i % len(messages)]
            msg.header.stamp = node.get_clock().now().to_msg()
            pose._handle(msg)
        values = {key: window.values() for key, window in pose._timings.items()}
        backend = pose.diagnostics_values()["backend"]
        state = pose._state
    finally:
        context.try_shutdown()
    return {"model": str(model), "backend": backend, "frames": frames, "threads": threads,
            "all_outputs": all_outputs, "last_state": state,
            "ms_mean": {k: float(np.mean(v)) for k, v in sorted(values.items())},
            "ms_p50": {k: float(np.percentile(v, 50)) for k, v in sorted(values.items())}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hand_pose_ros.ros.bench_node", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=SHIPPED_MODEL, help=f"model file (default {SHIPPED_MODEL})")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=0, help="inference CPU threads (0 = library default)")
    parser.add_argument("--all-outputs", action="store_true", help="also build TF, markers and the debug image")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    model = resolve_share_path(args.model)
    if not model.is_file():
        print(f"bench_node: model file {model} does not exist", file=sys.stderr)
        return 2
    result = bench(str(model), args.frames, args.threads, args.all_outputs)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"{result['backend']}, {result['frames']} frames, all outputs: {result['all_outputs']}")
        for key, mean in result["ms_mean"].items():
            print(f"  {key:<18} mean {mean:8.2f} ms   p50 {result['ms_p50'][key]:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

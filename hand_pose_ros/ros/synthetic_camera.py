"""The synthetic depth camera (`synthetic_camera`): an animated hand (open, fist, pinch,
point, wrist rotations; hand_pose_ros.data.synthetic.HandMotion) published like a RealSense
depth stream, with its ground truth.

Publishes, all with the same stamp per frame and frame_id `camera_depth_optical_frame`:
  depth_topic          sensor_msgs/Image 16UC1 (mm, 0 = invalid)
  camera_info_topic    sensor_msgs/CameraInfo
  ground_truth_topic   geometry_msgs/PoseArray, 21 keypoints in canonical order (metres)

If rendering one frame live takes too long for the requested rate on this CPU, a sequence
is pre-rendered at start-up (logged, with a progress bar; kept in cache_dir for the next
start) and played forwards then backwards, so the published rate holds and the motion never
jumps.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..camera import DATASET_INTRINSICS, Intrinsics
from . import conversions
from .params import Param, StartupError, declare_for_startup
from .common import qos_profile, spin_node

NODE_NAME = "synthetic_camera"
LIVE_BUDGET = 0.7  # live rendering must fit in this fraction of the frame period

PARAMS = [
    Param("rate_hz", 30.0, "Frames per second.", range=(0.5, 240.0)),
    Param("width", 640, "Image width (px).", range=(32, 4096)),
    Param("height", 480, "Image height (px).", range=(32, 4096)),
    Param("intrinsics", "synthetic", "Camera preset, scaled to width x height.",
          choices=tuple(sorted(DATASET_INTRINSICS))),
    Param("seed", 0, "Seed of the motion sequence.", range=(0, 2**31 - 1)),
    Param("noise", True, "RealSense-like sensor noise, holes and edge drop-outs."),
    Param("frame_id", "camera_depth_optical_frame", "frame_id of every published message."),
    Param("depth_topic", "/camera/camera/depth/image_rect_raw", "Depth image topic."),
    Param("camera_info_topic", "/camera/camera/depth/camera_info", "CameraInfo topic."),
    Param("ground_truth_topic", "/synthetic_camera/ground_truth", "Ground-truth keypoints topic (PoseArray)."),
    Param("qos", "reliable", "QoS of the camera publishers.", choices=("reliable", "sensor_data")),
    Param("prerender", "auto", "Pre-render a looped sequence: auto (when live rendering is too slow), "
          "always, never.", choices=("auto", "always", "never")),
    Param("loop_s", 6.0, "Length of the pre-rendered sequence (s); it plays forwards then backwards.",
          range=(0.1, 120.0)),
    Param("cache_dir", "~/.cache/hand_pose_ros/synthetic_camera", "Where pre-rendered sequences are kept "
          "for the next start; empty = no cache."),
]


def scaled_intrinsics(preset: str, width: int, height: int) -> Intrinsics:
    """The preset camera resized to width x height (same field of view)."""
    base = DATASET_INTRINSICS[preset]
    sx, sy = width / base.width, height / base.height
    return Intrinsics(base.fx * sx, base.fy * sy, base.cx * sx, base.cy * sy, width, height)


class FrameSource:
    """Frames of the hand motion: rendered live, or looked up in a pre-rendered sequence
    played forwards then backwards (a ping-pong loop has no jump where it wraps)."""

    def __init__(self, seed: int, cam: Intrinsics, noise: bool):
        import torch

        from ..data.synthetic import HandMotion, SyntheticConfig

        # One thread: the renderer's small per-frame kernels only lose to thread hand-offs,
        # badly so on a busy machine.
        torch.set_num_threads(1)
        self.cam = cam
        self.seed = seed
        self.noise = noise
        self.motion = HandMotion(seed)
        self.config = dataclasses.replace(SyntheticConfig(), noise=bool(noise))
        self.loop: tuple[np.ndarray, np.ndarray] | None = None  # depth [N, H, W] uint16, xyz [N, 21, 3]

    def render(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """-> (depth uint16 [H, W], xyz mm [21, 3]) at motion time t."""
        depth, _uvd, xyz = self.motion.render_frame(t, self.cam, self.config)
        return np.asarray(depth, dtype=np.uint16), np.asarray(xyz, dtype=np.float64)

    def seconds_per_frame(self, frames: int = 3) -> float:
        self.render(0.0)  # first call pays for allocations
        start = time.perf_counter()
        for i in range(frames):
            self.render(0.1 * (i + 1))
        return (time.perf_counter() - start) / frames

    def cache_key(self, count: int, rate_hz: float) -> str:
        """Changes with anything that changes the frames, including the generator's code."""
        from ..data import synthetic

        digest = hashlib.sha256()
        for path in sorted(Path(synthetic.__file__).parent.glob("*.py")):
            digest.update(path.read_bytes())
        digest.update(repr((synthetic.GENERATOR_VERSION, self.seed, self.noise, self.cam, count, rate_hz)).encode())
        return digest.hexdigest()[:20]

    def cache_file(self, loop_s: float, rate_hz: float, cache_dir: Path | None) -> Path | None:
        count = max(2, int(round(loop_s * rate_hz)))
        return cache_dir / f"frames_{self.cache_key(count, rate_hz)}.npz" if cache_dir else None

    def is_cached(self, loop_s: float, rate_hz: float, cache_dir: Path | None) -> bool:
        cached = self.cache_file(loop_s, rate_hz, cache_dir)
        return cached is not None and cached.is_file()

    def prerender(self, loop_s: float, rate_hz: float, cache_dir: Path | None = None, log=print) -> None:
        from tqdm import tqdm

        count = max(2, int(round(loop_s * rate_hz)))
        cached = self.cache_file(loop_s, rate_hz, cache_dir)
        if cached is not None and cached.is_file():
            try:
                with np.load(cached) as data:
                    self.loop = (data["depth"], data["xyz"])
                log(f"loaded {count} pre-rendered frames from {cached}")
                return
            except (OSError, ValueError, KeyError) as e:
                log(f"ignoring unreadable frame cache {cached}: {e}")
        frames = [self.render(i / rate_hz) for i in tqdm(range(count), desc="pre-rendering synthetic frames",
                                                          unit="frame", file=sys.stderr, mininterval=1.0)]
        self.loop = (np.stack([d for d, _ in frames]), np.stack([x for _, x in frames]))
        if cached is not None:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_name(cached.name + f".{os.getpid()}.tmp.npz")
                np.savez(tmp, depth=self.loop[0], xyz=self.loop[1])  # uncompressed: zlib takes longer than rendering
                tmp.replace(cached)  # never a half-written cache file under the real name
            except OSError as e:
                log(f"could not cache the frames in {cached}: {e}")

    def frame(self, index: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        if self.loop is None:
            return self.render(t)
        depth, xyz = self.loop
        i = ping_pong_index(index, len(depth))
        return depth[i], xyz[i]


def ping_pong_index(index: int, count: int) -> int:
    """0, 1, ..., count-1, count-2, ..., 1, 0, 1, ...: the sequence forwards then backwards."""
    if count < 2:
        return 0
    i = index % (2 * count - 2)
    return i if i < count else 2 * count - 2 - i


class SyntheticCamera:
    def __init__(self, node=None, source: FrameSource | None = None):
        from geometry_msgs.msg import PoseArray
        from rclpy.node import Node
        from sensor_msgs.msg import CameraInfo, Image

        self.node = node or Node(NODE_NAME)
        self.log = self.node.get_logger()
        self.p = declare_for_startup(self.node, PARAMS)
        self.cam = scaled_intrinsics(self.p["intrinsics"], self.p["width"], self.p["height"])
        try:
            self.source = source or FrameSource(self.p["seed"], self.cam, self.p["noise"])
        except ImportError as e:
            raise StartupError(f"the synthetic hand generator is not available: {e}") from e
        self._prepare()

        qos = qos_profile(self.p["qos"], 1)
        self.pub_depth = self.node.create_publisher(Image, self.p["depth_topic"], qos)
        self.pub_info = self.node.create_publisher(CameraInfo, self.p["camera_info_topic"], qos)
        self.pub_truth = self.node.create_publisher(PoseArray, self.p["ground_truth_topic"], 10)
        self.frames = 0
        self._start = time.monotonic()
        self.node.create_timer(1.0 / self.p["rate_hz"], self._tick)
        self.log.info(f"publishing {self.cam.width}x{self.cam.height} 16UC1 at {self.p['rate_hz']:.1f} Hz on "
                      f"{self.p['depth_topic']} (+ camera_info, ground truth on {self.p['ground_truth_topic']})")

    def _prepare(self) -> None:
        """Pre-render when asked to, or when live rendering cannot hold the rate."""
        mode, rate = self.p["prerender"], self.p["rate_hz"]
        if mode == "never":
            return
        cache = Path(os.path.expanduser(self.p["cache_dir"])) if self.p["cache_dir"] else None
        if mode == "auto" and not self.source.is_cached(self.p["loop_s"], rate, cache):
            seconds = self.source.seconds_per_frame()
            if seconds <= LIVE_BUDGET / rate:
                self.log.info(f"rendering live: {seconds * 1e3:.1f} ms per frame fits {rate:.1f} Hz")
                return
            self.log.info(f"rendering takes {seconds * 1e3:.0f} ms per frame, too slow for {rate:.1f} Hz live: "
                          f"pre-rendering a looped {self.p['loop_s']:.1f} s sequence "
                          f"({int(round(self.p['loop_s'] * rate))} frames) first")
        start = time.monotonic()
        self.source.prerender(self.p["loop_s"], rate, cache, log=self.log.info)
        self.log.info(f"{len(self.source.loop[0])} frames ready in {time.monotonic() - start:.1f} s "
                      "(played forwards then backwards)")

    def _tick(self) -> None:
        t = self.frames / self.p["rate_hz"]  # motion time advances one frame per tick
        depth, xyz = self.source.frame(self.frames, t)
        header = conversions.Header(stamp=self.node.get_clock().now().to_msg(), frame_id=self.p["frame_id"])
        self.pub_truth.publish(conversions.keypoints_to_pose_array(xyz, header, conversions.palm_quaternion(xyz)))
        self.pub_info.publish(conversions.camera_info_msg(self.cam, header))
        self.pub_depth.publish(conversions.depth_to_image_msg(depth, header))
        self.frames += 1

    def stop(self) -> None:
        pass


def main(argv=None) -> int:
    return spin_node(SyntheticCamera, NODE_NAME, argv)


if __name__ == "__main__":
    sys.exit(main())

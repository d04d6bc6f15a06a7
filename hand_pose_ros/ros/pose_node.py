"""The hand pose node (`pose_node`, node name `hand_pose`): depth Image + CameraInfo in,
21 hand keypoints out (PoseArray, TF, markers, debug image, diagnostics).

Threading: the image callback only drops the message into a one-slot "latest frame"
buffer; a worker thread takes the newest frame, decodes it, runs the estimator and
publishes. A model slower than the camera therefore drops frames (counted) instead of
queueing them, and latency stays at one inference, never growing.

Every output carries the input image's stamp and frame_id (REP 103 optical frame). Bad
input (unsupported encoding, empty frames, size mismatch with CameraInfo, no CameraInfo
yet, no hand, a hand at the border) never crashes the node nor publishes NaN: it logs a
throttled warning naming the problem and shows it as the diagnostics state.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .. import keypoints
from ..camera import Intrinsics
from ..inference import model_choice
from . import conversions
from .common import TfSender, ThrottledLog, qos_profile, quiet_incompatible_qos, spin_node
from .overlay import debug_overlay
from .params import Param, StartupError, declare_for_startup, resolve_share_path
from .stats import LatestSlot, RateMeter, StepClock, Window

NODE_NAME = "hand_pose"
DEFAULT_MODEL = model_choice.AUTO  # the fast model on a CPU, the full one on a big GPU
# Mean keypoint confidence below which a frame is "no hand". Choose it from the model's
# confidence on hand and non-hand crops: python -m hand_pose_ros.evaluation.confidence_report
# (config/pose.yaml must say the same; a test checks). 0.05 for the shipped mesh-hand model:
# keeps 97.8% of hand frames (p1 of hands 0.049) and rejects 40% of non-hand objects
# (--frames 100 --non-hand-frames 80); no threshold separates them better without losing hands.
DEFAULT_MIN_CONFIDENCE = 0.05
MIN_IMAGE_SIDE = 32  # px: anything smaller cannot hold a hand crop

PARAMS = [
    Param("depth_topic", "/camera/camera/depth/image_rect_raw", "Depth image topic (16UC1 mm or 32FC1 m)."),
    Param("camera_info_topic", "/camera/camera/depth/camera_info", "CameraInfo matching the depth topic "
          "(heard from latched publishers too)."),
    Param("rectified", True, "The depth image is rectified (image_rect*): its camera is CameraInfo.P, "
          "not K (they differ when the driver rectifies)."),
    Param("qos", "sensor_data", "QoS of the camera subscriptions.", choices=("sensor_data", "reliable")),
    Param("qos_depth", 1, "History depth of the camera subscriptions.", range=(1, 100)),
    Param("depth_scale", 0.0, "Millimetres per 16-bit depth unit; 0 = 1 mm (REP 118). Never applies "
          "to 32FC1, which is metres (REP 118). RealSense D405: 0.1.", range=(0.0, 100.0)),
    Param("min_depth_mm", 150.0, "Nearest depth searched for a hand (mm).", range=(0.0, 10000.0)),
    Param("max_depth_mm", 1200.0, "Farthest depth searched for a hand (mm).", range=(1.0, 20000.0)),
    Param("model_path", DEFAULT_MODEL, "Model file (.onnx or .pt checkpoint); relative paths resolve "
          "against the package share directory. auto = the fast model (models/srnet_fast.onnx) on a "
          "CPU or small Jetson, the full one (models/srnet_synthetic.onnx) on a big GPU; the log says why."),
    Param("backend", "auto", "Inference backend.", choices=("auto", "onnxruntime", "torch", "tensorrt")),
    Param("device", "auto", "Inference device.", choices=("auto", "cpu", "cuda")),
    Param("precision", "auto", "Inference precision (auto = the backend's default).",
          choices=("auto", "fp32", "fp16", "int8")),
    Param("engine_cache_dir", "", "TensorRT engine cache directory; empty = ~/.cache/hand_pose_ros/engines."),
    Param("cpu_threads", 0, "CPU threads for ONNX Runtime / torch; 0 = library default.", range=(0, 256)),
    Param("half_cube_mm", 0.0, "Crop cube half-size (mm); 0 = the value stored in the model file.",
          range=(0.0, 1000.0)),
    Param("min_confidence", DEFAULT_MIN_CONFIDENCE, "Mean keypoint confidence below which a frame counts "
          "as no hand (default chosen with hand_pose_ros.evaluation.confidence_report).", range=(0.0, 1.0)),
    Param("frame_prefix", "hand_", "Prefix of the TF child frames (<prefix><keypoint name>)."),
    Param("publish_tf", True, "Publish one TF frame per keypoint on /tf."),
    Param("publish_markers", True, "Publish keypoint spheres and the skeleton on ~/markers."),
    Param("publish_debug_image", True, "Publish a colour-mapped depth image with the skeleton "
          "(rendered only while subscribed)."),
    Param("handedness_override", "auto", "Which hand ~/handedness reports: auto = the model's "
          "handedness output ('unknown' for a model without one); left / right = always that "
          "(a camera that only ever sees one hand).", choices=("auto", "left", "right")),
    Param("diagnostics_period_s", 1.0, "Period of the /diagnostics status.", range=(0.1, 60.0)),
    Param("filter.enabled", True, "One Euro filter on the keypoints."),
    Param("filter.min_cutoff", 1.0, "One Euro cutoff at rest (Hz).", range=(0.01, 100.0)),
    Param("filter.beta", 0.02, "One Euro speed coefficient (per mm/s).", range=(0.0, 10.0)),
    Param("filter.d_cutoff", 1.0, "One Euro cutoff of the speed estimate (Hz).", range=(0.01, 100.0)),
    # joint_names is declared after the model loads, with the model's keypoint order.
]
JOINT_NAMES = Param("joint_names", list(keypoints.CANONICAL),
                    "Keypoint names in the order of the published poses: always the canonical order "
                    "(keypoints.CANONICAL), whatever the model's own order (read-only).",
                    read_only=True)

# state -> (diagnostic level, what it means). The message of a status adds the specifics.
STATES = {
    "waiting_for_images": ("warn", "no depth image received yet"),
    "waiting_for_camera_info": ("warn", "depth images arrive but no CameraInfo yet"),
    "tracking": ("ok", "tracking a hand"),
    "no_hand": ("ok", "no hand in the search range"),
    "hand_at_border": ("warn", "hand at the image border"),
    "empty_frame": ("warn", "depth frame has no valid pixels"),
    "bad_image": ("error", "depth image cannot be used"),
    "bad_camera_info": ("error", "CameraInfo cannot be used"),
    "size_mismatch": ("error", "depth image size differs from CameraInfo"),
    "inference_error": ("error", "the estimator failed on a frame"),
}


@dataclass
class FrameResult:
    """What processing one frame produced (for publishing and diagnostics)."""
    state: str
    detail: str = ""
    xyz_mm: np.ndarray | None = None       # [J, 3] filtered, camera optical frame
    uv: np.ndarray | None = None           # [J, 2] pixels (for the debug image)
    box: tuple | None = None               # crop box (left, top, right, bottom) pixels
    depth_mm: np.ndarray | None = None     # [H, W] decoded frame
    colour_range: tuple | None = None      # (near, far) mm for the debug image; None = automatic
    clock: StepClock = field(default_factory=StepClock)  # wall and CPU ms of each step so far
    handedness: str | None = None          # "left" / "right" (override or network); None = unknown
    left_probability: float | None = None  # the network's P(left hand); None without a handedness head


def canonical_order(model_names) -> np.ndarray:
    """Indices that put a model's keypoints into CANONICAL order (ValueError when the model
    does not predict exactly the 21 canonical keypoints: the node publishes only those)."""
    model_names = tuple(model_names)
    missing = [n for n in keypoints.CANONICAL if n not in model_names]
    extra = [n for n in model_names if n not in keypoints.CANONICAL]
    if missing or extra or len(model_names) != len(keypoints.CANONICAL):
        raise ValueError(f"the model predicts keypoints {list(model_names)}; the pose node publishes the "
                         f"{len(keypoints.CANONICAL)} canonical keypoints (keypoints.CANONICAL) and needs every one "
                         f"of them exactly once (missing {missing}, not canonical {extra})")
    return keypoints.indices(keypoints.CANONICAL, of=model_names)


def stamp_with_receive_time(msg, receive_stamp) -> bool:
    """A zero header stamp (a driver that does not stamp) becomes the receive time, so the
    filter sees time advance and the outputs carry a real stamp. True if it was replaced."""
    stamp = msg.header.stamp
    if stamp.sec or stamp.nanosec:
        return False
    msg.header.stamp = receive_stamp
    return True


DEBUG_IMAGE_MAX_WIDTH = 640  # px: a larger frame is shrunk by a whole factor before drawing


def debug_view(depth_mm: np.ndarray, uv, box, max_width: int = DEBUG_IMAGE_MAX_WIDTH):
    """(depth, uv, box) for the debug image: frames wider than max_width are subsampled by
    the smallest whole factor that fits, with the pixel coordinates scaled to match."""
    factor = max(1, -(-depth_mm.shape[1] // max_width))
    if factor == 1:
        return depth_mm, uv, box
    small_uv = None if uv is None else np.asarray(uv, dtype=np.float64) / factor
    small_box = None if box is None else tuple(float(b) / factor for b in box)
    return depth_mm[::factor, ::factor], small_uv, small_box


def check_image_against_camera(width: int, height: int, cam: Intrinsics | None) -> tuple[str, str] | None:
    """(state, detail) if the image geometry is unusable, else None."""
    if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
        return "bad_image", f"image is {width}x{height}, smaller than {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}"
    if cam is not None and cam.width and cam.height and (cam.width, cam.height) != (width, height):
        return "size_mismatch", (f"depth image is {width}x{height} but CameraInfo says "
                                 f"{cam.width}x{cam.height}: is camera_info_topic the one of this depth topic?")
    return None


BORDER_MARGIN_PX = 3       # a keypoint this close to the edge is at the border
PALM_HALF_WIDTH_MM = 50.0  # a hand centre closer than this to the edge: part of the hand is cut off


def border_problem(uvd: np.ndarray, com_uvd: np.ndarray, cam: Intrinsics, width: int, height: int) -> str | None:
    """Why the hand is at the image border (None if it is not): keypoints (uvd [J, 3]) on or
    past the edge, or the hand's centre (com_uvd) closer to the edge than half a palm."""
    u, v = uvd[:, 0], uvd[:, 1]
    m = BORDER_MARGIN_PX
    outside = int(np.count_nonzero((u < m) | (v < m) | (u > width - 1 - m) | (v > height - 1 - m)))
    if outside:
        return f"{outside} of {len(uvd)} keypoints at or past the edge of the {width}x{height} image"
    cu, cv, cd = (float(x) for x in com_uvd)
    margin_u, margin_v = PALM_HALF_WIDTH_MM * abs(cam.fx) / cd, PALM_HALF_WIDTH_MM * abs(cam.fy) / cd
    if cu < margin_u or cv < margin_v or cu > width - 1 - margin_u or cv > height - 1 - margin_v:
        return (f"hand centre ({cu:.0f}, {cv:.0f}) px is within {PALM_HALF_WIDTH_MM:.0f} mm of the edge "
                f"of the {width}x{height} image")
    return None


def load_estimator(values: dict, log=None):
    """The HandPoseEstimator the parameters ask for. StartupError naming the file on failure.
    model_path 'auto' (model_choice.choose_model) is resolved here; log(str) hears why."""
    choice = model_choice.choose_model(values["model_path"] or DEFAULT_MODEL,
                                       device=None if values["device"] == "auto" else values["device"])
    if log is not None and choice.reason != "asked for":
        log(f"model_path auto -> {choice.model_path}: {choice.reason}")
    path = resolve_share_path(choice.model_path)
    if not path.is_file():
        raise StartupError(f"model file {path} does not exist (parameter model_path="
                           f"{values['model_path']!r}); train or export one, or point model_path at it")
    from ..data.localise import HandLocaliser
    from ..inference.estimator import HandPoseEstimator
    # Backend options only go where they mean something (an explicit backend rejects others).
    backend = values["backend"]
    options = {}
    if values["engine_cache_dir"] and backend in ("auto", "tensorrt"):
        options["cache_dir"] = values["engine_cache_dir"]
    if values["cpu_threads"]:
        # Applied by whichever backend runs: importing torch here would make an ONNX Runtime
        # robot (no torch installed) fail at start-up.
        options["cpu_threads"] = values["cpu_threads"]
    if values["min_depth_mm"] >= values["max_depth_mm"]:
        raise StartupError(f"min_depth_mm={values['min_depth_mm']} must be below max_depth_mm={values['max_depth_mm']}")
    try:
        estimator = HandPoseEstimator.from_model_file(
            path, backend=backend,
            device=None if values["device"] == "auto" else values["device"],
            precision=None if values["precision"] == "auto" else values["precision"],
            localiser=HandLocaliser(depth_range_mm=(values["min_depth_mm"], values["max_depth_mm"])),
            half_cube_mm=values["half_cube_mm"] or None, **options)
    except Exception as e:  # any failure here is fatal at start-up: one clear line
        raise StartupError(f"cannot load model file {path}: {e}") from e
    return estimator, path


class PoseNode:
    """Wraps an rclpy Node (created in __init__) with the pose pipeline around it."""

    def __init__(self, node=None, estimator=None):
        """node: an rclpy Node to use (default: a new one named hand_pose).
        estimator: inject one (tests); default: loaded from the model_path parameter."""
        from rclpy.node import Node

        self.node = node or Node(NODE_NAME)
        self.log = self.node.get_logger()
        self.p = declare_for_startup(self.node, PARAMS)
        if estimator is None:
            estimator, model_path = load_estimator(self.p, log=self.log.info)
            self.log.info(f"model {model_path}: {describe_estimator(estimator)}")
        self.estimator = estimator
        self._infer_cpu_s = 0.0
        self._count_inference_cpu(estimator.backend)
        # Published in canonical order whatever the model's own order (an MSRA- or
        # HANDS2017-ordered model would otherwise drive a robot with scrambled joints).
        self.model_names = tuple(getattr(estimator, "keypoint_names", keypoints.CANONICAL))
        try:
            self._to_canonical = canonical_order(self.model_names)
        except ValueError as e:
            raise StartupError(str(e)) from None
        self.names = keypoints.CANONICAL
        # Read-only and reported, never set: a YAML value for it is ignored.
        self.node.declare_parameter(JOINT_NAMES.name, list(self.names), JOINT_NAMES.descriptor(),
                                    ignore_override=True)

        self._filter = None
        if self.p["filter.enabled"]:
            from ..filters import OneEuroFilter
            self._filter = OneEuroFilter(self.p["filter.min_cutoff"], self.p["filter.beta"], self.p["filter.d_cutoff"])
        self._last_filter_stamp = None

        self._make_publishers()
        # One message of each kind, refilled every frame (publish() serialises it at once):
        # building 21 poses, transforms or marker points anew costs several times more.
        self._joints_msg = self._transforms = self._markers_msg = None
        self._camera: Intrinsics | None = None
        self._camera_problem: str | None = None
        self._slot = LatestSlot()
        self._state, self._detail = "waiting_for_images", STATES["waiting_for_images"][1]
        self._warn = ThrottledLog(self.log)
        self._input_rate, self._output_rate = RateMeter(), RateMeter()
        self._latency_ms = Window(300)
        self._timings: dict[str, Window] = {}
        # The last frame's steps and the last diagnostics publish ({step: ms}, wall and this
        # thread's CPU time), for `hand-pose bench --node`.
        self.last_frame_ms: tuple[dict, dict] = ({}, {})
        self.last_diagnostics_ms: tuple[float, float] | None = None
        self.frames_received = self.frames_processed = self.frames_published = 0
        self._handedness_text = "unknown"  # of the last published frame, for diagnostics
        self._seed = None

        qos = qos_profile(self.p["qos"], self.p["qos_depth"])
        from sensor_msgs.msg import CameraInfo, Image
        self.node.create_subscription(Image, self.p["depth_topic"], self._on_image, qos)
        self.node.create_subscription(CameraInfo, self.p["camera_info_topic"], self._on_camera_info, qos)
        # The same topic once more, transient-local: a latched publisher's one message is heard
        # after joining late (this twin matches only such publishers, quietly).
        self.node.create_subscription(CameraInfo, self.p["camera_info_topic"], self._on_camera_info,
                                      qos_profile("reliable", 1, latched=True),
                                      event_callbacks=quiet_incompatible_qos())
        self.node.create_timer(self.p["diagnostics_period_s"], self._publish_diagnostics)

        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="hand_pose_worker", daemon=True)
        self._worker.start()
        self.log.info(f"listening on {self.p['depth_topic']} + {self.p['camera_info_topic']} "
                      f"(qos {self.p['qos']}, depth {self.p['qos_depth']})")

    # ------------------------------------------------------------ set-up
    def _count_inference_cpu(self, backend) -> None:
        """Wrap backend.infer_outputs to add this thread's CPU time spent inside it to
        self._infer_cpu_s, so the node's own CPU cost per frame can exclude inference."""
        infer = backend.infer_outputs  # what the estimator calls (infer goes through it too)

        def timed_infer(crops):
            start = time.thread_time()
            try:
                return infer(crops)
            finally:
                self._infer_cpu_s += time.thread_time() - start

        backend.infer_outputs = timed_infer

    def _make_publishers(self):
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray
        from sensor_msgs.msg import Image
        from visualization_msgs.msg import MarkerArray

        from std_msgs.msg import String

        n = self.node
        # Published just before the PoseArray of the same frame (see _publish_pose).
        self.pub_handedness = n.create_publisher(String, "~/handedness", 10)
        self.pub_joints = n.create_publisher(PoseArray, "~/joints", 10)
        self.pub_markers = n.create_publisher(MarkerArray, "~/markers", 10) if self.p["publish_markers"] else None
        self.pub_debug = n.create_publisher(Image, "~/debug_image", 2) if self.p["publish_debug_image"] else None
        self.pub_diagnostics = n.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.tf = TfSender(n) if self.p["publish_tf"] else None

    # ------------------------------------------------------------ callbacks (executor thread)
    def _on_image(self, msg) -> None:
        if stamp_with_receive_time(msg, self.node.get_clock().now().to_msg()):
            self._warn.once("zero_stamp", f"depth images on {self.p['depth_topic']} have a zero stamp: "
                                          "using the receive time for the filter and the outputs")
        self.frames_received += 1
        self._input_rate.tick()
        self._slot.put(msg)

    def _on_camera_info(self, msg) -> None:
        try:
            cam = conversions.camera_info_to_intrinsics(msg, rectified=self.p["rectified"])
        except ValueError as e:
            self._camera, self._camera_problem = None, f"CameraInfo on {self.p['camera_info_topic']}: {e}"
            return
        self._camera, self._camera_problem = cam, None

    # ------------------------------------------------------------ worker thread
    def _work(self) -> None:
        while not self._stop.is_set():
            msg = self._slot.take(timeout=0.2)
            if msg is None:
                continue
            try:
                self._handle(msg)
            except Exception as e:  # never let one frame kill the worker
                if not self.node.context.ok():
                    break  # shutting down (Ctrl-C): publishers are gone, nothing to report
                self._state, self._detail = "inference_error", f"{type(e).__name__}: {e}"
                self._warn("frame_failed", f"failed on a frame: {self._detail}", "error")

    def _handle(self, msg) -> None:
        start, start_cpu = time.perf_counter(), time.thread_time()
        self._infer_cpu_s = 0.0
        result = self.process(msg)
        clock = result.clock
        self.frames_processed += 1
        self._set_state(result.state, result.detail)
        publish_start = time.perf_counter()
        if result.xyz_mm is not None:
            self._publish_pose(msg.header, result)
        clock.wall_ms["publish"] = (time.perf_counter() - publish_start) * 1e3
        if self.pub_debug is not None and result.depth_mm is not None and self.pub_debug.get_subscription_count():
            with clock("debug_image"):
                depth, uv, box = debug_view(result.depth_mm, result.uv, result.box)
                rgb = debug_overlay(depth, uv, self.names, box, depth_range_mm=result.colour_range)
                self.pub_debug.publish(conversions.rgb_to_image_msg(rgb, msg.header))
        timings = clock.wall_ms
        total = (time.perf_counter() - start) * 1e3
        timings["total"] = total
        # The node's own per-frame cost: everything except the backend's inference call (and
        # the optional debug image). Wall time, and this thread's CPU time, which a busy
        # machine does not inflate by making the thread wait.
        timings["node_overhead"] = total - timings.get("infer", 0.0) - timings.get("debug_image", 0.0)
        if "infer" in timings:
            cpu_ms = (time.thread_time() - start_cpu - self._infer_cpu_s) * 1e3
            timings["node_overhead_cpu"] = cpu_ms - clock.cpu_ms.get("debug_image", 0.0)
        for key, value in timings.items():
            self._timings.setdefault(key, Window(300)).add(value)
        self.last_frame_ms = (dict(timings), dict(clock.cpu_ms))

    def process(self, msg) -> FrameResult:
        """One depth Image -> FrameResult. Pure apart from the filter state and the seed."""
        clock = StepClock()
        cam = self._camera
        if cam is None:
            if self._camera_problem:
                return FrameResult("bad_camera_info", self._camera_problem, clock=clock)
            return FrameResult("waiting_for_camera_info",
                               f"no CameraInfo on {self.p['camera_info_topic']} yet: cannot turn pixels into 3D",
                               clock=clock)
        problem = check_image_against_camera(msg.width, msg.height, cam)
        if problem:
            return FrameResult(*problem, clock=clock)
        try:
            with clock("decode"):
                # 16UC1 at 1 mm per unit stays uint16 (a view of the message: no conversion)
                depth = conversions.image_msg_to_depth_mm(msg, self.p["depth_scale"] or None, integer_mm=True)
        except ValueError as e:
            return FrameResult("bad_image", f"{self.p['depth_topic']}: {e}", clock=clock)

        t = time.perf_counter()
        estimate = self.estimator.estimate(depth, cam, seed=self._seed)
        if estimate is None:
            self._lose_track()
            # Only a frame without a hand is read whole to tell an empty one (decoded depth is
            # finite and >= 0, so any() is "some valid pixel").
            if not depth.any():
                return FrameResult("empty_frame", f"frame {msg.width}x{msg.height} ({msg.encoding}) has no valid "
                                   "depth (all zero or NaN)", depth_mm=depth, clock=clock)
        clock.wall_ms["estimate"] = (time.perf_counter() - t) * 1e3
        if estimate is None:
            return FrameResult("no_hand", f"no hand between {self.p['min_depth_mm']:.0f} and "
                               f"{self.p['max_depth_mm']:.0f} mm", depth_mm=depth, clock=clock)
        # The estimator's stages (localise, crop, infer, recover); its own total is "estimate".
        stage_cpu = getattr(estimate, "cpu_ms", {})
        for stage, ms in estimate.timings_ms.items():
            if stage != "total":
                clock.add(stage, float(ms), float(stage_cpu.get(stage, 0.0)))
        if not estimate.valid:
            self._lose_track()
            return FrameResult("inference_error", f"estimate rejected: {estimate.reason}",
                               depth_mm=depth, clock=clock)
        xyz = np.asarray(estimate.xyz, dtype=np.float64)
        if xyz.shape == (len(self.model_names), 3):
            xyz = xyz[self._to_canonical]
        confidence = estimate.mean_confidence
        if not np.isfinite(xyz).all() or xyz.shape != (len(self.names), 3):
            self._lose_track()
            return FrameResult("inference_error", f"estimator returned invalid keypoints {xyz.shape}",
                               depth_mm=depth, clock=clock)
        if confidence < self.p["min_confidence"]:
            self._lose_track()
            return FrameResult("no_hand", f"mean confidence {confidence:.2f} < min_confidence "
                               f"{self.p['min_confidence']:.2f}", depth_mm=depth, clock=clock)

        with clock("filter"):
            xyz = self._smooth(xyz, conversions.stamp_to_seconds(msg.header.stamp))
        with clock("checks"):
            self._seed = estimate  # the estimator searches near last frame's hand first
            uv = cam.xyz_to_uvd(xyz)[:, :2]
            box = tuple(float(b) for b in estimate.crop_box)
            at_border = border_problem(estimate.uvd, estimate.com_uvd, cam, msg.width, msg.height)
            if at_border:
                state, detail = "hand_at_border", f"{at_border}: the hand is partly out of view"
            else:
                state, detail = "tracking", f"mean confidence {confidence:.2f}"
            # Colour the debug image around the hand: its crop cube in front, the scene behind.
            hand_d, cube = float(estimate.com_uvd[2]), float(estimate.half_cube_mm)
            left_probability = getattr(estimate, "left_probability", None)
            override = self.p["handedness_override"]
            handedness = getattr(estimate, "handedness", None) if override == "auto" else override
        return FrameResult(state, detail, xyz_mm=xyz, uv=uv, box=box, depth_mm=depth, clock=clock,
                           colour_range=(max(hand_d - cube, 1.0), hand_d + 2 * cube),
                           handedness=handedness, left_probability=left_probability)

    def _smooth(self, xyz: np.ndarray, stamp: float) -> np.ndarray:
        if self._filter is None:
            return xyz
        if self._last_filter_stamp is not None and stamp <= self._last_filter_stamp:
            self._filter.reset()  # time went backwards (bag loop, camera restart)
        self._last_filter_stamp = stamp
        smoothed = self._filter(xyz, stamp)
        return smoothed if np.isfinite(smoothed).all() else xyz

    def _lose_track(self) -> None:
        self._seed = None
        if self._filter is not None:
            self._filter.reset()
            self._last_filter_stamp = None

    def _publish_pose(self, header, result: FrameResult) -> None:
        clock = result.clock
        with clock("joints"):
            quaternion = conversions.palm_quaternion(result.xyz_mm, self.names)
            # std_msgs/String has no header: it goes out first, from this one thread, so a
            # subscriber pairs each PoseArray with the handedness received just before it.
            self.pub_handedness.publish(conversions.handedness_msg(result.handedness))
            self._handedness_text = self._describe_handedness(result) or "unknown"
            self._joints_msg = conversions.keypoints_to_pose_array(result.xyz_mm, header, quaternion, self.names,
                                                                   out=self._joints_msg)
            self.pub_joints.publish(self._joints_msg)
            now = self.node.get_clock().now().nanoseconds * 1e-9
            self._latency_ms.add((now - conversions.stamp_to_seconds(header.stamp)) * 1e3)
            self.frames_published += 1
            self._output_rate.tick()
        # TF and markers are built only while someone listens (they cost about as much as the
        # rest of the node's per-frame work together).
        if self.tf is not None and self.tf.wanted():
            with clock("tf"):
                self._transforms = conversions.keypoints_to_transforms(
                    result.xyz_mm, header, self.p["frame_prefix"], quaternion, self.names, out=self._transforms)
                self.tf.send(self._transforms)
        if self.pub_markers is not None and self.pub_markers.get_subscription_count():
            with clock("markers"):
                self._markers_msg = conversions.keypoints_to_markers(
                    result.xyz_mm, header, self.names, label=self._describe_handedness(result), out=self._markers_msg)
                self.pub_markers.publish(self._markers_msg)

    def _describe_handedness(self, result: FrameResult) -> str | None:
        return conversions.handedness_label(result.handedness, result.left_probability,
                                            overridden=self.p["handedness_override"] != "auto")

    # ------------------------------------------------------------ state and diagnostics
    def _set_state(self, state: str, detail: str) -> None:
        self._state, self._detail = state, detail
        level = STATES[state][0]
        if level == "ok":
            return
        self._warn(state, f"{STATES[state][1]}: {detail}", level)

    def diagnostics_values(self) -> dict:
        values = {
            "state": self._state,
            "frames_received": self.frames_received,
            "frames_processed": self.frames_processed,
            "frames_published": self.frames_published,
            "frames_dropped": self._slot.dropped,
            "input_rate_hz": self._input_rate.rate(),
            "output_rate_hz": self._output_rate.rate(),
            "latency_ms_p50": self._latency_ms.percentile(50),
            "latency_ms_p99": self._latency_ms.percentile(99),
            "backend": describe_estimator(self.estimator),
            "handedness": self._handedness_text,
        }
        for key, window in sorted(self._timings.items()):
            values[f"time_ms.{key}"] = window.mean()
        return values

    def _publish_diagnostics(self) -> None:
        start, start_cpu = time.perf_counter(), time.thread_time()
        if self._state == "waiting_for_images" and self._camera is None and self._camera_problem:
            self._state, self._detail = "bad_camera_info", self._camera_problem
        level = STATES[self._state][0]
        message = f"{self._state}: {self._detail}"
        self.pub_diagnostics.publish(conversions.diagnostic_array(
            self.node.get_clock().now().to_msg(), f"{self.node.get_name()}: hand pose estimation",
            self.node.get_name(), level, message, self.diagnostics_values()))
        self.last_diagnostics_ms = ((time.perf_counter() - start) * 1e3, (time.thread_time() - start_cpu) * 1e3)

    # ------------------------------------------------------------ shutdown
    def stop(self) -> None:
        self._stop.set()
        self._slot.close()
        self._worker.join(timeout=5.0)


def describe_estimator(estimator) -> str:
    """'onnxruntime cpu fp32' (what runs, for logs and diagnostics)."""
    d = estimator.describe()
    return " ".join(str(d[k]) for k in ("backend", "device", "precision") if d.get(k))


def main(argv=None) -> int:
    return spin_node(PoseNode, NODE_NAME, argv)


if __name__ == "__main__":
    sys.exit(main())

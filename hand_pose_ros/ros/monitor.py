"""A node that watches the pipeline's topics and measures it (used by `hand-pose run` / demo).

Input frames are counted on the CameraInfo topic (one per depth frame, and cheap to
receive, unlike the depth images). Latency is the monitor's clock at arrival minus the
image stamp the outputs carry. The keypoint error matches /hand_pose/joints with
/synthetic_camera/ground_truth by stamp (both carry the depth frame's stamp).
Only messages arriving inside the measuring window count (`start_window`), dropped and
received frames included: they are the change of the pose node's counters over the window
(to within one diagnostics period). Retargeting commands count as fresh (the first command carrying a
keypoint message's stamp) or as repeats (the timer holding or ramping). The latency
trend (first vs last quarter) and the frame wait (see `frame_waits`) show whether a
backlog builds up.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from . import conversions
from .launch_plan import GROUND_TRUTH_TOPIC, JOINTS_TOPIC, RETARGET_TOPIC
from .stats import percentiles

POSE_COUNTERS = ("frames_dropped", "frames_received")  # counted over the window (diagnostics)


def keypoint_error_mm(pred_mm: np.ndarray, truth_mm: np.ndarray) -> float:
    """Mean Euclidean distance over joints (mm) between two [J, 3] arrays."""
    pred, truth = np.asarray(pred_mm, dtype=np.float64), np.asarray(truth_mm, dtype=np.float64)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {truth.shape} differ in shape")
    return float(np.linalg.norm(pred - truth, axis=-1).mean())


def _none_if_nan(value):
    return None if value is None or (isinstance(value, float) and not np.isfinite(value)) else value


class PipelineMonitor:
    """Subscribes to the inputs and outputs; `summary()` gives the numbers."""

    def __init__(self, node, camera_info_topic: str, joints_topic: str = JOINTS_TOPIC,
                 ground_truth_topic: str = GROUND_TRUTH_TOPIC, retarget_topic: str = RETARGET_TOPIC,
                 keep_last: int = 120):
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray
        from sensor_msgs.msg import CameraInfo, JointState

        from .common import qos_profile

        self.node = node
        self._lock = threading.Lock()
        self._window_start: float | None = None
        self._window_end: float | None = None
        self._truth: dict[int, np.ndarray] = {}   # stamp key -> [J, 3] mm
        self._pending: dict[int, np.ndarray] = {}  # joints waiting for their ground truth
        self.keep_last = keep_last
        self.reset()
        self.first_input_time = self.first_output_time = None
        self.latest_diagnostics: dict[str, dict[str, str]] = {}
        # The pose node's running counters (from its diagnostics) at the window's start and end.
        self._counts_at_start: dict[str, int | None] = dict.fromkeys(POSE_COUNTERS)
        self._counts_at_end: dict[str, int | None] = dict.fromkeys(POSE_COUNTERS)
        # (arrival time, frames_received) of the first and the latest pose diagnostics inside
        # the window: the node's input rate over exactly that span.
        self._received_first: tuple[float, int] | None = None
        self._received_last: tuple[float, int] | None = None
        node.create_subscription(CameraInfo, camera_info_topic, self._on_input, qos_profile("sensor_data", 10))
        node.create_subscription(PoseArray, joints_topic, self._on_joints, 50)
        node.create_subscription(PoseArray, ground_truth_topic, self._on_truth, 50)
        node.create_subscription(JointState, retarget_topic, self._on_retarget, 50)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)

    # ------------------------------------------------------------ window
    def reset(self) -> None:
        with self._lock:
            self.input_times: list[float] = []
            # Stamps of the camera's frames seen on any topic that carries them (CameraInfo,
            # ground truth, keypoints): each topic alone misses frames when this process lags.
            self.frame_stamps: set[int] = set()
            self.output_times: list[float] = []
            self.latencies_ms: list[tuple[float, float]] = []  # (arrival time, latency)
            self.errors_mm: list[float] = []
            self.retarget_times: list[float] = []
            self.retarget_latencies_ms: list[float] = []  # commands answering a keypoint message
            self._joint_stamps: dict[int, None] = {}        # recent keypoint stamps (ordered set)
            self._answered_stamps: dict[int, None] = {}     # keypoint stamps a command answered
            # Commands seen before the keypoint message they answer: the two topics are
            # separate subscriptions, so the executor may take the command first.
            self._early_commands: dict[int, float] = {}     # stamp -> latency at arrival (ms)
            self.retarget_non_finite = 0
            self.non_finite_outputs = 0
            self.last_joints_mm: np.ndarray | None = None
            self.last_truth_mm: np.ndarray | None = None

    def start_window(self) -> None:
        """Forget what was measured so far and count from now."""
        self.reset()
        self._window_end = None
        self._counts_at_start = {k: self._pose_count(k) for k in POSE_COUNTERS}
        self._counts_at_end = dict.fromkeys(POSE_COUNTERS)
        self._received_first = self._received_last = None
        self._window_start = time.monotonic()

    def end_window(self) -> None:
        """Stop counting: summary() then describes exactly the window."""
        self._counts_at_end = {k: self._pose_count(k) for k in POSE_COUNTERS}
        self._window_end = time.monotonic()

    def _pose_count(self, key: str) -> int | None:
        """One of the pose node's running counters, from its latest diagnostics."""
        return _int_or_none(self.latest_diagnostics.get("hand_pose", {}).get(key))

    def _count_in_window(self, key: str) -> int | None:
        end = self._counts_at_end[key] if self._window_end is not None else self._pose_count(key)
        start = self._counts_at_start[key]
        if end is None or start is None:
            return None
        return max(0, end - start)

    def _pose_input_fps(self) -> float | None:
        """Depth images per second the pose node took in, between its first and latest
        diagnostics in the window (exact, unlike a count, which is off by up to one period)."""
        if self._received_first is None or self._received_last is None:
            return None
        (t0, n0), (t1, n1) = self._received_first, self._received_last
        return (n1 - n0) / (t1 - t0) if t1 - t0 > 0.5 else None

    def _in_window(self) -> bool:
        return self._window_start is not None and self._window_end is None

    def _now_s(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    # ------------------------------------------------------------ callbacks
    def _on_input(self, msg) -> None:
        now = time.monotonic()
        if self.first_input_time is None:
            self.first_input_time = now
        if self._in_window():
            with self._lock:
                self.input_times.append(now)
                self.frame_stamps.add(conversions.stamp_key(msg.header.stamp))

    def _on_joints(self, msg) -> None:
        now = time.monotonic()
        latency_ms = (self._now_s() - conversions.stamp_to_seconds(msg.header.stamp)) * 1e3
        xyz = conversions.pose_array_to_keypoints(msg)
        if self.first_output_time is None:
            self.first_output_time = now
        if not self._in_window():
            return
        key = conversions.stamp_key(msg.header.stamp)
        with self._lock:
            self.output_times.append(now)
            self.frame_stamps.add(key)
            self.latencies_ms.append((now, latency_ms))
            self._joint_stamps[key] = None
            self._trim(self._joint_stamps)
            early_latency = self._early_commands.pop(key, None)
            if early_latency is not None:
                self._count_answer(key, early_latency)
            if not np.isfinite(xyz).all():
                self.non_finite_outputs += 1
                return
            self.last_joints_mm = xyz
            truth = self._truth.pop(key, None)
            if truth is None:
                self._pending[key] = xyz
                self._trim(self._pending)
            else:
                self._score(xyz, truth)

    def _on_truth(self, msg) -> None:
        key = conversions.stamp_key(msg.header.stamp)
        truth = conversions.pose_array_to_keypoints(msg)
        with self._lock:
            if self._in_window():
                self.frame_stamps.add(key)
            self.last_truth_mm = truth
            pred = self._pending.pop(key, None)
            if pred is None:
                self._truth[key] = truth
                self._trim(self._truth)
            else:
                self._score(pred, truth)

    def _score(self, pred: np.ndarray, truth: np.ndarray) -> None:
        if pred.shape == truth.shape:
            self.errors_mm.append(keypoint_error_mm(pred, truth))

    def _trim(self, table: dict) -> None:
        while len(table) > self.keep_last:
            table.pop(next(iter(table)))

    def _on_retarget(self, msg) -> None:
        if not self._in_window():
            return
        now = time.monotonic()
        with self._lock:
            self.retarget_times.append(now)
            if not np.isfinite(np.asarray(msg.position, dtype=np.float64)).all():
                self.retarget_non_finite += 1
            # Only commands carrying a keypoint message's stamp measure the pipeline's latency
            # (the retarget node also re-sends commands from a timer while holding).
            key = conversions.stamp_key(msg.header.stamp)
            latency_ms = (self._now_s() - conversions.stamp_to_seconds(msg.header.stamp)) * 1e3
            if key in self._joint_stamps:
                self._count_answer(key, latency_ms)
            elif key not in self._early_commands:
                self._early_commands[key] = latency_ms
                self._trim(self._early_commands)

    def _count_answer(self, key: int, latency_ms: float) -> None:
        """A command answering keypoint message `key` (the first for that stamp only). Under the lock."""
        if key not in self._answered_stamps:
            self._answered_stamps[key] = None
            self._trim(self._answered_stamps)
            self.retarget_latencies_ms.append(latency_ms)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            self.latest_diagnostics[status.hardware_id or status.name] = dict(
                conversions.diagnostic_values(status), _message=status.message, _name=status.name)
        if self._in_window():
            for key, start in self._counts_at_start.items():
                if start is None:
                    self._counts_at_start[key] = self._pose_count(key)  # the first count seen in the window
            received = self._pose_count("frames_received")
            if received is not None:
                self._received_last = (time.monotonic(), received)
                if self._received_first is None:
                    self._received_first = self._received_last

    # ------------------------------------------------------------ results
    def summary(self) -> dict:
        """The numbers measured in the window (None where nothing was measured)."""
        with self._lock:
            end = self._window_end or time.monotonic()
            duration = end - self._window_start if self._window_start is not None else 0.0
            latency = percentiles([v for _, v in self.latencies_ms], (50, 99))
            retarget_latency = percentiles(self.retarget_latencies_ms, (50, 99))
            first_q, last_q = latency_trend(self.latencies_ms)
            wait_first_q, wait_last_q = latency_trend(frame_waits(self.latencies_ms))
            pose_diag = self.latest_diagnostics.get("hand_pose", {})
            out = {
                "duration_s": round(duration, 3),
                "frames_in": len(self.input_times),
                "frames_out": len(self.output_times),
                "input_fps": len(self.input_times) / duration if duration > 0 else 0.0,
                "fps": len(self.output_times) / duration if duration > 0 else 0.0,
                "latency_ms_p50": latency[50],
                "latency_ms_p99": latency[99],
                "latency_ms_p50_first_quarter": first_q,
                "latency_ms_p50_last_quarter": last_q,
                "wait_ms_p50_first_quarter": wait_first_q,
                "wait_ms_p50_last_quarter": wait_last_q,
                "mean_error_mm": float(np.mean(self.errors_mm)) if self.errors_mm else None,
                "error_frames": len(self.errors_mm),
                "non_finite_outputs": self.non_finite_outputs,
                "frames_dropped": self._count_in_window("frames_dropped"),
                # Depth images the pose node took in, against frames_in (CameraInfo, one per
                # published frame): the difference is lost in DDS delivery of the large images.
                "pose_frames_received": self._count_in_window("frames_received"),
                "pose_input_fps": self._pose_input_fps(),
                # The camera's published frames: distinct stamps seen on CameraInfo, ground
                # truth or keypoints (frames_in alone undercounts when this process lags).
                "camera_frames_published": len(self.frame_stamps),
                "camera_fps": len(self.frame_stamps) / duration if duration > 0 else 0.0,
                "pose_node_state": pose_diag.get("state"),
                # The node's own image stamp -> publish latency (its last 300 frames): what the
                # monitor's figure adds on top is delivery to, and waiting in, this process.
                "pose_node_latency_ms_p50": _float_or_none(pose_diag.get("latency_ms_p50")),
                "pose_node_timings_ms": {k[len("time_ms."):]: float(v) for k, v in pose_diag.items()
                                         if k.startswith("time_ms.")},
                "retarget_frames": len(self.retarget_times),
                "retarget_fps": len(self.retarget_times) / duration if duration > 0 else 0.0,
                "retarget_commands_for_keypoints": len(self.retarget_latencies_ms),
                "retarget_fresh_fps": len(self.retarget_latencies_ms) / duration if duration > 0 else 0.0,
                "retarget_repeated_commands": len(self.retarget_times) - len(self.retarget_latencies_ms),
                "retarget_repeat_fps": ((len(self.retarget_times) - len(self.retarget_latencies_ms)) / duration
                                        if duration > 0 else 0.0),
                "retarget_latency_ms_p50": retarget_latency[50],
                "retarget_latency_ms_p99": retarget_latency[99],
                "retarget_non_finite": self.retarget_non_finite,
            }
        return {k: (_none_if_nan(v) if not isinstance(v, dict) else v) for k, v in out.items()}


def latency_trend(samples: list[tuple[float, float]]) -> tuple[float | None, float | None]:
    """Median latency of the first and of the last quarter of the samples (by arrival)."""
    if len(samples) < 8:
        return None, None
    values = [v for _, v in sorted(samples)]
    quarter = len(values) // 4
    return float(np.median(values[:quarter])), float(np.median(values[-quarter:]))


def frame_waits(samples: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(arrival, latency - time since the previous output) per output after the first.

    When the camera outpaces the model the node is always busy, so the time between two
    outputs is one frame's processing time; what latency has beyond it is the time the
    frame waited before processing began (plus transport). Without a backlog that stays
    under a camera period whatever the CPU load does to the processing time; with a
    backlog it grows.
    """
    ordered = sorted(samples)
    return [(t, latency - (t - previous) * 1e3) for (previous, _), (t, latency) in zip(ordered, ordered[1:])]


def _float_or_none(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _int_or_none(text):
    try:
        return int(float(text))
    except (TypeError, ValueError):
        return None

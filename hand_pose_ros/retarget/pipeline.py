"""Keypoints in, safe robot joint commands out: validation -> One Euro filter (on keypoints
or on joint angles, never both) -> retargeter -> safety. What the retarget node runs, as a
plain class with no ROS in it.

Timing runs on a monotonic clock (time.monotonic unless the caller passes times): the
velocity clamp, hold and ramp must not follow jumps of the ROS clock (NTP, /clock, a bag
loop). Message stamps are for latency only.
"""
from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field

import numpy as np

from hand_pose_ros.filters import OneEuroFilter
from hand_pose_ros.keypoints import CANONICAL
from hand_pose_ros.retarget.base import Retargeter
from hand_pose_ros.retarget.hand_frame import INDEX_MCP, MIDDLE_MCP, PINKY_MCP, WRIST, check_handedness
from hand_pose_ros.retarget.plausibility import implausibility, implausible_fingers
from hand_pose_ros.retarget.safety import AT_SAFE_POSE, RAMPING, SafetyConfig, SafetyLimiter
from hand_pose_ros.retarget.spec import RobotHandSpec

FILTER_TARGETS = ("none", "keypoints", "joints")
# input_timeout = 0 (auto): this many of the slowest recent message intervals (90th
# percentile) without a message mean the input stopped, within these bounds (s).
AUTO_TIMEOUT_INTERVALS = 3.0
AUTO_TIMEOUT_RANGE_S = (0.1, 1.0)
INTERVALS_KEPT = 60
_PALM = np.array([WRIST, INDEX_MCP, MIDDLE_MCP, PINKY_MCP])


@dataclass
class PipelineConfig:
    handedness: str = "right"
    filter_target: str = "joints"     # none | keypoints | joints
    # Light by default: the pose node already smooths the keypoints (config/pose.yaml).
    filter_min_cutoff: float = 2.5    # Hz: One Euro cutoff at rest
    filter_beta: float = 1.0          # cutoff increase per (unit / s) of speed
    filter_d_cutoff: float = 1.0      # Hz: cutoff of the speed estimate
    min_valid_keypoints: int = 15     # fewer usable keypoints than this = tracking lost
    max_keypoint_range: float = 5.0   # m: keypoints farther from the camera are not usable
    input_timeout: float = 0.0        # s without a message = input stopped; 0 = from the measured rate
    plausibility_check: bool = True   # a skeleton no human hand can make counts as no hand
    safety: SafetyConfig = field(default_factory=SafetyConfig)

    def __post_init__(self):
        self.handedness = check_handedness(self.handedness)
        if self.filter_target not in FILTER_TARGETS:
            raise ValueError(f"filter_target must be one of {FILTER_TARGETS}, got {self.filter_target!r}")
        if not 4 <= int(self.min_valid_keypoints) <= len(CANONICAL):
            raise ValueError(f"min_valid_keypoints must be in [4, {len(CANONICAL)}] (the 4 palm "
                             f"keypoints are always needed), got {self.min_valid_keypoints}")
        if not (math.isfinite(self.max_keypoint_range) and self.max_keypoint_range > 0):
            raise ValueError(f"max_keypoint_range must be > 0 m, got {self.max_keypoint_range}")
        if not (math.isfinite(self.input_timeout) and self.input_timeout >= 0):
            raise ValueError(f"input_timeout must be >= 0 s (0 = automatic), got {self.input_timeout}")


def sanitize_keypoints(keypoints, max_range: float) -> np.ndarray:
    """[..., 21, 3] -> a float copy with every unusable keypoint (non-finite, or farther than
    max_range metres from the origin) set to NaN in all three coordinates."""
    kp = np.array(keypoints, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        usable = np.all(np.isfinite(kp), axis=-1) & (np.linalg.norm(kp, axis=-1) <= max_range)
    kp[~usable] = np.nan
    return kp


class RetargetPipeline:
    """Call `update(keypoints_or_None)` for every pose message and `tick()` from a timer;
    both return the joint command [N] to send (URDF convention). Times default to `clock()`
    (monotonic); tests pass simulated times instead."""

    def __init__(self, spec: RobotHandSpec, retargeter: Retargeter, config: PipelineConfig | None = None,
                 clock=time.monotonic):
        if tuple(retargeter.joint_names) != spec.joint_names:
            raise ValueError(f"retargeter joints {retargeter.joint_names} differ from spec {spec.joint_names}")
        self.spec = spec
        self.retargeter = retargeter
        self.config = config or PipelineConfig()
        c = self.config
        make_filter = lambda: OneEuroFilter(c.filter_min_cutoff, c.filter_beta, c.filter_d_cutoff)  # noqa: E731
        self._keypoint_filter = make_filter() if c.filter_target == "keypoints" else None
        self._joint_filter = make_filter() if c.filter_target == "joints" else None
        self.safety = SafetyLimiter(spec.lower, spec.upper, spec.safe_pose, c.safety, spec.max_velocity)
        self.clock = clock
        self.last_update: float | None = None   # time of the last pose message
        self._intervals: collections.deque[float] = collections.deque(maxlen=INTERVALS_KEPT)
        self.last_retarget_seconds = 0.0        # cost of the last retarget call (for diagnostics)
        self.last_valid_keypoints = 0
        self.last_rejection: str | None = None  # why the last pose message gave no target
        self.last_dropped_fingers: dict = {}    # finger -> why it was bent where no finger bends
        self.handedness = self.config.handedness  # the human hand side the hand frame is built for

    def set_handedness(self, side: str) -> bool:
        """Build the hand frame for `side` from the next message on (handedness: auto follows
        the detected side). On a change the filter history and warm starts, which belong to
        the other side's frame, are dropped. True if the side changed."""
        side = check_handedness(side)
        if side == self.handedness:
            return False
        self.handedness = side
        for f in (self._keypoint_filter, self._joint_filter):
            if f is not None:
                f.reset()
        self.retargeter.reset()
        return True

    @property
    def state(self) -> str:
        return self.safety.state

    def reset(self) -> None:
        for f in (self._keypoint_filter, self._joint_filter):
            if f is not None:
                f.reset()
        self.retargeter.reset()
        self.safety.reset()
        self.last_update = None
        self._intervals.clear()

    def seed(self, positions_by_name: dict) -> str | None:
        """Start from the robot's measured pose ({joint name: rad}, e.g. from /joint_states)
        instead of the safe pose. Only before the first command. Returns why it was not used,
        or None when it was."""
        missing = [n for n in self.spec.joint_names if n not in positions_by_name]
        if missing:
            return f"no position for joints {missing}"
        try:
            used = self.safety.seed([positions_by_name[n] for n in self.spec.joint_names])
        except ValueError as e:
            return str(e)
        return None if used else "commands were already sent"

    def input_timeout(self) -> float:
        """Seconds without a pose message after which the input counts as stopped: the
        configured value, or (0 = automatic) AUTO_TIMEOUT_INTERVALS x the 90th percentile of the
        recent message intervals, so a slow but steady stream never flaps into holding."""
        if self.config.input_timeout > 0:
            return self.config.input_timeout
        low, high = AUTO_TIMEOUT_RANGE_S
        if not self._intervals:
            return high
        return float(np.clip(AUTO_TIMEOUT_INTERVALS * np.percentile(self._intervals, 90), low, high))

    def input_interval_p90(self) -> float | None:
        """90th percentile of the recent intervals between pose messages (s), None before two."""
        return float(np.percentile(self._intervals, 90)) if self._intervals else None

    def update(self, keypoints, t: float | None = None) -> np.ndarray:
        """A new pose message at time t (s, default clock()): keypoints [21, 3] in metres, or
        None (no hand)."""
        t = self.clock() if t is None else float(t)
        if self.last_update is not None and t > self.last_update:
            self._intervals.append(t - self.last_update)
        self.last_update = t
        target = None
        if keypoints is not None:
            if np.shape(keypoints) != (len(CANONICAL), 3):
                raise ValueError(f"keypoints must have shape ({len(CANONICAL)}, 3), got {np.shape(keypoints)}")
            kp = sanitize_keypoints(keypoints, self.config.max_keypoint_range)
            usable = np.isfinite(kp[:, 0])
            self.last_valid_keypoints = int(usable.sum())
            self.last_rejection = None
            if not (usable[_PALM].all() and usable.sum() >= self.config.min_valid_keypoints):
                self.last_rejection = (f"{int(usable.sum())} usable keypoints (palm: {bool(usable[_PALM].all())}), "
                                       f"fewer than min_valid_keypoints {self.config.min_valid_keypoints} or no palm")
            elif self.config.plausibility_check:
                self.last_rejection = implausibility(kp * 1000.0)
                if self.last_rejection is None:
                    self.last_dropped_fingers = self._drop_implausible_fingers(kp, self.handedness)
            if self.last_rejection is None:
                target = self._retarget(kp, float(t))
        else:
            self.last_valid_keypoints = 0
            self.last_rejection = "no hand in the message"
        return self.safety.step(target, t)

    def tick(self, t: float | None = None, stale_after: float | None = None) -> np.ndarray | None:
        """Timer: if no pose message came for `stale_after` s (default input_timeout()),
        advance hold/ramp and return the command; otherwise None (the message path is
        publishing)."""
        t = self.clock() if t is None else float(t)
        stale_after = self.input_timeout() if stale_after is None else stale_after
        if self.last_update is not None and t - self.last_update < stale_after:
            return None
        return self.safety.step(None, t)

    @staticmethod
    def _drop_implausible_fingers(kp: np.ndarray, handedness: str | None) -> dict:
        """Set the keypoints beyond the MCP (they are no palm keypoint) of every finger bent
        outside human ranges to NaN, in place: the safety layer then holds that finger's
        joints, as for a lost finger."""
        dropped = implausible_fingers(kp * 1000.0, handedness)
        for finger in dropped:
            joints = ("ip", "tip") if finger == "thumb" else ("pip", "dip", "tip")
            kp[[CANONICAL.index(f"{finger}_{j}") for j in joints]] = np.nan
        return dropped

    def _retarget(self, kp: np.ndarray, t: float) -> np.ndarray:
        if self.safety.state in (RAMPING, AT_SAFE_POSE):
            # Back after a real loss: drop stale filter history and warm starts.
            for f in (self._keypoint_filter, self._joint_filter):
                if f is not None:
                    f.reset()
            self.retargeter.reset()
        if self._keypoint_filter is not None:
            kp = self._keypoint_filter(kp, t)
        start = time.perf_counter()
        q = np.asarray(self.retargeter.retarget(kp, self.handedness), dtype=np.float64)
        self.last_retarget_seconds = time.perf_counter() - start
        if self._joint_filter is not None:
            q = self._joint_filter(q, t)
        return q

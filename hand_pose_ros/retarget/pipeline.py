"""Keypoints in, safe robot joint commands out: validation -> One Euro filter (on keypoints
or on joint angles, never both) -> retargeter -> safety. What the retarget node runs, as a
plain class with no ROS in it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from hand_pose_ros.filters import OneEuroFilter
from hand_pose_ros.keypoints import CANONICAL
from hand_pose_ros.retarget.base import Retargeter
from hand_pose_ros.retarget.hand_frame import INDEX_MCP, MIDDLE_MCP, PINKY_MCP, WRIST, check_handedness
from hand_pose_ros.retarget.safety import AT_SAFE_POSE, RAMPING, SafetyConfig, SafetyLimiter
from hand_pose_ros.retarget.spec import RobotHandSpec

FILTER_TARGETS = ("none", "keypoints", "joints")
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


def sanitize_keypoints(keypoints, max_range: float) -> np.ndarray:
    """[..., 21, 3] -> a float copy with every unusable keypoint (non-finite, or farther than
    max_range metres from the origin) set to NaN in all three coordinates."""
    kp = np.array(keypoints, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        usable = np.all(np.isfinite(kp), axis=-1) & (np.linalg.norm(kp, axis=-1) <= max_range)
    kp[~usable] = np.nan
    return kp


class RetargetPipeline:
    """Call `update(keypoints_or_None, t)` for every pose message and `tick(t, stale_after)`
    from a timer; both return the joint command [N] to send (URDF convention)."""

    def __init__(self, spec: RobotHandSpec, retargeter: Retargeter, config: PipelineConfig | None = None):
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
        self.last_update: float | None = None   # time of the last pose message
        self.last_retarget_seconds = 0.0        # cost of the last retarget call (for diagnostics)
        self.last_valid_keypoints = 0

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

    def update(self, keypoints, t: float) -> np.ndarray:
        """A new pose message at time t (s): keypoints [21, 3] in metres, or None (no hand)."""
        self.last_update = float(t)
        target = None
        if keypoints is not None:
            if np.shape(keypoints) != (len(CANONICAL), 3):
                raise ValueError(f"keypoints must have shape ({len(CANONICAL)}, 3), got {np.shape(keypoints)}")
            kp = sanitize_keypoints(keypoints, self.config.max_keypoint_range)
            usable = np.isfinite(kp[:, 0])
            self.last_valid_keypoints = int(usable.sum())
            if usable[_PALM].all() and usable.sum() >= self.config.min_valid_keypoints:
                target = self._retarget(kp, float(t))
        else:
            self.last_valid_keypoints = 0
        return self.safety.step(target, t)

    def tick(self, t: float, stale_after: float) -> np.ndarray | None:
        """Timer: if no pose message came for `stale_after` s, advance hold/ramp and return the
        command; otherwise None (the message path is publishing)."""
        if self.last_update is not None and t - self.last_update < stale_after:
            return None
        return self.safety.step(None, t)

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
        q = np.asarray(self.retargeter.retarget(kp, self.config.handedness), dtype=np.float64)
        self.last_retarget_seconds = time.perf_counter() - start
        if self._joint_filter is not None:
            q = self._joint_filter(q, t)
        return q

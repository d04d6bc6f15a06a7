"""The always-on safety layer between any retargeter and the robot.

Guarantees, for every command it emits:
  - within the joint limits, and finite (never NaN or inf);
  - no joint moves faster than its velocity limit (min of the configured limit and the
    hardware's) between two commands, measured on the caller's clock, which must be
    monotonic (RetargetPipeline uses time.monotonic: a jump of the ROS clock must neither
    allow an unclamped step nor freeze the output);
  - on tracking loss (no target, or every joint NaN) the last command is held for
    `hold_timeout` seconds, then ramps to the safe pose (at `ramp_speed` rad/s, or over
    `ramp_time` seconds) and stays there until tracking returns;
  - a partly invalid target (some joints NaN, e.g. one finger lost) holds just those joints.
The first command starts from the robot's measured pose when `seed` gave one, else from the
safe pose.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WAITING, TRACKING, HOLDING, RAMPING, AT_SAFE_POSE = (
    "waiting", "tracking", "holding", "ramping to safe pose", "at safe pose")
STATES = (WAITING, TRACKING, HOLDING, RAMPING, AT_SAFE_POSE)


@dataclass
class SafetyConfig:
    max_velocity: float = 3.0   # rad/s for every joint (also capped by each joint's hardware limit)
    hold_timeout: float = 0.5   # s of holding the last command after tracking is lost
    ramp_time: float = 2.0      # s to reach the safe pose once the hold times out (0: at once,
                                # still velocity limited) ...
    ramp_speed: float = 0.0     # ... or, if > 0, rad/s toward it instead (ramp_time is ignored)

    def __post_init__(self):
        checks = {"max_velocity": self.max_velocity > 0, "hold_timeout": self.hold_timeout >= 0,
                  "ramp_time": self.ramp_time >= 0, "ramp_speed": self.ramp_speed >= 0}
        for name, ok in checks.items():
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and ok):
                raise ValueError(f"SafetyConfig.{name} = {value!r} is not allowed "
                                 f"(max_velocity > 0, the others >= 0, all finite)")


class SafetyLimiter:
    """Stateful: call `step(target, t)` with every new retargeter output (or None when there
    is none) and `step(None, t)` from a timer while input has stopped."""

    def __init__(self, lower, upper, safe_pose, config: SafetyConfig | None = None,
                 hardware_max_velocity=None):
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self.safe_pose = np.asarray(safe_pose, dtype=np.float64)
        n = len(self.lower)
        if not (self.upper.shape == self.safe_pose.shape == (n,)):
            raise ValueError(f"lower, upper and safe_pose must all have shape ({n},)")
        if not (np.all(np.isfinite(self.lower)) and np.all(np.isfinite(self.upper))
                and np.all(self.lower < self.upper)):
            raise ValueError("joint limits must be finite with lower < upper")
        if not np.all((self.lower <= self.safe_pose) & (self.safe_pose <= self.upper)):
            raise ValueError("the safe pose must lie within the joint limits")
        self.config = config or SafetyConfig()
        hardware = np.full(n, np.inf) if hardware_max_velocity is None else np.asarray(
            hardware_max_velocity, dtype=np.float64)
        self.max_velocity = np.minimum(self.config.max_velocity, hardware)  # [N] rad/s
        self.reset()

    def reset(self) -> None:
        self.state = WAITING
        self.command = self.safe_pose.copy()
        self._t: float | None = None          # time of the last command
        self._last_valid: float | None = None  # time of the last usable target
        self._ramp_from: np.ndarray | None = None
        self._ramp_start = 0.0

    @property
    def commanding(self) -> bool:
        """Whether a command was computed already (from then on a seed is refused)."""
        return self._t is not None

    def seed(self, positions) -> bool:
        """Start from the robot's measured joint positions [N] instead of the safe pose.
        Only before the first command (False afterwards: the robot then follows us)."""
        if self.commanding:
            return False
        q = np.asarray(positions, dtype=np.float64)
        if q.shape != self.command.shape or not np.isfinite(q).all():
            raise ValueError(f"seed positions must be {self.command.shape[0]} finite values, got {q.tolist()}")
        self.command = np.clip(q, self.lower, self.upper)
        return True

    def step(self, target, t: float) -> np.ndarray:
        """The next command [N] at time t (s). target: [N] angles, NaN where unknown, or None."""
        t = float(t)
        dt = 0.0 if self._t is None else max(0.0, t - self._t)  # never run the clock backwards
        if self._t is None or t > self._t:
            self._t = t

        valid = None
        if target is not None:
            target = np.asarray(target, dtype=np.float64)
            if target.shape != self.command.shape:
                raise ValueError(f"target has shape {target.shape}, expected {self.command.shape}")
            valid = np.isfinite(target)
            if not valid.any():
                valid = None

        if valid is not None:
            self.state = TRACKING
            self._last_valid = t
            self._ramp_from = None
            goal = np.where(valid, np.clip(np.where(valid, target, 0.0), self.lower, self.upper),
                            self.command)  # joints without a target hold
            return self._move_toward(goal, dt)

        if self._last_valid is None:
            self.state = WAITING
            return self.command.copy()
        if t - self._last_valid < self.config.hold_timeout:
            self.state = HOLDING
            return self.command.copy()
        return self._ramp(t, dt)

    def _ramp(self, t: float, dt: float) -> np.ndarray:
        if self._ramp_from is None:  # the hold just timed out: the ramp starts where we are
            self._ramp_from = self.command.copy()
            self._ramp_start = self._last_valid + self.config.hold_timeout
        if self.config.ramp_speed > 0:
            speed = np.minimum(self.config.ramp_speed, self.max_velocity)
            ramp_dt = max(0.0, min(dt, t - self._ramp_start))  # only time since the ramp began
            command = self._limited(self.safe_pose, ramp_dt, speed)
        else:
            ramp_time = self.config.ramp_time
            fraction = 1.0 if ramp_time <= 0 else min(1.0, (t - self._ramp_start) / ramp_time)
            goal = self._ramp_from + fraction * (self.safe_pose - self._ramp_from)
            command = self._limited(goal, dt, self.max_velocity)
        self._set(command)
        self.state = AT_SAFE_POSE if np.allclose(self.command, self.safe_pose, atol=1e-9) else RAMPING
        return self.command.copy()

    def _move_toward(self, goal: np.ndarray, dt: float) -> np.ndarray:
        self._set(self._limited(goal, dt, self.max_velocity))
        return self.command.copy()

    def _limited(self, goal: np.ndarray, dt: float, speed: np.ndarray) -> np.ndarray:
        """One step from the current command toward goal, at most speed * dt per joint."""
        step = speed * dt
        return self.command + np.clip(goal - self.command, -step, step)

    def _set(self, command: np.ndarray) -> None:
        # Belt and braces: whatever happened above, emit only finite, in-limit values.
        command = np.where(np.isfinite(command), command, self.command)
        self.command = np.clip(command, self.lower, self.upper)

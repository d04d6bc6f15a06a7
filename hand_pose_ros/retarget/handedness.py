"""Following the detected side of the tracked hand (the pose node's ~/handedness) with
hysteresis, so one misclassified frame never flips the hand frame the robot is driven in.

    switch = HandednessSwitch(switch_after=5)
    side = switch.observe("left")   # -> "left" (the first side seen is taken at once)
    side = switch.observe("right")  # -> "left" until "right" came 5 times in a row

No ROS here: the retarget node feeds it one observation per pose message.
"""
from __future__ import annotations

from hand_pose_ros.retarget.hand_frame import HANDEDNESS, check_handedness

DEFAULT_SWITCH_AFTER = 5  # consecutive messages of the other side before switching (~0.2 s at 30 Hz)


class HandednessSwitch:
    """The side in use, from a stream of detected sides ("left" / "right", or None / "unknown"
    when the detector cannot tell).

    - Nothing known yet: the first detected side is taken at once (there is no side to keep).
    - Afterwards the other side must be detected in `switch_after` consecutive observations;
      an observation of the current side, or an unknown one, restarts the count.
    """

    def __init__(self, switch_after: int = DEFAULT_SWITCH_AFTER, initial: str | None = None):
        if int(switch_after) < 1:
            raise ValueError(f"switch_after must be >= 1, got {switch_after}")
        self.switch_after = int(switch_after)
        self.side = None if initial is None else check_handedness(initial)
        self._candidate: str | None = None
        self._streak = 0
        self.switches = 0  # how often the side changed after the first (for diagnostics)

    def observe(self, detected: str | None) -> str | None:
        """One observation; returns the side in use afterwards (None while none was ever seen)."""
        detected = None if detected in (None, "", "unknown") else check_handedness(detected)
        if detected is None or detected == self.side:
            self._candidate, self._streak = None, 0
            return self.side
        if self.side is None:
            self.side = detected
            return self.side
        self._streak = self._streak + 1 if detected == self._candidate else 1
        self._candidate = detected
        if self._streak >= self.switch_after:
            self.side, self._candidate, self._streak = detected, None, 0
            self.switches += 1
        return self.side


__all__ = ["DEFAULT_SWITCH_AFTER", "HANDEDNESS", "HandednessSwitch"]

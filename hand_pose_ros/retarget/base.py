"""The one interface every retargeter offers (the factory is in factory.py: it imports the
subclasses, which import this module)."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Retargeter(ABC):
    """Human hand keypoints -> robot joint angles (rad, URDF convention, spec joint order).

    Input: the 21 canonical keypoints [21, 3] in metres in any frame (camera optical frame
    from the pose node); the retargeter builds its own hand frame, so the camera placement
    does not matter. Output: [N] angles; NaN for joints it cannot compute from this frame
    (e.g. a finger whose keypoints are missing), which the safety layer then holds.
    Outputs are not clamped to joint limits: that is the safety layer's job.
    """

    joint_names: tuple

    @abstractmethod
    def retarget(self, keypoints_xyz, handedness: str) -> np.ndarray:
        ...

    def reset(self) -> None:
        """Forget any frame-to-frame state (warm starts, filters)."""

"""What every dataset reader yields: one depth frame with its labels and camera."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..camera import Intrinsics


@dataclass
class Sample:
    depth_mm: np.ndarray                 # [H, W] float32, millimetres, 0 = invalid
    cam: Intrinsics                      # intrinsics of depth_mm
    keypoint_names: tuple[str, ...]      # names of the rows of uvd / xyz
    uvd: np.ndarray | None = None        # [J, 3] (u px, v px, d mm) or None when unlabelled
    name: str = ""                       # frame id inside its dataset (e.g. 'test/depth_1_0000001.png')
    half_cube_mm: float = 150.0          # crop cube half-size for this frame (srnet.md)
    meta: dict = field(default_factory=dict)

    @property
    def xyz(self) -> np.ndarray | None:
        return None if self.uvd is None else self.cam.uvd_to_xyz(self.uvd)

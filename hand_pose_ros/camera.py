"""Pinhole intrinsics, the datasets' camera tables and uvd <-> xyz conversion.

Image convention (REP 103 optical frame): u to the right, v down, z forward, millimetres.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int = 0   # 0 = unknown
    height: int = 0

    @classmethod
    def from_k(cls, k, width: int = 0, height: int = 0) -> "Intrinsics":
        """From a row-major 3x3 K (sensor_msgs/CameraInfo.k)."""
        k = np.asarray(k, dtype=np.float64).reshape(3, 3)
        if not (np.isfinite(k).all() and k[0, 0] != 0 and k[1, 1] != 0):
            raise ValueError(f"invalid camera matrix K={k.ravel().tolist()}")
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), int(width), int(height))

    def k(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    def cropped(self, left: float, top: float, width: int, height: int) -> "Intrinsics":
        """The intrinsics of a sub-window of this image (same rays, shifted principal point)."""
        return Intrinsics(self.fx, self.fy, self.cx - left, self.cy - top, int(width), int(height))

    def to_dict(self) -> dict:
        return asdict(self)

    def uvd_to_xyz(self, uvd) -> np.ndarray:
        return uvd_to_xyz(uvd, self)

    def xyz_to_uvd(self, xyz) -> np.ndarray:
        return xyz_to_uvd(xyz, self)


def uvd_to_xyz(uvd, cam: Intrinsics):
    """[..., 3] (u px, v px, d mm) -> [..., 3] (x, y, z) mm. Works on numpy and torch."""
    u, v, d = uvd[..., 0], uvd[..., 1], uvd[..., 2]
    x = (u - cam.cx) * d / cam.fx
    y = (v - cam.cy) * d / cam.fy
    return _stack(uvd, (x, y, d))


def xyz_to_uvd(xyz, cam: Intrinsics):
    """[..., 3] (x, y, z) mm -> [..., 3] (u px, v px, d mm). Works on numpy and torch."""
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    u = x * cam.fx / z + cam.cx
    v = y * cam.fy / z + cam.cy
    return _stack(xyz, (u, v, z))


def _stack(like, parts):
    if isinstance(like, np.ndarray) or not hasattr(like, "new_tensor"):
        return np.stack([np.asarray(p, dtype=np.float64) for p in parts], axis=-1)
    import torch
    return torch.stack(parts, dim=-1)


# Dataset cameras (shared/docs/datasets.md). The community evaluator scores with slightly
# different numbers for some datasets; those live in EVAL_INTRINSICS.
DATASET_INTRINSICS: dict[str, Intrinsics] = {
    "nyu": Intrinsics(588.037, 587.075, 320.0, 240.0, 640, 480),
    "icvl": Intrinsics(241.42, 241.42, 160.0, 120.0, 320, 240),
    "msra": Intrinsics(241.42, 241.42, 160.0, 120.0, 320, 240),
    "hands2017": Intrinsics(475.065948, 475.065857, 315.944855, 245.287079, 640, 480),
    # Default synthetic camera: a RealSense D435-like depth stream at 640x480.
    "synthetic": Intrinsics(386.0, 386.0, 320.0, 240.0, 640, 480),
    "synthetic_msra": Intrinsics(241.42, 241.42, 160.0, 120.0, 320, 240),
}

EVAL_INTRINSICS: dict[str, Intrinsics] = {
    "nyu": Intrinsics(588.03, -587.07, 320.0, 240.0, 640, 480),
    "icvl": Intrinsics(240.99, 240.96, 160.0, 120.0, 320, 240),
    "msra": Intrinsics(241.42, 241.42, 160.0, 120.0, 320, 240),
    "hands2017": DATASET_INTRINSICS["hands2017"],
    "synthetic": DATASET_INTRINSICS["synthetic"],
}

# Half-size of the crop cube in mm (srnet.md). NYU test frames with index > 2440 use 125.
HALF_CUBE_MM: dict[str, float] = {"msra": 125.0, "icvl": 125.0, "nyu": 150.0,
                                  "hands2017": 150.0, "synthetic": 150.0}


def dataset_intrinsics(name: str, for_eval: bool = False) -> Intrinsics:
    table = EVAL_INTRINSICS if for_eval else DATASET_INTRINSICS
    try:
        return table[name.lower()]
    except KeyError:
        raise ValueError(f"no intrinsics for dataset {name!r}; known: {sorted(table)}") from None

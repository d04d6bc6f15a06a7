"""Hand poses: named poses (test fixtures), random poses within the joint limits, and
random global poses (forearm direction, roll, wrist flexion/deviation).

Angles follow hand.py's layout ([..., 20] radians, chains thumb, index, middle, ring,
pinky, each (flex1, abd, flex2, flex3)). A named pose is the same for both hands: the
mirror is applied by forward kinematics.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .hand import LIMITS_RAD, NUM_ANGLES, clamp_to_limits

# Degrees per chain (flex1, abd, flex2, flex3). 'pinch' was solved numerically so that the
# thumb tip meets the index tip (about 1 mm apart on the average hand).
_RELAXED = (15, 0, 20, 12)
_CURLED = (85, 0, 100, 65)
NAMED_POSES_DEG = {
    "open": {"thumb": (0, 0, 0, 0), "index": (0, 0, 0, 0), "middle": (0, 0, 0, 0),
             "ring": (0, 0, 0, 0), "pinky": (0, 0, 0, 0)},
    "spread": {"thumb": (-10, 35, 0, 0), "index": (0, 18, 0, 0), "middle": (0, 0, 0, 0),
               "ring": (0, -15, 0, 0), "pinky": (0, -22, 0, 0)},
    "fist": {"thumb": (40, 5, 45, 50), "index": _CURLED, "middle": _CURLED,
             "ring": _CURLED, "pinky": _CURLED},
    "point": {"thumb": (38, 0, 40, 40), "index": (0, 0, 0, 0), "middle": _CURLED,
              "ring": _CURLED, "pinky": _CURLED},
    "pinch": {"thumb": (34, -12, 19, 15), "index": (70, 0, 29, 20), "middle": _RELAXED,
              "ring": _RELAXED, "pinky": _RELAXED},
    "grasp": {"thumb": (25, 40, 15, 20), "index": (50, 0, 60, 38), "middle": (52, 0, 62, 40),
              "ring": (54, 0, 62, 40), "pinky": (56, 0, 60, 38)},
    "relaxed": {"thumb": (10, 10, 10, 10), "index": _RELAXED, "middle": (18, 0, 24, 14),
                "ring": (22, 0, 28, 16), "pinky": (26, 0, 30, 18)},
}
NAMED_POSES = tuple(NAMED_POSES_DEG)
_FINGER_ORDER = ("thumb", "index", "middle", "ring", "pinky")


def named_pose(name: str, handedness: str = "right") -> np.ndarray:
    """Joint angles [20] (radians, float64) of a named pose: open, spread, fist, point,
    pinch, grasp, relaxed. handedness ('right' | 'left') is checked only: the angles of a
    mirrored hand are the same; forward kinematics mirrors the geometry."""
    if handedness not in ("right", "left"):
        raise ValueError(f"handedness must be 'right' or 'left', got {handedness!r}")
    try:
        table = NAMED_POSES_DEG[name]
    except KeyError:
        raise ValueError(f"unknown pose {name!r}; known: {list(NAMED_POSES)}") from None
    return np.radians(np.array([table[f] for f in _FINGER_ORDER], dtype=np.float64).reshape(NUM_ANGLES))


def named_pose_tensor(device="cpu", dtype=torch.float32) -> torch.Tensor:
    """[len(NAMED_POSES), 20] all named poses, in NAMED_POSES order."""
    return torch.tensor(np.stack([named_pose(n) for n in NAMED_POSES]), device=device, dtype=dtype)


def _couple_dip(angles: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """DIP (and thumb IP) follow 2/3 of the joint before them, loosely (noise in rad)."""
    angles = angles.clone()
    for chain in range(1, 5):
        angles[:, 4 * chain + 3] = angles[:, 4 * chain + 2] * (2.0 / 3.0) + noise[:, chain]
    return angles


def sample_poses(n: int, generator: torch.Generator, device=None, dtype=torch.float32,
                 named_fraction: float = 0.35, synergy_fraction: float = 0.35,
                 jitter_deg: float = 10.0) -> torch.Tensor:
    """[n, 20] random joint angles (rad) within the limits, a mixture of three kinds:
    - named poses (open, fist, pinch, point, grasp, ...) with Gaussian jitter,
    - 'synergy' poses: one grip level shared by the fingers plus per-finger variation
      (how real hands mostly move),
    - independent uniform angles over the whole range.
    DIP joints are coupled loosely to PIP (2/3 PIP +- 8 deg) in the last two kinds.
    """
    device = generator.device if device is None else device
    g_dev = generator.device
    limits = LIMITS_RAD.to(g_dev, dtype)
    low, high = limits[:, 0], limits[:, 1]
    kind = torch.rand(n, generator=generator, device=g_dev, dtype=dtype)
    u = torch.rand(n, NUM_ANGLES, generator=generator, device=g_dev, dtype=dtype)
    gauss = torch.randn(n, NUM_ANGLES, generator=generator, device=g_dev, dtype=dtype)
    which = torch.randint(len(NAMED_POSES), (n,), generator=generator, device=g_dev)
    grip = torch.rand(n, 1, generator=generator, device=g_dev, dtype=dtype)
    dip_noise = torch.randn(n, 5, generator=generator, device=g_dev, dtype=dtype) * math.radians(8)

    uniform = _couple_dip(low + (high - low) * u, dip_noise)

    named = named_pose_tensor(g_dev, dtype)[which] + gauss * math.radians(jitter_deg)

    # Synergy: flexions at grip * range (+-20% of range per joint), small abduction.
    flex_cols = torch.ones(NUM_ANGLES, dtype=torch.bool, device=g_dev)
    flex_cols[1::4] = False
    flex_range = torch.clamp(high, min=0)
    synergy = torch.where(flex_cols, grip * flex_range + (u - 0.5) * 0.4 * flex_range,
                          (u - 0.5) * (high - low) * 0.6)
    synergy = _couple_dip(synergy, dip_noise)

    angles = torch.where((kind < named_fraction)[:, None], named,
                         torch.where((kind < named_fraction + synergy_fraction)[:, None], synergy, uniform))
    return clamp_to_limits(angles).to(device)


# ----------------------------------------------------------------------------- global pose

def axis_angle_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: axis [..., 3] (unit), angle [...] -> rotation [..., 3, 3]."""
    x, y, z = axis.unbind(-1)
    c, s = torch.cos(angle), torch.sin(angle)
    t = 1 - c
    rows = [t * x * x + c, t * x * y - s * z, t * x * z + s * y,
            t * x * y + s * z, t * y * y + c, t * y * z - s * x,
            t * x * z - s * y, t * y * z + s * x, t * z * z + c]
    return torch.stack(rows, dim=-1).reshape(*angle.shape, 3, 3)


def forearm_frame(direction: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Forearm frame in camera coordinates: y along the forearm (elbow -> wrist),
    z = palm normal, rolled by `roll` (rad) about y from 'palm facing the camera'.

    direction [B, 3] unit, roll [B] -> [B, 3, 3] with columns (x, y, z).
    """
    y = direction
    toward_camera = torch.zeros_like(y)
    toward_camera[:, 2] = -1.0
    z = toward_camera - (toward_camera * y).sum(-1, keepdim=True) * y
    # A forearm pointing (almost) along the optical axis has no 'facing the camera'
    # direction: use image-up as the reference palm normal instead.
    fallback = torch.zeros_like(y)
    fallback[:, 1] = -1.0
    fallback = fallback - (fallback * y).sum(-1, keepdim=True) * y
    degenerate = z.norm(dim=-1, keepdim=True) < 1e-3
    z = torch.where(degenerate, fallback, z)
    z = z / z.norm(dim=-1, keepdim=True)
    x = torch.linalg.cross(y, z, dim=-1)
    frame = torch.stack([x, y, z], dim=-1)                            # [B, 3, 3]
    return axis_angle_matrix(y, roll) @ frame


def hand_rotation(arm_frame: torch.Tensor, wrist_flex: torch.Tensor, wrist_dev: torch.Tensor) -> torch.Tensor:
    """Hand frame = forearm frame . Rx(wrist flexion, + toward the palm) . Rz(-deviation,
    + toward the thumb). [B, 3, 3], [B], [B] -> [B, 3, 3]."""
    from .hand import _rot_x, _rot_z
    return arm_frame @ _rot_x(wrist_flex) @ _rot_z(-wrist_dev)


def direction_from_angles(azimuth: torch.Tensor, elevation: torch.Tensor) -> torch.Tensor:
    """Forearm direction (elbow -> wrist) from its azimuth in the image (0 = pointing up
    the image, + toward image right) and elevation (+ = wrist farther from the camera
    than the elbow). [B], [B] -> [B, 3] unit."""
    return torch.stack([torch.sin(azimuth) * torch.cos(elevation),
                        -torch.cos(azimuth) * torch.cos(elevation),
                        torch.sin(elevation)], dim=-1)


# Palm facing the camera, fingers pointing up the image (hand frame -> camera frame).
PALM_TO_CAMERA = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


def hand_keypoints(angles, handedness: str = "right", rotation=None, wrist_xyz=(0.0, 80.0, 450.0),
                   size: float = 1.0) -> np.ndarray:
    """numpy convenience: joint angles [20] or [N, 20] (rad) -> keypoints [21, 3] or
    [N, 21, 3] in mm, camera optical frame, canonical order, for an average hand scaled by
    `size`. Default pose: palm facing the camera, fingers up, wrist 450 mm away."""
    from .hand import HandShape, forward_kinematics

    angles = np.asarray(angles, dtype=np.float64)
    single = angles.ndim == 1
    angles = torch.as_tensor(angles.reshape(-1, NUM_ANGLES))
    n = angles.shape[0]
    rotation = PALM_TO_CAMERA if rotation is None else np.asarray(rotation, dtype=np.float64)
    rot = torch.as_tensor(np.broadcast_to(rotation, (n, 3, 3)).copy())
    wrist = torch.as_tensor(np.broadcast_to(np.asarray(wrist_xyz, dtype=np.float64), (n, 3)).copy())
    if handedness not in ("right", "left"):
        raise ValueError(f"handedness must be 'right' or 'left', got {handedness!r}")
    is_left = torch.full((n,), handedness == "left")
    shape = HandShape.average(n, dtype=torch.float64)
    shape.size = shape.size * float(size)
    xyz = forward_kinematics(angles, rot, wrist, is_left, shape).numpy()
    return xyz[0] if single else xyz

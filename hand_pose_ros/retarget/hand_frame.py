"""A hand-attached frame from the palm keypoints, so retargeting ignores where the camera is.

Axes (the same for both hands):
  origin  the wrist keypoint
  x       distal: wrist -> middle-finger MCP
  y       radial: from the pinky side toward the index/thumb side, in the palm plane
  z       dorsal: out of the back of the hand (so fingers flex toward -z)

For a right hand (x, y, z) is a right-handed frame. For a left hand the same construction
gives a left-handed frame in camera coordinates: expressing keypoints in it mirrors the left
hand into a right hand, so mirrored poses of the two hands give identical coordinates and
therefore identical robot commands. Our robot URDFs use this frame as their base frame.
"""
from __future__ import annotations

import numpy as np

from hand_pose_ros.keypoints import CANONICAL, indices

HANDEDNESS = ("right", "left")

PALM_KEYPOINTS = ("wrist", "index_mcp", "middle_mcp", "pinky_mcp")  # the only keypoints hand_frame reads
WRIST, INDEX_MCP, MIDDLE_MCP, PINKY_MCP = (int(i) for i in indices(PALM_KEYPOINTS))

_EPS = 1e-9


def check_handedness(handedness: str) -> str:
    """'Right' / 'LEFT' -> 'right' / 'left'; ValueError for anything else."""
    h = str(handedness).strip().lower()
    if h not in HANDEDNESS:
        raise ValueError(f"handedness must be one of {HANDEDNESS}, got {handedness!r}")
    return h


def _unit(v: np.ndarray) -> np.ndarray:
    """Normalise along the last axis; NaN where the vector is (near) zero or not finite."""
    with np.errstate(invalid="ignore", over="ignore"):
        n = np.linalg.norm(v, axis=-1, keepdims=True)
        return np.where(n > _EPS, v / np.where(n > _EPS, n, 1.0), np.nan)


def hand_frame(keypoints, handedness: str) -> tuple[np.ndarray, np.ndarray]:
    """Origin [..., 3] and axes [..., 3, 3] (columns x, y, z, in input coordinates).

    keypoints: [..., 21, 3] in CANONICAL order. Where the palm keypoints are missing or
    degenerate (NaN, inf, coincident, collinear) the frame is NaN.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape[-2:] != (len(CANONICAL), 3):
        raise ValueError(f"keypoints must have shape [..., {len(CANONICAL)}, 3], got {kp.shape}")
    mirror = check_handedness(handedness) == "left"
    with np.errstate(invalid="ignore", over="ignore"):
        origin = kp[..., WRIST, :]
        x = _unit(kp[..., MIDDLE_MCP, :] - origin)
        across = kp[..., INDEX_MCP, :] - kp[..., PINKY_MCP, :]
        y = _unit(across - np.sum(across * x, axis=-1, keepdims=True) * x)
        z = np.cross(x, y)
    if mirror:
        z = -z
    axes = np.stack([x, y, z], axis=-1)  # [..., 3, 3], columns are the axes
    # All or nothing: a frame with any undefined axis is undefined.
    ok = np.isfinite(axes).all(axis=(-2, -1)) & np.isfinite(origin).all(axis=-1)
    return np.where(ok[..., None], origin, np.nan), np.where(ok[..., None, None], axes, np.nan)


def to_hand_frame(keypoints, handedness: str) -> np.ndarray:
    """Keypoints [..., 21, 3] expressed in the hand frame (wrist at the origin)."""
    origin, axes = hand_frame(keypoints, handedness)
    kp = np.asarray(keypoints, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        # p_local = axes^T (p - origin), for every keypoint
        return np.einsum("...ji,...kj->...ki", axes, kp - origin[..., None, :])

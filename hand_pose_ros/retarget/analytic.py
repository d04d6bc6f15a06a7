"""Analytic retargeting: measure human joint angles from keypoint geometry in the hand frame,
then map them to robot joints through the per-robot linear table of the robot spec.

Human angles (rad, FEATURES in spec.py), all in the hand frame (x distal, y radial, z dorsal):
  <finger>_mcp   MCP flexion: the proximal bone's angle below the palm plane, atan2(-b1z, b1x)
  <finger>_abd   MCP abduction: asin(b1y) of the unit proximal bone (+ = toward the thumb).
                 This split (flexion, then abduction about the flexed bone) stays well defined
                 at any flexion and fades abduction out as a finger curls, as in human hands.
  <finger>_pip   PIP flexion: signed angle between proximal and middle bones (+ = toward palm)
  <finger>_dip   DIP flexion: signed angle between middle and distal bones
  thumb_cmc_abd     palmar abduction: the thumb metacarpal's angle out of the palm plane
  thumb_cmc_spread  the metacarpal's in-plane angle from the distal axis toward radial
                    (about 0.85 with the hand open, near 0 with the thumb across the palm)
  thumb_mcp, thumb_ip  unsigned bend between consecutive thumb bones
Robot joint = offset + sum(gain * feature) over its table entry. Vectorised over frames.
"""
from __future__ import annotations

import numpy as np

from hand_pose_ros.keypoints import indices
from hand_pose_ros.retarget.base import Retargeter
from hand_pose_ros.retarget.hand_frame import check_handedness, to_hand_frame
from hand_pose_ros.retarget.spec import FEATURES, LONG_FINGERS, RobotHandSpec

# Keypoint indices per chain, root first: [MCP, PIP, DIP, TIP] and the thumb's [CMC, MCP, IP, TIP].
_FINGER_CHAINS = np.stack([indices([f"{f}_{j}" for j in ("mcp", "pip", "dip", "tip")])
                           for f in LONG_FINGERS])  # [4, 4]
_THUMB_CHAIN = indices(["thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip"])  # [4]
_Y = np.array([0.0, 1.0, 0.0])


def _unit(v: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        n = np.linalg.norm(v, axis=-1, keepdims=True)
        return np.where(n > 1e-9, v / n, np.nan)


def _bend(a: np.ndarray, b: np.ndarray, axis: np.ndarray | None = None) -> np.ndarray:
    """Angle from unit vector a to b [...]; signed by the cross product's side of `axis`."""
    cross = np.cross(a, b)
    size = np.linalg.norm(cross, axis=-1)
    if axis is not None:
        size = np.where(np.sum(cross * axis, axis=-1) < 0, -size, size)
    return np.arctan2(size, np.sum(a * b, axis=-1))


def human_angles(local_keypoints) -> np.ndarray:
    """Hand-frame keypoints [..., 21, 3] -> human joint angles [..., len(FEATURES)]."""
    kp = np.asarray(local_keypoints, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        chains = kp[..., _FINGER_CHAINS, :]                      # [..., 4 fingers, 4 joints, 3]
        bones = _unit(np.diff(chains, axis=-2))                  # [..., 4, 3 bones, 3]
        b1, b2, b3 = bones[..., 0, :], bones[..., 1, :], bones[..., 2, :]
        mcp = np.arctan2(-b1[..., 2], b1[..., 0])                # [..., 4]
        abd = np.arcsin(np.clip(b1[..., 1], -1.0, 1.0))
        pip = _bend(b1, b2, _Y)
        dip = _bend(b2, b3, _Y)
        fingers = np.stack([abd, mcp, pip, dip], axis=-1)        # [..., 4, 4] in FEATURES order
        fingers = fingers.reshape(fingers.shape[:-2] + (16,))

        thumb = _unit(np.diff(kp[..., _THUMB_CHAIN, :], axis=-2))  # [..., 3 bones, 3]
        t0, t1, t2 = thumb[..., 0, :], thumb[..., 1, :], thumb[..., 2, :]
        cmc_abd = np.arctan2(-t0[..., 2], np.hypot(t0[..., 0], t0[..., 1]))
        cmc_spread = np.arctan2(t0[..., 1], t0[..., 0])
        thumb_angles = np.stack([cmc_abd, cmc_spread, _bend(t0, t1), _bend(t1, t2)], axis=-1)
    return np.concatenate([fingers, thumb_angles], axis=-1)


class AnalyticRetargeter(Retargeter):
    """Stateless and vectorised: about 0.1 ms a frame, no URDF needed."""

    def __init__(self, spec: RobotHandSpec):
        self.spec = spec
        self.joint_names = spec.joint_names
        self._gains, self._offsets = spec.analytic_matrix()      # [F, N], [N]
        self._uses = (self._gains != 0).astype(np.float64)       # which features feed each joint
        assert self._gains.shape[0] == len(FEATURES)

    def retarget(self, keypoints_xyz, handedness: str) -> np.ndarray:
        return self.retarget_batch(np.asarray(keypoints_xyz)[None], handedness)[0]

    def retarget_batch(self, keypoints_xyz, handedness: str) -> np.ndarray:
        """[B, 21, 3] keypoints -> [B, N] joint angles (NaN where a joint's inputs are missing)."""
        check_handedness(handedness)
        features = human_angles(to_hand_frame(keypoints_xyz, handedness))  # [B, F]
        missing = ~np.isfinite(features)
        q = np.where(missing, 0.0, features) @ self._gains + self._offsets
        # A joint is missing when any feature it uses is (NaN * 0 would poison every joint).
        q[(missing.astype(np.float64) @ self._uses) > 0] = np.nan
        return q

"""Human hand keypoints for retargeting tests, the benchmark and the fingertip-error report,
from the project's articulated hand model (hand_pose_ros.data.synthetic: named poses and
forward kinematics), expressed in the retargeting hand frame.

The synthetic model's hand frame is x radial, y distal, z palmar (mm); the retargeting hand
frame (hand_frame.py) is x distal, y radial, z dorsal (m). `named_pose` and
`motion_sequence` return keypoints in the latter, wrist at the origin; a left hand is the
mirror image (y negated). `place_in_camera` then puts a hand
anywhere in front of a camera.
"""
from __future__ import annotations

import numpy as np

from hand_pose_ros.retarget.hand_frame import check_handedness, to_hand_frame

# synthetic hand frame -> retargeting hand frame: (x, y, z) -> (y, x, -z), a proper rotation
SYNTHETIC_TO_HAND_FRAME = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
MOTION_ORDER = ("open", "pinch", "open", "fist", "point", "relaxed", "pinch", "grasp", "spread", "open")


def hand_keypoints(angles, handedness: str = "right") -> np.ndarray:
    """Synthetic-model joint angles [20] or [T, 20] (rad) -> keypoints [21, 3] or [T, 21, 3]
    in metres in the retargeting hand frame, for the average hand."""
    import torch

    from hand_pose_ros.data.synthetic import forward_kinematics

    angles = np.asarray(angles, dtype=np.float64)
    single = angles.ndim == 1
    batch = torch.as_tensor(angles.reshape(-1, angles.shape[-1]))
    n = batch.shape[0]
    rotation = torch.as_tensor(np.broadcast_to(SYNTHETIC_TO_HAND_FRAME, (n, 3, 3)).copy())
    xyz_mm = forward_kinematics(batch, rotation, torch.zeros(n, 3, dtype=torch.float64)).numpy()
    # The model's frame is anatomical; re-express in the frame the keypoints themselves define
    # (a few degrees apart) so the hand-frame coordinates are exact.
    xyz = to_hand_frame(xyz_mm / 1000.0, "right")
    if check_handedness(handedness) == "left":
        xyz[..., 1] *= -1.0  # the mirror image
    return xyz[0] if single else xyz


def named_pose(name: str, handedness: str = "right") -> np.ndarray:
    """Keypoints [21, 3] (m, hand frame) of a named pose of the synthetic hand model:
    open, spread, fist, point, pinch (thumb tip on index tip), grasp, relaxed."""
    from hand_pose_ros.data.synthetic import named_pose as synthetic_pose

    return hand_keypoints(synthetic_pose(name, check_handedness(handedness)), handedness)


def motion_sequence(n_frames: int, fps: float = 30.0, seed: int = 0, handedness: str = "right") -> np.ndarray:
    """A smooth motion [n_frames, 21, 3] (m, hand frame): the hand moves through the named
    poses of MOTION_ORDER, about one second per move, with a small random wobble on every
    joint (clipped to the model's joint limits)."""
    from hand_pose_ros.data.synthetic import LIMITS_RAD
    from hand_pose_ros.data.synthetic import named_pose as synthetic_pose

    rng = np.random.default_rng(seed)
    poses = np.stack([synthetic_pose(name) for name in MOTION_ORDER])       # [P, 20]
    t = np.arange(n_frames) / fps
    segment = t.astype(int) % (len(MOTION_ORDER) - 1)
    ease = 0.5 - 0.5 * np.cos(np.pi * (t - t.astype(int)))                   # [T] in and out
    angles = poses[segment] + ease[:, None] * (poses[segment + 1] - poses[segment])
    phase = rng.uniform(0, 2 * np.pi, angles.shape[1])
    angles = angles + 0.08 * np.sin(2 * np.pi * 0.7 * t[:, None] + phase)  # [T, 20]
    limits = LIMITS_RAD.numpy()
    return hand_keypoints(np.clip(angles, limits[:, 0], limits[:, 1]), handedness)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix [3, 3]."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def place_in_camera(keypoints, rotation, translation) -> np.ndarray:
    """Hand-frame keypoints [..., 21, 3] -> camera coordinates: R p + t."""
    return np.asarray(keypoints) @ np.asarray(rotation).T + np.asarray(translation)

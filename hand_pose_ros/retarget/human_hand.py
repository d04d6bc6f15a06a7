"""A small kinematic human hand: joint angles -> the 21 canonical keypoints (metres).

Used by retargeting tests, the retargeting benchmark and the fingertip-error report to make
known poses (open, fist, pinch, point) and smooth motion. Keypoints are produced in the hand
frame of `hand_frame.py` (x distal, y radial, z dorsal, wrist at the origin) for a right
hand; a left hand is its mirror image (y negated). `place_in_camera` then puts the hand
anywhere in front of a camera.

Bone lengths are those of an average adult hand (about 19 cm wrist to middle fingertip),
rounded from anthropometric tables; exactness does not matter for retargeting tests.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hand_pose_ros.keypoints import CANONICAL, FINGERS
from hand_pose_ros.retarget.hand_frame import check_handedness

LONG_FINGERS = FINGERS[1:]

# MCP positions in the hand frame (m). The middle MCP lies on +x by the frame's definition.
MCP_POSITION = {
    "index": (0.088, 0.024, 0.0),
    "middle": (0.092, 0.0, 0.0),
    "ring": (0.086, -0.020, 0.0),
    "pinky": (0.076, -0.038, 0.0),
}
# Rest direction of each finger in the palm plane (rad, + = toward the thumb): fingers fan out.
REST_SPLAY = {"index": 0.10, "middle": 0.0, "ring": -0.10, "pinky": -0.20}
# Proximal, middle, distal phalanx lengths (m).
PHALANGES = {
    "index": (0.043, 0.025, 0.021),
    "middle": (0.047, 0.029, 0.022),
    "ring": (0.044, 0.028, 0.022),
    "pinky": (0.035, 0.021, 0.020),
}
THUMB_CMC = (0.022, 0.022, -0.008)
THUMB_BONES = (0.043, 0.033, 0.028)  # metacarpal, proximal, distal phalanx (m)
THUMB_REST_ANGLE = 0.85  # rad from the distal axis toward radial, in the palm plane


def _rot_y(a: float) -> np.ndarray:  # + flexes x toward -z (palmar)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> np.ndarray:  # + turns x toward +y (radial)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class HandAngles:
    """Human joint angles (rad). Fingers: (abduction, MCP, PIP, DIP) with abduction + toward the
    thumb and flexion + toward the palm. Thumb: (CMC palmar abduction, CMC flexion across the
    palm, MCP flexion, IP flexion)."""
    fingers: dict = field(default_factory=lambda: {f: (0.0, 0.0, 0.0, 0.0) for f in LONG_FINGERS})
    thumb: tuple = (0.0, 0.0, 0.0, 0.0)

    def blend(self, other: "HandAngles", w: float) -> "HandAngles":
        mix = lambda a, b: tuple((1 - w) * np.asarray(a) + w * np.asarray(b))  # noqa: E731
        return HandAngles({f: mix(self.fingers[f], other.fingers[f]) for f in LONG_FINGERS},
                          mix(self.thumb, other.thumb))


_CURL = (0.0, 1.45, 1.75, 0.95)  # a closed finger
NAMED_POSES = {
    "open": HandAngles(thumb=(0.15, 0.0, 0.05, 0.05)),
    "fist": HandAngles({f: _CURL for f in LONG_FINGERS}, thumb=(0.55, 0.75, 0.55, 0.45)),
    # thumb tip meets index tip (8 mm apart), the other fingers stay relaxed
    "pinch": HandAngles({"index": (0.0, 1.02, 0.65, 0.39), "middle": (0.0, 0.25, 0.3, 0.15),
                         "ring": (0.0, 0.25, 0.3, 0.15), "pinky": (0.0, 0.25, 0.3, 0.15)},
                        thumb=(0.75, 0.44, 0.22, 0.3)),
    "point": HandAngles({"index": (0.0, 0.0, 0.0, 0.0), "middle": _CURL, "ring": _CURL,
                         "pinky": _CURL}, thumb=(0.55, 0.75, 0.55, 0.45)),
}


def hand_keypoints(angles: HandAngles, handedness: str = "right") -> np.ndarray:
    """The 21 canonical keypoints [21, 3] of a hand with these joint angles, in the hand frame."""
    points = {"wrist": np.zeros(3)}
    for f in LONG_FINGERS:
        abd, mcp, pip, dip = angles.fingers[f]
        pos = np.array(MCP_POSITION[f], dtype=np.float64)
        points[f"{f}_mcp"] = pos
        rot = _rot_z(REST_SPLAY[f] + abd) @ _rot_y(mcp)
        for joint, length, bend in zip(("pip", "dip", "tip"), PHALANGES[f], (pip, dip, None)):
            pos = pos + length * rot[:, 0]
            points[f"{f}_{joint}"] = pos
            if bend is not None:
                rot = rot @ _rot_y(bend)
    cmc_abd, cmc_flex, mcp, ip = angles.thumb
    pos = np.array(THUMB_CMC, dtype=np.float64)
    points["thumb_cmc"] = pos
    # The thumb leaves the palm plane (palmar abduction) and swings across it (CMC flexion);
    # its MCP and IP flex about the thumb's own palm-side axis, curling the tip toward the fingers.
    rot = _rot_z(THUMB_REST_ANGLE - cmc_flex) @ _rot_y(cmc_abd)
    for joint, length, bend in zip(("mcp", "ip", "tip"), THUMB_BONES, (mcp, ip, None)):
        pos = pos + length * rot[:, 0]
        points[f"thumb_{joint}"] = pos
        if bend is not None:
            rot = rot @ _rot_z(-bend)
    kp = np.stack([points[name] for name in CANONICAL])
    if check_handedness(handedness) == "left":
        kp[:, 1] *= -1.0  # the mirror image
    return kp


def named_pose(name: str, handedness: str = "right") -> np.ndarray:
    """Keypoints [21, 3] (hand frame) of one of NAMED_POSES."""
    if name not in NAMED_POSES:
        raise ValueError(f"unknown pose {name!r}; known: {sorted(NAMED_POSES)}")
    return hand_keypoints(NAMED_POSES[name], handedness)


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


def motion_sequence(n_frames: int, fps: float = 30.0, seed: int = 0,
                    handedness: str = "right") -> np.ndarray:
    """A smooth synthetic motion [n_frames, 21, 3] (hand frame): the hand moves between the
    named poses (about one second per move) with a small random wobble on every joint."""
    rng = np.random.default_rng(seed)
    order = ["open", "pinch", "open", "fist", "point", "open", "pinch", "fist", "open"]
    wobble_phase = rng.uniform(0, 2 * np.pi, size=(4, 4 + 1))
    frames = []
    for i in range(n_frames):
        t = i / fps
        seg = int(t) % (len(order) - 1)
        w = 0.5 - 0.5 * np.cos(np.pi * (t - int(t)))  # ease in and out of each move
        angles = NAMED_POSES[order[seg]].blend(NAMED_POSES[order[seg + 1]], w)
        wobble = 0.08 * np.sin(2 * np.pi * 0.7 * t + wobble_phase)  # [4 joints, 5 fingers]
        fingers = {f: tuple(np.asarray(angles.fingers[f]) + wobble[:, k] * (0.3, 1, 1, 1))
                   for k, f in enumerate(LONG_FINGERS)}
        thumb = tuple(np.asarray(angles.thumb) + wobble[:, 4])
        frames.append(hand_keypoints(HandAngles(fingers, thumb), handedness))
    return np.stack(frames)

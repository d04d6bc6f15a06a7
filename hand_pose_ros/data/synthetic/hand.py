"""An articulated 21-keypoint hand: bone lengths, joint limits, forward kinematics.

Hand frame (right hand): origin at the wrist keypoint, +y distal (wrist -> middle MCP),
+x radial (toward the thumb), +z palmar (out of the palm). A left hand is the mirror
image: it is computed as a right hand and its x is negated before the global rotation, so
in a left hand's own frame +x points toward the little finger.

Joint angles: a [..., 20] tensor in radians, five chains of four, chain order thumb,
index, middle, ring, pinky (ANGLE_NAMES spells it out). Each chain is
(flex1, abd, flex2, flex3):
- fingers: (MCP flexion, MCP abduction, PIP flexion, DIP flexion)
- thumb:   (CMC flexion, CMC abduction, MCP flexion, IP flexion)
Flexion > 0 curls toward the palm (a finger's bone turns from +y toward +z; the thumb
flexes across the palm toward the little finger). Finger abduction > 0 turns the finger
toward the thumb side; thumb abduction > 0 moves the thumb away from the index finger.
All zeros is a flat open hand with the fingers slightly fanned and the thumb at ~45 deg.

Global pose: rotation R [..., 3, 3] (hand frame -> camera optical frame: x right, y down,
z forward) and the wrist position [..., 3] in mm: keypoint = R @ (M @ p_local) + wrist
with M = diag(-1, 1, 1) for a left hand, identity for a right one.

Lengths are adult-hand averages (mm) rounded from anthropometric tables (joint centre to
joint centre; the last bone ends at the fingertip); `HandShape` scales them by a global
size factor with per-finger and palm factors. This capsule-free keypoint hand is what the
retargeting fixtures use (poses.hand_keypoints); the synthetic images use the mesh hand
(mesh_hand.py), which shares these angles, limits and the mirror convention.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...keypoints import CANONICAL, CANONICAL_EDGES, FINGERS, finger_of

ANGLE_NAMES = (
    "thumb_cmc_flex", "thumb_cmc_abd", "thumb_mcp_flex", "thumb_ip_flex",
    "index_mcp_flex", "index_mcp_abd", "index_pip_flex", "index_dip_flex",
    "middle_mcp_flex", "middle_mcp_abd", "middle_pip_flex", "middle_dip_flex",
    "ring_mcp_flex", "ring_mcp_abd", "ring_pip_flex", "ring_dip_flex",
    "pinky_mcp_flex", "pinky_mcp_abd", "pinky_pip_flex", "pinky_dip_flex",
)
NUM_ANGLES = len(ANGLE_NAMES)

# Joint limits in degrees, per chain (flex1, abd, flex2, flex3). Abduction ranges are
# asymmetric: each finger spreads further away from the middle finger than toward it.
_LIMITS_DEG = {
    "thumb": ((-20, 55), (-15, 60), (-10, 60), (-15, 80)),
    "index": ((-25, 90), (-15, 25), (0, 110), (-5, 85)),
    "middle": ((-25, 90), (-15, 15), (0, 110), (-5, 85)),
    "ring": ((-25, 90), (-20, 12), (0, 110), (-5, 85)),
    "pinky": ((-25, 90), (-25, 15), (0, 110), (-5, 85)),
}
LIMITS_DEG = torch.tensor([_LIMITS_DEG[f] for f in FINGERS], dtype=torch.float64).reshape(NUM_ANGLES, 2)
LIMITS_RAD = torch.deg2rad(LIMITS_DEG)      # [20, 2] (low, high)

# Base of each chain in the hand frame (mm, size 1): the thumb CMC and the four MCPs.
CHAIN_BASE_MM = torch.tensor([
    [22.0, 24.0, 6.0],      # thumb CMC: radial, near the wrist, a little palmar
    [26.0, 88.0, 0.0],      # index MCP
    [4.0, 92.0, 0.0],       # middle MCP
    [-15.0, 87.0, 1.5],     # ring MCP (the palm arches a little)
    [-32.0, 78.0, 4.0],     # pinky MCP
], dtype=torch.float64)

# Bone lengths per chain (mm): thumb metacarpal, proximal, distal; fingers proximal,
# middle, distal phalanx.
BONE_MM = torch.tensor([
    [44.0, 32.0, 27.0],
    [42.0, 25.0, 21.0],
    [46.0, 28.0, 22.0],
    [43.0, 27.0, 22.0],
    [34.0, 20.0, 19.0],
], dtype=torch.float64)

# Rest splay of the fingers in the palm plane (deg, + toward the thumb).
_FINGER_SPLAY_DEG = (8.0, 0.0, -6.0, -14.0)
# Thumb rest direction: 45 deg from distal toward radial, 20 deg out of the palm.
_THUMB_REST_DIR = (math.sin(math.radians(45)) * math.cos(math.radians(20)),
                   math.cos(math.radians(45)) * math.cos(math.radians(20)),
                   math.sin(math.radians(12)))
# The direction the thumb pad faces at rest (its flexion direction): ulnar and palmar.
_THUMB_PAD_DIR = (-0.55, 0.0, 0.84)

# Points of the hand frame that are not keypoints but shape the surface (mm, size 1).
WRIST_RADIAL_MM = (20.0, 2.0, 0.0)
WRIST_ULNAR_MM = (-22.0, 2.0, 0.0)


def _chain_base_rotations() -> torch.Tensor:
    """[5, 3, 3] rest frame of each chain: columns = the chain's x (flexion axis),
    y (bone direction), z (flexion direction), in the hand frame."""
    frames = []
    y = torch.tensor(_THUMB_REST_DIR, dtype=torch.float64)
    y = y / y.norm()
    z = torch.tensor(_THUMB_PAD_DIR, dtype=torch.float64)
    z = z - (z @ y) * y
    z = z / z.norm()
    frames.append(torch.stack([torch.linalg.cross(y, z), y, z], dim=1))
    for splay in _FINGER_SPLAY_DEG:
        frames.append(_rot_z(torch.tensor(-math.radians(splay), dtype=torch.float64)))
    return torch.stack(frames)


def _rot_x(a: torch.Tensor) -> torch.Tensor:
    """[...] angles -> [..., 3, 3]; + turns +y toward +z."""
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([o, z, z, z, c, -s, z, s, c], dim=-1).reshape(*a.shape, 3, 3)


def _rot_z(a: torch.Tensor) -> torch.Tensor:
    """[...] angles -> [..., 3, 3]; + turns +x toward +y (so +y toward -x)."""
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, -s, z, s, c, z, z, z, o], dim=-1).reshape(*a.shape, 3, 3)


CHAIN_BASE_ROT = _chain_base_rotations()     # [5, 3, 3]


@dataclass
class HandShape:
    """Per-hand proportions. size [B] (global factor), finger_scale [B, 5] (bone lengths
    per chain), palm_scale [B, 2] (palm width x, palm length y)."""
    size: torch.Tensor
    finger_scale: torch.Tensor
    palm_scale: torch.Tensor

    @classmethod
    def average(cls, batch: int = 1, device="cpu", dtype=torch.float32) -> "HandShape":
        return cls(torch.ones(batch, device=device, dtype=dtype),
                   torch.ones(batch, 5, device=device, dtype=dtype),
                   torch.ones(batch, 2, device=device, dtype=dtype))

    def __len__(self) -> int:
        return int(self.size.shape[0])


def clamp_to_limits(angles: torch.Tensor) -> torch.Tensor:
    """[..., 20] radians -> the same, clipped to LIMITS_RAD."""
    limits = LIMITS_RAD.to(device=angles.device, dtype=angles.dtype)
    return torch.maximum(torch.minimum(angles, limits[:, 1]), limits[:, 0])


def local_keypoints(angles: torch.Tensor, shape: HandShape) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-hand keypoints in the hand frame (mm).

    angles [B, 20] rad -> (keypoints [B, 21, 3] canonical order, extra [B, 3, 3] with rows
    palm_center, wrist_radial, wrist_ulnar).
    """
    if angles.shape[-1] != NUM_ANGLES:
        raise ValueError(f"joint angles must have {NUM_ANGLES} values, got shape {tuple(angles.shape)}")
    device, dtype = angles.device, angles.dtype
    batch = angles.shape[0]
    chain = angles.reshape(batch, 5, 4)                                  # [B, 5, 4]
    size = shape.size.to(dtype)[:, None, None]                           # [B, 1, 1]
    palm = torch.ones(batch, 3, device=device, dtype=dtype)
    palm[:, :2] = shape.palm_scale.to(dtype)
    base = CHAIN_BASE_MM.to(device, dtype)[None] * palm[:, None, :] * size          # [B, 5, 3]
    bones = BONE_MM.to(device, dtype)[None] * shape.finger_scale.to(dtype)[:, :, None] * size  # [B, 5, 3]

    # R1 = B . Rz(-abd) . Rx(flex1); each later joint flexes about the same local x.
    rot = CHAIN_BASE_ROT.to(device, dtype)[None] @ _rot_z(-chain[..., 1]) @ _rot_x(chain[..., 0])
    points = [base]
    for k, flex in enumerate((None, chain[..., 2], chain[..., 3])):
        if flex is not None:
            rot = rot @ _rot_x(flex)
        points.append(points[-1] + rot[..., :, 1] * bones[..., k:k + 1])    # along the bone's y
    fingers = torch.stack(points, dim=2)                                  # [B, 5, 4, 3]
    wrist = torch.zeros(batch, 1, 3, device=device, dtype=dtype)
    keypoints = torch.cat([wrist, fingers.reshape(batch, 20, 3)], dim=1)  # [B, 21, 3]

    radial = torch.tensor(WRIST_RADIAL_MM, device=device, dtype=dtype) * palm * size[:, 0]
    ulnar = torch.tensor(WRIST_ULNAR_MM, device=device, dtype=dtype) * palm * size[:, 0]
    mcps = keypoints[:, [5, 9, 13, 17]]
    palm_center = 0.5 * mcps.mean(dim=1)            # halfway between the wrist and the MCP row
    extra = torch.stack([palm_center, radial, ulnar], dim=1)             # [B, 3, 3]
    return keypoints, extra


def mirror_matrix(is_left: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """[B] bool -> [B, 3, 3] diag(-1, 1, 1) for left hands, identity for right ones."""
    m = torch.ones(is_left.shape[0], 3, device=is_left.device, dtype=dtype)
    m[:, 0] = torch.where(is_left, -1.0, 1.0).to(dtype)
    return torch.diag_embed(m)


def forward_kinematics(angles: torch.Tensor, rotation: torch.Tensor, wrist_xyz: torch.Tensor,
                       is_left: torch.Tensor | None = None, shape: HandShape | None = None,
                       with_extra: bool = False):
    """Joint angles + global pose -> 21 keypoints xyz (mm) in the camera optical frame.

    angles [B, 20] rad, rotation [B, 3, 3] (hand frame -> camera), wrist_xyz [B, 3] mm,
    is_left [B] bool (default all right hands), shape (default the average hand).
    Returns keypoints [B, 21, 3] in canonical order (and extra [B, 3, 3]: palm_center,
    wrist_radial, wrist_ulnar, when with_extra).
    """
    batch = angles.shape[0]
    if rotation.shape != (batch, 3, 3) or wrist_xyz.shape != (batch, 3):
        raise ValueError(f"rotation must be [{batch}, 3, 3] and wrist_xyz [{batch}, 3], got "
                         f"{tuple(rotation.shape)} and {tuple(wrist_xyz.shape)}")
    if shape is None:
        shape = HandShape.average(batch, angles.device, angles.dtype)
    if is_left is None:
        is_left = torch.zeros(batch, dtype=torch.bool, device=angles.device)
    local, extra = local_keypoints(angles, shape)
    to_camera = rotation.to(angles.dtype) @ mirror_matrix(is_left, angles.dtype)   # [B, 3, 3]
    keypoints = local @ to_camera.transpose(1, 2) + wrist_xyz.to(angles.dtype)[:, None, :]
    if not with_extra:
        return keypoints
    return keypoints, extra @ to_camera.transpose(1, 2) + wrist_xyz.to(angles.dtype)[:, None, :]


# Parent of each keypoint after the wrist, from the skeleton's chain edges (wrist -> finger
# base, then along the finger; the MCP-row edges join two fingers and are not chain bones).
_PARENT_OF = {b: a for a, b in CANONICAL_EDGES if a == "wrist" or finger_of(a) == finger_of(b)}
_BONE_PARENT = torch.tensor([CANONICAL.index(_PARENT_OF[name]) for name in CANONICAL[1:]])   # [20]


def bone_lengths(keypoints: torch.Tensor) -> torch.Tensor:
    """[..., 21, 3] -> [..., 20] length of each chain bone (wrist->thumb_cmc, cmc->mcp, ...)
    in the order of CANONICAL[1:] (each keypoint's distance to its parent)."""
    child = torch.arange(1, len(CANONICAL))
    return (keypoints[..., child.to(keypoints.device), :]
            - keypoints[..., _BONE_PARENT.to(keypoints.device), :]).norm(dim=-1)


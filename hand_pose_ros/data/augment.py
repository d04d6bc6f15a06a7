"""Training augmentation of normalised crops and labels, in torch on any device (srnet.md).

Per sample, uniformly at random:
- in-plane rotation by +-rotation_deg about the crop centre (bilinear, border 0);
- scale s in scale_range on the plane coordinates and on the centred depth (a hand s times
  larger, or equivalently a cube s times smaller);
- a centre shift of up to +-shift_mm along each of x, y, z: the hand moves by that much
  inside the cube, as if the localiser had missed its centre.

No mirroring, on purpose: a mirrored left hand is a right hand, so a flip would have to flip
the handedness label too (rotations and positive scales keep it).

Images and labels are moved by the same transform. Labels map to crop pixels through
crop.label_to_crop_pixels: exactly when the crops' `box` is given (pass it); without it the
nominal map px = 128*u_n + 63.5 is used, whose centre can be off by up to 0.5 px, so labels
drift by up to ~0.3 px at +-30 deg (~1 px at 180 deg). The random numbers come from the given
torch.Generator only, so a seeded generator gives the same batch on every device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .crop import label_pixel_affine


@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 30.0                  # uniform in [-R, R]; up to 180
    scale_range: tuple[float, float] = (0.8, 1.2)
    shift_mm: float = 5.0                       # uniform in [-shift, shift] per axis

    def __post_init__(self):
        if not 0 <= self.rotation_deg <= 180:
            raise ValueError(f"rotation_deg must be within [0, 180], got {self.rotation_deg}")
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must be 0 < low <= high, got {self.scale_range}")
        if self.shift_mm < 0:
            raise ValueError(f"shift_mm must be >= 0, got {self.shift_mm}")


@dataclass
class AugmentParams:
    """The transform drawn for each sample (kept so tests and logs can inspect it)."""
    angle_rad: torch.Tensor    # [B]
    scale: torch.Tensor        # [B]
    shift_norm: torch.Tensor   # [B, 3] shift in normalised label units (u_n, v_n, d_n)


def sample_params(batch: int, config: AugmentConfig, half_cube_mm, generator=None,
                  device="cpu") -> AugmentParams:
    """Draw one transform per sample from `generator` (on its own device, then moved)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(batch, 5, generator=generator, device=gen_device, dtype=torch.float64)
    u = u.to(device)
    angle = (2 * u[:, 0] - 1) * math.radians(config.rotation_deg)
    low, high = config.scale_range
    scale = low + (high - low) * u[:, 1]
    shift_mm = (2 * u[:, 2:5] - 1) * config.shift_mm                      # [B, 3] mm
    cube = torch.as_tensor(half_cube_mm, device=device, dtype=torch.float64).expand(batch)
    # A plane shift of t mm is t*f/d px and the box is about 2*cube*f/d px wide, so in
    # normalised units it is t / (2*cube), whatever the depth; depth is normalised by cube.
    shift_norm = shift_mm / torch.stack([2 * cube, 2 * cube, cube], dim=1)
    return AugmentParams(angle.float(), scale.float(), shift_norm.float())


def augment_batch(images: torch.Tensor, uvd_norm: torch.Tensor, generator=None,
                  config: AugmentConfig = AugmentConfig(), half_cube_mm=150.0, box=None,
                  params: AugmentParams | None = None):
    """Augment a batch. images [B, C, S, S] or [B, S, S] (normalised crops; every channel
    moves the same way), uvd_norm [B, J, 3]; box: the crops' box sizes [B] (optional,
    makes the label/image match exact). Returns (images, uvd_norm) of the same shapes."""
    squeeze = images.dim() == 3
    if squeeze:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must be [B, C, S, S] or [B, S, S], got {tuple(images.shape)}")
    batch, out = images.shape[0], images.shape[-1]
    if uvd_norm.dim() != 3 or uvd_norm.shape[0] != batch or uvd_norm.shape[2] != 3:
        raise ValueError(f"uvd_norm must be [B={batch}, J, 3], got {tuple(uvd_norm.shape)}")
    device = images.device
    if params is None:
        params = sample_params(batch, config, half_cube_mm, generator, device)

    cos, sin = torch.cos(params.angle_rad), torch.sin(params.angle_rad)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # [B, 2, 2]
    scale = params.scale

    # Label -> crop pixel affine (px = label*a + b); the transform acts on pixels about the
    # crop centre c, then the shift (given in label units) is a*t pixels.
    if box is None:
        a = torch.full((batch, 1, 1), float(out), device=device)
        b = torch.full((batch, 1, 1), (out - 1) / 2, device=device)
    else:
        a, b = label_pixel_affine(torch.as_tensor(box, device=device).reshape(batch), out,
                                   like=uvd_norm.float())
    centre = (out - 1) / 2
    shift_px = params.shift_norm[:, None, :2] * a                                           # [B, 1, 2]
    pixels = uvd_norm[..., :2].float() * a + b                                              # [B, J, 2]
    moved = scale[:, None, None] * (pixels - centre) @ rotation.transpose(1, 2) + centre + shift_px
    new_uv = (moved - b) / a
    new_d = uvd_norm[..., 2].float() * scale[:, None] + params.shift_norm[:, None, 2]
    new_uvd = torch.cat([new_uv, new_d[..., None]], dim=-1).to(uvd_norm.dtype)

    # Depth values first (hand pixels only; background stays exactly 0). A pixel pushed out
    # of the cube is dropped, as a real crop would drop it.
    values = images * scale[:, None, None, None] + params.shift_norm[:, 2, None, None, None]
    values = torch.where((images != 0) & (values.abs() < 1), values, torch.zeros((), device=device))

    # Inverse map for grid_sample (align_corners=False grid g = 2*(px - c)/S):
    # g_src = R^T (g_out - 2*shift_px/S) / s
    inverse = rotation.transpose(1, 2) / scale[:, None, None]                               # [B, 2, 2]
    offset = -(inverse @ (2 * shift_px.transpose(1, 2) / out))                              # [B, 2, 1]
    theta = torch.cat([inverse, offset], dim=2).to(values.dtype)                            # [B, 2, 3]
    grid = F.affine_grid(theta, list(values.shape), align_corners=False)
    warped = F.grid_sample(values, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if squeeze:
        warped = warped.squeeze(1)
    return warped, new_uvd

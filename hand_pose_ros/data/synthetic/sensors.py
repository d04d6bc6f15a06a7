"""Depth-camera models for the cameras users own, applied to rendered depth.

Every model is a batched torch function on CPU or CUDA:

    model(depth, generator, cam, strength=(0.0, 1.0), unit_mm=1.0) -> depth

- `depth` [B, H, W] float, mm, 0 = invalid: clean depth rendered over a window of the
  camera `cam` (an `Intrinsics`, or its focal length in pixels). A crop window is
  rendered at full sensor resolution, so cam.fx is the real focal length; the models only
  use relative pixel positions (no principal point), so the window's offset is not needed.
- `generator`: a torch.Generator; all randomness comes from it (same seed -> same output).
  Draws happen on its device and are moved to depth's device. The number and shape of the
  draws depend only on the batch shape, never on the depth values.
- `strength` (lo, hi): each sample draws its own severity s uniform in [lo, hi] per effect
  (noise scale, hole density, ...); s = 0 is the mildest and s = 1 the worst end of the
  realistic range given in each model (values above 1 extrapolate beyond it).
- the result has the same shape, 0 = invalid (every invalid input pixel stays invalid) and
  is quantised to `unit_mm`, the unit the depth image stores (1 mm for a uint16 mm image;
  0.125 mm is SR300/SR305's raw unit, 0.1 mm D405's).

Models (`SENSOR_MODELS`, name -> function, is the one registry):
- `realsense_d4xx`: active stereo (D435 / D415 / D405).
- `sr300_coded_light`: SR300 / SR305 coded light.
- `kinect_v1`: Kinect v1 structured light (NYU).
- `time_of_flight`: SoftKinetic DS325 / Creative Senz3D ToF (ICVL, MSRA).
- `clean`: quantisation only.

`apply_sensor_mix` picks one model per sample (`DEFAULT_SENSOR_MIX`) and applies each model
once to its sub-batch.

Geometry (REP 103 optical frame): u to the right, v down, z forward. "Left" and "right"
below are image columns as the depth image is stored.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...camera import Intrinsics

# Depth jump that counts as a silhouette edge: max(EDGE_JUMP_MM, EDGE_JUMP_REL * depth).
EDGE_JUMP_MM = 10.0
EDGE_JUMP_REL = 0.03


# ----------------------------------------------------------------------------- shared helpers

def farthest_neighbour(depth: torch.Tensor) -> torch.Tensor:
    """[B, H, W] -> the largest depth among each pixel's 4-neighbours (0 if none is valid)."""
    far = torch.zeros_like(depth)
    far[:, :, 1:] = torch.maximum(far[:, :, 1:], depth[:, :, :-1])
    far[:, :, :-1] = torch.maximum(far[:, :, :-1], depth[:, :, 1:])
    far[:, 1:] = torch.maximum(far[:, 1:], depth[:, :-1])
    far[:, :-1] = torch.maximum(far[:, :-1], depth[:, 1:])
    return far


def silhouette_edges(depth: torch.Tensor, threshold_mm: float, threshold_rel: float = 0.0) -> torch.Tensor:
    """[B, H, W] -> bool [B, H, W]: valid pixels next to an invalid pixel or a depth jump
    larger than max(threshold_mm, threshold_rel * the nearer depth) (4-neighbourhood; the
    relative part keeps a far, steeply slanted table from counting as one long edge;
    image borders are not edges)."""
    valid = depth > 0
    edge = torch.zeros_like(valid)

    def jumps(a, b):     # a jump between two neighbours marks both of them
        limit = torch.clamp(threshold_rel * torch.minimum(a, b), min=threshold_mm)
        return ((a - b).abs() > limit) | (a <= 0) | (b <= 0)

    jump = jumps(depth[:, :, 1:], depth[:, :, :-1])
    edge[:, :, 1:] |= jump
    edge[:, :, :-1] |= jump
    jump = jumps(depth[:, 1:], depth[:, :-1])
    edge[:, 1:] |= jump
    edge[:, :-1] |= jump
    return edge & valid


def occlusion_shadow(depth: torch.Tensor, focal_px: float, baseline_mm: torch.Tensor | float,
                     second_view_at_plus_x: bool) -> torch.Tensor:
    """bool [B, H, W]: valid pixels the second viewpoint (the right imager of a stereo pair,
    or the projector of a structured-light camera) cannot see because a nearer surface in
    the same row hides them.

    The second viewpoint sits `baseline_mm` (a float or [B]) along +x (or -x) from the
    reference camera, so a pixel at column u, depth z lands at column p = u -+ f*B/z there.
    A pixel is hidden when a pixel beyond it (larger u for +x) lands at or before it
    (p' <= p): only a nearer surface can. With the second view at +x the hidden band lies
    to the LEFT of a foreground object and is f*B*(1/z_near - 1/z_far) pixels wide.
    Objects outside the rendered window cannot cast shadows into it."""
    batch, _, width = depth.shape
    valid = depth > 0
    baseline = torch.as_tensor(baseline_mm, dtype=depth.dtype, device=depth.device).reshape(-1, 1, 1)
    shift = focal_px * baseline / torch.where(valid, depth, torch.ones_like(depth))
    cols = torch.arange(width, device=depth.device, dtype=depth.dtype)
    if second_view_at_plus_x:
        landing = torch.where(valid, cols - shift, torch.full_like(depth, float("inf")))
        # smallest landing column among the pixels strictly to the right
        suffix = torch.flip(torch.cummin(torch.flip(landing, [2]), dim=2).values, [2])
        beyond = torch.cat([suffix[:, :, 1:], torch.full_like(suffix[:, :, :1], float("inf"))], dim=2)
        hidden = beyond <= landing
    else:
        landing = torch.where(valid, cols + shift, torch.full_like(depth, -float("inf")))
        prefix = torch.cummax(landing, dim=2).values
        before = torch.cat([torch.full_like(prefix[:, :, :1], -float("inf")), prefix[:, :, :-1]], dim=2)
        hidden = before >= landing
    return hidden & valid


def surface_cosine(depth: torch.Tensor, focal_px: float) -> torch.Tensor:
    """[B, H, W] -> cosine between each valid pixel's surface normal and the optical axis
    (1 = facing the camera, -> 0 = grazing; 1 where invalid). The depth gradient per pixel
    is taken from the smoother of the two one-sided differences, so a silhouette does not
    count as a slope (edges have their own treatment), and is converted to a slope with
    the pixel footprint z / f. The ray's own off-axis angle is ignored (it needs the
    window's offset; it is small over a hand crop)."""
    valid = depth > 0
    # invalid neighbours (and beyond the border) at infinity: their difference never wins
    padded = F.pad(depth, (1, 1, 1, 1))
    padded = torch.where(padded > 0, padded, float("inf"))

    def smoother_squared(ahead, behind):
        # the square of the one-sided difference of smaller magnitude; 0 with neither neighbour
        forward, backward = ahead - depth, depth - behind
        squared = torch.minimum(forward * forward, backward * backward)
        return torch.nan_to_num(squared, posinf=0.0)

    grad_squared = (smoother_squared(padded[:, 1:-1, 2:], padded[:, 1:-1, :-2])
                    + smoother_squared(padded[:, 2:, 1:-1], padded[:, :-2, 1:-1]))
    # 0 on invalid pixels, so their cosine is exactly 1
    scale = focal_px / torch.where(valid, depth, 1.0)
    scale = scale * scale * _mask(valid, depth.dtype)
    return torch.rsqrt(1 + grad_squared * scale)


def _focal(cam: Intrinsics | float) -> float:
    """The horizontal focal length in pixels (the stereo/projector baseline is horizontal)."""
    focal = abs(float(cam.fx if isinstance(cam, Intrinsics) else cam))
    if not math.isfinite(focal) or focal <= 0:
        raise ValueError(f"the camera needs a positive focal length in pixels, got {cam!r}")
    return focal


def _check(depth: torch.Tensor, generator: torch.Generator, strength, unit_mm: float):
    if not isinstance(depth, torch.Tensor) or depth.ndim != 3 or not depth.is_floating_point():
        raise ValueError(f"depth must be a float tensor [B, H, W] in mm, got "
                         f"{getattr(depth, 'dtype', type(depth))} {tuple(getattr(depth, 'shape', ()))}")
    if not isinstance(generator, torch.Generator):
        raise ValueError("the sensor models need a torch.Generator (all their randomness comes from it)")
    lo, hi = (float(v) for v in strength)
    if not (0 <= lo <= hi and math.isfinite(hi)):
        raise ValueError(f"strength must be (lo, hi) with 0 <= lo <= hi, got {strength}")
    if not (unit_mm > 0 and math.isfinite(unit_mm)):
        raise ValueError(f"unit_mm must be positive, got {unit_mm}")


def _rand(shape, generator: torch.Generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _randn(shape, generator: torch.Generator, device) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def _severity(batch: int, effects: int, generator: torch.Generator, strength, device) -> torch.Tensor:
    """[B, effects, 1, 1]: each sample's severity per effect, uniform in strength."""
    lo, hi = (float(v) for v in strength)
    return (lo + (hi - lo) * _rand((batch, effects), generator, device))[:, :, None, None]


def _lerp(low: float, high: float, s: torch.Tensor) -> torch.Tensor:
    return low + (high - low) * s


# On CPU, making a bool tensor (a comparison) or using one (torch.where, bool + float)
# costs several times a float multiply-add (measured: 0.3-1 ms against ~0.07 ms per
# 640 x 480 image on one core), so the per-tap loops work with 0 / 1 float masks.

def _mask(condition: torch.Tensor, dtype) -> torch.Tensor:
    return condition.to(dtype)


def _float_le(a: torch.Tensor, b) -> torch.Tensor:
    """(a <= b) as 0 / 1 of a's dtype; a has the full (broadcast) shape."""
    return torch.le(a, b, out=torch.empty_like(a))


def _float_lt(a: torch.Tensor, b) -> torch.Tensor:
    """(a < b) as 0 / 1 of a's dtype; a has the full (broadcast) shape."""
    return torch.lt(a, b, out=torch.empty_like(a))


# How far an effect reaches from an invalid pixel onto a valid one: a speckle hole seeded
# next to the surface opens the 3 x 3 block around its seed.
_BOX_MARGIN_PX = 1


class _ValidBox:
    """The window of a batch [B, H, W] holding every valid pixel, plus _BOX_MARGIN_PX of
    (invalid) margin, clipped to the image. The models compute on that window only: every
    pixel beyond it is invalid and stays so, and a window op reads there exactly what it
    reads beyond the image border (invalid), so the result is the same as on the whole
    image. Random fields are still drawn for the whole image and cropped, so the draws
    depend only on the batch shape. On a GPU the box is not used: finding it costs a
    device sync per call, and a GPU is not short of pixel throughput."""

    def __init__(self, depth: torch.Tensor):
        self.shape = depth.shape
        self.empty = False
        self.rows, self.cols = slice(0, depth.shape[1]), slice(0, depth.shape[2])
        self.whole = True
        if depth.device.type != "cpu":
            return
        valid = depth > 0
        rows = torch.nonzero(valid.any(dim=2).any(dim=0)).flatten()
        if rows.numel() == 0:
            self.empty = True
            return
        cols = torch.nonzero(valid.any(dim=1).any(dim=0)).flatten()
        m = _BOX_MARGIN_PX
        self.rows = slice(max(int(rows[0]) - m, 0), min(int(rows[-1]) + m + 1, depth.shape[1]))
        self.cols = slice(max(int(cols[0]) - m, 0), min(int(cols[-1]) + m + 1, depth.shape[2]))
        self.whole = (self.rows.stop - self.rows.start, self.cols.stop - self.cols.start) == tuple(depth.shape[1:])

    def crop(self, x: torch.Tensor, extra: int = 0) -> torch.Tensor:
        """x [B, H + extra, W + extra] -> the window (a field drawn `extra` pixels larger
        than the image keeps those extra rows and columns)."""
        if self.whole:
            return x
        return x[:, self.rows.start:self.rows.stop + extra, self.cols.start:self.cols.stop + extra]

    def paste(self, window: torch.Tensor) -> torch.Tensor:
        """The window's result -> the whole image (0 = invalid beyond the window)."""
        if self.whole:
            return window
        out = torch.zeros(self.shape, dtype=window.dtype, device=window.device)
        out[:, self.rows, self.cols] = window
        return out


# Small windows as sums / maxima of shifted slices: on CPU this is several times faster
# than avg_pool2d / max_pool2d with the same windows.

def _box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """[B, H, W] -> mean over size x size blocks, no padding ([B, H - size + 1, W - size + 1])."""
    height, width = x.shape[1] - size + 1, x.shape[2] - size + 1
    rows = sum(x[:, :, i:i + width] for i in range(size))
    return sum(rows[:, i:i + height] for i in range(size)) / (size * size)


def _box_max(x: torch.Tensor, radius: int) -> torch.Tensor:
    """[B, H, W] -> max over the (2 radius + 1)^2 window around each pixel, same size."""
    height, width = x.shape[1:]
    padded = F.pad(x, (radius, radius, radius, radius), value=-float("inf"))
    rows = padded[:, :, :width]
    for i in range(1, 2 * radius + 1):
        rows = torch.maximum(rows, padded[:, :, i:i + width])
    out = rows[:, :height]
    for i in range(1, 2 * radius + 1):
        out = torch.maximum(out, rows[:, i:i + height])
    return out


def _normal_field(shape, generator: torch.Generator, device, size: int) -> torch.Tensor:
    """The independent normals behind `_correlate(field, size)`: [B, H + size - 1, W + size - 1]
    (drawn size - 1 pixels larger, so the correlated noise is the same everywhere, borders
    included)."""
    batch, height, width = shape
    return _randn((batch, height + size - 1, width + size - 1), generator, device)


def _correlate(field: torch.Tensor, size: int) -> torch.Tensor:
    """Unit-variance Gaussian noise [B, H, W] correlated over size x size pixels: the mean of
    each size x size block of the independent normals `field`, times size."""
    return field if size == 1 else _box_mean(field, size) * size


def _blob_holes(probability: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
    """bool [B, H, W]: speckle holes of about 3 x 3 pixels, each pixel a hole with
    probability `probability` [B, H, W] (exactly, where it is locally constant): seed
    pixels (uniform `draw` [B, H, W] below q = 1 - (1 - p)^(1/9)), each opening the 3 x 3
    block around it."""
    seed_p = 1 - (1 - probability.clamp(0, 1)) ** (1 / 9)
    return _box_max(_float_lt(draw, seed_p), 1) > 0


def _with_invalid_far(depth: torch.Tensor) -> torch.Tensor:
    """Invalid pixels at infinity (for nearest-depth pools)."""
    return torch.where(depth > 0, depth, float("inf"))


def _pool_near(depth_invalid_far: torch.Tensor, radius: int) -> torch.Tensor:
    """The nearest valid depth within a (2 radius + 1)^2 window [B, H, W] (inf where the
    window has no valid pixel), from `_with_invalid_far(depth)`."""
    return -_box_max(-depth_invalid_far, radius)


def _neighbours(depth: torch.Tensor, size: int, step: int = 1):
    """Yield, for each tap of a size x size window (every `step`-th pixel from the centre),
    the [B, H, W] depth of that neighbour (0 outside the image). A loop over taps keeps
    memory at one image, not one per tap."""
    pad = size // 2
    height, width = depth.shape[1:]
    padded = F.pad(depth, (pad, pad, pad, pad))
    for dy in range(0, size, step):
        for dx in range(0, size, step):
            yield padded[:, dy:dy + height, dx:dx + width]


def _jump_limit(depth: torch.Tensor) -> torch.Tensor:
    return torch.clamp(EDGE_JUMP_REL * depth, min=EDGE_JUMP_MM)


def _oblique_probability(cosine: torch.Tensor, at_most: torch.Tensor, start_deg: float = 60.0,
                         full_deg: float = 80.0) -> torch.Tensor:
    """Dropout probability rising linearly from 0 at `start_deg` incidence to `at_most` at
    `full_deg` and beyond (less light returns and the pattern smears on oblique surfaces)."""
    c0, c1 = math.cos(math.radians(start_deg)), math.cos(math.radians(full_deg))
    return at_most * ((c0 - cosine) / (c0 - c1)).clamp(0, 1)


def _finish(noisy: torch.Tensor, depth: torch.Tensor, keep: torch.Tensor, unit_mm: float) -> torch.Tensor:
    """Quantise to the stored unit; invalid wherever the input was invalid, `keep` is false
    or the value does not survive the quantisation (rounds to 0 or is not finite)."""
    out = torch.round(noisy / unit_mm) * unit_mm
    keep = keep & (depth > 0) & torch.isfinite(out) & (out > 0)
    return torch.where(keep, out, torch.zeros_like(out))


# ----------------------------------------------------------------------------- models

# RealSense D4xx variants: (baseline mm, probability). Baselines from Intel's D400 datasheet:
# D435 50 mm, D415 55 mm, D405 18 mm (close range, the wrist camera of many robot hands).
D4XX_VARIANTS = ((50.0, 0.5), (55.0, 0.3), (18.0, 0.2))
# The D4 vision processor searches 126 disparities (Intel's tuning guide: MinZ = f * B / 126
# with disparity shift 0): nearer than that, no match -> invalid.
D4XX_MAX_DISPARITY_PX = 126.0
# Its disparity output carries 5 fractional bits (librealsense converts depth <-> disparity
# with a factor of 32).
D4XX_DISPARITY_STEP_PX = 1.0 / 32.0


def realsense_d4xx(depth: torch.Tensor, generator: torch.Generator, cam: Intrinsics | float,
                   strength=(0.0, 1.0), unit_mm: float = 1.0) -> torch.Tensor:
    """Intel RealSense D4xx active stereo.

    Depth is referenced to the LEFT imager and the right imager sits `baseline` to its
    right (+x; realsense-ros gives the right infrared camera's projection a negative Tx), so
    the occlusion shadow (background the right imager cannot see) is a band of invalid
    pixels on the LEFT side of every foreground object, f*B*(1/z_near - 1/z_far) wide.
    Per sample: the variant (D435 / D415 / D405 baseline), then
    - disparity d = f*B/z plus Gaussian noise of `subpixel` px RMS, correlated over 3 x 3
      pixels (a matching window), quantised to 1/32 px: depth RMS z^2 * subpixel / (f * B),
      Intel's formula; subpixel 0.05-0.15 (Intel: ~0.08 on well-textured scenes);
    - d > 126 px (nearer than MinZ = f*B/126: 153 mm for a D435 at 640 x 480) invalid;
    - silhouette pixels invalid with probability 0.2-0.8 (matching fails across a jump);
    - speckle holes of a few pixels: 0-1% of pixels anywhere (dark, low-texture patches),
      rising to 30-90% of pixels on surfaces beyond 60-80 degrees of incidence.
    """
    _check(depth, generator, strength, unit_mm)
    focal = _focal(cam)
    batch, height, width = depth.shape
    device = depth.device
    s = _severity(batch, 4, generator, strength, device)
    pick = _rand((batch,), generator, device)
    noise_field = _normal_field(depth.shape, generator, device, 3)
    edge_draw = _rand(depth.shape, generator, device)
    hole_draw = _rand(depth.shape, generator, device)

    baselines = torch.tensor([b for b, _ in D4XX_VARIANTS], device=device, dtype=depth.dtype)
    bounds = torch.tensor([p for _, p in D4XX_VARIANTS], device=device).cumsum(0)
    baseline = baselines[torch.searchsorted(bounds / bounds[-1], pick).clamp(max=len(D4XX_VARIANTS) - 1)]

    box = _ValidBox(depth)
    if box.empty:
        return torch.zeros_like(depth)
    depth, edge_draw, hole_draw = box.crop(depth), box.crop(edge_draw), box.crop(hole_draw)
    noise = _correlate(box.crop(noise_field, 2), 3)
    batch, height, width = depth.shape
    valid = depth > 0
    safe = torch.where(valid, depth, torch.ones_like(depth))
    fb = focal * baseline[:, None, None]
    disparity = fb / safe + _lerp(0.05, 0.15, s[:, 0]) * noise
    disparity = torch.round(disparity / D4XX_DISPARITY_STEP_PX) * D4XX_DISPARITY_STEP_PX
    in_range = (disparity > 0) & (disparity <= D4XX_MAX_DISPARITY_PX)
    noisy = fb / torch.where(in_range, disparity, torch.ones_like(disparity))

    shadow = occlusion_shadow(depth, focal, baseline, second_view_at_plus_x=True)
    edges = silhouette_edges(depth, EDGE_JUMP_MM, EDGE_JUMP_REL) & (edge_draw < _lerp(0.2, 0.8, s[:, 1]))
    hole_p = _lerp(0.0, 0.01, s[:, 2]) + _oblique_probability(surface_cosine(depth, focal), _lerp(0.3, 0.9, s[:, 3]))
    holes = _blob_holes(hole_p.expand(batch, height, width).clamp(max=1), hole_draw)
    return box.paste(_finish(noisy, depth, in_range & ~shadow & ~edges & ~holes, unit_mm))


# SR300 / SR305 (Intel datasheet): coded light, range 0.2-1.5 m.
SR300_MIN_RANGE_MM = 200.0
SR300_MAX_RANGE_MM = 1500.0


def sr300_coded_light(depth: torch.Tensor, generator: torch.Generator, cam: Intrinsics | float,
                      strength=(0.0, 1.0), unit_mm: float = 1.0) -> torch.Tensor:
    """Intel RealSense SR300 / SR305 coded light (a projector sweeping temporally coded
    line patterns, triangulated against one IR camera; a static scene is assumed).

    Per sample:
    - range: invalid nearer than 200 mm and beyond a maximum range of 1500 mm (datasheet) at
      s = 0 down to 1100 mm at s = 1 (the pattern fades with distance; the SR300's
      recommended range is 0.2-1.2 m);
    - noise: Gaussian, sigma = k z^2 (triangulation), k 1.5e-6-5e-6 per mm: 0.4-1.3 mm at
      0.5 m, 2-7 mm at 1.2 m, the order of published SR300 characterisations (e.g.
      Carfagni et al., IEEE Sensors J. 2017): low near, rising fast with distance;
    - edge fattening: the code of a near surface bleeds over the far side of a silhouette,
      so the foreground grows by 0, 1 or 2 pixels (its nearest depth there);
    - strong edge dropout: the pixels along the (fattened) silhouette, 2 px wide, invalid
      with probability 0.4-0.9 (the decoded code is a mix of two surfaces);
    - oblique surfaces: dropout rising to 40-90% beyond 60-80 degrees of incidence.
    """
    _check(depth, generator, strength, unit_mm)
    focal = _focal(cam)
    batch = depth.shape[0]
    device = depth.device
    s = _severity(batch, 5, generator, strength, device)
    noise = _randn(depth.shape, generator, device)
    edge_draw = _rand(depth.shape, generator, device)
    oblique_draw = _rand(depth.shape, generator, device)

    box = _ValidBox(depth)
    if box.empty:
        return torch.zeros_like(depth)
    depth, noise, edge_draw, oblique_draw = (box.crop(x) for x in (depth, noise, edge_draw, oblique_draw))
    valid = depth > 0
    grown = depth
    fatten = torch.floor(s[:, 2] * 2.999)          # 0, 1 or 2 px
    invalid_far = _with_invalid_far(depth)
    for radius in (1, 2):
        near = _pool_near(invalid_far, radius)
        bleed = valid & (fatten == radius) & (depth - near > _jump_limit(near))
        grown = torch.where(bleed, near, grown)
    sigma = _lerp(1.5e-6, 5e-6, s[:, 1]) * grown * grown
    noisy = grown + sigma * noise

    # silhouette_edges marks both sides of a jump: a 2 px band
    dropped = silhouette_edges(grown, EDGE_JUMP_MM, EDGE_JUMP_REL) & (edge_draw < _lerp(0.4, 0.9, s[:, 3]))
    oblique = oblique_draw < _oblique_probability(surface_cosine(depth, focal), _lerp(0.4, 0.9, s[:, 4]))
    max_range = _lerp(SR300_MAX_RANGE_MM, 1100.0, s[:, 0])
    in_range = (grown >= SR300_MIN_RANGE_MM) & (grown <= max_range)
    return box.paste(_finish(noisy, depth, in_range & ~dropped & ~oblique, unit_mm))


# Kinect v1 (Khoshelham & Elberink, Sensors 2012): IR camera f ~ 580 px at 640 x 480, IR
# projector 75 mm away, disparity stored in 1/8 px, so depth steps z^2 / (8 f B) (2.9 mm
# at 1 m); random error ~ 4 cm at 5 m, i.e. ~0.07 px of disparity; 9 x 9 correlation window.
KINECT_FOCAL_PX = 580.0
KINECT_BASELINE_MM = 75.0
KINECT_DISPARITY_STEP_PX = 1.0 / 8.0
KINECT_WINDOW_PX = 9
KINECT_MAX_RANGE_MM = 4000.0
# Shadow side: the band lies to the RIGHT of foreground objects in Kinect v1 depth images as
# NYU stores them (the projector acts as a second view at -x). Measured on the NYU frame in
# ../shared/data/real/nyu: an 8-16 px invalid gap right of the hand (z ~ 740-765 mm) before
# the body (1020-1110 mm), where 588 * 75 * (1/z_near - 1/z_far) predicts 14-18 px (the
# correlation window fattens the hand into part of it); nothing comparable on the left.
KINECT_SHADOW_AT_PLUS_X = False


def kinect_v1(depth: torch.Tensor, generator: torch.Generator, cam: Intrinsics | float,
              strength=(0.0, 1.0), unit_mm: float = 1.0, min_range_mm=(0.0, 0.0)) -> torch.Tensor:
    """Microsoft Kinect v1 structured light (PrimeSense), the camera of NYU.

    - shadow: background the projector cannot light, a band of invalid pixels on the RIGHT
      of foreground objects (as stored by NYU; see KINECT_SHADOW_AT_PLUS_X), f*75 mm*(1/z_near
      - 1/z_far) wide with f this camera's focal length;
    - correlation window: 9 x 9 pixels at the Kinect's 580 px focal length, scaled to this
      camera's (at least 5 x 5) and sampled by 5 x 5 taps: each pixel's disparity is the
      mean over the taps on its own surface (smoothed, rounded silhouettes), and a pixel
      whose window holds too few of them (fewer than 45-70%: a straight edge holds 60%) is
      invalid (blocky edge dropout, lost fingertips);
    - noise: disparity (at 580 px) + Gaussian 0.04-0.1 px RMS, correlated over 3 x 3, then
      quantised to 1/8 px: depth steps and noise both grow with z^2;
    - oblique surfaces: dropout rising to 40-90% beyond 60-80 degrees of incidence;
    - range: invalid beyond 4 m, and nearer than a minimum range drawn per sample uniform in
      `min_range_mm` (lo, hi). The real device returns nothing nearer than ~500 mm (400 mm in
      the Kinect for Windows near mode); the default (0, 0) keeps near hands, which learn
      the Kinect's look rather than its blind zone (our scenes start at 200 mm).
    """
    _check(depth, generator, strength, unit_mm)
    lo_range, hi_range = (float(v) for v in min_range_mm)
    if not 0 <= lo_range <= hi_range:
        raise ValueError(f"min_range_mm must be (lo, hi) with 0 <= lo <= hi, got {min_range_mm}")
    focal = _focal(cam)
    batch, height, width = depth.shape
    device = depth.device
    s = _severity(batch, 4, generator, strength, device)
    near_limit = lo_range + (hi_range - lo_range) * _rand((batch, 1, 1), generator, device)
    noise_field = _normal_field(depth.shape, generator, device, 3)
    oblique_draw = _rand(depth.shape, generator, device)

    box = _ValidBox(depth)
    if box.empty:
        return torch.zeros_like(depth)
    depth, oblique_draw = box.crop(depth), box.crop(oblique_draw)
    noise = _correlate(box.crop(noise_field, 2), 3)
    valid = depth > 0
    fb = KINECT_FOCAL_PX * KINECT_BASELINE_MM
    disparity = fb / torch.where(valid, depth, 1.0) * _mask(valid, depth.dtype)
    # the 9 x 9 window in this camera's pixels, sampled by 5 x 5 taps `spacing` apart
    spacing = max(1, round((KINECT_WINDOW_PX - 1) / 4 * focal / KINECT_FOCAL_PX))
    size = 4 * spacing + 1
    # the taps on the centre's surface: valid and within the jump limit in depth
    limit = _jump_limit(depth)
    count = torch.zeros_like(depth)
    total = torch.zeros_like(depth)
    for near_depth, near_disparity in zip(_neighbours(depth, size, spacing), _neighbours(disparity, size, spacing)):
        same = _float_le((near_depth - depth).abs_(), limit)      # excludes invalid taps (0) too
        count += same
        total.addcmul_(same, near_disparity)
    smoothed = total / count.clamp(min=1)
    enough = count >= _lerp(0.45, 0.7, s[:, 0]) * 25

    noisy_disparity = smoothed + _lerp(0.04, 0.1, s[:, 1]) * noise
    noisy_disparity = torch.round(noisy_disparity / KINECT_DISPARITY_STEP_PX) * KINECT_DISPARITY_STEP_PX
    positive = noisy_disparity > 0
    noisy = fb / torch.where(positive, noisy_disparity, torch.ones_like(noisy_disparity))

    shadow = occlusion_shadow(depth, focal, KINECT_BASELINE_MM, KINECT_SHADOW_AT_PLUS_X)
    oblique = oblique_draw < _oblique_probability(surface_cosine(depth, focal), _lerp(0.4, 0.9, s[:, 2]))
    in_range = positive & (noisy >= near_limit) & (noisy <= KINECT_MAX_RANGE_MM)
    return box.paste(_finish(noisy, depth, in_range & enough & ~shadow & ~oblique, unit_mm))


# SoftKinetic DS325 / Creative Senz3D (the ICVL and MSRA cameras), datasheet: range
# 0.15-1 m, depth noise < 1.4 cm at 1 m.
TOF_MIN_RANGE_MM = 150.0
TOF_MULTIPATH_BAND_MM = 60.0      # neighbours this close in depth mix by multipath
TOF_MULTIPATH_VARIANCE_MM2 = 20.0 ** 2


def time_of_flight(depth: torch.Tensor, generator: torch.Generator, cam: Intrinsics | float,
                   strength=(0.0, 1.0), unit_mm: float = 1.0) -> torch.Tensor:
    """Continuous-wave time of flight (phase of modulated IR light per pixel; a static scene).

    Per sample:
    - multipath / scattering blur: light returning via other nearby surfaces mixes into each
      pixel, so a pixel moves toward the mean of its 5 x 5 neighbourhood (9 taps, amplitude-weighted,
      ~1/z^2, over neighbours within 60 mm in depth: concave gaps between fingers, a finger
      against the palm or a table), by weight m * var / (var + (20 mm)^2) with var the
      local depth variance (0 on a plane) and m 0.1-0.5;
    - flying pixels: a pixel whose 3 x 3 (or, at the severe end, 5 x 5) window spans a
      depth jump measures a mix of both surfaces: its depth moves a uniform fraction of the
      way toward the other side of the jump (all of them at s = 1, 60% at s = 0), so the
      values lie between the foreground and the background;
    - noise: Gaussian, sigma = k z (not z^2), k 0.2-1.2% (DS325: < 1.4 cm at 1 m);
    - invalid beyond a maximum range of 1500 mm (s = 0) down to 1000 mm (s = 1, the DS325's
      spec), nearer than 150 mm, and where the surface is so oblique that too little light
      returns (cos incidence below 0.1-0.25, i.e. beyond 84-76 degrees).
    """
    _check(depth, generator, strength, unit_mm)
    focal = _focal(cam)
    batch = depth.shape[0]
    device = depth.device
    s = _severity(batch, 6, generator, strength, device)
    mix_draw = _rand(depth.shape, generator, device)
    fly_draw = _rand(depth.shape, generator, device)
    noise = _randn(depth.shape, generator, device)

    box = _ValidBox(depth)
    if box.empty:
        return torch.zeros_like(depth)
    depth, mix_draw, fly_draw, noise = (box.crop(x) for x in (depth, mix_draw, fly_draw, noise))
    valid = depth > 0
    # multipath: amplitude-weighted (1/z^2) mean and variance of the neighbours' depth
    # offsets, over the neighbours in the centre's depth band. The centre's own amplitude
    # cancels out of both, and the centre tap (offset 0) is always in its band, so the
    # weight sum is never 0.
    weights = torch.zeros_like(depth)
    offset_sum = torch.zeros_like(depth)
    square_sum = torch.zeros_like(depth)
    amplitude = depth.clamp(min=1e-3).reciprocal_().square_()
    taps = zip(_neighbours(depth, 5, 2), _neighbours(amplitude, 5, 2))
    for neighbour, neighbour_amplitude in taps:         # 3 x 3 taps over 5 x 5 pixels
        offset = neighbour - depth
        # excludes invalid taps (0: > 150 mm off)
        weighted = _float_le(offset.abs(), TOF_MULTIPATH_BAND_MM).mul_(neighbour_amplitude)
        weights += weighted
        weighted.mul_(offset)
        offset_sum += weighted
        square_sum.addcmul_(weighted, offset)
    mean_offset = offset_sum / weights
    variance = (square_sum / weights - mean_offset * mean_offset).clamp(min=0)
    weight = _lerp(0.1, 0.5, s[:, 0]) * variance / (variance + TOF_MULTIPATH_VARIANCE_MM2)
    blurred = depth + weight * mean_offset * _mask(valid, depth.dtype)

    # flying pixels across depth jumps (on the clean geometry)
    radius2 = s[:, 1] > 0.7
    invalid_far = _with_invalid_far(depth)
    near1, far1 = _pool_near(invalid_far, 1), _box_max(depth, 1)
    # a 5 x 5 window is the 3 x 3 window of the 3 x 3 windows
    near2, far2 = -_box_max(-near1, 1), _box_max(far1, 1)
    near = torch.where(radius2, near2, near1)
    far = torch.where(radius2, far2, far1)
    jump = valid & (far - near > _jump_limit(near) * (1.0 + radius2.to(depth.dtype)))
    toward = torch.where(depth - near < far - depth, far, near)       # the other side of the jump
    flying = jump & (fly_draw < _lerp(0.6, 1.0, s[:, 2]))
    mixed = torch.where(flying, blurred + mix_draw * (toward - blurred), blurred)

    noisy = mixed + _lerp(0.002, 0.012, s[:, 3]) * depth * noise
    max_range = _lerp(1500.0, 1000.0, s[:, 4])
    bright = surface_cosine(depth, focal) >= _lerp(0.1, 0.25, s[:, 5])
    in_range = (mixed >= TOF_MIN_RANGE_MM) & (mixed <= max_range)
    return box.paste(_finish(noisy, depth, in_range & bright, unit_mm))


def clean(depth: torch.Tensor, generator: torch.Generator, cam: Intrinsics | float,
          strength=(0.0, 1.0), unit_mm: float = 1.0) -> torch.Tensor:
    """No sensor effects: the exact geometry, quantised to the stored unit."""
    _check(depth, generator, strength, unit_mm)
    _focal(cam)
    return _finish(depth, depth, depth > 0, unit_mm)


SENSOR_MODELS = {
    "realsense_d4xx": realsense_d4xx,
    "sr300_coded_light": sr300_coded_light,
    "kinect_v1": kinect_v1,
    "time_of_flight": time_of_flight,
    "clean": clean,
}

# Default share of each camera: D4xx is what most users and robot set-ups own today; SR300 /
# SR305 is the camera of BigHand2.2M / HANDS2017 and of our SR305 test frames; Kinect v1 is
# NYU's; ToF is ICVL's and MSRA's (and the rarest today); a little exact geometry keeps
# heavily filtered or unknown cameras inside the training distribution.
DEFAULT_SENSOR_MIX = {"realsense_d4xx": 0.35, "sr300_coded_light": 0.25, "kinect_v1": 0.2,
                      "time_of_flight": 0.15, "clean": 0.05}


def sample_sensor_models(batch: int, generator: torch.Generator, mix: dict | None = None,
                         device=None) -> torch.Tensor:
    """[B] int64: for each sample, the index (in SENSOR_MODELS' order) of its model, drawn
    with the probabilities of `mix` (name -> weight, normalised; default DEFAULT_SENSOR_MIX;
    models not named get 0). One uniform draw per sample from `generator`."""
    mix = DEFAULT_SENSOR_MIX if mix is None else mix
    unknown = sorted(set(mix) - set(SENSOR_MODELS))
    if unknown:
        raise ValueError(f"unknown sensor models {unknown}; known: {list(SENSOR_MODELS)}")
    weights = [float(mix.get(name, 0.0)) for name in SENSOR_MODELS]
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"sensor mix weights must be >= 0 with a positive sum, got {mix}")
    bounds = torch.tensor(weights, dtype=torch.float64).cumsum(0) / sum(weights)
    u = torch.rand(batch, generator=generator, device=generator.device, dtype=torch.float64).cpu()
    # right=True: a model of weight 0 has an empty interval and is never chosen; the clamp
    # catches a last bound rounded below 1
    index = torch.searchsorted(bounds, u, right=True)
    index = index.clamp(max=max(i for i, w in enumerate(weights) if w > 0))
    return index.to(device if device is not None else generator.device)


def apply_sensor_mix(depth: torch.Tensor, generator: torch.Generator, cam: Intrinsics | float,
                     mix: dict | None = None, strength=(0.0, 1.0), unit_mm: float = 1.0):
    """Pick one sensor model per sample (`sample_sensor_models`) and apply each model once,
    in SENSOR_MODELS' order, to the sub-batch of its samples, with the same generator.

    Returns (noisy depth [B, H, W], model index [B] int64 into list(SENSOR_MODELS))."""
    _check(depth, generator, strength, unit_mm)
    index = sample_sensor_models(depth.shape[0], generator, mix, device=depth.device)
    return apply_sensor_models(depth, index, generator, cam, strength, unit_mm), index


def apply_sensor_models(depth: torch.Tensor, index: torch.Tensor, generator: torch.Generator,
                        cam: Intrinsics | float, strength=(0.0, 1.0), unit_mm: float = 1.0) -> torch.Tensor:
    """Sample b through model index[b] (into list(SENSOR_MODELS)): each model applied once,
    in SENSOR_MODELS' order, to the sub-batch of its samples, with the same generator."""
    out = torch.zeros_like(depth)
    for k, model in enumerate(SENSOR_MODELS.values()):
        chosen = torch.nonzero(index == k).flatten()
        if chosen.numel():
            out[chosen] = model(depth[chosen], generator, cam, strength=strength, unit_mm=unit_mm)
    return out

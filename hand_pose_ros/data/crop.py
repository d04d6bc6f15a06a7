"""Cropping and normalisation of a depth frame around the hand (shared/docs/srnet.md).

One implementation, used by training, evaluation and the pose node:

- box = int(cube*fx/d_com + cube*fy/d_com)   (cube = the HALF cube size in mm)
- the crop is the S x S square, S = 2*(box//2), with top-left
  (floor(com_u) - box//2, floor(com_v) - box//2): centred on the integer centre of mass,
  zero outside the frame;
- keep depths strictly inside (com_d - cube, com_d + cube), subtract com_d, resize to
  out x out (bilinear), divide by cube: hand pixels lie in (-1, 1), background is exactly 0.
- labels: u_n = (u - floor(com_u)) / (box - 1), same for v; d_n = (d - com_d) / cube;
  recover inverts this exactly.

Bilinear convention (identical in numpy and torch): half-pixel centres, i.e. what
cv2.resize INTER_LINEAR and torch.nn.functional.interpolate(mode='bilinear',
align_corners=False, antialias=False) do. Output pixel i samples the crop at
src = (i + 0.5) * S / out - 0.5, clamped below at 0; the two neighbours are floor(src) and
min(floor(src) + 1, S - 1). The source positions are computed in exact integer arithmetic
so the numpy and torch paths pick the same pixels and the same weights. Masking and
centring happen per source pixel before interpolation, the division by cube after it
(mask -> subtract -> resize -> divide, in that order), and only the 2*out x 2*out source pixels the
resize reads are gathered: no full-size crop or full-frame float copy is made.

We use floor() where srnet.md writes int(): the same for the non-negative centres of a
real image, and still a square crop for a centre pushed off the frame by augmentation.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..camera import Intrinsics


def box_size(com_d: float, cam: Intrinsics, half_cube_mm: float) -> int:
    """box = int(cube*fx/d + cube*fy/d) in pixels (about the full cube width at depth d)."""
    if not (math.isfinite(com_d) and com_d > 0):
        raise ValueError(f"crop centre depth must be a positive number of mm, got {com_d!r}")
    if not half_cube_mm > 0:
        raise ValueError(f"half_cube_mm must be > 0, got {half_cube_mm!r}")
    # abs(): the community NYU evaluator's fy is negative; the crop size is not.
    box = int(half_cube_mm * abs(cam.fx) / com_d + half_cube_mm * abs(cam.fy) / com_d)
    if box < 2:
        raise ValueError(f"crop box of {box} px at depth {com_d} mm is too small (hand too far away?)")
    return box


@dataclass
class Crop:
    """One normalised crop plus everything needed to map labels in and out of it."""
    image: np.ndarray        # [out, out] float32; hand in (-1, 1), background 0
    com_uvd: np.ndarray      # [3] float64 (u px, v px, d mm): the crop centre
    box: int                 # srnet.md's box (px); the crop side is 2*(box//2)
    half_cube_mm: float
    left: int                # top-left of the crop square in frame pixels
    top: int

    @property
    def size(self) -> int:
        """Side of the square cut from the frame, in frame pixels."""
        return 2 * (self.box // 2)

    @property
    def out_size(self) -> int:
        return int(self.image.shape[-1])

    def normalise_uvd(self, uvd):
        return normalise_uvd(uvd, self)

    def recover_uvd(self, uvd_norm):
        return recover_uvd(uvd_norm, self)


@dataclass
class CropBatch:
    """B crops stacked; arrays are numpy or torch (whatever made them).

    image [B, out, out], com_uvd [B, 3], box [B] (int), half_cube_mm [B].
    """
    image: object
    com_uvd: object
    box: object
    half_cube_mm: object

    @classmethod
    def stack(cls, crops: list[Crop]) -> "CropBatch":
        if not crops:
            raise ValueError("CropBatch.stack needs at least one Crop")
        return cls(image=np.stack([c.image for c in crops]),
                   com_uvd=np.stack([np.asarray(c.com_uvd, dtype=np.float64) for c in crops]),
                   box=np.array([c.box for c in crops], dtype=np.int64),
                   half_cube_mm=np.array([c.half_cube_mm for c in crops], dtype=np.float64))

    def __len__(self) -> int:
        return int(self.box.shape[0])

    def __getitem__(self, i: int) -> Crop:
        def host(x):
            return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
        com = host(self.com_uvd[i]).astype(np.float64)
        box = int(host(self.box[i]))
        return Crop(image=host(self.image[i]), com_uvd=com, box=box,
                    half_cube_mm=float(host(self.half_cube_mm[i])),
                    left=int(math.floor(com[0])) - box // 2, top=int(math.floor(com[1])) - box // 2)

    def normalise_uvd(self, uvd):
        return normalise_uvd(uvd, self)

    def recover_uvd(self, uvd_norm):
        return recover_uvd(uvd_norm, self)


# ----------------------------------------------------------------------------- resize indices

@functools.lru_cache(maxsize=64)
def _source_taps_np(size: int, out: int):
    """For each of `out` output pixels: the two source indices in [0, size) and the weight
    of the second, for a half-pixel-centre bilinear resize size -> out. Cached (a tracked
    hand keeps its crop size): the arrays are read-only."""
    i = np.arange(out, dtype=np.int64)
    # src = ((2i+1)*size - out) / (2*out): keep the numerator an integer -> exact floor/frac
    num = np.maximum((2 * i + 1) * size - out, 0)
    i0 = num // (2 * out)
    frac = (num % (2 * out)).astype(np.float32) / np.float32(2 * out)
    i1 = np.minimum(i0 + 1, size - 1)
    for array in (i0, i1, frac):
        array.flags.writeable = False
    return i0, i1, frac


def _crop_square(com_uvd, cam: Intrinsics, half_cube_mm: float):
    """(com [3] float64, box, left, top) of one crop, checked: the square crop_hand cuts."""
    com = np.asarray(com_uvd, dtype=np.float64).reshape(-1)
    if com.shape != (3,) or not np.isfinite(com).all():
        raise ValueError(f"com_uvd must be 3 finite numbers (u, v, d), got {com_uvd!r}")
    box = box_size(float(com[2]), cam, half_cube_mm)
    return com, box, int(math.floor(com[0])) - box // 2, int(math.floor(com[1])) - box // 2


def crop_hand(depth_mm: np.ndarray, com_uvd, cam: Intrinsics, half_cube_mm: float,
              out_size: int = 128) -> Crop:
    """Normalised out_size x out_size crop of `depth_mm` [H, W] (mm, 0 = invalid) around
    com_uvd = (u px, v px, d mm). See the module docstring for the exact definition."""
    depth_mm = np.asarray(depth_mm)
    if depth_mm.ndim != 2:
        raise ValueError(f"depth_mm must be a 2-D [H, W] image, got shape {depth_mm.shape}")
    com, box, left, top = _crop_square(com_uvd, cam, half_cube_mm)
    size = 2 * (box // 2)
    height, width = depth_mm.shape

    r0, r1, wy = _source_taps_np(size, out_size)
    c0, c1, wx = r0, r1, wy                          # square crop: same taps for columns
    rows = np.concatenate([r0, r1]) + top            # [2*out] frame rows
    cols = np.concatenate([c0, c1]) + left
    row_out = (rows < 0) | (rows >= height)
    col_out = (cols < 0) | (cols >= width)
    rows = np.clip(rows, 0, height - 1)
    cols = np.clip(cols, 0, width - 1)
    # rows, then columns: two 1-D gathers (faster than one 2-D gather): [2*out, 2*out]
    taps = depth_mm.take(rows, axis=0).take(cols, axis=1)
    taps = taps.astype(np.float32, copy=False)
    if row_out.any():
        taps[row_out, :] = 0                         # zero padding outside the frame
    if col_out.any():
        taps[:, col_out] = 0

    # Same float32 arithmetic as the torch path, so both agree to rounding.
    centre = np.float32(com[2])
    cube = np.float32(half_cube_mm)
    keep = (taps > centre - cube) & (taps < centre + cube) & (taps > 0)
    with np.errstate(invalid="ignore", over="ignore"):
        values = taps - centre
        values *= keep    # background -> +-0; the interpolation below turns -0 into +0
        finite = np.isfinite(values.sum())
    if not finite:
        # NaN / inf depths (an undecoded float image) survive "* 0": mask them properly
        values = np.where(keep, taps - centre, np.float32(0))

    n = out_size
    top_row = values[:n, :n] + (values[:n, n:] - values[:n, :n]) * wx
    bottom_row = values[n:, :n] + (values[n:, n:] - values[n:, :n]) * wx
    image = top_row + (bottom_row - top_row) * wy[:, None]   # [out, out]
    image /= cube
    return Crop(image=image.astype(np.float32, copy=False), com_uvd=com, box=box,
                half_cube_mm=float(half_cube_mm), left=left, top=top)


def crop_window_torch(com_uvd, cam: Intrinsics, half_cube_mm):
    """The crop squares of crop_batch_torch without cutting them (e.g. to render only that
    window): com_uvd [B, 3], half_cube_mm number or [B] -> (box, left, top), each [B] int64;
    the square is 2*(box//2) px wide from (left, top). Same float64 rounding as box_size()."""
    import torch

    com = torch.as_tensor(com_uvd).to(torch.float64)
    cube = torch.as_tensor(half_cube_mm, device=com.device, dtype=torch.float64)
    box = torch.floor(cube * abs(cam.fx) / com[:, 2] + cube * abs(cam.fy) / com[:, 2]).to(torch.int64)
    left = torch.floor(com[:, 0]).to(torch.int64) - box // 2
    top = torch.floor(com[:, 1]).to(torch.int64) - box // 2
    return box, left, top


def crop_batch_torch(depth, com_uvd, cam: Intrinsics, half_cube_mm, out_size: int = 128) -> CropBatch:
    """Batched crop on any torch device, matching crop_hand to float rounding.

    depth [B, H, W] (mm, 0 invalid; any dtype), com_uvd [B, 3] (u, v px, d mm),
    half_cube_mm a number or [B] tensor. Returns a CropBatch of torch tensors on depth's
    device: image [B, out, out] float32, com_uvd [B, 3] float64, box [B] int64,
    half_cube_mm [B] float64.
    """
    import torch

    if depth.dim() != 3:
        raise ValueError(f"depth must be [B, H, W], got shape {tuple(depth.shape)}")
    device, batch = depth.device, depth.shape[0]
    com = torch.as_tensor(com_uvd, device=device).to(torch.float64).reshape(batch, 3)
    cube = torch.as_tensor(half_cube_mm, device=device, dtype=torch.float64).expand(batch).clone()
    if not bool(torch.isfinite(com).all()) or bool((com[:, 2] <= 0).any()):
        raise ValueError("com_uvd must be finite with positive depth for every crop")
    if bool((cube <= 0).any()):
        raise ValueError("half_cube_mm must be > 0")

    box, left, top = crop_window_torch(com, cam, cube)
    if bool((box < 2).any()):
        raise ValueError(f"crop box below 2 px (hand too far away?): boxes {box.tolist()}")
    image = _crop_images_torch(depth, com[:, 2], cube, box, left, top, out_size)
    return CropBatch(image=image, com_uvd=com, box=box, half_cube_mm=cube)


def crop_hand_torch(depth, com_uvd, cam: Intrinsics, half_cube_mm: float, out_size: int = 128) -> Crop:
    """crop_hand of a torch frame [H, W] (mm, 0 invalid; any dtype, any device): the square
    and its checks from crop_hand's host numbers, the gather and resize on the frame's
    device (crop_batch_torch's, equal to crop_hand to float rounding). The image comes back
    to the host (a Crop, as crop_hand's); nothing else waits for the device."""
    import torch

    if depth.dim() != 2:
        raise ValueError(f"depth_mm must be a 2-D [H, W] image, got shape {tuple(depth.shape)}")
    com, box, left, top = _crop_square(com_uvd, cam, half_cube_mm)
    # one copy up: (com_d, cube, box, left, top), whole numbers exact in float64
    params = torch.tensor([com[2], float(half_cube_mm), box, left, top], dtype=torch.float64).to(depth.device)
    whole = params[2:].to(torch.int64)
    image = _crop_images_torch(depth[None], params[:1], params[1:2], whole[:1], whole[1:2], whole[2:3], out_size)
    return Crop(image=image[0].cpu().numpy(), com_uvd=com, box=box, half_cube_mm=float(half_cube_mm),
                left=left, top=top)


def _crop_images_torch(depth, centre_d, cube, box, left, top, out_size: int):
    """depth [B, H, W]; centre_d, cube [B] float64; box, left, top [B] int64 (checked) ->
    image [B, out, out] float32 on depth's device."""
    import torch

    device = depth.device
    batch, height, width = depth.shape
    size = 2 * (box // 2)                                                        # [B]
    i = torch.arange(out_size, device=device, dtype=torch.int64)
    num = ((2 * i + 1)[None, :] * size[:, None] - out_size).clamp(min=0)        # [B, out]
    i0 = num // (2 * out_size)
    frac = (num % (2 * out_size)).to(torch.float32) / float(2 * out_size)     # [B, out]
    i1 = torch.minimum(i0 + 1, (size - 1)[:, None])
    rows = torch.cat([i0, i1], dim=1) + top[:, None]                            # [B, 2out]
    cols = torch.cat([i0, i1], dim=1) + left[:, None]
    row_ok = (rows >= 0) & (rows < height)
    col_ok = (cols >= 0) & (cols < width)
    # one flat index per tap (a single int64 [B, 2out, 2out] tensor, not three)
    row_start = (torch.arange(batch, device=device)[:, None] * height + rows.clamp(0, height - 1)) * width
    flat = row_start[:, :, None] + cols.clamp(0, width - 1)[:, None, :]
    taps = depth.reshape(-1)[flat].to(torch.float32)                           # [B, 2out, 2out]

    centre = centre_d.to(torch.float32)[:, None, None]
    cube32 = cube.to(torch.float32)[:, None, None]
    keep = (taps > centre - cube32) & (taps < centre + cube32) & (taps > 0)
    keep &= row_ok[:, :, None] & col_ok[:, None, :]
    values = torch.where(keep, taps - centre, torch.zeros((), device=device))

    n = out_size
    wx = frac[:, None, :]
    wy = frac[:, :, None]
    top_row = values[:, :n, :n] + (values[:, :n, n:] - values[:, :n, :n]) * wx
    bottom_row = values[:, n:, :n] + (values[:, n:, n:] - values[:, n:, :n]) * wx
    return (top_row + (bottom_row - top_row) * wy) / cube32                    # [B, out, out]


# ----------------------------------------------------------------------------- labels

def _label_params(crop, like):
    """(floor(com_u), floor(com_v), com_d, box, cube), shaped to broadcast against
    like[..., 0] ([J] for a Crop, [B, 1] for a CropBatch), in like's array type."""
    batched = isinstance(crop, CropBatch)
    com, box, cube = crop.com_uvd, crop.box, crop.half_cube_mm
    if hasattr(like, "new_tensor"):
        import torch
        com = torch.as_tensor(com, device=like.device).to(torch.float64)
        box = torch.as_tensor(box, device=like.device).to(torch.float64)
        cube = torch.as_tensor(cube, device=like.device).to(torch.float64)
        floor = torch.floor
    else:
        com = np.asarray(com.detach().cpu() if hasattr(com, "detach") else com, dtype=np.float64)
        box = np.asarray(box.detach().cpu() if hasattr(box, "detach") else box, dtype=np.float64)
        cube = np.asarray(cube.detach().cpu() if hasattr(cube, "detach") else cube, dtype=np.float64)
        floor = np.floor
    params = (floor(com[..., 0]), floor(com[..., 1]), com[..., 2], box, cube)
    if batched:
        if like.ndim != 3 or like.shape[0] != len(crop):
            raise ValueError(f"a CropBatch of {len(crop)} needs labels [B, J, 3], got shape {tuple(like.shape)}")
        params = tuple(p.reshape(-1, 1) for p in params)
    return params


def _finish(like, parts):
    """Stack (u, v, d) back into like's type and (floating) dtype."""
    if hasattr(like, "new_tensor"):
        import torch
        dtype = like.dtype if like.is_floating_point() else torch.float64
        return torch.stack(parts, dim=-1).to(dtype)
    dtype = like.dtype if np.issubdtype(like.dtype, np.floating) else np.float64
    return np.stack(parts, axis=-1).astype(dtype, copy=False)


def _as_array(uvd):
    if hasattr(uvd, "new_tensor"):
        return uvd
    return np.asarray(uvd)


def normalise_uvd(uvd, crop):
    """[..., J, 3] (u px, v px, d mm) -> normalised (u_n, v_n, d_n) of this crop (or batch:
    uvd [B, J, 3] with a CropBatch of B). numpy or torch in, same type out."""
    uvd = _as_array(uvd)
    if uvd.shape[-1] != 3:
        raise ValueError(f"uvd must end in 3 values (u, v, d), got shape {tuple(uvd.shape)}")
    iu, iv, com_d, box, cube = _label_params(crop, uvd)
    precise = uvd.double() if hasattr(uvd, "double") else uvd.astype(np.float64)
    u = (precise[..., 0] - iu) / (box - 1)
    v = (precise[..., 1] - iv) / (box - 1)
    d = (precise[..., 2] - com_d) / cube
    return _finish(uvd, (u, v, d))


def recover_uvd(uvd_norm, crop):
    """Inverse of normalise_uvd: u = u_n*(box-1) + floor(com_u), d = d_n*cube + com_d."""
    uvd_norm = _as_array(uvd_norm)
    if uvd_norm.shape[-1] != 3:
        raise ValueError(f"uvd_norm must end in 3 values, got shape {tuple(uvd_norm.shape)}")
    iu, iv, com_d, box, cube = _label_params(crop, uvd_norm)
    precise = uvd_norm.double() if hasattr(uvd_norm, "double") else uvd_norm.astype(np.float64)
    u = precise[..., 0] * (box - 1) + iu
    v = precise[..., 1] * (box - 1) + iv
    d = precise[..., 2] * cube + com_d
    return _finish(uvd_norm, (u, v, d))


def label_to_crop_pixels(uvd_norm, box, out_size: int = 128):
    """Normalised (u_n, v_n) -> pixel coordinates (x, y) inside the out x out crop image
    (pixel centres at integers). Exact under the resize convention above; used by the
    augmentation to move images and labels together. box: int or [B] (broadcasts on [B, J]).

    Frame u = u_n*(box-1) + floor(com_u); crop column c = u - left; crop px = (c + 0.5) *
    out/S - 0.5 with left = floor(com_u) - box//2 and S = 2*(box//2).
    """
    scale, offset = label_pixel_affine(box, out_size, like=uvd_norm)
    return uvd_norm[..., :2] * scale + offset


def label_pixel_affine(box, out_size, like):
    """(scale, offset) with crop px = u_n * scale + offset, broadcastable to like[..., :2]."""
    if hasattr(like, "new_tensor"):
        import torch
        box = torch.as_tensor(box, device=like.device, dtype=like.dtype)
        floor_half = torch.floor(box / 2)
    else:
        box = np.asarray(box, dtype=np.float64)
        floor_half = np.floor(box / 2)
    size = 2 * floor_half
    scale = (box - 1) * out_size / size
    offset = (floor_half + 0.5) * out_size / size - 0.5
    if box.ndim == 1:   # batch: [B] -> [B, 1, 1] against [B, J, 2]
        scale, offset = scale.reshape(-1, 1, 1), offset.reshape(-1, 1, 1)
    return scale, offset

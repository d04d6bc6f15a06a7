"""Ground-truth encoders (training targets), batched torch on any device (srnet.md
"Ground-truth encoders"). The inverse of each is in decoders.py.

All maps are n x n (n = map_size, 64 by default) in the grid units of decoders.py:
pixel p = u_n * (n - 1) + n / 2.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .decoders import uv_to_pixel

HEATMAP_KERNEL = 7    # Gaussian blur kernel size (release)
HEATMAP_SIGMA = 1.5   # Gaussian blur sigma in pixels (release)


def label_image(depth: Tensor) -> Tensor:
    """The label image L: the m x m input crop downscaled to n = m/2 by 2x2 average pooling
    (reproduces the release's bilinear resize). depth [B,1,m,m] -> [B,1,m/2,m/2]."""
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must be [B,1,m,m], got {tuple(depth.shape)}")
    return F.avg_pool2d(depth, kernel_size=2, stride=2)


def _blurred_profile(centre: Tensor, n: int, kernel: int, sigma: float) -> Tensor:
    """1-D Gaussian kernel (normalised to sum 1, truncated to `kernel` taps) placed on the
    integer pixel `centre` of an n-pixel axis. centre [...] -> [..., n]; exactly 0 outside
    the kernel's support and off the map (zero padding, as a convolution would do)."""
    pixels = torch.arange(n, device=centre.device, dtype=centre.dtype)
    offset = pixels - centre.unsqueeze(-1)                         # [..., n]
    taps = torch.arange(kernel, dtype=torch.float64) - kernel // 2
    norm = float(torch.exp(-0.5 * (taps / sigma) ** 2).sum())      # kernel sum, for 1 in total
    inside = offset.abs() <= kernel // 2
    return torch.where(inside, torch.exp(-0.5 * (offset / sigma) ** 2) / norm,
                       torch.zeros_like(offset))


def encode_heatmaps(uv: Tensor, map_size: int = 64, kernel: int = HEATMAP_KERNEL,
                    sigma: float = HEATMAP_SIGMA) -> Tensor:
    """Heatmap targets. uv [B,J,2] normalised (u, v) -> [B,J,n,n].

    Unit mass is split over the 4 pixels around p so their centre of mass is exactly p
    (free parameter t at the midpoint of its valid range), then blurred with a k x k
    Gaussian (not renormalised: mass falling off the map is lost; a neighbour pixel just
    off the map still blurs onto it, so maps fade continuously at the border). The blur of each of the
    4 point masses is separable, so the map is a sum of 4 outer products of 1-D profiles:
    no scatter, no convolution, exact zeros outside the blur's support."""
    if uv.dim() != 3 or uv.shape[-1] != 2:
        raise ValueError(f"uv must be [B,J,2], got {tuple(uv.shape)}")
    n = map_size
    pixel = uv_to_pixel(uv.float(), n)              # [B,J,2] (x = column, y = row)
    base = torch.floor(pixel)
    frac = pixel - base
    du, dv = frac[..., 0], frac[..., 1]            # [B,J]
    t = 0.5 * (torch.clamp(du + dv - 1, min=0) + torch.minimum(du, dv))
    col0 = _blurred_profile(base[..., 0], n, kernel, sigma)      # [B,J,n]
    col1 = _blurred_profile(base[..., 0] + 1, n, kernel, sigma)
    row0 = _blurred_profile(base[..., 1], n, kernel, sigma)
    row1 = _blurred_profile(base[..., 1] + 1, n, kernel, sigma)

    def outer(rows: Tensor, cols: Tensor, weight: Tensor) -> Tensor:
        return weight[..., None, None] * rows.unsqueeze(-1) * cols.unsqueeze(-2)  # [B,J,n,n]

    return (outer(row0, col0, 1 + t - du - dv) + outer(row0, col1, du - t)
            + outer(row1, col0, dv - t) + outer(row1, col1, t))


def encode_depth_maps(d: Tensor, heatmaps: Tensor, label: Tensor) -> Tensor:
    """Depth-offset targets: (d_joint - L) where H_j > 0 and M = (L != 0), else 0.
    d [B,J] normalised depth, heatmaps [B,J,n,n] (targets), label [B,1,n,n] -> [B,J,n,n]."""
    if d.dim() != 2 or heatmaps.shape[:2] != d.shape or label.shape[1] != 1:
        raise ValueError(f"shapes do not match: d {tuple(d.shape)}, heatmaps "
                         f"{tuple(heatmaps.shape)}, label {tuple(label.shape)}")
    label = label.float()
    offset = d.float()[..., None, None] - label               # [B,J,n,n]
    valid = (heatmaps > 0) & (label != 0)
    return torch.where(valid, offset, torch.zeros_like(offset))


def make_targets(uvd: Tensor, depth: Tensor, map_size: int | None = None) -> dict:
    """All map targets of one batch. uvd [B,J,3] normalised, depth [B,1,m,m] input crops ->
    {'heatmaps' [B,J,n,n], 'depth_maps' [B,J,n,n], 'label_image' [B,1,n,n]}."""
    label = label_image(depth)
    n = label.shape[-1] if map_size is None else map_size
    if n != label.shape[-1]:
        raise ValueError(f"map_size {n} does not match the label image size {label.shape[-1]}")
    heatmaps = encode_heatmaps(uvd[..., :2], n)
    return {"heatmaps": heatmaps,
            "depth_maps": encode_depth_maps(uvd[..., 2], heatmaps, label),
            "label_image": label}


"""Differentiable decoders: heatmaps + depth maps -> normalised (u, v, d), and a per-joint
confidence. Pure torch functions used inside SRNet.forward (so an exported graph ends in
joint coordinates) and by the tests. Only elementwise ops, sums and constant grids: no
argmax/gather, no data-dependent shapes, so they export to ONNX opset 17 and TensorRT.

Grid units (srnet.md): column c of an n x n map sits at x = (c - n/2) / (n - 1), row r at
y = (r - n/2) / (n - 1); for n = 64 that is (c - 32) / 63. Pixel p <-> u: p = u * (n-1) + n/2.
"""
from __future__ import annotations

import torch
from torch import Tensor

# Gaussian window (pixels) of the confidence score: about the training heatmap's blur.
CONFIDENCE_SIGMA_PX = 1.5


def grid_coordinates(n: int, device=None, dtype=torch.float32) -> Tensor:
    """[n] normalised coordinate of each column (or row) of an n x n map."""
    return (torch.arange(n, device=device, dtype=dtype) - n / 2) / (n - 1)


def uv_to_pixel(uv: Tensor, n: int) -> Tensor:
    """Normalised grid coordinate -> pixel coordinate on an n x n map."""
    return uv * (n - 1) + n / 2


def pixel_to_uv(pixel: Tensor, n: int) -> Tensor:
    """Pixel coordinate on an n x n map -> normalised grid coordinate."""
    return (pixel - n / 2) / (n - 1)


def decode_plane(heatmaps: Tensor, grid: Tensor | None = None) -> Tensor:
    """Centre of mass of each heatmap. heatmaps [B,J,n,n] (each summing to 1) -> uv [B,J,2].

    grid: the [n] constant from grid_coordinates (a registered buffer inside the network);
    made here when not given. Computed in FP32 even under autocast."""
    heatmaps = heatmaps.float()
    n = heatmaps.shape[-1]
    if grid is None:
        grid = grid_coordinates(n, heatmaps.device)
    grid = grid.float()
    u = (heatmaps.sum(dim=-2) * grid).sum(dim=-1)  # column marginal [B,J,n] -> [B,J]
    v = (heatmaps.sum(dim=-1) * grid).sum(dim=-1)  # row marginal    [B,J,n] -> [B,J]
    return torch.stack((u, v), dim=-1)  # [B,J,2]


def decode_depth(heatmaps: Tensor, depth_maps: Tensor, label: Tensor, eps: float) -> Tensor:
    """d_j = sum(H_j * M * (L + D_j)) / (sum(H_j * M) + eps), M = (L != 0).

    heatmaps, depth_maps [B,J,n,n]; label (the label image L) [B,1,n,n] -> d [B,J].
    The reduction runs in FP32 so eps never underflows; an empty mask gives d = 0."""
    label = label.float()
    mask = (label != 0).to(torch.float32)      # [B,1,n,n]
    weight = heatmaps.float() * mask            # [B,J,n,n]
    numerator = (weight * (label + depth_maps.float())).sum(dim=(-2, -1))  # [B,J]
    return numerator / (weight.sum(dim=(-2, -1)) + eps)


def decode_confidence(heatmaps: Tensor, uv: Tensor, grid: Tensor | None = None,
                      sigma_px: float = CONFIDENCE_SIGMA_PX) -> Tensor:
    """Per-joint confidence in [0, 1]: the heatmap mass inside a Gaussian window (peak 1,
    sigma in pixels) centred on the decoded (u, v). heatmaps [B,J,n,n], uv [B,J,2] -> [B,J].
    grid: the [n] constant of grid_coordinates (made here when not given).

    Meaning: 1 = all mass at the decoded point (a sharp, unimodal heatmap); a heatmap shaped
    like the training target (blur sigma 1.5 px) scores about 0.5 with the default window;
    mass spread out or split between two places (the centre of mass falls between them)
    scores near 0 (a uniform 64 x 64 map: ~0.003). Heatmaps must be non-negative and sum
    to at most 1, which both the softmax and the relu-normalised heads guarantee."""
    heatmaps = heatmaps.float()
    if grid is None:
        grid = grid_coordinates(heatmaps.shape[-1], heatmaps.device)
    # Distances in units of sigma: one grid step is one pixel = 1/(n-1) normalised units.
    scale = (grid.shape[0] - 1) / sigma_px
    uv = uv.float()
    wx = torch.exp(-0.5 * ((grid.float() - uv[..., 0:1]) * scale) ** 2)  # [B,J,n]
    wy = torch.exp(-0.5 * ((grid.float() - uv[..., 1:2]) * scale) ** 2)  # [B,J,n]
    # Separable window w(r, c) = wy(r) * wx(c).
    row_mass = (heatmaps * wx.unsqueeze(-2)).sum(dim=-1)                  # [B,J,n] over rows
    return (row_mass * wy).sum(dim=-1).clamp(0.0, 1.0)                    # [B,J]

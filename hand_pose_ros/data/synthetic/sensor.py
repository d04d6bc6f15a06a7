"""A RealSense-like depth sensor model applied to rendered depth (mm, 0 = invalid).

In order:
1. silhouette pixels: pixels at a depth discontinuity (a 4-neighbour differs by more than
   max(`edge_threshold_mm`, `edge_threshold_rel` * depth), or is invalid) are dropped with probability `edge_drop_prob`
   (stereo matching fails at object borders), and with probability `flying_pixel_prob`
   become "flying pixels": a depth between their own and their farthest neighbour's
   (mixed foreground/background measurements, as on real sensors);
2. Gaussian depth noise with sigma = s * (noise_base_mm + noise_k_per_mm * z^2), s a
   per-frame factor uniform in `noise_scale_range` (stereo depth error grows with the
   square of the distance: Intel's RMS formula z^2 * subpixel / (f_px * baseline) =
   z^2 * 0.08 / (386 * 50 mm) ~ 4e-6 z^2 for a D435 at 640x480);
3. random holes: discs of radius `hole_radius_px`, `holes_per_frame` on average per
   640x480 pixels (scaled with the rendered area), plus isolated pixel dropout;
4. range limits and quantisation to `quantise_mm` (1 mm: what a uint16 mm image stores).
"""
from __future__ import annotations

import torch

from .sensors import farthest_neighbour, silhouette_edges

_REFERENCE_PIXELS = 640 * 480
MAX_HOLES = 6        # at most this many hole discs per frame (Bernoulli slots)


def apply_sensor(depth: torch.Tensor, generator: torch.Generator, config) -> torch.Tensor:
    """Noisy, holed, quantised copy of a clean depth batch [B, H, W] (mm, 0 = invalid).
    `config` is a SyntheticConfig (its sensor fields are used)."""
    g_dev = generator.device
    batch, height, width = depth.shape
    out = depth.clone()
    if config.noise:
        edges = silhouette_edges(depth, config.edge_threshold_mm, config.edge_threshold_rel)
        # one uniform per pixel decides: [0, p_drop) drop an edge pixel, [p_drop, p_drop +
        # p_fly) make it a flying pixel (its position in that interval = the mix), the top
        # p_dropout of the range drops any pixel
        draw = torch.rand(depth.shape, generator=generator, device=g_dev).to(depth.device)
        p_drop, p_fly = config.edge_drop_prob, config.flying_pixel_prob
        far = farthest_neighbour(depth)
        flying = edges & (draw >= p_drop) & (draw < p_drop + p_fly) & (far > depth + config.edge_threshold_mm)
        mix = (draw - p_drop) / max(p_fly, 1e-9)
        out = torch.where(flying, depth + mix * (far - depth), out)
        out = torch.where(edges & (draw < p_drop), torch.zeros_like(out), out)
        out = torch.where(draw > 1 - config.pixel_dropout, torch.zeros_like(out), out)

        low, high = config.noise_scale_range
        scale = low + (high - low) * torch.rand(batch, 1, 1, generator=generator, device=g_dev).to(depth.device)
        sigma = scale * (config.noise_base_mm + config.noise_k_per_mm * depth * depth)
        noise = torch.randn(depth.shape, generator=generator, device=g_dev).to(depth.device)
        out = torch.where(out > 0, out + sigma * noise, out)

        out = out * ~_hole_mask(batch, height, width, generator, config).to(depth.device)
    valid = (out >= config.min_range_mm) & (out <= config.max_range_mm)
    if config.quantise_mm > 0:
        out = torch.round(out / config.quantise_mm) * config.quantise_mm
    return torch.where(valid, out, torch.zeros_like(out))


def _hole_mask(batch: int, height: int, width: int, generator: torch.Generator, config) -> torch.Tensor:
    """bool [B, H, W]: union of random discs (each of MAX_HOLES slots present with
    probability holes_per_frame * area / (640*480) / MAX_HOLES, capped at 1)."""
    g_dev = generator.device
    expected = config.holes_per_frame * height * width / _REFERENCE_PIXELS
    present_prob = min(1.0, expected / MAX_HOLES)
    u = torch.rand(batch, MAX_HOLES, 4, generator=generator, device=g_dev)
    present = u[..., 0] < present_prob
    centre_x = u[..., 1] * width
    centre_y = u[..., 2] * height
    low, high = config.hole_radius_px
    radius = low + (high - low) * u[..., 3]
    rows = torch.arange(height, device=g_dev, dtype=torch.float32)
    cols = torch.arange(width, device=g_dev, dtype=torch.float32)
    mask = torch.zeros(batch, height, width, dtype=torch.bool, device=g_dev)
    for k in range(MAX_HOLES):
        # inside the disc: dx^2 <= r^2 - dy^2 (room < 0 on rows the disc misses or when absent)
        room = radius[:, k:k + 1] ** 2 - (rows[None, :] - centre_y[:, k:k + 1]) ** 2      # [B, H]
        room = torch.where(present[:, k:k + 1], room, torch.full_like(room, -1.0))
        dx2 = (cols[None, :] - centre_x[:, k:k + 1]) ** 2                                  # [B, W]
        mask |= dx2[:, None, :] <= room[:, :, None]
    return mask

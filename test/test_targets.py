"""Ground-truth encoders and the decoders that invert them (hand_pose_ros.model.targets,
.decoders), against srnet.md."""
import math

import pytest
import torch
import torch.nn.functional as F

from hand_pose_ros.model.decoders import (decode_confidence, decode_depth, decode_plane,
                                          grid_coordinates, pixel_to_uv, uv_to_pixel)
from hand_pose_ros.model.targets import (encode_depth_maps, encode_heatmaps, label_image,
                                         make_targets)

N = 64


def random_uv(batch, joints, generator, margin_px=6):
    """Normalised (u, v) whose pixel lies at least margin_px from every border."""
    pixel = margin_px + torch.rand(batch, joints, 2, generator=generator) * (N - 1 - 2 * margin_px)
    return pixel_to_uv(pixel, N)


def test_grid_matches_srnet_md():
    grid = grid_coordinates(64)
    assert grid[32] == 0
    assert torch.allclose(grid, (torch.arange(64.0) - 32) / 63)
    uv = torch.tensor([-0.3, 0.0, 0.41])
    assert torch.allclose(uv_to_pixel(uv, 64), uv * 63 + 32)
    assert torch.allclose(pixel_to_uv(uv_to_pixel(uv, 64), 64), uv)


def reference_heatmap(px, py, n=N, kernel=7, sigma=1.5):
    """Independent construction: 4-neighbour split written out per srnet.md, then a
    zero-padded k x k Gaussian convolution."""
    u0, v0 = math.floor(px), math.floor(py)
    du, dv = px - u0, py - v0
    t = 0.5 * (max(du + dv - 1, 0.0) + min(du, dv))
    point = torch.zeros(1, 1, n, n, dtype=torch.float64)
    for (row, col), w in (((v0, u0), 1 + t - du - dv), ((v0, u0 + 1), du - t),
                          ((v0 + 1, u0), dv - t), ((v0 + 1, u0 + 1), t)):
        if 0 <= row < n and 0 <= col < n:
            point[0, 0, row, col] += w
    taps = torch.arange(kernel, dtype=torch.float64) - kernel // 2
    g = torch.exp(-0.5 * (taps / sigma) ** 2)
    g = g / g.sum()
    blurred = F.conv2d(point, (g[:, None] * g[None, :])[None, None], padding=kernel // 2)
    return blurred[0, 0].float()


@pytest.mark.parametrize("px,py", [(20.3, 40.7), (32.0, 32.0), (10.9, 10.05), (0.4, 5.5), (62.6, 62.5)])
def test_heatmap_matches_reference_construction(px, py):
    uv = pixel_to_uv(torch.tensor([[[px, py]]]), N)
    heatmap = encode_heatmaps(uv, N)[0, 0]
    assert torch.allclose(heatmap, reference_heatmap(px, py), atol=1e-6)


def test_heatmap_mass_and_support():
    generator = torch.Generator().manual_seed(0)
    uv = random_uv(4, 21, generator)
    heatmaps = encode_heatmaps(uv, N)
    assert heatmaps.shape == (4, 21, N, N)
    assert torch.allclose(heatmaps.sum(dim=(-2, -1)), torch.ones(4, 21), atol=1e-5)
    assert (heatmaps >= 0).all()
    # Support: an 8 x 8 window at most (2 x 2 cell blurred by a 7-tap kernel).
    assert ((heatmaps > 0).sum(dim=(-2, -1)) <= 64).all()
    # Near the border mass is lost, not renormalised.
    corner = encode_heatmaps(pixel_to_uv(torch.tensor([[[0.0, 0.0]]]), N), N)
    assert corner.sum() < 0.6
    # A joint slipping off the map: its heatmap fades continuously (point masses beyond
    # the border still blur onto it), no jump when a neighbour pixel leaves the map.
    edge = [encode_heatmaps(pixel_to_uv(torch.tensor([[[30.0, y]]]), N), N).sum().item()
            for y in (62.9, 62.999, 63.001, 63.1)]
    assert edge[0] > edge[1] > edge[2] > edge[3] and edge[1] - edge[2] < 1e-3
    # Fully off the map: an empty map, no error.
    assert encode_heatmaps(torch.full((1, 1, 2), 3.0), N).sum() == 0


def test_round_trip_plane_and_depth():
    generator = torch.Generator().manual_seed(1)
    batch, joints = 8, 21
    uv = random_uv(batch, joints, generator)
    d = torch.rand(batch, joints, generator=generator) * 1.8 - 0.9
    heatmaps = encode_heatmaps(uv, N)
    assert (decode_plane(heatmaps) - uv).abs().max() < 1e-3

    # A label image with hand everywhere around the joints (smooth, values in (-1, 1)).
    rows = torch.arange(N, dtype=torch.float32)
    label = (0.3 * torch.sin(rows / 7)[:, None] * torch.cos(rows / 5)[None, :] + 0.5)
    label = label.expand(batch, 1, N, N).clone()
    depth_maps = encode_depth_maps(d, heatmaps, label)
    decoded = decode_depth(heatmaps, depth_maps, label, eps=1e-4)
    assert (decoded - d).abs().max() < 1e-4


def test_depth_targets_only_on_hand_and_heatmap_support():
    uv = pixel_to_uv(torch.tensor([[[20.0, 20.0], [40.0, 40.0]]]), N)
    d = torch.tensor([[0.2, -0.3]])
    heatmaps = encode_heatmaps(uv, N)
    label = torch.zeros(1, 1, N, N)
    label[..., :, :30] = 0.1          # hand on the left, background (0) on the right
    depth_maps = encode_depth_maps(d, heatmaps, label)
    on = (heatmaps > 0) & (label != 0)
    assert on[0, 0].any() and not on[0, 1].any()
    assert torch.allclose(depth_maps[on], (d[..., None, None] - label).expand_as(depth_maps)[on])
    assert (depth_maps[~on] == 0).all()
    # Joint 1 lies on background only: its offsets are all 0 and decoding gives 0, finitely.
    decoded = decode_depth(heatmaps, depth_maps, label, eps=1e-4)
    assert decoded[0, 1] == 0 and torch.isfinite(decoded).all()


def test_label_image_is_2x2_average_and_make_targets():
    depth = torch.zeros(2, 1, 128, 128)
    depth[:, :, 10:12, 20:22] = torch.tensor([[0.1, 0.3], [0.5, 0.7]])
    label = label_image(depth)
    assert label.shape == (2, 1, 64, 64)
    assert torch.isclose(label[0, 0, 5, 10], torch.tensor(0.4))
    assert (label != 0).sum() == 2
    uvd = torch.tensor([[[0.0, 0.0, 0.1]]]).expand(2, 1, 3)
    targets = make_targets(uvd, depth)
    assert set(targets) == {"heatmaps", "depth_maps", "label_image"}
    assert targets["heatmaps"].shape == (2, 1, 64, 64)
    with pytest.raises(ValueError, match="label image size"):
        make_targets(uvd, depth, map_size=32)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\[B,J,2\]"):
        encode_heatmaps(torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"\[B,1,m,m\]"):
        label_image(torch.zeros(1, 128, 128))
    with pytest.raises(ValueError, match="do not match"):
        encode_depth_maps(torch.zeros(1, 3), torch.zeros(1, 2, 8, 8), torch.zeros(1, 1, 8, 8))


def test_confidence_scale():
    uv = pixel_to_uv(torch.tensor([[[30.0, 30.0]]]), N)
    sharp = torch.zeros(1, 1, N, N)
    sharp[0, 0, 30, 30] = 1
    target_like = encode_heatmaps(uv, N)
    uniform = torch.full((1, 1, N, N), 1 / N**2)
    split = torch.zeros(1, 1, N, N)
    split[0, 0, 30, 10] = split[0, 0, 30, 50] = 0.5   # two places: the mean lies between
    scores = [decode_confidence(h, decode_plane(h)).item() for h in (sharp, target_like, uniform, split)]
    assert scores[0] == pytest.approx(1.0, abs=1e-6)
    assert 0.4 < scores[1] < 0.6
    assert scores[2] < 0.01 and scores[3] < 1e-6

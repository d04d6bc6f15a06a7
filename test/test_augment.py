"""Augmentation moves images and labels together, deterministically."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hand_pose_ros.data.augment import AugmentConfig, AugmentParams, augment_batch, sample_params
from hand_pose_ros.data.crop import label_pixel_affine, label_to_crop_pixels

OUT = 128
JOINTS = 8


def blob_crops(batch=4, seed=0, box=None, radius=3.5):
    """Crops with one flat disc per joint, one joint per channel: [B, J, S, S] images and
    [B, J, 3] labels, each disc centred on its label's pixel with depth = the label's d."""
    g = torch.Generator().manual_seed(seed)
    uvd = torch.rand(batch, JOINTS, 3, generator=g) * 0.5 - 0.25     # u, v in [-0.25, 0.25]
    uvd[..., 2] = uvd[..., 2] * 2 - 0.05                              # d in [-0.55, 0.45]
    uvd[..., 2] = torch.where(uvd[..., 2].abs() < 0.05, uvd[..., 2].sign() * 0.1 + 0.01, uvd[..., 2])
    px = label_to_crop_pixels(uvd, box if box is not None else torch.full((batch,), 255), OUT)
    ys, xs = torch.meshgrid(torch.arange(OUT, dtype=torch.float32), torch.arange(OUT, dtype=torch.float32),
                            indexing="ij")
    dist2 = (xs - px[..., 0, None, None]) ** 2 + (ys - px[..., 1, None, None]) ** 2   # [B, J, S, S]
    images = torch.where(dist2 <= radius ** 2, uvd[..., 2, None, None], torch.zeros(()))
    # put each label exactly on its rasterised disc's centroid (a disc of whole pixels is
    # off its nominal centre by up to ~0.2 px)
    a, b = label_pixel_affine(box if box is not None else torch.full((batch,), 255), OUT, like=uvd)
    uvd[..., :2] = (centroids(images, uvd[..., 2]) - b) / a
    return images, uvd


def centroids(images, depth_values):
    """Coverage-weighted centroid of each channel's disc ([B, J, 2] px)."""
    coverage = images / depth_values[..., None, None]
    ys, xs = torch.meshgrid(torch.arange(OUT, dtype=torch.float32), torch.arange(OUT, dtype=torch.float32),
                            indexing="ij")
    total = coverage.sum((-1, -2))
    return torch.stack([(coverage * xs).sum((-1, -2)) / total, (coverage * ys).sum((-1, -2)) / total], -1)


@pytest.mark.parametrize("rotation", [30.0, 180.0])
def test_labels_stay_on_their_blobs(rotation):
    box = torch.tensor([255, 200, 131, 180])
    images, uvd = blob_crops(box=box)
    config = AugmentConfig(rotation_deg=rotation, scale_range=(0.8, 1.2), shift_mm=5.0)
    g = torch.Generator().manual_seed(7)
    out_images, out_uvd = augment_batch(images, uvd, g, config, half_cube_mm=150.0, box=box)
    assert out_images.shape == images.shape and out_uvd.shape == uvd.shape
    # every disc keeps its (scaled, shifted) depth and its label sits on its centre
    label_px = label_to_crop_pixels(out_uvd, box, OUT)
    found = centroids(out_images, out_uvd[..., 2])
    assert (label_px - found).abs().max() < 0.06     # resampling noise; a convention slip is >= 0.25
    interior = out_images.amax((-1, -2))
    torch.testing.assert_close(interior, out_uvd[..., 2].where(out_uvd[..., 2] > 0, interior), atol=1e-5, rtol=0)
    assert not torch.equal(out_uvd, uvd)


def test_single_channel_value_under_each_label():
    """One channel with all discs: the pixel under each augmented label holds that joint's
    augmented depth (no box given: the nominal label<->pixel map)."""
    images, uvd = blob_crops(batch=3, seed=3, radius=4.0)
    single = images.sum(1)                     # [B, S, S]
    alone = ((images != 0).sum(1, keepdim=True) <= 1) | (images == 0)
    isolated = alone.all(-1).all(-1)           # [B, J]: discs that overlap no other disc
    assert isolated.sum() >= 12
    g = torch.Generator().manual_seed(11)
    out, out_uvd = augment_batch(single, uvd, g)
    assert out.shape == single.shape
    px = label_to_crop_pixels(out_uvd, torch.full((3,), 255), OUT).round().long()
    for b, j in torch.nonzero(isolated).tolist():
        x, y = px[b, j].tolist()
        assert out[b, y, x].item() == pytest.approx(out_uvd[b, j, 2].item(), abs=1e-4)


def test_deterministic_and_seed_dependent():
    images, uvd = blob_crops()
    a = augment_batch(images, uvd, torch.Generator().manual_seed(5))
    b = augment_batch(images, uvd, torch.Generator().manual_seed(5))
    c = augment_batch(images, uvd, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_identity_transform_changes_nothing():
    images, uvd = blob_crops()
    config = AugmentConfig(rotation_deg=0, scale_range=(1.0, 1.0), shift_mm=0)
    out, out_uvd = augment_batch(images, uvd, torch.Generator().manual_seed(0), config)
    torch.testing.assert_close(out, images, atol=1e-6, rtol=0)
    torch.testing.assert_close(out_uvd, uvd, atol=1e-6, rtol=0)


def test_known_rotation_and_depth_change():
    """A quarter turn maps the label (u, v) -> (-v, u) about the centre; scale 1.1 and a
    depth shift act on d; background stays exactly 0 and values leave the cube -> 0."""
    images = torch.zeros(1, 1, OUT, OUT)
    images[0, 0, 60:68, 80:88] = 0.5
    images[0, 0, 10:14, 10:14] = 0.95                       # pushed past 1 by the scale: dropped
    uvd = torch.tensor([[[0.2, -0.1, 0.3]]])
    params = AugmentParams(angle_rad=torch.tensor([math.pi / 2]), scale=torch.tensor([1.1]),
                           shift_norm=torch.tensor([[0.0, 0.0, 0.02]]))
    out, out_uvd = augment_batch(images, uvd, params=params)
    torch.testing.assert_close(out_uvd, torch.tensor([[[0.11, 0.22, 0.35]]]), atol=1e-6, rtol=0)
    assert out.max() == pytest.approx(0.5 * 1.1 + 0.02, abs=1e-5)
    assert (out.abs() < 1).all()
    # rotated: the square at columns 80..87, rows 60..67 moves to rows ~80..87
    rows = torch.nonzero(out[0, 0] > 0.5)[:, 0].float()
    assert 78 < rows.mean() < 90


def test_parameter_ranges_and_validation():
    config = AugmentConfig(rotation_deg=30, scale_range=(0.8, 1.2), shift_mm=5)
    p = sample_params(2000, config, 150.0, torch.Generator().manual_seed(0))
    assert p.angle_rad.abs().max() <= math.radians(30) + 1e-6
    assert p.angle_rad.abs().max() > math.radians(29)
    assert 0.8 <= p.scale.min() and p.scale.max() <= 1.2
    assert p.shift_norm[:, 2].abs().max() <= 5 / 150 + 1e-7
    assert p.shift_norm[:, :2].abs().max() <= 5 / 300 + 1e-7
    with pytest.raises(ValueError, match="rotation_deg"):
        AugmentConfig(rotation_deg=200)
    with pytest.raises(ValueError, match="scale_range"):
        AugmentConfig(scale_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="uvd_norm"):
        augment_batch(torch.zeros(2, 1, 8, 8), torch.zeros(3, 4, 3))


def test_runs_on_cuda_like_cpu_when_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    images, uvd = blob_crops()
    cpu = augment_batch(images, uvd, torch.Generator().manual_seed(1))
    gpu = augment_batch(images.cuda(), uvd.cuda(), torch.Generator().manual_seed(1))
    np.testing.assert_allclose(gpu[1].cpu().numpy(), cpu[1].numpy(), atol=1e-5)
    np.testing.assert_allclose(gpu[0].cpu().numpy(), cpu[0].numpy(), atol=1e-4)


def test_never_mirrors_so_handedness_labels_stay_true():
    """A mirror turns a left hand into a right one. The transforms are rotations and positive
    scales, so the orientation of every label triangle in the image plane (the sign of its
    signed area) is kept, for every draw, even at the widest settings."""
    images, uvd = blob_crops(batch=64, seed=5)
    wide = AugmentConfig(rotation_deg=180.0, scale_range=(0.5, 1.5), shift_mm=20.0)
    _, moved = augment_batch(images, uvd, generator=torch.Generator().manual_seed(9), config=wide)

    def signed_areas(labels):  # [B, J-2] over triangles (0, k, k + 1)
        a = labels[:, 1:-1, :2] - labels[:, :1, :2]
        b = labels[:, 2:, :2] - labels[:, :1, :2]
        return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]

    before, after = signed_areas(uvd), signed_areas(moved)
    large = before.abs() > 1e-3  # skip near-degenerate triangles
    assert large.sum() > 100
    assert (torch.sign(before[large]) == torch.sign(after[large])).all()
    with pytest.raises(ValueError, match="scale_range"):
        AugmentConfig(scale_range=(-1.2, -0.8))  # a negative scale would be a point mirror

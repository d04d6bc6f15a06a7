"""The localiser's faster paths give exactly what the plain whole-image computations give:
labelling only the mask's box, the seed disc computed in its box, surfaces and the interior
front found in the candidates' box, the masked depth by multiplication, the coarse mask
gathered rows then columns. References are the whole-image formulas, written out here."""
import math

import numpy as np
import pytest
from scipy import ndimage

from hand_pose_ros.data import localise
from hand_pose_ros.data.localise import HandLocaliser
from hand_pose_ros.inference.sample_inputs import realistic_frames

EIGHT = np.ones((3, 3), dtype=bool)


@pytest.fixture(scope="module")
def scenes():
    """(coarse float32, candidates bool, seed (u, v, d), cam, stride) of varied synthetic scenes."""
    from hand_pose_ros.data.localise_report import body_in_view_samples

    loc = HandLocaliser()
    out = []
    bodies = [(s.depth_mm, s.cam) for s in body_in_view_samples(4, seed=3, batch=4)]  # the thick-body opening runs
    for depth, cam in realistic_frames(8, seed=7) + bodies:
        stride = max(1, depth.shape[1] // loc.coarse_width)
        coarse = np.ascontiguousarray(depth[::stride, ::stride], dtype=np.float32)
        near, far = loc.depth_range_mm
        in_range = (coarse > near) & (coarse < far)
        found = loc.locate(depth, cam)
        seed = found.com_uvd if found is not None else np.array([320.0, 240.0, 600.0])
        out.append((coarse, in_range, seed, cam, stride))
        out.append((coarse, in_range & loc._seed_mask(coarse, stride, cam, seed), seed, cam, stride))
    return out


def test_label_in_the_box_is_ndimage_label():
    rng = np.random.default_rng(0)
    for structure in (EIGHT, None):
        for density in (0.0, 0.05, 0.4):
            mask = np.zeros((60, 80), dtype=bool)
            mask[10:40, 25:70] = rng.uniform(size=(30, 45)) < density
            labels, count = localise._label(mask, structure)
            expected, expected_count = ndimage.label(mask, structure=structure)
            assert count == expected_count and np.array_equal(labels, expected)


def test_seed_mask_equals_the_whole_image_disc(scenes):
    loc = HandLocaliser()
    for coarse, _, seed, cam, stride in scenes:
        for u, v, d in (seed, seed + [200.0, -150.0, 100.0], (-50.0, 10.0, 400.0), (700.0, 500.0, 300.0)):
            radius = loc.seed_radius_mm * abs(cam.fx) / d / stride
            rows = np.arange(coarse.shape[0]) - v / stride
            cols = np.arange(coarse.shape[1]) - u / stride
            disc = rows[:, None] ** 2 + cols[None, :] ** 2 < radius ** 2
            expected = disc & (np.abs(coarse - d) < loc.seed_radius_mm)
            assert np.array_equal(loc._seed_mask(coarse, stride, cam, (u, v, d)), expected)


def test_surfaces_in_the_candidates_box_equal_the_whole_image(scenes):
    loc = HandLocaliser()
    whole = (slice(None), slice(None))
    for coarse, candidates, _, cam, stride in scenes:
        expected = loc._surfaces_in_box(coarse, candidates, stride, cam, whole, coarse.shape)
        assert np.array_equal(loc._surfaces(coarse, candidates, stride, cam), expected)


def reference_interior_front(loc, coarse, candidates, stride, cam, slab_mm=60.0, tries=3):
    candidates = candidates.copy()
    ring = np.ones(coarse.shape, dtype=bool)
    ring[1:-1, 1:-1] = False
    for _ in range(tries):
        values = coarse[candidates]
        if values.size == 0:
            return None, math.inf
        k = min(loc.near_pixels, values.size) - 1
        near_d = float(np.partition(values, k)[k])
        slab = candidates & (coarse < near_d + slab_mm)
        labels, count = ndimage.label(slab, structure=EIGHT)
        on_ring = ring & slab
        contact = np.bincount(labels[on_ring], weights=coarse[on_ring], minlength=count + 1) * (stride / abs(cam.fx))
        running_out = contact > loc.max_border_contact_mm
        running_out[0] = False
        if not running_out.any():
            return candidates, near_d
        candidates &= ~running_out[labels]
    return None, math.inf


def test_interior_front_in_the_candidates_box_equals_the_whole_image(scenes):
    loc = HandLocaliser()
    for coarse, candidates, _, cam, stride in scenes:
        for slab_mm in (60.0, 400.0):  # a thick slab reaches the border more often
            got, got_near = loc._interior_front(coarse, candidates, stride, cam, slab_mm=slab_mm)
            expected, expected_near = reference_interior_front(loc, coarse, candidates, stride, cam, slab_mm=slab_mm)
            assert got_near == expected_near
            assert (got is None and expected is None) or np.array_equal(got, expected)


def test_masked_depth_and_upsampled_mask_equal_their_plain_forms():
    rng = np.random.default_rng(1)
    roi = rng.uniform(100, 900, (40, 50)).astype(np.float32)[::2, ::2]
    mask = rng.uniform(size=roi.shape) < 0.5
    for bad in (None, np.nan, np.inf):
        if bad is not None:
            roi = roi.copy()
            roi[~mask] = np.where(rng.uniform(size=(~mask).sum()) < 0.1, bad, roi[~mask])
        depth_in, total = localise._masked_depth(roi, mask)
        expected = np.where(mask, roi, np.float32(0)).astype(np.float32)
        assert np.array_equal(depth_in, expected) and total == float(expected.sum(dtype=np.float64))
    coarse_mask = rng.uniform(size=(30, 40)) < 0.5
    rows, cols = np.arange(6, 110, 2), np.arange(0, 160, 2)
    r = np.minimum((rows + 2) // 4, 29)
    c = np.minimum((cols + 2) // 4, 39)
    assert np.array_equal(localise._upsample_mask(coarse_mask, 4, rows, cols), coarse_mask[r[:, None], c[None, :]])


def test_pixel_span_holds_exactly_the_pixels_of_the_cells():
    for stride, pixels in ((4, 480), (4, 479), (2, 240), (1, 50), (3, 100)):
        cells = -(-pixels // stride)
        nearest = np.minimum((np.arange(pixels) + stride // 2) // stride, cells - 1)
        for start in range(0, cells, 3):
            for stop in range(start + 1, cells + 1, 2):
                low, high = localise._pixel_span(slice(start, stop), stride, cells, pixels)
                inside = (nearest >= start) & (nearest < stop)
                assert np.array_equal(np.flatnonzero(inside), np.arange(low, high)), (stride, pixels, start, stop)
    assert localise._on_grid(10, 90, 4, 23, 70) == (26, 70)  # stays on 10 + 4k
    assert localise._on_grid(10, 90, 4, 0, 480) == (10, 90)


def test_refine_on_the_cut_windows_equals_refine_on_whole_windows(monkeypatch):
    """The same detections with each refinement window cut to the region's pixels as with
    the whole windows (the cut made a no-op), for float and whole-millimetre frames."""
    loc = HandLocaliser()
    frames = realistic_frames(8, seed=7)
    cut = [[loc.locate(d, cam), loc.locate(np.round(d).astype(np.uint16), cam)] for d, cam in frames]
    monkeypatch.setattr(localise, "_pixel_span", lambda cell_slice, stride, cells, pixels: (0, pixels))
    whole = [[loc.locate(d, cam), loc.locate(np.round(d).astype(np.uint16), cam)] for d, cam in frames]
    for got, expected in zip(sum(cut, []), sum(whole, [])):
        assert (got is None) == (expected is None)
        if got is not None:
            assert np.array_equal(got.com_uvd, expected.com_uvd) and got.bbox == expected.bbox
            assert (got.pixel_count, got.area_mm2, got.near_mm) == (expected.pixel_count, expected.area_mm2, expected.near_mm)


def test_a_uint16_frame_is_localised_and_cropped_as_its_float32_copy():
    """The pose node hands 16UC1 frames over as uint16 millimetres (no float copy)."""
    from hand_pose_ros.data.crop import crop_hand

    loc = HandLocaliser()
    for depth, cam in realistic_frames(8, seed=7):
        whole_mm = np.round(depth).astype(np.uint16)
        as_float = whole_mm.astype(np.float32)
        for seed in (None, (330.0, 250.0, 550.0)):
            a, b = loc.locate(as_float, cam, seed_uvd=seed), loc.locate(whole_mm, cam, seed_uvd=seed)
            assert (a is None) == (b is None)
            if a is None:
                continue
            assert np.array_equal(a.com_uvd, b.com_uvd) and (a.bbox, a.area_mm2) == (b.bbox, b.area_mm2)
            crop_a, crop_b = crop_hand(as_float, a.com_uvd, cam, 150.0), crop_hand(whole_mm, a.com_uvd, cam, 150.0)
            assert np.array_equal(crop_a.image, crop_b.image)


def test_surfaces_shortcut_for_small_candidates_equals_the_labelled_answer(scenes, monkeypatch):
    """Candidates smaller together than a surface skip the labelling: the same surfaces."""
    loc = HandLocaliser()
    short = [loc._surfaces(coarse, candidates, stride, cam) for coarse, candidates, _, cam, stride in scenes]
    monkeypatch.setattr(localise, "_surely_below", lambda total, limit: False)
    for (coarse, candidates, _, cam, stride), got in zip(scenes, short):
        assert np.array_equal(got, loc._surfaces(coarse, candidates, stride, cam))

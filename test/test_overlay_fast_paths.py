"""The debug image's faster paths draw exactly what the plain per-pixel / per-bone forms
draw: the colour map looked up per 16-bit value and repacked by shifts, all bones sampled in
one go (np.linspace's points), the skeleton and box on top."""
import numpy as np
import pytest

from hand_pose_ros import keypoints
from hand_pose_ros.ros import overlay


def reference_colourise(depth, near, far):
    """The colour map per pixel: index into the 256 anchors-interpolated colours, 0 = black."""
    d = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        scaled = np.clip((d - np.float32(near)) * np.float32(255 / (far - near)), 0, 255)
        scaled[~(d > 0) | ~np.isfinite(d)] = -1.0
    return overlay._LUT_RGBA[(scaled + 1.0).astype(np.uint16)][..., :3]


@pytest.mark.parametrize("shape", [(48, 64), (31, 45)])  # the repacking needs 4 | pixels; else the plain copy
def test_colourise_equals_the_per_pixel_colour_map(shape):
    rng = np.random.default_rng(0)
    whole = rng.integers(0, 2000, shape).astype(np.uint16)
    fractional = whole.astype(np.float32) + rng.uniform(0, 1, shape).astype(np.float32)
    fractional[0, :5] = (np.nan, np.inf, -3.0, 0.0, 1e9)
    for depth in (whole, fractional):
        for near, far in ((300.0, 900.0), (0.0, 1.0), (1.5, 60000.0)):
            got = overlay.colourise_depth(depth, near, far)
            assert got.shape == shape + (3,) and got.dtype == np.uint8 and got.flags.c_contiguous
            assert np.array_equal(got, reference_colourise(depth, near, far))


def reference_segment(p0, p1):
    steps = int(np.ceil(np.abs(p1 - p0).max())) + 1
    return np.round(p0 + (p1 - p0) * np.linspace(0.0, 1.0, steps)[:, None]).astype(np.int64)


def test_all_bones_at_once_equal_one_linspace_per_bone():
    rng = np.random.default_rng(1)
    p0 = rng.uniform(-40, 40, (30, 2))
    p1 = p0 + rng.uniform(-60, 60, (30, 2)) * (rng.uniform(size=(30, 1)) < 0.8)  # some zero-length
    points, steps = overlay._segments_points(p0, p1)
    expected = [reference_segment(a, b) for a, b in zip(p0, p1)]
    assert steps.tolist() == [len(e) for e in expected]
    assert np.array_equal(points, np.concatenate(expected))


def reference_skeleton(image, uv, names, thickness=2, joint_radius=3):
    colours = np.stack([overlay._as_rgb255(keypoints.colour_of(n)) for n in names])
    for a, b in keypoints.edges(names):
        if overlay._drawable(uv[a], image) and overlay._drawable(uv[b], image):
            overlay._stamp(image, reference_segment(uv[a], uv[b]), colours[b][None], thickness)
    for j in range(len(names)):
        if overlay._drawable(uv[j], image):
            overlay._stamp(image, np.round(uv[j][None]).astype(np.int64), colours[j][None],
                           2 * joint_radius + 1, round_tip=True)


def test_skeleton_equals_drawing_bone_by_bone():
    rng = np.random.default_rng(2)
    for trial in range(40):
        names = keypoints.CANONICAL if trial % 4 else keypoints.order("nyu")
        uv = rng.uniform([-60, -60], [220, 180], (len(names), 2))
        if trial % 3 == 0:
            uv[rng.integers(0, len(names), 2)] = np.nan
        if trial % 5 == 0:
            uv[1] = (1e7, 5.0)  # absurdly far: not drawn
        got, expected = np.zeros((120, 160, 3), np.uint8), np.zeros((120, 160, 3), np.uint8)
        overlay.draw_skeleton(got, uv, names)
        reference_skeleton(expected, uv, names)
        assert np.array_equal(got, expected), trial

"""The localiser and the crop on a torch frame (data/localise_torch.py, crop.crop_hand_torch,
the estimator's frame_device) give what the numpy path gives, on the CPU and on a GPU.

"The same detection": found in the same frames; the same bbox, pixel count and nearest
depth; com_uvd within 1e-9 (px, px, mm) and area within 1e-9 relative (every sum is of
whole numbers or of float32 depths in float64, so in practice they are equal; whole-
millimetre frames are checked for exact equality). Crops agree to 1e-5 (float32 rounding
of the same arithmetic)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED

torch = pytest.importorskip("torch")

from hand_pose_ros.camera import Intrinsics  # noqa: E402
from hand_pose_ros.data import localise  # noqa: E402
from hand_pose_ros.data.crop import crop_hand, crop_hand_torch  # noqa: E402
from hand_pose_ros.data.localise import HandLocaliser  # noqa: E402
from hand_pose_ros.data.localise_torch import FrameUploader, locate_tensor  # noqa: E402
from hand_pose_ros.inference.estimator import HandPoseEstimator  # noqa: E402
from hand_pose_ros.inference.sample_inputs import realistic_frames  # noqa: E402

REAL_NYU = SHARED / "data" / "real" / "nyu"
SR305 = SHARED / "realdata" / "sr305_ladaondris"
SR305_CAMERA = dict(fx=476.0068, fy=476.0068, cx=313.683, cy=242.755)
D435 = Intrinsics(615.0, 615.0, 320.0, 240.0, 640, 480)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def special_frames():
    """(name, depth, cam): frames with no hand or that drive the rare branches."""
    rows = np.arange(480, dtype=np.float32)[:, None]
    wall = np.full((480, 640), 500, np.float32)                # too large and flat: the plane fit
    wall_and_hand = wall.copy()
    wall_and_hand[200:260, 300:350] = 380.0                    # a box in front of a wall
    speck = np.zeros((480, 640), np.float32)
    speck[100:103, 100:103] = 400.0
    nan = np.zeros((480, 640), np.float32)
    nan[::7, ::5] = np.nan
    nan[150:260, 250:330] = 450.0
    return [("empty", np.zeros((480, 640), np.float32), D435),
            ("beyond range", np.full((480, 640), 3000, np.float32), D435),
            ("wall", wall, D435), ("wall and box", wall_and_hand, D435),
            ("tilted floor", np.broadcast_to(700 + 0.8 * (rows - 240), (480, 640)).astype(np.float32), D435),
            ("speck", speck, D435), ("nan", nan, D435)]


def real_frames():
    from hand_pose_ros.data.readers import open_dataset

    frames = []
    if REAL_NYU.is_dir():
        sample = open_dataset("png", REAL_NYU, encoding="nyu_rgb", camera="nyu")[0]
        frames.append(("nyu", sample.depth_mm, sample.cam))
    if SR305.is_dir():
        reader = open_dataset("png", SR305, depth_unit_mm=0.125, **SR305_CAMERA)
        frames += [(f"sr305 {s.name}", s.depth_mm, s.cam) for s in reader]
    return frames


@pytest.fixture(scope="module")
def frames():
    """(name, depth [H, W] float32 or uint16, cam) of many kinds of frame."""
    from hand_pose_ros.data.localise_report import body_in_view_samples

    synthetic = [(f"synthetic {i}", d, cam) for i, (d, cam) in enumerate(realistic_frames(12, seed=11))]
    bodies = [(f"body {i}", s.depth_mm, s.cam) for i, s in enumerate(body_in_view_samples(4, seed=3, batch=4))]
    out = synthetic + bodies + special_frames() + real_frames()
    # whole millimetres, as a camera's 16UC1 (and the bench) hands them over
    out += [(f"{name} uint16", np.round(np.nan_to_num(d)).astype(np.uint16), cam)
            for name, d, cam in synthetic[:6] + real_frames()[:1]]
    return out


def seeds_for(loc, depth, cam):
    """No seed, the frame's own hand (tracking), and a seed elsewhere (a lost hand)."""
    found = loc.locate(depth, cam)
    seeds = [None, (600.0, 60.0, 350.0)]
    if found is not None:
        seeds.append(found.com_uvd + [4.0, -3.0, 12.0])
    return seeds


def assert_same_detection(got, expected, name, exact=False):
    assert (got is None) == (expected is None), name
    if expected is None:
        return
    assert (got.bbox, got.pixel_count, got.near_mm) == (expected.bbox, expected.pixel_count, expected.near_mm), name
    if exact:
        assert np.array_equal(got.com_uvd, expected.com_uvd) and got.area_mm2 == expected.area_mm2, name
    np.testing.assert_allclose(got.com_uvd, expected.com_uvd, rtol=0, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(got.area_mm2, expected.area_mm2, rtol=1e-9, err_msg=name)


def compare_on(device, frames, monkeypatch):
    loc = HandLocaliser()
    fits = []
    real_fit = localise._plane_rms
    monkeypatch.setattr(localise, "_plane_rms", lambda *a: fits.append(1) or real_fit(*a))
    found, upload = 0, FrameUploader(device)     # the estimator's upload: float32 on the device
    for name, depth, cam in frames:
        tensor = upload(depth)
        for seed in seeds_for(loc, depth, cam):
            expected = loc.locate(depth, cam, seed_uvd=seed)
            got = locate_tensor(loc, tensor, cam, seed_uvd=seed)
            assert_same_detection(got, expected, f"{name}, seed {seed}", exact=depth.dtype == np.uint16)
            found += expected is not None
    # the comparison saw hands, and the large-flat-region branch (plane fit on the device's arrays)
    assert found >= len(frames) and fits


def test_torch_cpu_localiser_equals_numpy(frames, monkeypatch):
    compare_on("cpu", frames, monkeypatch)


@needs_cuda
def test_cuda_localiser_equals_numpy(frames, monkeypatch):
    compare_on("cuda", frames, monkeypatch)


def test_torch_frame_of_another_dtype_and_bad_shapes():
    loc = HandLocaliser()
    depth, cam = realistic_frames(1, seed=11)[0]
    for whole in (np.round(depth).astype(np.int32), np.round(depth).astype(np.uint16)):   # converted on the device
        assert_same_detection(locate_tensor(loc, torch.from_numpy(whole), cam), loc.locate(whole, cam),
                              str(whole.dtype), exact=True)
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        locate_tensor(loc, torch.zeros(5), cam)


def compare_crops(device, frames):
    loc = HandLocaliser()
    cropped, upload = 0, FrameUploader(device)
    for name, depth, cam in frames:
        found = loc.locate(depth, cam)
        if found is None:
            continue
        tensor = upload(depth)
        for com, cube, size in ((found.com_uvd, 150.0, 128), (found.com_uvd + [-300.0, 200.0, 0.0], 125.0, 96)):
            expected = crop_hand(depth, com, cam, cube, size)
            got = crop_hand_torch(tensor, com, cam, cube, size)
            assert (got.box, got.left, got.top, got.half_cube_mm) == (expected.box, expected.left, expected.top, cube)
            assert isinstance(got.image, np.ndarray) and got.image.shape == (size, size)
            np.testing.assert_allclose(got.image, expected.image, rtol=0, atol=1e-5, err_msg=name)
            cropped += 1
    assert cropped >= 20
    with pytest.raises(ValueError, match="too small"):
        crop_hand_torch(torch.zeros((480, 640), device=device), (320, 240, 1e6), D435, 150.0)


def test_torch_cpu_crop_equals_numpy(frames):
    compare_crops("cpu", frames)


@needs_cuda
def test_cuda_crop_equals_numpy(frames):
    compare_crops("cuda", frames)


def estimator_pair(frame_device):
    from test_estimator import FixedBackend

    uvd_norm = np.random.default_rng(0).uniform(-0.5, 0.5, (21, 3)).astype(np.float32)
    return (HandPoseEstimator(FixedBackend(uvd_norm), frame_device="numpy"),
            HandPoseEstimator(FixedBackend(uvd_norm), frame_device=frame_device))


def compare_estimators(frame_device, frames):
    host, device = estimator_pair(frame_device)
    tracked = [None, None]
    for name, depth, cam in frames * 2:            # the second pass tracks from the first
        results = [est.estimate(depth, cam, seed=seed) for est, seed in zip((host, device), tracked)]
        expected, got = results
        assert (got is None) == (expected is None), name
        tracked = results
        if expected is None:
            continue
        assert got.crop_box == expected.crop_box, name
        np.testing.assert_allclose(got.com_uvd, expected.com_uvd, rtol=0, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(got.uvd, expected.uvd, rtol=0, atol=1e-6, err_msg=name)
    crops_host = np.concatenate(host.backend.calls)
    crops_device = np.concatenate(device.backend.calls)
    assert crops_host.shape == crops_device.shape and len(crops_host) > len(frames)
    np.testing.assert_allclose(crops_device, crops_host, rtol=0, atol=1e-5)


def test_estimator_on_torch_cpu_frames_equals_numpy(frames):
    compare_estimators("cpu", frames)


@needs_cuda
def test_estimator_on_cuda_frames_equals_numpy(frames):
    compare_estimators("cuda", frames)


def test_estimator_frame_device_is_numpy_unless_asked():
    from test_estimator import FixedBackend

    backend = FixedBackend(np.zeros((21, 3)))
    assert HandPoseEstimator(backend).frame_device == "numpy"          # a CPU backend: numpy
    backend.device = "cuda:1"                                          # no GPU needed to choose
    # numpy beside a CUDA backend too: it measured faster on the H200 (estimator docstring)
    assert HandPoseEstimator(backend).frame_device == "numpy"
    assert HandPoseEstimator(backend, frame_device="cuda:1").frame_device == "cuda:1"
    assert HandPoseEstimator(backend, frame_device="cuda:1").describe()["frame_device"] == "cuda:1"

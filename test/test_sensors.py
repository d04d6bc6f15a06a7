"""The depth-camera models of data/synthetic/sensors.py: determinism, invalid pixels, how
noise grows with distance, disparity quantisation, shadow bands, flying pixels, range
limits and the per-sample mix."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hand_pose_ros.camera import Intrinsics  # noqa: E402
from hand_pose_ros.data.synthetic.sensors import (  # noqa: E402
    DEFAULT_SENSOR_MIX, KINECT_BASELINE_MM, KINECT_DISPARITY_STEP_PX, KINECT_FOCAL_PX, SENSOR_MODELS,
    SR300_MAX_RANGE_MM, apply_sensor_mix, kinect_v1, realsense_d4xx, sample_sensor_models, sr300_coded_light,
    time_of_flight)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CAM = Intrinsics(386.0, 386.0, 320.0, 240.0, 640, 480)     # the synthetic camera at 640 x 480
NOISY_MODELS = ["realsense_d4xx", "sr300_coded_light", "kinect_v1", "time_of_flight"]


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def box_scene(batch=8, height=48, width=120, wall=800.0, box=500.0, box_cols=(40, 70)) -> torch.Tensor:
    """A wall with a fronto-parallel box in front of it, spanning the given columns."""
    depth = torch.full((batch, height, width), wall)
    depth[:, 8:40, box_cols[0]:box_cols[1]] = box
    return depth


@pytest.mark.parametrize("name", list(SENSOR_MODELS))
def test_same_seed_same_output_and_invalid_stays_invalid(name):
    model = SENSOR_MODELS[name]
    depth = box_scene()
    depth[:, :, 100:] = 0.0                                     # an invalid region
    depth[:, 20, 5:15] = 0.0                                    # and a thin invalid line
    first = model(depth, generator(3), CAM)
    again = model(depth, generator(3), CAM)
    assert first.shape == depth.shape
    assert torch.equal(first, again)
    assert bool((first[depth == 0] == 0).all())
    assert float((first > 0).float().mean()) > 0.5              # most of the scene survives
    if name != "clean":
        assert not torch.equal(first, model(depth, generator(4), CAM))
    assert torch.equal(SENSOR_MODELS["clean"](depth, generator(3), CAM), depth)


@pytest.mark.parametrize("name,near,far,power", [
    ("realsense_d4xx", 600.0, 1200.0, 2), ("sr300_coded_light", 500.0, 1000.0, 2),
    ("kinect_v1", 600.0, 1200.0, 2), ("time_of_flight", 450.0, 900.0, 1)])
def test_flat_wall_noise_grows_as_the_model_says(name, near, far, power):
    model = SENSOR_MODELS[name]
    stds = []
    for z in (near, far):
        wall = torch.full((6, 64, 64), z)
        # the same seed at both distances: the same severities and the same noise draws
        out = model(wall, generator(11), CAM, unit_mm=0.01)[:, 8:-8, 8:-8]
        valid = out > 0
        assert float(valid.float().mean()) > 0.9
        stds.append(float((out[valid] - z).std()))
    ratio = stds[1] / stds[0]
    expected = (far / near) ** power
    assert abs(ratio - expected) < 0.08 * expected, (name, stds, ratio, expected)


def test_realsense_noise_follows_intels_rms_formula():
    # strength (0, 0): subpixel 0.05 px; the variant (baseline) is per sample
    wall = torch.full((64, 32, 32), 1000.0)
    out = realsense_d4xx(wall, generator(12), CAM, strength=(0.0, 0.0), unit_mm=0.01)
    per_sample = [float((o[o > 0] - 1000.0).std()) for o in out]
    # Intel: RMS = z^2 * subpixel / (f * B); baselines 50 / 55 / 18 mm
    expected = {b: 1000.0 ** 2 * 0.05 / (CAM.fx * b) for b in (50.0, 55.0, 18.0)}
    for std in per_sample:
        nearest = min(expected.values(), key=lambda e: abs(e - std))
        assert abs(std - nearest) < 0.12 * nearest, (std, expected)
    seen = {min(expected, key=lambda b: abs(expected[b] - std)) for std in per_sample}
    assert seen == {50.0, 55.0, 18.0}                           # every variant drawn


def test_kinect_quantisation_steps_grow_with_depth_squared():
    width = 600
    ramp = torch.linspace(600.0, 1200.0, width).expand(16, 32, width).contiguous()
    out = kinect_v1(ramp, generator(5), CAM, strength=(0.0, 0.0), unit_mm=0.001)
    values = torch.unique(out[out > 0]).double()
    fb = KINECT_FOCAL_PX * KINECT_BASELINE_MM
    # every value is a whole number of 1/8 px of disparity
    steps = fb / values / KINECT_DISPARITY_STEP_PX
    assert float((steps - steps.round()).abs().max()) < 0.01
    gaps = values[1:] - values[:-1]
    centres = (values[1:] + values[:-1]) / 2
    near = float(gaps[(centres > 620) & (centres < 660)].median())
    far = float(gaps[(centres > 1120) & (centres < 1180)].median())
    # step = z^2 * (1/8) / (f * B)
    assert near == pytest.approx(640.0 ** 2 / (8 * fb), rel=0.1)
    assert far == pytest.approx(1150.0 ** 2 / (8 * fb), rel=0.1)
    assert far / near == pytest.approx((1150.0 / 640.0) ** 2, rel=0.15)


def _invalid_run(row: torch.Tensor, start: int, step: int) -> int:
    """Length of the run of zeros starting at column `start`, walking by `step`."""
    length, col = 0, start
    while 0 <= col < row.numel() and float(row[col]) == 0:
        length += 1
        col += step
    return length


@pytest.mark.parametrize("name,left_side,baseline", [
    ("realsense_d4xx", True, None), ("kinect_v1", False, KINECT_BASELINE_MM)])
def test_shadow_band_on_the_stated_side_with_the_predicted_width(name, left_side, baseline):
    depth = box_scene(batch=16)
    out = SENSOR_MODELS[name](depth, generator(7), CAM, strength=(0.0, 0.0))
    rows = out[:, 14:34]
    if baseline is None:
        # D4xx: the baseline is the per-sample variant; strength 0 gives its RMS noise
        # 0.05 px, so read each sample's baseline off its wall noise
        baselines = []
        for frame in range(out.shape[0]):
            wall = out[frame, :, 100:][out[frame, :, 100:] > 0]
            std = float((wall - 800.0).std())
            baselines.append(min((50.0, 55.0, 18.0), key=lambda b: abs(800.0 ** 2 * 0.05 / (CAM.fx * b) - std)))
    else:
        baselines = [baseline] * out.shape[0]
    for frame in range(out.shape[0]):
        width = CAM.fx * baselines[frame] * (1 / 500.0 - 1 / 800.0)
        if left_side:
            runs = [_invalid_run(r, 39, -1) for r in rows[frame]]       # left of the box (col 40)
            other = [_invalid_run(r, 70, 1) for r in rows[frame]]
        else:
            runs = [_invalid_run(r, 70, 1) for r in rows[frame]]        # right of the box (col 69)
            other = [_invalid_run(r, 39, -1) for r in rows[frame]]
        assert abs(float(np.median(runs)) - width) <= 2, (frame, runs, width)
        assert float(np.median(other)) <= 1, (frame, other)


def test_kinect_shadow_side_matches_the_real_nyu_frame():
    """In NYU's frame the invalid band (stored as >= 2001 mm) between the hand and the body
    behind it lies to the right of the hand, the side kinect_v1 puts it."""
    path = SHARED / "data" / "real" / "nyu" / "depth_1_0000001.png"
    if not path.exists():
        pytest.skip(f"{path} not present")
    from PIL import Image

    rgb = np.asarray(Image.open(path)).astype(np.int64)
    depth = (rgb[..., 1] * 256 + rgb[..., 2]).astype(np.float64)
    invalid = depth >= 2001
    right = left = 0
    for row, bad in zip(depth, invalid):
        change = np.diff(np.concatenate([[0], bad.astype(np.int8), [0]]))
        for start, end in zip(np.flatnonzero(change == 1), np.flatnonzero(change == -1)):   # [start, end)
            if start == 0 or end >= row.size:
                continue
            before, after = row[start - 1], row[end]
            if after - before > 100:        # a nearer object on the band's left: band on its right
                right += end - start
            elif before - after > 100:
                left += end - start
    model = kinect_v1(box_scene(batch=1), generator(1), CAM, strength=(0.0, 0.0))[0, 20]
    assert _invalid_run(model, 70, 1) > 5 and _invalid_run(model, 39, -1) <= 1
    assert right > 10 * max(left, 1), (right, left)


def test_time_of_flight_flying_pixels_lie_between_the_surfaces():
    depth = torch.full((16, 40, 80), 800.0)
    depth[:, :, 40:] = 500.0
    out = time_of_flight(depth, generator(9), CAM, strength=(0.0, 0.0), unit_mm=0.01)
    tolerance = 5 * 0.002 * 800.0                               # 5 sigma of the mildest noise
    edge = out[:, :, 39:41]
    assert bool(((edge >= 500 - tolerance) & (edge <= 800 + tolerance)).all())
    mixed = (edge > 500 + tolerance) & (edge < 800 - tolerance)
    # strength 0: 60% of the jump's pixels fly, each a uniform fraction of the way across
    assert 0.3 < float(mixed.float().mean()) < 0.75
    # away from the jump, only noise
    assert float((out[:, :, :36] - 800).abs().max()) < tolerance
    assert float((out[:, :, 44:] - 500).abs().max()) < tolerance


def test_sr300_invalidates_pixels_beyond_its_range():
    walls = torch.cat([torch.full((8, 32, 32), SR300_MAX_RANGE_MM + 100), torch.full((8, 32, 32), 1000.0),
                       torch.full((8, 32, 32), 150.0)])
    out = sr300_coded_light(walls, generator(2), CAM)
    assert bool((out[:8] == 0).all())                           # beyond 1.5 m
    assert float((out[8:16] > 0).float().mean()) > 0.95          # inside the range
    assert bool((out[16:] == 0).all())                          # nearer than 0.2 m
    # the maximum range shrinks with the severity: 1.2 m survives at s = 0, not at s = 1
    at_1200 = torch.full((4, 16, 16), 1200.0)
    assert float((sr300_coded_light(at_1200, generator(2), CAM, strength=(0.0, 0.0)) > 0).float().mean()) > 0.95
    assert bool((sr300_coded_light(at_1200, generator(2), CAM, strength=(1.0, 1.0)) == 0).all())


def test_oblique_surfaces_lose_more_pixels():
    # a plane tilted about the vertical axis: z = 600 + slope * u, at 0 and ~80 degrees
    # (dz/du = z tan(angle) / f, so z = z0 exp(u tan(angle) / f); 600 -> 960 mm over 32 columns)
    cols = torch.arange(32, dtype=torch.float32)
    facing = torch.full((8, 32, 32), 600.0)
    oblique = 600.0 * torch.exp(cols / CAM.fx * math.tan(math.radians(80))).expand(8, 32, 32).contiguous()
    for name in ("realsense_d4xx", "time_of_flight", "kinect_v1", "sr300_coded_light"):
        model = SENSOR_MODELS[name]
        kept_facing = float((model(facing, generator(6), CAM, strength=(1, 1))[:, 4:-4, 4:-4] > 0).float().mean())
        kept_oblique = float((model(oblique, generator(6), CAM, strength=(1, 1))[:, 4:-4, 4:-4] > 0).float().mean())
        assert kept_facing > 0.95 and kept_oblique < 0.5 * kept_facing, (name, kept_facing, kept_oblique)


def test_mix_uses_each_model_at_its_probability_and_equals_per_subset_calls():
    batch = 4000
    depth = box_scene(batch=batch, height=10, width=16, box_cols=(6, 10))
    out, index = apply_sensor_mix(depth, generator(21), CAM)
    names = list(SENSOR_MODELS)
    assert index.shape == (batch,) and index.dtype == torch.int64
    for k, name in enumerate(names):
        share = float((index == k).float().mean())
        p = DEFAULT_SENSOR_MIX[name]
        assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / batch), (name, share, p)
    # replay: the same choice, then each model once on its subset, in the registry's order
    replay = generator(21)
    chosen = sample_sensor_models(batch, replay)
    assert torch.equal(chosen, index)
    for k, model in enumerate(SENSOR_MODELS.values()):
        subset = index == k
        assert torch.equal(out[subset], model(depth[subset], replay, CAM)), names[k]
    # a custom mix: models left out are never used
    _, only = apply_sensor_mix(depth[:200], generator(22), CAM, mix={"kinect_v1": 1.0, "time_of_flight": 1.0})
    assert set(only.tolist()) == {names.index("kinect_v1"), names.index("time_of_flight")}


@pytest.mark.parametrize("unit", [1.0, 0.125, 0.1])
def test_output_is_quantised_to_the_stored_unit(unit):
    depth = box_scene(batch=4)
    for name, model in SENSOR_MODELS.items():
        out = model(depth, generator(8), CAM, unit_mm=unit).double()
        steps = out / unit
        assert float((steps - steps.round()).abs().max()) < 1e-3, name


def test_bad_input_is_refused():
    depth = box_scene(batch=2)
    with pytest.raises(ValueError, match="B, H, W"):
        realsense_d4xx(depth[0], generator(1), CAM)
    with pytest.raises(ValueError, match="Generator"):
        kinect_v1(depth, None, CAM)
    with pytest.raises(ValueError, match="strength"):
        time_of_flight(depth, generator(1), CAM, strength=(0.8, 0.2))
    with pytest.raises(ValueError, match="unit_mm"):
        sr300_coded_light(depth, generator(1), CAM, unit_mm=0.0)
    with pytest.raises(ValueError, match="focal"):
        realsense_d4xx(depth, generator(1), 0.0)
    with pytest.raises(ValueError, match="unknown sensor models"):
        apply_sensor_mix(depth, generator(1), CAM, mix={"kinect_v2": 1.0})
    with pytest.raises(ValueError, match="weights"):
        apply_sensor_mix(depth, generator(1), CAM, mix={"clean": 0.0})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_shapes_and_validity():
    depth = box_scene(batch=32)
    depth[:, :, 100:] = 0
    cuda_depth = depth.cuda()
    for name, model in SENSOR_MODELS.items():
        out = model(cuda_depth, torch.Generator(device="cuda").manual_seed(1), CAM)
        assert out.device.type == "cuda" and out.shape == depth.shape, name
        assert bool((out[cuda_depth == 0] == 0).all()), name
        again = model(cuda_depth, torch.Generator(device="cuda").manual_seed(1), CAM)
        assert torch.equal(out, again), name
    out, index = apply_sensor_mix(cuda_depth, torch.Generator(device="cuda").manual_seed(2), CAM)
    assert out.shape == depth.shape and index.shape == (32,) and index.device.type == "cuda"
    # a CPU generator drives CUDA depth too (draws are moved to the depth's device)
    # (float rounding may differ between devices at quantisation boundaries: compare loosely)
    cpu_drawn = realsense_d4xx(cuda_depth, generator(3), CAM).cpu()
    reference = realsense_d4xx(depth, generator(3), CAM)
    both = (cpu_drawn > 0) & (reference > 0)
    assert float(((cpu_drawn > 0) == (reference > 0)).float().mean()) > 0.99
    assert float((cpu_drawn[both] - reference[both]).abs().max()) <= 1.0

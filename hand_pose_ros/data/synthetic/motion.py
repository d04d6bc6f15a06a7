"""Smooth animated hand sequences for the synthetic ROS camera and retargeting tests.

`HandMotion(seed)` is a deterministic function of time: the fingers move through keyframes
(open -> fist -> open -> pinch -> spread -> point -> grasp -> relaxed -> open, each a named
pose with a small seeded variation) with smoothstep interpolation (C1: no jumps in angle
or speed), while the forearm sways, rolls (palm toward / side-on / away from the camera)
and the wrist flexes along slow sinusoids with seeded phases. The sequence repeats every
`period_s`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ...camera import Intrinsics, xyz_to_uvd
from .hand import clamp_to_limits
from .poses import direction_from_angles, forearm_frame, hand_rotation, named_pose

KEYFRAMES = ("open", "fist", "open", "pinch", "spread", "point", "grasp", "relaxed")


@dataclass
class GlobalPose:
    rotation: np.ndarray        # [3, 3] hand frame -> camera
    wrist_xyz: np.ndarray       # [3] mm, camera optical frame
    arm_frame: np.ndarray       # [3, 3] forearm frame (poses.forearm_frame)
    wrist_angles: np.ndarray    # [2] (flexion, deviation) rad
    is_left: bool


class HandMotion:
    """A looping, smooth hand motion. seconds_per_pose: time from one keyframe to the
    next; centre_mm: where the wrist moves around (camera frame)."""

    def __init__(self, seed: int = 0, handedness: str = "right", seconds_per_pose: float = 1.5,
                 centre_mm=(0.0, 70.0, 430.0)):
        if handedness not in ("right", "left"):
            raise ValueError(f"handedness must be 'right' or 'left', got {handedness!r}")
        if seconds_per_pose <= 0:
            raise ValueError(f"seconds_per_pose must be > 0, got {seconds_per_pose}")
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.is_left = handedness == "left"
        self.seconds_per_pose = float(seconds_per_pose)
        self.centre = np.asarray(centre_mm, dtype=np.float64)
        keys = np.stack([named_pose(name) for name in KEYFRAMES])
        keys = keys + np.radians(4.0) * rng.standard_normal(keys.shape)     # a little variety
        self.keyframes = clamp_to_limits(torch.as_tensor(keys)).numpy()       # [K, 20]
        self.phases = rng.uniform(0, 2 * math.pi, size=8)
        self.period_s = len(KEYFRAMES) * self.seconds_per_pose

    def angles_at(self, t: float) -> np.ndarray:
        """Joint angles [20] (rad) at time t seconds."""
        position = (t % self.period_s) / self.seconds_per_pose
        index = int(position) % len(self.keyframes)
        frac = position - int(position)
        blend = frac * frac * (3.0 - 2.0 * frac)                               # smoothstep
        start, end = self.keyframes[index], self.keyframes[(index + 1) % len(self.keyframes)]
        return start + (end - start) * blend

    def pose_at(self, t: float) -> tuple[np.ndarray, GlobalPose]:
        """(joint angles [20] rad, GlobalPose) at time t seconds."""
        p = self.phases

        def wave(amplitude, period, k):
            return amplitude * math.sin(2 * math.pi * t / period + p[k])

        azimuth = wave(0.35, 11.0, 0)                        # forearm sways left/right
        elevation = -0.35 + wave(0.15, 13.0, 1)              # < 0: the elbow is behind the hand
        roll = wave(2.0, 14.0, 2)                            # palm toward, side-on, away (+-115 deg)
        flex, deviation = wave(0.35, 7.0, 3), 0.05 + wave(0.12, 5.0, 4)
        wrist = self.centre + np.array([wave(60.0, 10.0, 5), wave(35.0, 8.0, 6), wave(60.0, 12.0, 7)])
        direction = direction_from_angles(torch.tensor([azimuth], dtype=torch.float64),
                                          torch.tensor([elevation], dtype=torch.float64))
        arm = forearm_frame(direction, torch.tensor([roll], dtype=torch.float64))
        rotation = hand_rotation(arm, torch.tensor([flex], dtype=torch.float64),
                                 torch.tensor([deviation], dtype=torch.float64))
        pose = GlobalPose(rotation=rotation[0].numpy(), wrist_xyz=wrist, arm_frame=arm[0].numpy(),
                          wrist_angles=np.array([flex, deviation]), is_left=self.is_left)
        return self.angles_at(t), pose

    def scene_at(self, t: float, config=None):
        """A one-frame scene.Scene at time t (with a static table plane behind the hand
        when config.table_prob > 0)."""
        from .scene import SyntheticConfig, make_scene

        config = config or SyntheticConfig()
        angles, pose = self.pose_at(t)
        as_tensor = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)[None]   # noqa: E731
        background = {}
        if config.table_prob > 0:
            # a fixed wall/table 250 mm behind the motion's centre, tilted 30 deg toward the floor
            tilt = math.radians(30.0)
            normal = torch.tensor([[0.0, -math.sin(tilt), -math.cos(tilt)]])
            offset = normal[0] @ torch.as_tensor(self.centre + np.array([0, 0, 250.0]), dtype=torch.float32)
            background["plane"] = {"normal": normal, "offset": offset[None],
                                   "enabled": torch.ones(1, dtype=torch.bool)}
        return make_scene(as_tensor(angles), as_tensor(pose.arm_frame), as_tensor(pose.wrist_angles),
                          as_tensor(pose.wrist_xyz), torch.tensor([self.is_left]),
                          forearm=config.forearm, background=background)

    def render_frame(self, t: float, cam: Intrinsics, config=None):
        """(depth_mm uint16 [H, W], uvd [21, 3], xyz [21, 3]) at time t, ready to publish.
        Sensor noise (when config.noise) is seeded by (seed, t in ms): reproducible."""
        from .render import Window
        from .scene import SyntheticConfig, render_scene

        config = config or SyntheticConfig()
        scene = self.scene_at(t, config)
        generator = torch.Generator()
        generator.manual_seed(int(self.seed) * 1_000_003 + int(round(t * 1000)))
        out = render_scene(scene, cam, Window.full(cam, 1, "cpu"), config, generator)
        depth = out["depth_mm"][0].round().clamp(0, 65535).to(torch.int32).numpy().astype(np.uint16)
        xyz = scene.xyz[0].double().numpy()
        return depth, xyz_to_uvd(xyz, cam), xyz

"""Retargeting: human hand keypoints -> robot hand joint commands, safe by construction.

hand_frame  camera-independent hand frame (left hands mirrored onto right)
spec        robot hand specs from config/hands/*.yaml
analytic    joint angles measured from keypoints, mapped by the spec's table (fast, no URDF)
optimisation  dex-retargeting vector / DexPilot optimisers on our URDFs
factory     make_retargeter(spec, kind): a retargeter by name
safety      joint limits, velocity clamp, hold then ramp to the safe pose on tracking loss
pipeline    validation + One Euro filter + retargeter + safety, what the ROS node runs
kinematics  URDF forward kinematics (pinocchio) and the fingertip-error measure
human_hand  human keypoints from the synthetic hand model, for tests and the benchmark
bench       `python -m hand_pose_ros.retarget.bench --json`
Nothing here imports rclpy.
"""
from hand_pose_ros.retarget.base import Retargeter
from hand_pose_ros.retarget.factory import RETARGETERS, make_retargeter
from hand_pose_ros.retarget.pipeline import PipelineConfig, RetargetPipeline
from hand_pose_ros.retarget.safety import SafetyConfig, SafetyLimiter
from hand_pose_ros.retarget.spec import RobotHandSpec, SpecError, available_hands, load_hand_spec

__all__ = ["RETARGETERS", "Retargeter", "make_retargeter", "PipelineConfig", "RetargetPipeline",
           "SafetyConfig", "SafetyLimiter", "RobotHandSpec", "SpecError", "available_hands",
           "load_hand_spec"]

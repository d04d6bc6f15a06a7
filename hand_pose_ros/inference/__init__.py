"""Inference: ONNX export (decoders in the graph), backends (torch, onnxruntime, tensorrt,
auto) behind one interface, and the per-frame estimator used by the pose node, the
evaluator and `hand-pose bench`.

    from hand_pose_ros.inference import HandPoseEstimator
    estimator = HandPoseEstimator.from_model_file("models/srnet.onnx", backend="auto")
    estimate = estimator.estimate(depth_mm, cam)     # Estimate or None (no hand)
"""
from .estimator import Estimate, HandPoseEstimator

__all__ = ["Estimate", "HandPoseEstimator"]

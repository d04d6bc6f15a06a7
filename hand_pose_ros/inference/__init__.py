"""Inference: ONNX export (decoders in the graph), backends (torch, onnxruntime, tensorrt,
auto) behind one interface, and the per-frame estimator used by the pose node, the
evaluator and `hand-pose bench`.

    from hand_pose_ros.inference import HandPoseEstimator
    estimator = HandPoseEstimator.from_model_file("models/srnet.onnx", backend="auto")
    estimate = estimator.estimate(depth_mm, cam)     # Estimate or None (no hand)
"""

__all__ = ["Estimate", "HandPoseEstimator"]


def __getattr__(name):
    # Imported on first use: the estimator pulls in the localiser (scipy), which the
    # backends, export and gpu_report do not need.
    if name in __all__:
        from . import estimator
        return getattr(estimator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

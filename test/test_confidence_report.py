"""The confidence report that the pose node's min_confidence default is chosen with."""
import numpy as np

from hand_pose_ros.camera import Intrinsics
from hand_pose_ros.evaluation.confidence_report import NON_HAND_SHAPES, non_hand_frame, report

CAM = Intrinsics(386.0, 386.0, 320.0, 240.0, 640, 480)


def test_non_hand_frames_hold_one_hand_sized_object_before_a_wall():
    rng = np.random.default_rng(0)
    for shape in NON_HAND_SHAPES:
        depth = non_hand_frame(shape, rng, CAM)
        assert depth.shape == (480, 640) and depth.dtype == np.float32
        wall = np.median(depth)
        near = depth < wall - 100
        assert near.any(), shape  # the object is there, in front of the wall
        z = float(depth[near].mean())
        width_mm = np.ptp(np.nonzero(near.any(axis=0))[0]) * z / CAM.fx
        assert 30 < width_mm < 300, (shape, width_mm)


def test_report_keeps_the_share_of_hands_asked_for():
    hands = list(np.linspace(0.6, 0.9, 100))
    non_hands = list(np.linspace(0.1, 0.5, 50))
    result = report(hands, non_hands, keep_hands=0.99)
    assert result["suggested_min_confidence"] == 0.6
    row = {r["threshold"]: r for r in result["thresholds"]}[0.6]
    assert row["hands_kept"] == 1.0 and row["non_hands_rejected"] == 1.0
    assert result["hands"]["count"] == 100 and result["non_hands"]["p50"] == np.percentile(non_hands, 50)
    assert report([], [0.2])["suggested_min_confidence"] == 0.0

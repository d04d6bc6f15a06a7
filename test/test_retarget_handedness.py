"""handedness: auto in the retarget core: the side switches only after N consecutive
detections of the other side, and the pipeline builds the hand frame for the side in use."""
import numpy as np
import pytest

from hand_pose_ros.retarget import PipelineConfig, RetargetPipeline, load_hand_spec, make_retargeter
from hand_pose_ros.retarget.handedness import HandednessSwitch
from hand_pose_ros.retarget.human_hand import named_pose, place_in_camera


def test_first_side_is_taken_then_switches_need_n_in_a_row():
    switch = HandednessSwitch(switch_after=3)
    assert switch.observe(None) is None and switch.observe("unknown") is None
    assert switch.observe("left") == "left"                 # nothing to keep yet
    assert [switch.observe(s) for s in ("right", "right", "left")] == ["left"] * 3  # streak broken
    assert [switch.observe(s) for s in ("right", "unknown", "right", "right")] == ["left"] * 4  # unknown breaks it
    assert switch.observe("right") == "right" and switch.switches == 1   # the third in a row
    assert switch.observe("left") == "right"
    with pytest.raises(ValueError, match="handedness"):
        switch.observe("both")
    with pytest.raises(ValueError, match="switch_after"):
        HandednessSwitch(switch_after=0)
    assert HandednessSwitch(switch_after=1, initial="Right").observe("left") == "left"


def test_pipeline_retargets_a_left_hand_like_its_mirrored_right_hand():
    """A left hand placed as the mirror image of a right fist: with the frame built for the
    left side it gives the right fist's commands; with the right-hand frame it does not."""
    spec = load_hand_spec("leap")
    right = place_in_camera(named_pose("fist"), np.eye(3), [0.05, -0.02, 0.5])
    left = right * np.array([-1.0, 1.0, 1.0])  # mirrored through the camera's y-z plane

    def command(keypoints, side):
        pipeline = RetargetPipeline(spec, make_retargeter(spec, "analytic"),
                                    PipelineConfig(filter_target="none", plausibility_check=False))
        pipeline.set_handedness(side)
        return pipeline._retarget(keypoints, 0.0)  # the retargeter's target, before the safety ramp

    reference = command(right, "right")
    np.testing.assert_allclose(command(left, "left"), reference, atol=1e-9)
    assert np.abs(command(left, "right") - reference).max() > 0.1


def test_set_handedness_reports_changes_and_resets_history():
    spec = load_hand_spec("leap")
    pipeline = RetargetPipeline(spec, make_retargeter(spec, "analytic"), PipelineConfig())
    assert pipeline.handedness == "right" and not pipeline.set_handedness("right")
    assert pipeline.set_handedness("LEFT") and pipeline.handedness == "left"
    with pytest.raises(ValueError):
        pipeline.set_handedness("auto")

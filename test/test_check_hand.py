"""`hand-pose check-hand`: the shipped specs pass on the manufacturers' right-hand URDFs
(../shared/urdf_ref, read only), and the checks catch the faults they exist for."""
import json

import numpy as np
import pytest
import yaml

pytest.importorskip("pinocchio")
pytest.importorskip("dex_retargeting")

from conftest import SHARED  # noqa: E402
from hand_pose_ros.retarget.check_hand import check_hand, main  # noqa: E402
from hand_pose_ros.retarget.spec import SpecError, hands_dir, load_hand_spec  # noqa: E402

URDF_REF = SHARED / "urdf_ref"
RIGHT_URDFS = [("leap", "leap_hand/leap_hand_right.urdf"), ("leap", "leap_hand/official_LEAP_Hand_Sim_robot.urdf"),
               ("allegro", "allegro_hand/allegro_hand_right.urdf"),
               ("allegro", "allegro_hand/official_allegro_hand_ros_right.urdf"),
               ("shadow", "shadow_hand/shadow_hand_right.urdf"),
               ("shadow", "shadow_hand/official_sr_common_shadowhand_motor_right.urdf")]


def _ref(relative: str):
    path = URDF_REF / relative
    if not path.is_file():
        pytest.skip(f"{path} not available (../shared/urdf_ref)")
    return path


@pytest.mark.parametrize("hand, urdf", RIGHT_URDFS, ids=[u.split("/")[1] for _, u in RIGHT_URDFS])
def test_shipped_specs_pass_on_the_manufacturers_right_hand_urdfs(hand, urdf):
    report = check_hand(hand, _ref(urdf))
    assert report["failed_checks"] == [], report["failed_checks"]
    assert report["hand"] == hand and report["tip_error_mm"] <= 15.0, report["tip_error_mm"]
    assert report["poses"]["vector"]["mean_tip_error_mm"] == report["tip_error_mm"]


def test_json_output_is_one_object_with_the_documented_keys(capsys):
    assert main(["leap", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"hand", "tip_error_mm", "failed_checks", "joint_motion", "poses"} <= set(report)
    # LEAP "1" is the index MCP flexion: +0.2 rad moves the index tip toward the palm
    assert report["joint_motion"]["1"]["fingertips"]["index"].startswith("palmar")
    assert set(report["joint_motion"]["1"]["fingertips"]) == {"index"}


def _shadow_copy(tmp_path, mutate):
    data = yaml.safe_load((hands_dir() / "shadow.yaml").read_text())
    mutate(data)
    path = tmp_path / "shadow_variant.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_old_shadow_rfj4_sign_fails_the_open_hand_check(tmp_path):
    urdf = _ref("shadow_hand/shadow_hand_right.urdf")
    wrong = _shadow_copy(tmp_path, lambda d: d["analytic"].update(rh_RFJ4={"ring_abd": -1.0}))
    failed = check_hand(wrong, urdf)["failed_checks"]
    assert any("analytic: open hand brings the middle and ring tips within" in c for c in failed), failed
    # +RFJ4 moves the ring tip radially on both Shadow URDFs (why the gain is +1)
    for name in ("shadow_hand/shadow_hand_right.urdf", "shadow_hand/official_sr_common_shadowhand_motor_right.urdf"):
        assert check_hand("shadow", _ref(name))["joint_motion"]["rh_RFJ4"]["fingertips"]["ring"].startswith("radial")


def test_swapped_joint_groups_and_a_wrong_frame_are_reported(tmp_path):
    urdf = _ref("shadow_hand/shadow_hand_right.urdf")
    swapped = _shadow_copy(tmp_path, lambda d: [j.update(group="middle") for j in d["joints"] if j["name"] == "rh_FFJ3"])
    assert any("rh_FFJ3 (group middle) moves the index tip most" in c for c in check_hand(swapped, urdf)["failed_checks"])
    # the hand frame turned 90 degrees about x: the palm plane is wrong; refused at load
    turned = _shadow_copy(tmp_path, lambda d: d["urdf_descriptions"][1]["frame"].update(rpy=[0.0, -1.5707963, 0]))
    with pytest.raises(SpecError, match="does not fit the robot"):
        load_hand_spec(turned, urdf=urdf)
    assert check_hand(turned, urdf)["failed_checks"][0].startswith("load: ")


def test_a_spec_without_urdf_is_a_failed_check_not_a_crash():
    report = check_hand("shadow")
    assert report["tip_error_mm"] is None and "no URDF" in report["failed_checks"][0]
    assert np.isfinite(check_hand("allegro")["tip_error_mm"])

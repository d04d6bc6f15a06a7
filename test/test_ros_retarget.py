"""The retarget node over real DDS: PoseArray in, JointState (and driver adapters) out."""
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from hand_pose_ros.retarget import load_hand_spec  # noqa: E402
from hand_pose_ros.retarget.human_hand import named_pose, place_in_camera  # noqa: E402

pytestmark = pytest.mark.ros
CONFIG = Path(__file__).resolve().parents[1] / "config"


def pose_array(keypoints_m, stamp):
    from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion

    msg = PoseArray()
    msg.header.stamp = stamp
    msg.header.frame_id = "camera_depth_optical_frame"
    msg.poses = [Pose(position=Point(x=float(x), y=float(y), z=float(z)), orientation=Quaternion(w=1.0))
                 for x, y, z in keypoints_m]
    return msg


def test_node_retargets_a_pose_array_and_the_leap_adapter_adds_pi(ros, start_node):
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseArray
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory

    spec = load_hand_spec("leap")
    commands = ros.collect(JointState, "/hand_retarget/joint_commands")
    leap = ros.collect(JointState, "/cmd_leap")
    arrays = ros.collect(Float64MultiArray, "/hand_position_controller/commands")
    trajectories = ros.collect(JointTrajectory, "/hand_trajectory_controller/joint_trajectory")
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    node = start_node("retarget_node", params_files=[CONFIG / "retarget_leap.yaml"], params={
        "output_adapters": "leap,float64_multi_array,joint_trajectory",
        "pose_node": '""',  # no pose node here: the test publishes the keypoints
        "hold_timeout": 0.3, "ramp_time": 0.3, "diagnostics_period": 0.2})
    publisher = ros.publisher(PoseArray, "/hand_pose/joints")
    ros.wait_for_subscribers(publisher, timeout=60)

    fist = place_in_camera(named_pose("fist"), np.eye(3), [0.05, -0.02, 0.5])  # metres, camera frame
    for _ in range(600):  # at most 20 s of 30 Hz input
        if len(commands) >= 20:
            break
        publisher.publish(pose_array(fist, ros.now_msg()))
        time.sleep(1 / 30)
    assert len(commands) >= 20, f"no JointState from the node:\n{node.log()}"

    msg = commands[-1]
    assert list(msg.name) == list(spec.joint_names)
    q = np.array(msg.position)
    assert np.isfinite(q).all() and np.all(q >= spec.lower) and np.all(q <= spec.upper)
    assert q[spec.joint_names.index("2")] > 1.0  # the fist is bending the index PIP
    stamped = {(m.header.stamp.sec, m.header.stamp.nanosec): np.array(m.position) for m in commands}
    ros.wait_for(lambda: len(leap) > 0 and len(arrays) > 0 and len(trajectories) > 0, 10,
                 what="adapter messages")
    matched = [m for m in leap if (m.header.stamp.sec, m.header.stamp.nanosec) in stamped]
    assert matched, "no LEAP command with the stamp of a JointState command"
    for m in matched:
        assert list(m.name) == list(spec.joint_names)
        np.testing.assert_allclose(np.array(m.position),
                                   stamped[(m.header.stamp.sec, m.header.stamp.nanosec)] + np.pi, atol=1e-12)
    assert len(arrays[-1].data) == 16 and list(trajectories[-1].joint_names) == list(spec.joint_names)

    def state():
        for array in reversed(list(diagnostics)):
            for status in array.status:
                if status.name.startswith("hand_retarget"):
                    return status.message
        return None

    ros.wait_for(lambda: state() == "tracking", 10, what="diagnostics state 'tracking'")
    # The hand disappears: the node holds, then ramps to LEAP's safe (open, all-zero) pose.
    ros.wait_for(lambda: state() == "at safe pose", 15, what="diagnostics state 'at safe pose'")
    ros.wait_for(lambda: np.allclose(commands[-1].position, spec.safe_pose), 5, what="safe pose command")
    assert node.alive(), node.log()


def test_node_refuses_bad_parameters_with_a_clear_message(start_node):
    node = start_node("retarget_node", params={"robot_hand": "no_such_hand"})
    assert node.wait_exit(timeout=60) == 1
    assert "unknown robot hand 'no_such_hand'" in node.log()
    node = start_node("retarget_node", params={"output_adapters": "leap,telepathy"})
    assert node.wait_exit(timeout=60) == 1
    assert "output_adapters" in node.log() and "telepathy" in node.log()


def test_every_parameter_file_sets_only_declared_parameters_with_valid_values():
    from hand_pose_ros.ros.params import yaml_keys
    from hand_pose_ros.ros.retarget_node import NODE_NAME, PARAMS, build_pipeline, parse_adapters

    import yaml

    declared = {p.name: p for p in PARAMS}
    files = sorted(CONFIG.glob("retarget_*.yaml"))
    assert {f.stem for f in files} >= {"retarget_leap", "retarget_allegro", "retarget_shadow"}
    for path in files:
        keys = yaml_keys(path, NODE_NAME)
        assert keys <= set(declared), (path, keys - set(declared))
        values = {name: p.default for name, p in declared.items()}
        values.update(yaml.safe_load(path.read_text())[NODE_NAME]["ros__parameters"])
        for name in keys:
            assert type(values[name]) is type(declared[name].default), (path, name)  # ROS typing is strict
            declared[name].check(values[name])
        parse_adapters(values["output_adapters"])
        pipeline = build_pipeline(values)
        assert pipeline.spec.name == values["robot_hand"]


def test_node_refuses_keypoints_in_a_non_canonical_order(ros, start_node):
    """A pose node that reports another keypoint order (joint_names) never drives the robot."""
    from geometry_msgs.msg import PoseArray
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import JointState

    from hand_pose_ros.keypoints import DATASET_ORDERS

    import rclpy

    fake_pose_node = rclpy.create_node("fake_pose_node", context=ros.context, parameter_overrides=[
        Parameter("joint_names", value=list(DATASET_ORDERS["msra"]))])
    fake_pose_node.declare_parameter("joint_names", list(DATASET_ORDERS["msra"]))
    ros.executor.add_node(fake_pose_node)
    try:
        commands = ros.collect(JointState, "/hand_retarget/joint_commands")
        node = start_node("retarget_node", params_files=[CONFIG / "retarget_leap.yaml"],
                          params={"pose_node": "/fake_pose_node"})
        publisher = ros.publisher(PoseArray, "/hand_pose/joints")
        ros.wait_for_subscribers(publisher, timeout=60)
        ros.wait_for(lambda: "not the canonical order" in node.log(), 30, what="the joint order error")
        fist = place_in_camera(named_pose("fist"), np.eye(3), [0.05, -0.02, 0.5])
        for _ in range(30):
            publisher.publish(pose_array(fist, ros.now_msg()))
            time.sleep(1 / 30)
        time.sleep(0.5)
        assert not commands, "a command was sent from keypoints in the wrong order"
        assert node.alive(), node.log()
    finally:
        ros.executor.remove_node(fake_pose_node)
        fake_pose_node.destroy_node()


def test_joint_order_problem_accepts_only_the_canonical_order():
    from hand_pose_ros.keypoints import CANONICAL, DATASET_ORDERS
    from hand_pose_ros.ros.retarget_node import joint_order_problem

    assert joint_order_problem(CANONICAL) is None
    for dataset in ("msra", "hands2017"):
        assert "not the canonical order" in joint_order_problem(DATASET_ORDERS[dataset])


def test_max_joint_velocity_has_one_source():
    import re

    import yaml

    from hand_pose_ros.retarget import SafetyConfig
    from hand_pose_ros.ros.retarget_node import NODE_NAME, PARAMS

    declared = {p.name: p.default for p in PARAMS}
    assert declared["max_joint_velocity"] == SafetyConfig().max_velocity
    leap = yaml.safe_load((CONFIG / "retarget_leap.yaml").read_text())[NODE_NAME]["ros__parameters"]
    assert "max_joint_velocity" not in leap  # LEAP runs on the code default
    readme = (CONFIG.parent / "README.md").read_text()
    (documented,) = re.findall(r"\| `max_joint_velocity` \| `([0-9.]+)` \|", readme)
    assert float(documented) == SafetyConfig().max_velocity

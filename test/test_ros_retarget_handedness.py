"""The retarget node with handedness: auto over real DDS: it follows the pose node's
~/handedness topic (String before each PoseArray) and switches sides only after
handedness_switch_after consecutive messages of the other side."""
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from hand_pose_ros.retarget.human_hand import named_pose, place_in_camera  # noqa: E402
from hand_pose_ros.ros import conversions as conv  # noqa: E402

from test_ros_retarget import pose_array  # noqa: E402

pytestmark = pytest.mark.ros
CONFIG = Path(__file__).resolve().parents[1] / "config"


def test_auto_follows_a_left_hand_with_hysteresis(ros, start_node):
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseArray
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String

    commands = ros.collect(JointState, "/hand_retarget/joint_commands")
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    node = start_node("retarget_node", params_files=[CONFIG / "retarget_leap.yaml"], params={
        "handedness": "auto", "handedness_switch_after": 5, "diagnostics_period": 0.1,
        "output_adapters": '""', "pose_node": '""'})  # no pose node here: the test publishes
    poses = ros.publisher(PoseArray, "/hand_pose/joints")
    sides = ros.publisher(String, "/hand_pose/handedness")
    ros.wait_for_subscribers(poses, timeout=60)
    ros.wait_for_subscribers(sides, timeout=10)
    right_fist = place_in_camera(named_pose("fist"), np.eye(3), [0.05, -0.02, 0.5])
    left_fist = right_fist * np.array([-1.0, 1.0, 1.0])  # its mirror image: a left hand

    def handedness_in_use() -> str:
        """The node's side, from a diagnostics message sent after everything above."""
        since = len(diagnostics)
        ros.wait_for(lambda: len(diagnostics) > since + 1, 10, what="fresh diagnostics")
        status = next(s for s in diagnostics[-1].status if s.name.startswith("hand_retarget"))
        return conv.diagnostic_values(status)["handedness"]

    def send(side: str, keypoints, timeout: float = 10) -> None:
        """One frame as the pose node sends it, waiting for the command it answers."""
        sides.publish(String(data=side))
        stamp = ros.now_msg()
        poses.publish(pose_array(keypoints, stamp))
        key = conv.stamp_key(stamp)
        ros.wait_for(lambda: any(conv.stamp_key(c.header.stamp) == key for c in list(commands)), timeout,
                     what=f"the command for a {side} frame")
        time.sleep(0.02)

    # The first side named is taken at once. Our publishers may see the node's readers before
    # the node has matched our writers (DDS discovery is not symmetric): what is sent in that
    # gap is lost, so the first left frame is sent until one is answered. More left frames
    # change nothing here: the node starts on the left and only a right streak counts.
    for attempt in range(20):
        try:
            send("left", left_fist, timeout=2)
            break
        except AssertionError:
            if attempt == 19:
                raise
    assert handedness_in_use() == "left (auto)", node.log()
    for _ in range(4):       # four wrong frames: not enough to switch
        send("right", left_fist)
    assert handedness_in_use() == "left (auto)", node.log()
    send("left", left_fist)  # the streak is broken ...
    for _ in range(4):
        send("right", right_fist)
    assert handedness_in_use() == "left (auto)", node.log()
    send("right", right_fist)  # ... and only the fifth in a row switches
    assert handedness_in_use() == "right (auto)", node.log()
    assert "now retargeting a right hand" in node.log()
    assert node.alive(), node.log()

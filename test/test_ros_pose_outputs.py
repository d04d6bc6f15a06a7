"""The pose node builds TF, markers and the debug image only while someone subscribes to
them, starts again as soon as someone does, and always publishes the joints. In one
process: the real PoseNode (real publishers, DDS to this test's subscriptions) with a
backend that returns a fixed output, frames handed to it directly."""
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseArray  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from hand_pose_ros.camera import Intrinsics  # noqa: E402
from hand_pose_ros.inference.backends.base import Backend  # noqa: E402
from hand_pose_ros.inference.estimator import HandPoseEstimator  # noqa: E402
from hand_pose_ros.model.config import SRNetConfig  # noqa: E402
from hand_pose_ros.ros import conversions, pose_node  # noqa: E402

pytestmark = pytest.mark.ros

CAM = Intrinsics(386.0, 386.0, 320.0, 240.0, 640, 480)
CONFIG = SRNetConfig(half_cube_mm=150.0, handedness_head=False)
OPTIONAL = ("tf", "markers", "debug_image")


class FixedBackend(Backend):
    """The same plausible-looking normalised keypoints for every crop."""
    name = "fixed"

    def __init__(self):
        super().__init__(CONFIG)
        self.uvd_norm = np.random.default_rng(0).uniform(-0.4, 0.4, (CONFIG.num_joints, 3)).astype(np.float32)

    @classmethod
    def load(cls, model_path, device=None, precision=None, **opts):
        raise NotImplementedError

    def _infer(self, crops):
        batch = crops.shape[0]
        return (np.repeat(self.uvd_norm[None], batch, 0), np.full((batch, CONFIG.num_joints), 0.5, np.float32))


def hand_frame(header) -> Image:
    """A hand-sized ellipse 500 mm away in an otherwise empty 16UC1 frame."""
    v, u = np.mgrid[:CAM.height, :CAM.width]
    inside = ((u - 320) / (40 * CAM.fx / 500)) ** 2 + ((v - 240) / (50 * CAM.fy / 500)) ** 2 < 1
    return conversions.depth_to_image_msg(np.where(inside, 500, 0).astype(np.uint16), header)


@pytest.fixture
def node_under_test(ros, monkeypatch):
    """(PoseNode, {output: times built}) with the node's builders counted."""
    import rclpy

    built = dict.fromkeys(OPTIONAL, 0)

    def counting(output, function):
        def wrapper(*args, **kwargs):
            built[output] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(conversions, "keypoints_to_transforms", counting("tf", conversions.keypoints_to_transforms))
    monkeypatch.setattr(conversions, "keypoints_to_markers", counting("markers", conversions.keypoints_to_markers))
    monkeypatch.setattr(pose_node, "debug_overlay", counting("debug_image", pose_node.debug_overlay))
    node = rclpy.create_node(pose_node.NODE_NAME, context=ros.context)
    pose = pose_node.PoseNode(node=node, estimator=HandPoseEstimator(FixedBackend()))
    pose.stop()  # frames are handed over below, not through the worker thread
    pose._on_camera_info(conversions.camera_info_msg(CAM, conversions.Header(frame_id="cam")))
    yield pose, built
    node.destroy_node()


def send_frame(ros, pose):
    msg = hand_frame(conversions.Header(stamp=ros.now_msg(), frame_id="cam"))
    pose._handle(msg)
    assert pose._state == "tracking", pose._detail


def optional_publishers(pose) -> dict:
    return {"tf": pose.tf._publisher, "markers": pose.pub_markers, "debug_image": pose.pub_debug}


def test_optional_outputs_follow_their_subscribers(ros, node_under_test):
    pose, built = node_under_test
    joints = ros.collect(PoseArray, "/hand_pose/joints")
    ros.wait_for_subscribers(pose.pub_joints, timeout=30)
    publishers = optional_publishers(pose)
    assert not any(p.get_subscription_count() for p in publishers.values())

    # Nobody listens to TF, markers or the debug image: they are never built; the joints go
    # out (sent until the first arrives: discovery can lose the first messages).
    deadline = time.monotonic() + 30
    while not joints and time.monotonic() < deadline:
        send_frame(ros, pose)
        time.sleep(0.05)
    assert joints and built == dict.fromkeys(OPTIONAL, 0)

    # Subscribers appear: all three are built and arrive.
    received = {"tf": [], "markers": [], "debug_image": []}
    subscriptions = {
        "tf": ros.node.create_subscription(TFMessage, "/tf", received["tf"].append, 10),
        "markers": ros.node.create_subscription(MarkerArray, "/hand_pose/markers", received["markers"].append, 10),
        "debug_image": ros.node.create_subscription(Image, "/hand_pose/debug_image",
                                                    received["debug_image"].append, 10)}
    for publisher in publishers.values():
        ros.wait_for_subscribers(publisher, timeout=30)
    deadline = time.monotonic() + 30
    while not all(received.values()) and time.monotonic() < deadline:
        send_frame(ros, pose)
        time.sleep(0.05)
    assert all(received.values()), {k: len(v) for k, v in received.items()}
    assert all(built[output] > 0 for output in OPTIONAL), built
    assert len(received["tf"][-1].transforms) == len(pose.names)
    assert received["debug_image"][-1].encoding == "rgb8"

    # They go away: nothing is built any more, the joints keep coming.
    for subscription in subscriptions.values():
        ros.node.destroy_subscription(subscription)
    ros.wait_for(lambda: not any(p.get_subscription_count() for p in publishers.values()), 30,
                 what="the subscriptions to disappear")
    before, joints_before = dict(built), len(joints)
    for _ in range(3):
        send_frame(ros, pose)
    ros.wait_for(lambda: len(joints) > joints_before, 30, what="more joints")
    assert built == before

    # Only the markers are wanted again: only they are built again.
    markers = ros.collect(MarkerArray, "/hand_pose/markers")
    ros.wait_for_subscribers(pose.pub_markers, timeout=30)
    deadline = time.monotonic() + 30
    while not markers and time.monotonic() < deadline:
        send_frame(ros, pose)
        time.sleep(0.05)
    assert markers and built["markers"] > before["markers"]
    assert (built["tf"], built["debug_image"]) == (before["tf"], before["debug_image"])

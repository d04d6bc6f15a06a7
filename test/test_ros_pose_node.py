"""The pose node over real DDS: the node runs in its own process (the `pose_node` console
script), this test publishes crafted depth frames and CameraInfo and listens to its outputs.

With a randomly initialised model the keypoints are meaningless, so these tests check the
plumbing: stamps, frames, message shapes, finiteness, the state machine on bad input.
"""
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseArray  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from hand_pose_ros import keypoints  # noqa: E402
from hand_pose_ros.camera import Intrinsics  # noqa: E402
from hand_pose_ros.ros import conversions as conv  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CAM = Intrinsics(386.0, 386.0, 320.0, 240.0, 640, 480)
FRAME = "test_depth_optical_frame"
DEPTH_TOPIC, INFO_TOPIC = "/test_cam/depth", "/test_cam/camera_info"


def hand_blob(cam=CAM, centre_uv=(320, 240), depth_mm=500.0, shape=None) -> np.ndarray:
    """[H, W] uint16: an ellipse the size of a hand (~80 x 100 mm) at depth_mm, zero elsewhere."""
    height, width = shape or (cam.height, cam.width)
    v, u = np.mgrid[:height, :width]
    ru, rv = 40 * cam.fx / depth_mm, 50 * cam.fy / depth_mm
    inside = ((u - centre_uv[0]) / ru) ** 2 + ((v - centre_uv[1]) / rv) ** 2 < 1
    return np.where(inside, depth_mm, 0).astype(np.uint16)


def pose_node_params(model, **extra) -> dict:
    # min_confidence 0: a random model's confidence (~0.004) is below the shipped default, and
    # these tests check plumbing, not the no-hand gate.
    return {"model_path": str(model), "depth_topic": DEPTH_TOPIC, "camera_info_topic": INFO_TOPIC,
            "qos": "reliable", "diagnostics_period_s": 0.2, "min_confidence": 0.0, **extra}


class Camera:
    """Publishes crafted frames to the node under test."""

    def __init__(self, ros):
        self.ros = ros
        self.depth = ros.publisher(Image, DEPTH_TOPIC)
        self.info = ros.publisher(CameraInfo, INFO_TOPIC)

    def header(self):
        return conv.Header(stamp=self.ros.now_msg(), frame_id=FRAME)

    def send(self, image: Image | None = None, info: CameraInfo | None = None, depth: np.ndarray | None = None,
             cam: Intrinsics = CAM):
        header = self.header()
        if info is not False:
            msg = info or conv.camera_info_msg(cam, header)
            msg.header = header
            self.info.publish(msg)
        if image is None:
            image = conv.depth_to_image_msg(depth if depth is not None else hand_blob(), header)
        image.header = header
        self.depth.publish(image)
        return header


def latest_state(diagnostics: list) -> dict | None:
    for arr in reversed(diagnostics):
        for status in arr.status:
            if status.hardware_id == "hand_pose":
                return dict(conv.diagnostic_values(status), message=status.message, level=status.level)
    return None


def test_outputs_carry_the_input_stamp_and_frame(ros, start_node, random_onnx_model):
    node = start_node("pose_node", pose_node_params(random_onnx_model))
    joints = ros.collect(PoseArray, "/hand_pose/joints")
    tf = ros.collect(TFMessage, "/tf", 100)
    markers = ros.collect(MarkerArray, "/hand_pose/markers")
    debug = ros.collect(Image, "/hand_pose/debug_image")
    camera = Camera(ros)
    ros.wait_for_subscribers(camera.depth, timeout=60)

    sent = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (joints and tf and markers and debug and len(sent) > 5):
        header = camera.send()
        sent[conv.stamp_key(header.stamp)] = header
        time.sleep(0.1)
    time.sleep(0.5)
    assert node.alive(), node.log()
    assert joints, f"no keypoints published\n{node.log()}"
    for msg in joints:
        assert msg.header.frame_id == FRAME
        assert conv.stamp_key(msg.header.stamp) in sent  # the input image's stamp, not a new one
        xyz = conv.pose_array_to_keypoints(msg)
        assert xyz.shape == (21, 3) and np.isfinite(xyz).all()
        assert (xyz[:, 2] > 0).all()  # in front of the camera (optical frame, metres -> mm)
    children = {t.child_frame_id for m in tf for t in m.transforms}
    assert children == {f"hand_{n}" for n in keypoints.CANONICAL}
    assert all(t.header.frame_id == FRAME for m in tf for t in m.transforms)
    marker = markers[-1].markers[0]  # joints, bones and (the model names a side) the handedness label
    assert {m.type for m in markers[-1].markers} == {marker.SPHERE_LIST, marker.LINE_LIST, marker.TEXT_VIEW_FACING}
    image = debug[-1]
    assert (image.encoding, image.width, image.height) == ("rgb8", CAM.width, CAM.height)
    assert image.header.frame_id == FRAME and conv.stamp_key(image.header.stamp) in sent


def test_bad_input_never_crashes_nor_publishes_nan(ros, start_node, random_onnx_model):
    node = start_node("pose_node", pose_node_params(random_onnx_model))
    joints = ros.collect(PoseArray, "/hand_pose/joints")
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics", 50)
    camera = Camera(ros)
    ros.wait_for_subscribers(camera.depth, timeout=60)

    def expect(state: str, send, timeout: float = 15.0):
        """Keep sending until the node's diagnostics report `state`."""
        diagnostics.clear()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            send()
            time.sleep(0.1)
            current = latest_state(diagnostics)
            if current and current["state"] == state:
                assert node.alive(), node.log()
                return current
        raise AssertionError(f"diagnostics never reported {state!r}; last: {latest_state(diagnostics)}\n{node.log()[-3000:]}")

    # No CameraInfo yet: the node cannot turn pixels into 3D.
    s = expect("waiting_for_camera_info", lambda: camera.send(info=False))
    assert s["level"] == b"\x01" and INFO_TOPIC in s["message"]

    # An unusable K.
    bad_info = conv.camera_info_msg(CAM, camera.header())
    bad_info.k = [0.0] * 9
    expect("bad_camera_info", lambda: camera.send(info=bad_info))

    # A good frame: tracking.
    expect("tracking", lambda: camera.send())
    published_while_good = len(joints)
    assert published_while_good > 0

    def image(encoding="16UC1", width=640, height=480, step=None, data=None):
        bpp = {"16UC1": 2, "32FC1": 4, "rgb8": 3, "8UC1": 1}[encoding]
        step = width * bpp if step is None else step
        data = bytes(step * height) if data is None else data
        return Image(encoding=encoding, width=width, height=height, step=step, is_bigendian=0, data=data)

    s = expect("bad_image", lambda: camera.send(image=image("rgb8")))
    assert "rgb8" in s["message"]
    s = expect("empty_frame", lambda: camera.send(image=image("16UC1")))  # all zero
    nan_metres = np.full((480, 640), np.nan, np.float32).tobytes()
    expect("empty_frame", lambda: camera.send(image=image("32FC1", data=nan_metres)))
    s = expect("bad_image", lambda: camera.send(image=image("16UC1", data=bytes(100))))  # truncated payload
    assert "bytes" in s["message"]
    expect("bad_image", lambda: camera.send(image=image("16UC1", width=8, height=6)))  # odd, tiny
    s = expect("size_mismatch", lambda: camera.send(depth=hand_blob(shape=(240, 320))))
    assert "320x240" in s["message"] and "640x480" in s["message"]
    far_wall = np.full((480, 640), 3000, np.uint16)
    expect("no_hand", lambda: camera.send(depth=far_wall))
    s = expect("hand_at_border", lambda: camera.send(depth=hand_blob(centre_uv=(15, 240))))
    assert s["level"] == b"\x01"
    # 32FC1 in metres works like 16UC1 in millimetres.
    metres = (hand_blob().astype(np.float32) / 1000).tobytes()
    expect("tracking", lambda: camera.send(image=image("32FC1", data=metres)))

    time.sleep(0.5)
    assert node.alive(), node.log()
    for msg in joints:
        assert np.isfinite(conv.pose_array_to_keypoints(msg)).all()
    log = node.log()
    assert "unsupported depth image encoding 'rgb8'" in log  # a specific warning, not a traceback
    assert "Traceback" not in log


def test_missing_model_file_stops_start_up_with_one_clear_error(start_node, tmp_path):
    missing = tmp_path / "no_such_model.onnx"
    node = start_node("pose_node", {"model_path": str(missing)})
    assert node.wait_exit(timeout=60) != 0
    log = node.log()
    assert str(missing) in log and "does not exist" in log and "Traceback" not in log


def test_corrupt_model_file_stops_start_up_with_one_clear_error(start_node, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not an onnx file")
    node = start_node("pose_node", {"model_path": str(corrupt)})
    assert node.wait_exit(timeout=60) != 0
    log = node.log()
    assert str(corrupt) in log and "cannot load model file" in log and "Traceback" not in log


def test_invalid_parameter_stops_start_up_naming_it(start_node, random_onnx_model):
    node = start_node("pose_node", {"model_path": str(random_onnx_model), "qos": "fastest"})
    assert node.wait_exit(timeout=60) != 0
    assert "qos" in node.log() and "fastest" in node.log()


def test_camera_info_from_a_latched_publisher_is_heard(ros, start_node, random_onnx_model):
    """A driver that publishes CameraInfo once, transient-local, before the node starts."""
    from hand_pose_ros.ros.common import qos_profile

    latched = ros.publisher(CameraInfo, INFO_TOPIC, qos_profile("reliable", 1, latched=True))
    latched.publish(conv.camera_info_msg(CAM, conv.Header(stamp=ros.now_msg(), frame_id=FRAME)))
    node = start_node("pose_node", pose_node_params(random_onnx_model))
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics", 50)
    depth = ros.publisher(Image, DEPTH_TOPIC)
    ros.wait_for_subscribers(depth, timeout=60)
    deadline = time.monotonic() + 20
    state = None
    while time.monotonic() < deadline and (state is None or state["state"] != "tracking"):
        header = conv.Header(stamp=ros.now_msg(), frame_id=FRAME)
        depth.publish(conv.depth_to_image_msg(hand_blob(), header))  # no CameraInfo with the frames
        time.sleep(0.1)
        state = latest_state(diagnostics)
    assert state and state["state"] == "tracking", f"{state}\n{node.log()[-3000:]}"
    assert "Traceback" not in node.log()


def test_handedness_topic_marker_and_override(ros, start_node, random_onnx_model):
    """conftest's model says left (P = 0.95): ~/handedness says "left" with every keypoint
    message, the markers label the hand "left 0.95" for rviz, diagnostics report it; with
    handedness_override the topic says the configured side."""
    from std_msgs.msg import String

    from conftest import RANDOM_MODEL_LEFT_PROBABILITY

    handedness = ros.collect(String, "/hand_pose/handedness")
    joints = ros.collect(PoseArray, "/hand_pose/joints")
    markers = ros.collect(MarkerArray, "/hand_pose/markers")
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics", 50)
    node = start_node("pose_node", pose_node_params(random_onnx_model))
    camera = Camera(ros)
    ros.wait_for_subscribers(camera.depth, timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (len(joints) > 3 and markers and (latest_state(diagnostics) or {})
                                               .get("handedness", "unknown") != "unknown"):
        camera.send()
        time.sleep(0.1)
    time.sleep(0.3)
    assert joints and handedness, node.log()
    assert {m.data for m in handedness} == {"left"}
    assert len(handedness) >= len(joints)  # one per keypoint message, sent before it
    label = f"left {RANDOM_MODEL_LEFT_PROBABILITY:.2f}"
    texts = [m for m in markers[-1].markers if m.type == m.TEXT_VIEW_FACING]
    assert [t.text for t in texts] == [label] and texts[0].ns == "hand/handedness"
    assert texts[0].header.frame_id == FRAME
    assert latest_state(diagnostics)["handedness"] == label
    node.stop()

    handedness.clear()
    markers.clear()
    node = start_node("pose_node", pose_node_params(random_onnx_model, handedness_override="right"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (handedness and markers):
        camera.send()
        time.sleep(0.1)
    time.sleep(0.3)
    assert handedness and {m.data for m in handedness} == {"right"}, node.log()
    assert [m.text for m in markers[-1].markers if m.type == m.TEXT_VIEW_FACING] == ["right (set)"]

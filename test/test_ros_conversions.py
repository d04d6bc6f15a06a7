"""Message conversions, the debug overlay, node helpers and parameter files (no DDS)."""
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from hand_pose_ros import keypoints  # noqa: E402
from hand_pose_ros.camera import Intrinsics  # noqa: E402
from hand_pose_ros.ros import conversions as conv  # noqa: E402
from hand_pose_ros.ros import overlay  # noqa: E402
from hand_pose_ros.ros.params import repo_root, resolve_share_path, yaml_keys  # noqa: E402
from hand_pose_ros.ros.stats import LatestSlot, RateMeter, Window  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HEADER = Header(stamp=Time(sec=12, nanosec=345_000_000), frame_id="camera_depth_optical_frame")
CAM = Intrinsics(386.0, 386.0, 320.0, 240.0, 640, 480)


def random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def hand_in_frame(rotation: np.ndarray, origin_mm=(10.0, -20.0, 500.0)) -> np.ndarray:
    """21 canonical keypoints built in a palm frame (x distal, y toward the index side),
    then rotated/translated into the camera frame."""
    local = np.zeros((21, 3))
    mcp_y = {"index": 25.0, "middle": 0.0, "ring": -20.0, "pinky": -38.0}
    for j, name in enumerate(keypoints.CANONICAL):
        finger = keypoints.finger_of(name)
        if name == "wrist":
            continue
        if finger == "thumb":
            step = keypoints.CANONICAL.index(name) - 1
            local[j] = (20 + 15 * step, 35 + 10 * step, 5)
        else:
            step = ("mcp", "pip", "dip", "tip").index(name.split("_")[1])
            local[j] = (90 + 25 * step, mcp_y[finger], 0)
    return local @ rotation.T + np.asarray(origin_mm)


# ---------------------------------------------------------------- rotations
def test_rotation_quaternion_round_trip_including_half_turns():
    rng = np.random.default_rng(0)
    rotations = [random_rotation(rng) for _ in range(200)]
    rotations += [np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0]), np.eye(3)]
    for r in rotations:
        q = conv.rotation_to_quaternion(r)
        assert np.isclose(np.linalg.norm(q), 1.0) and q[3] >= 0
        np.testing.assert_allclose(conv.quaternion_to_rotation(q), r, atol=1e-9)


def test_rotation_to_quaternion_rejects_bad_input():
    with pytest.raises(ValueError, match="3x3"):
        conv.rotation_to_quaternion(np.full((3, 3), np.nan))


def test_palm_quaternion_recovers_the_palm_frame():
    rng = np.random.default_rng(1)
    for _ in range(20):
        rotation = random_rotation(rng)
        xyz = hand_in_frame(rotation)
        q = conv.palm_quaternion(xyz)
        np.testing.assert_allclose(conv.quaternion_to_rotation(q), rotation, atol=1e-9)


def test_palm_quaternion_is_identity_for_degenerate_palms():
    xyz = np.zeros((21, 3))  # all keypoints on one point: no frame
    assert conv.palm_quaternion(xyz) == conv.IDENTITY_QUATERNION
    assert conv.palm_quaternion(np.ones((14, 3)), keypoints.order("nyu")) == conv.IDENTITY_QUATERNION


# ---------------------------------------------------------------- PoseArray / TF / markers
def test_pose_array_in_metres_canonical_order_with_wrist_orientation():
    xyz = hand_in_frame(random_rotation(np.random.default_rng(2)))
    q = conv.palm_quaternion(xyz)
    msg = conv.keypoints_to_pose_array(xyz, HEADER, q)
    assert msg.header.frame_id == HEADER.frame_id and msg.header.stamp == HEADER.stamp
    assert msg.header is not HEADER  # a copy: later edits of the input header do not leak
    assert len(msg.poses) == 21
    np.testing.assert_allclose(conv.pose_array_to_keypoints(msg), xyz, atol=1e-9)
    assert msg.poses[0].position.z == pytest.approx(xyz[0, 2] / 1000)
    wrist = msg.poses[keypoints.CANONICAL.index("wrist")].orientation
    assert (wrist.x, wrist.y, wrist.z, wrist.w) == pytest.approx(q)
    tip = msg.poses[keypoints.CANONICAL.index("index_tip")].orientation
    assert (tip.x, tip.y, tip.z, tip.w) == (0.0, 0.0, 0.0, 1.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_keypoints_are_never_converted(bad):
    xyz = np.ones((21, 3))
    xyz[5, 1] = bad
    for convert in (conv.keypoints_to_pose_array, conv.keypoints_to_transforms, conv.keypoints_to_markers):
        with pytest.raises(ValueError, match="NaN or inf"):
            convert(xyz, HEADER)
    with pytest.raises(ValueError, match="shape"):
        conv.keypoints_to_pose_array(np.ones((20, 3)), HEADER)


def test_transforms_one_child_frame_per_keypoint():
    xyz = hand_in_frame(np.eye(3))
    transforms = conv.keypoints_to_transforms(xyz, HEADER, prefix="left_")
    assert [t.child_frame_id for t in transforms] == [f"left_{n}" for n in keypoints.CANONICAL]
    assert all(t.header.frame_id == HEADER.frame_id and t.header.stamp == HEADER.stamp for t in transforms)
    t = transforms[keypoints.CANONICAL.index("middle_tip")]
    assert (t.transform.translation.x, t.transform.translation.y, t.transform.translation.z) == \
        pytest.approx(tuple(xyz[keypoints.CANONICAL.index("middle_tip")] / 1000))
    tf = conv.keypoints_to_tf_message(xyz, HEADER)
    assert len(tf.transforms) == 21


def test_markers_spheres_and_bones_coloured_by_finger():
    xyz = hand_in_frame(np.eye(3))
    markers = conv.keypoints_to_markers(xyz, HEADER).markers
    joints, bones = markers
    assert joints.type == joints.SPHERE_LIST and len(joints.points) == 21 == len(joints.colors)
    edges = keypoints.edges(keypoints.CANONICAL)
    assert bones.type == bones.LINE_LIST and len(bones.points) == 2 * len(edges) == len(bones.colors)
    thumb_tip = keypoints.CANONICAL.index("thumb_tip")
    c = joints.colors[thumb_tip]
    assert (c.r, c.g, c.b) == pytest.approx(keypoints.colour_of("thumb_tip"))
    assert joints.lifetime.sec == 0 and joints.lifetime.nanosec == 500_000_000
    assert {m.header.frame_id for m in markers} == {HEADER.frame_id}
    assert len({(m.ns, m.id) for m in markers}) == 2


# ---------------------------------------------------------------- images and camera info
def test_depth_image_round_trip_16uc1_and_32fc1():
    depth = (np.arange(48 * 64, dtype=np.uint16) % 2000).reshape(48, 64)
    msg = conv.depth_to_image_msg(depth, HEADER)
    assert (msg.encoding, msg.step, msg.is_bigendian) == ("16UC1", 128, 0)
    np.testing.assert_array_equal(conv.image_msg_to_depth_mm(msg), depth.astype(np.float32))
    np.testing.assert_allclose(conv.image_msg_to_depth_mm(msg, depth_scale_mm=0.1), depth * np.float32(0.1), rtol=1e-6)

    from sensor_msgs.msg import Image
    metres = depth.astype(np.float32) / 1000
    metres[0, 0] = np.nan
    msg32 = Image(height=48, width=64, encoding="32FC1", is_bigendian=0, step=256, data=metres.tobytes())
    decoded = conv.image_msg_to_depth_mm(msg32)
    assert decoded[0, 0] == 0  # NaN = invalid = 0
    np.testing.assert_allclose(decoded[1:], depth[1:].astype(np.float32), atol=1e-3)


def test_depth_to_image_msg_rejects_wrong_dtype():
    with pytest.raises(ValueError, match="uint16"):
        conv.depth_to_image_msg(np.zeros((4, 4), np.float32), HEADER)


def test_rgb_image_message():
    rgb = np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8)
    msg = conv.rgb_to_image_msg(rgb, HEADER)
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", 12, 10, 36)
    np.testing.assert_array_equal(np.frombuffer(bytes(msg.data), np.uint8).reshape(10, 12, 3), rgb)


def test_camera_info_round_trip():
    msg = conv.camera_info_msg(CAM, HEADER)
    assert msg.k[0] == 386.0 and msg.p[2] == 320.0 and list(msg.d) == [0.0] * 5
    assert conv.camera_info_to_intrinsics(msg) == CAM
    msg.k = [0.0] * 9
    with pytest.raises(ValueError, match="invalid camera matrix"):
        conv.camera_info_to_intrinsics(msg)


def test_diagnostic_array_levels_and_values():
    arr = conv.diagnostic_array(HEADER.stamp, "hand_pose: x", "hand_pose", "warn", "no_hand: ...",
                                {"state": "no_hand", "latency_ms_p50": 12.34567, "frames": 3})
    (status,) = arr.status
    assert status.level == status.WARN and status.hardware_id == "hand_pose"
    assert conv.diagnostic_values(status) == {"state": "no_hand", "latency_ms_p50": "12.346", "frames": "3"}
    with pytest.raises(ValueError, match="level"):
        conv.diagnostic_array(HEADER.stamp, "n", "h", "fine", "", {})


def controller_points_kept(stamp_s: float, now_s: float, times_from_start_s) -> list[int]:
    """joint_trajectory_controller's documented rule for a new trajectory (ros_controllers
    "Understanding trajectory replacement", the same in ros2_control): it starts at
    header.stamp, or on arrival when the stamp is zero; each point is due at start +
    time_from_start; points already due are discarded, and a trajectory with none left is
    rejected. Returns the indices of the points the controller keeps."""
    start = now_s if stamp_s == 0 else stamp_s
    return [i for i, t in enumerate(times_from_start_s) if start + t > now_s]


def test_joint_trajectory_survives_the_controllers_rule_at_any_latency():
    image_stamp_s, time_from_start = 100.0, 0.05
    for latency_s in (0.0, 0.03, 0.2, 1.5):  # pipeline latency: image stamp -> arrival at the controller
        msg = conv.joint_trajectory_msg(["j0", "j1"], [0.1, 0.2], time_from_start)
        stamp = conv.stamp_to_seconds(msg.header.stamp)
        times = [conv.stamp_to_seconds(p.time_from_start) for p in msg.points]
        assert controller_points_kept(stamp, image_stamp_s + latency_s, times) == [0], latency_s
        assert list(msg.joint_names) == ["j0", "j1"] and list(msg.points[0].positions) == [0.1, 0.2]
    # What the rule does to a trajectory stamped with the image time instead: dropped once
    # the latency exceeds time_from_start.
    assert controller_points_kept(image_stamp_s, image_stamp_s + 0.2, [time_from_start]) == []
    with pytest.raises(ValueError, match="time_from_start"):
        conv.joint_trajectory_msg(["j0"], [0.0], 0.0)


def test_stamp_helpers():
    assert conv.stamp_to_seconds(HEADER.stamp) == pytest.approx(12.345)
    assert conv.seconds_to_stamp(12.345) == HEADER.stamp
    assert conv.stamp_key(HEADER.stamp) == 12_345_000_000


# ---------------------------------------------------------------- overlay
def test_colourise_depth_invalid_black_and_near_differs_from_far():
    depth = np.array([[0.0, np.nan, 400.0, 1200.0]], dtype=np.float32)
    rgb = overlay.colourise_depth(depth, 400, 1200)
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 0] == 0).all() and (rgb[0, 1] == 0).all()
    assert rgb[0, 2].sum() > 0 and rgb[0, 3].sum() > 0 and (rgb[0, 2] != rgb[0, 3]).any()
    with pytest.raises(ValueError, match="far_mm"):
        overlay.colourise_depth(depth, 500, 500)


def test_skeleton_drawn_in_finger_colours_and_bad_points_skipped():
    depth = np.full((480, 640), 800, dtype=np.float32)
    uv = CAM.xyz_to_uvd(hand_in_frame(np.eye(3), origin_mm=(-40, 0, 600)))[:, :2]  # [21, 2]
    uv[keypoints.CANONICAL.index("pinky_tip")] = np.nan
    uv[keypoints.CANONICAL.index("ring_tip")] = (1e9, 1e9)
    rgb = overlay.debug_overlay(depth, uv, box=(5, 5, 100, 100), depth_range_mm=(500, 1000))
    index_tip = np.round(uv[keypoints.CANONICAL.index("index_tip")]).astype(int)
    expected = np.round(np.array(keypoints.colour_of("index_tip")) * 255)
    assert (rgb[index_tip[1], index_tip[0]] == expected).all()
    assert (rgb[5, 50] == 255).all()  # the box's top edge is white
    with pytest.raises(ValueError, match="shape"):
        overlay.draw_skeleton(rgb, uv[:5])


# ---------------------------------------------------------------- stats
def test_latest_slot_keeps_only_the_newest_and_counts_drops():
    slot = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True and slot.put(3) is True
    assert slot.take(timeout=0.1) == 3 and slot.dropped == 2 and slot.accepted == 3
    assert slot.take(timeout=0.05) is None
    got = []
    t = threading.Thread(target=lambda: got.append(slot.take(timeout=5)))
    t.start()
    time.sleep(0.05)
    slot.close()
    t.join(timeout=2)
    assert got == [None] and not t.is_alive()


def test_rate_meter_and_window():
    meter = RateMeter(window_s=2.0, clock=lambda: 0.0)
    for i in range(31):
        meter.tick(now=10 + i / 30)
    assert meter.rate(now=11.0) == pytest.approx(30.0, rel=0.01)
    assert meter.rate(now=100.0) == 0.0
    w = Window(size=4)
    for v in (100, 1, 2, 3, 4):
        w.add(v)
    assert len(w) == 4 and w.mean() == 2.5 and w.percentile(50) == 2.5
    assert np.isnan(Window().mean())


# ---------------------------------------------------------------- parameter files
def _node_params(module_name: str):
    import importlib

    module = importlib.import_module(f"hand_pose_ros.ros.{module_name}")
    return module.NODE_NAME, module.PARAMS


@pytest.mark.parametrize("config, module_name", [("pose.yaml", "pose_node"),
                                                 ("synthetic_camera.yaml", "synthetic_camera")])
def test_yaml_sets_exactly_the_declared_parameters_with_their_types(config, module_name):
    import yaml

    node_name, params = _node_params(module_name)
    path = REPO / "config" / config
    assert yaml_keys(path, node_name) == {p.name for p in params}
    values = yaml.safe_load(path.read_text())[node_name]["ros__parameters"]
    flat = {}
    for k, v in values.items():
        if isinstance(v, dict):
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            flat[k] = v
    for p in params:
        assert type(flat[p.name]) is type(p.default), f"{p.name}: YAML {flat[p.name]!r} vs declared {p.default!r}"
        p.check(flat[p.name])


def test_synthetic_camera_helpers():
    from hand_pose_ros.ros.synthetic_camera import ping_pong_index, scaled_intrinsics

    assert [ping_pong_index(i, 4) for i in range(10)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert ping_pong_index(7, 1) == 0
    half = scaled_intrinsics("synthetic", 320, 240)
    assert (half.fx, half.cx, half.width, half.height) == (193.0, 160.0, 320, 240)


def test_resolve_share_path_finds_repo_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_share_path("config/pose.yaml") == repo_root() / "config/pose.yaml"
    (tmp_path / "local.onnx").write_bytes(b"x")
    assert resolve_share_path("local.onnx") == tmp_path / "local.onnx"
    assert resolve_share_path("/abs/missing.onnx") == Path("/abs/missing.onnx")


def test_border_problem_flags_cut_off_hands_only():
    from hand_pose_ros.ros.pose_node import border_problem, check_image_against_camera

    uvd = CAM.xyz_to_uvd(hand_in_frame(np.eye(3), origin_mm=(-40, 0, 500)))
    com = uvd.mean(axis=0)
    assert border_problem(uvd, com, CAM, 640, 480) is None
    shifted = uvd - (uvd[:, 0].min() - 1.0, 0, 0)  # leftmost keypoint at u = 1
    assert "at or past the edge" in border_problem(shifted, shifted.mean(axis=0), CAM, 640, 480)
    near_edge = np.array([20.0, 240.0, 500.0])  # 20 px = 26 mm from the left edge at 500 mm
    assert "hand centre" in border_problem(np.array([[60.0, 240.0, 500.0]]), near_edge, CAM, 640, 480)
    assert check_image_against_camera(640, 480, CAM) is None
    assert check_image_against_camera(320, 240, CAM)[0] == "size_mismatch"
    assert check_image_against_camera(16, 480, None)[0] == "bad_image"


@pytest.mark.ros
def test_harness_waits_for_a_message(ros):
    from std_msgs.msg import String

    publisher = ros.publisher(String, "/harness_test/chatter")
    stop = threading.Event()

    def talk():
        i = 0
        while not stop.is_set():
            publisher.publish(String(data=f"hello {i}"))
            i += 1
            time.sleep(0.02)

    talker = threading.Thread(target=talk, daemon=True)
    talker.start()
    try:
        msg = ros.wait_for_message(String, "/harness_test/chatter", timeout=20,
                                   predicate=lambda m: m.data.endswith("5"))
    finally:
        stop.set()
        talker.join(timeout=2)
    assert msg.data.startswith("hello") and msg.data.endswith("5")
    with pytest.raises(AssertionError, match="/harness_test/silence"):
        ros.wait_for_message(String, "/harness_test/silence", timeout=0.3)


def test_depth_scale_never_applies_to_32fc1():
    metres = np.full((4, 4), 0.5, np.float32)
    msg = conv.Image(height=4, width=4, encoding="32FC1", is_bigendian=0, step=16, data=metres.tobytes())
    np.testing.assert_allclose(conv.image_msg_to_depth_mm(msg, 0.1), 500.0)  # metres by REP 118
    mm = conv.depth_to_image_msg(np.full((4, 4), 5000, np.uint16), HEADER)
    np.testing.assert_allclose(conv.image_msg_to_depth_mm(mm, 0.1), 500.0)   # 16UC1: D405 units


def test_camera_info_uses_p_for_a_rectified_stream_and_refuses_a_tiny_focal_length():
    info = conv.camera_info_msg(CAM, HEADER)
    p = np.array(info.p).reshape(3, 4)
    p[0, 0], p[1, 1], p[0, 2] = 380.0, 381.0, 318.0  # rectification changed the camera
    info.p = p.ravel().tolist()
    rect = conv.camera_info_to_intrinsics(info)
    assert (rect.fx, rect.fy, rect.cx) == (380.0, 381.0, 318.0)
    raw = conv.camera_info_to_intrinsics(info, rectified=False)
    assert (raw.fx, raw.fy, raw.cx) == (CAM.fx, CAM.fy, CAM.cx)
    info.p = [0.0] * 12  # P not set: K
    assert conv.camera_info_to_intrinsics(info).fx == CAM.fx
    tiny = conv.camera_info_msg(Intrinsics(1e-3, 386.0, 320.0, 240.0, 640, 480), HEADER)
    with pytest.raises(ValueError, match="fx=0.001 px is too small"):
        conv.camera_info_to_intrinsics(tiny)


def test_pose_node_helpers_canonical_order_zero_stamps_and_debug_view():
    from sensor_msgs.msg import Image

    from hand_pose_ros.ros.pose_node import canonical_order, debug_view, stamp_with_receive_time

    msra = keypoints.DATASET_ORDERS["msra"]
    xyz = np.arange(63, dtype=float).reshape(21, 3)  # rows in MSRA order
    canonical = xyz[canonical_order(msra)]
    for name, row in zip(keypoints.CANONICAL, canonical):
        np.testing.assert_array_equal(row, xyz[msra.index(name)])
    np.testing.assert_array_equal(canonical_order(keypoints.CANONICAL), np.arange(21))
    with pytest.raises(ValueError, match="missing"):
        canonical_order(keypoints.DATASET_ORDERS["nyu"])

    zero = Image()
    assert stamp_with_receive_time(zero, Time(sec=5, nanosec=7)) and zero.header.stamp == Time(sec=5, nanosec=7)
    stamped = Image()
    stamped.header.stamp = Time(sec=1, nanosec=0)
    assert not stamp_with_receive_time(stamped, Time(sec=5, nanosec=7)) and stamped.header.stamp.sec == 1

    depth = np.zeros((1080, 1920), np.float32)
    small, uv, box = debug_view(depth, np.array([[960.0, 540.0]]), (900, 500, 1020, 620))
    assert small.shape == (360, 640) and uv.tolist() == [[320.0, 180.0]] and box == (300.0, 500 / 3, 340.0, 620 / 3)
    same, uv, box = debug_view(np.zeros((480, 640), np.float32), None, None)
    assert same.shape == (480, 640) and uv is None and box is None


def test_pose_yaml_min_confidence_is_the_code_default():
    import yaml

    from hand_pose_ros.ros.pose_node import DEFAULT_MIN_CONFIDENCE, PARAMS

    values = yaml.safe_load((REPO / "config" / "pose.yaml").read_text())["hand_pose"]["ros__parameters"]
    assert values["min_confidence"] == DEFAULT_MIN_CONFIDENCE
    assert {p.name: p.default for p in PARAMS}["min_confidence"] == DEFAULT_MIN_CONFIDENCE

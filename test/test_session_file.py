"""Session files (data/session_file.py) without DDS: what the writer puts in an MCAP file,
read back with the mcap library's own reader and mcap-ros2-support's decoder (not our
reading code); frames out of a file; interrupted and empty recordings; bad input (not MCAP,
truncated, corrupt, a missing topic, an unknown encoding) as one clear error naming the
file (and topic), also through the command line; rosbag2 .db3 input; the replay's
diagnosis of a wrong camera name."""
import sqlite3

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy")   # messages are serialised with rclpy (mcap itself is a pinned requirement)

from mcap.reader import make_reader  # noqa: E402
from mcap_ros2.decoder import DecoderFactory  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402

from hand_pose_ros import keypoints  # noqa: E402
from hand_pose_ros.cli import main as hand_pose  # noqa: E402
from hand_pose_ros.data import session_file as sf  # noqa: E402
from hand_pose_ros.ros import launch_plan  # noqa: E402

DEPTH = launch_plan.ARGUMENTS["depth_topic"][0]
INFO = launch_plan.ARGUMENTS["camera_info_topic"][0]
W, H = 64, 48
K = [50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]
T0 = 1_700_000_000 * 10**9


def _stamp(msg, ns):
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 10**9)
    msg.header.frame_id = launch_plan.CAMERA_FRAME
    return msg


def image(ns, value, noise=False):
    from sensor_msgs.msg import Image
    msg = Image(height=H, width=W, encoding="16UC1", step=2 * W)
    pixels = np.full(W * H, value, np.uint16)
    if noise:   # incompressible: the chunk data then fills most of the file
        pixels += np.random.default_rng(ns % 1000).integers(0, 1000, W * H).astype(np.uint16)
    msg.data = pixels.tobytes()
    return _stamp(msg, ns)


def camera_info(ns):
    from sensor_msgs.msg import CameraInfo
    msg = CameraInfo(width=W, height=H)
    msg.k = K
    return _stamp(msg, ns)


def pose_array(ns, xyz_mm):
    from geometry_msgs.msg import Pose, PoseArray
    msg = PoseArray()
    for x, y, z in np.asarray(xyz_mm) / 1000.0:
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = float(x), float(y), float(z)
        msg.poses.append(pose)
    return _stamp(msg, ns)


def joint_state(ns, positions):
    from sensor_msgs.msg import JointState
    msg = JointState(name=[f"j{i}" for i in range(len(positions))], position=[float(p) for p in positions])
    return _stamp(msg, ns)


def truth_of(k):
    return np.arange(63, dtype=np.float64).reshape(21, 3) + 100.0 * k + np.array([0, 0, 400.0])


def write_session(path, frames=5, period_ns=33_000_000, with_info=True, with_outputs=True, noise=False):
    """A small session: per frame a depth image, CameraInfo, ground truth and (every other
    frame) keypoints and a joint command, all with the frame's stamp."""
    topics = sf.session_topics()
    with sf.SessionWriter(path, metadata={"robot_hand": "leap"}) as writer:
        for topic, type_name in topics.items():
            if (topic == INFO and not with_info) or (not with_outputs and type_name != sf.IMAGE_TYPE
                                                     and topic != INFO and topic != launch_plan.GROUND_TRUTH_TOPIC):
                continue
            writer.add_topic(topic, type_name, [sf.QosOffer("best_effort" if topic == DEPTH else "reliable")])
        for k in range(frames):
            ns = T0 + k * period_ns
            writer.write(DEPTH, serialize_message(image(ns, 500 + k, noise)), ns + 1000)
            if with_info:
                writer.write(INFO, serialize_message(camera_info(ns)), ns + 2000)
            writer.write(launch_plan.GROUND_TRUTH_TOPIC, serialize_message(pose_array(ns, truth_of(k))), ns + 3000)
            if with_outputs and k % 2 == 0:
                writer.write(launch_plan.JOINTS_TOPIC, serialize_message(pose_array(ns, truth_of(k) + 1.0)),
                             ns + 5_000_000)
                writer.write(launch_plan.RETARGET_TOPIC, serialize_message(joint_state(ns, [k, k + 0.5])),
                             ns + 6_000_000)
    return path


# ---------------------------------------------------------------- the file, read by the library
def test_written_file_reads_back_with_the_mcap_library(tmp_path):
    path = write_session(tmp_path / "s.mcap", frames=5)
    assert not (tmp_path / "s.mcap.part").exists()
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        header = reader.get_header()
        summary = reader.get_summary()
        assert header.profile == "ros2"
        channels = {c.topic: c for c in summary.channels.values()}
        assert set(channels) == set(sf.session_topics())
        for topic, type_name in sf.session_topics().items():
            channel = channels[topic]
            schema = summary.schemas[channel.schema_id]
            assert (schema.name, schema.encoding, channel.message_encoding) == (type_name, "ros2msg", "cdr")
            qos = yaml.safe_load(channel.metadata["offered_qos_profiles"])
            assert isinstance(qos, list) and qos[0]["reliability"] == (2 if topic == DEPTH else 1)
            assert isinstance(qos[0]["history"], int) and "deadline" in qos[0]
            assert channel.metadata["topic_type_hash"].startswith("RIHS01_")
        counts = {channels_topic: summary.statistics.channel_message_counts[c.id]
                  for channels_topic, c in channels.items()}
        assert counts == {DEPTH: 5, INFO: 5, launch_plan.GROUND_TRUTH_TOPIC: 5, launch_plan.JOINTS_TOPIC: 3,
                          launch_plan.RETARGET_TOPIC: 3}
        stamps, log_times = {}, []
        for schema, channel, message, decoded in reader.iter_decoded_messages(log_time_order=True):
            log_times.append(message.log_time)
            stamps.setdefault(channel.topic, []).append(decoded.header.stamp.sec * 10**9 + decoded.header.stamp.nanosec)
            if channel.topic == DEPTH:
                assert (decoded.width, decoded.height, decoded.encoding) == (W, H, "16UC1")
                assert len(decoded.data) == W * H * 2
        assert log_times == sorted(log_times)
        expected = [T0 + k * 33_000_000 for k in range(5)]
        assert stamps[DEPTH] == stamps[INFO] == stamps[launch_plan.GROUND_TRUTH_TOPIC] == expected
        assert stamps[launch_plan.JOINTS_TOPIC] == expected[::2]
        metadata = {m.name: m.metadata for m in reader.iter_metadata()}
    bag = yaml.safe_load(metadata["rosbag2"]["serialized_metadata"])
    assert bag["version"] == 8 and bag["storage_identifier"] == "mcap" and bag["message_count"] == 21
    assert {t["topic_metadata"]["name"]: t["message_count"] for t in bag["topics_with_message_count"]} == counts
    assert bag["relative_file_paths"] == ["s.mcap"]
    assert metadata["hand_pose_ros"]["robot_hand"] == "leap"


def test_message_definitions_hold_every_dependency():
    text = sf.message_definition(sf.POSE_ARRAY_TYPE)
    names = [line.split()[1] for line in text.splitlines() if line.startswith("MSG: ")]
    assert names == ["std_msgs/Header", "builtin_interfaces/Time", "geometry_msgs/Pose", "geometry_msgs/Point",
                     "geometry_msgs/Quaternion"]
    assert text.count("=" * 80) == len(names)
    with pytest.raises(sf.SessionFileError, match="no_such_msgs/NoType"):
        sf.message_definition("no_such_msgs/msg/NoType")


def test_qos_profiles_round_trip_in_both_rosbag2_forms():
    offers = [sf.QosOffer("best_effort", "transient_local", "keep_last", 5)]
    assert sf.parse_qos_profiles(sf.qos_profiles_yaml(offers)) == offers
    named = "- history: keep_last\n  depth: 3\n  reliability: best_effort\n  durability: volatile\n"
    assert sf.parse_qos_profiles(named) == [sf.QosOffer("best_effort", "volatile", "keep_last", 3)]
    assert sf.parse_qos_profiles("") == [] and sf.parse_qos_profiles(": not yaml [") == []


# ---------------------------------------------------------------- frames
def test_frames_pair_each_depth_image_with_its_stamp(tmp_path):
    path = write_session(tmp_path / "s.mcap", frames=4)
    with sf.SessionFile(path) as session:
        assert session.session_metadata["robot_hand"] == "leap"
        frames = list(sf.read_frames(session))
    assert [f.index for f in frames] == [0, 1, 2, 3]
    for k, frame in enumerate(frames):
        assert frame.stamp_ns == T0 + k * 33_000_000
        assert frame.depth_mm.shape == (H, W) and frame.depth_mm.dtype == np.float32
        assert np.all(frame.depth_mm == 500 + k)
        assert (frame.intrinsics.fx, frame.intrinsics.cx, frame.intrinsics.width) == (50.0, 32.0, W)
        np.testing.assert_allclose(frame.truth_mm, truth_of(k))
        if k % 2 == 0:
            np.testing.assert_allclose(frame.keypoints_mm, truth_of(k) + 1.0)
        else:
            assert frame.keypoints_mm is None
        # the newest command at or before the frame
        assert frame.joint_positions[0] == (k // 2) * 2
    assert frames[0].truth_mm.shape == (len(keypoints.CANONICAL), 3)


# ---------------------------------------------------------------- writing: interruption, nothing recorded
def test_an_interrupted_recording_is_a_complete_file_and_an_empty_one_leaves_none(tmp_path):
    path = tmp_path / "cut.mcap"
    with pytest.raises(KeyboardInterrupt):
        with sf.SessionWriter(path) as writer:
            writer.add_topic(DEPTH, sf.IMAGE_TYPE)
            writer.write(DEPTH, serialize_message(image(T0, 7)), T0)
            assert writer.part_path.exists() and not path.exists()   # never complete-looking while written
            raise KeyboardInterrupt
    assert path.is_file() and not writer.part_path.exists()
    with sf.SessionFile(path) as session:
        assert session.topics[DEPTH].count == 1

    empty = tmp_path / "empty.mcap"
    with sf.SessionWriter(empty) as writer:
        writer.add_topic(DEPTH, sf.IMAGE_TYPE)
    assert not empty.exists() and not writer.part_path.exists()
    with pytest.raises(sf.SessionFileError, match="nothing was recorded"):
        sf.SessionWriter(tmp_path / "e2.mcap").close()


# ---------------------------------------------------------------- bad input
def _bad_files(tmp_path):
    good = write_session(tmp_path / "good.mcap", frames=6, noise=True)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.mcap"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = tmp_path / "corrupt.mcap"
    middle = bytearray(data)
    start = len(data) // 3
    middle[start:start + 4000] = bytes(4000)           # zeros inside the chunk data; the summary is intact
    corrupt.write_bytes(bytes(middle))
    foreign = tmp_path / "foreign.mcap"
    foreign.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    no_info = write_session(tmp_path / "no_info.mcap", frames=2, with_info=False)
    json_topic = tmp_path / "json.mcap"
    from mcap.writer import Writer
    with open(json_topic, "wb") as f:
        writer = Writer(f)
        writer.start(profile="", library="test")
        schema = writer.register_schema("sensor_msgs/msg/Image", "jsonschema", b"{}")
        channel = writer.register_channel(DEPTH, "json", schema)
        writer.add_message(channel, T0, b"{}", T0)
        info_schema = writer.register_schema("sensor_msgs/msg/CameraInfo", "jsonschema", b"{}")
        writer.add_message(writer.register_channel(INFO, "json", info_schema), T0, b"{}", T0)
        writer.finish()
    return {"truncated": (truncated, "truncated or corrupt"), "corrupt": (corrupt, "corrupt"),
            "foreign": (foreign, "not an MCAP file"), "missing topic": (no_info, "CameraInfo"),
            "unknown encoding": (json_topic, f"topic {DEPTH} has message encoding 'json'"),
            "missing file": (tmp_path / "nothing.mcap", "does not exist")}


def _read_everything(path):
    with sf.SessionFile(path) as session:
        return list(sf.read_frames(session))


def test_bad_files_give_one_error_naming_file_and_topic(tmp_path):
    for case, (path, expected) in _bad_files(tmp_path).items():
        with pytest.raises(sf.SessionFileError) as error:
            _read_everything(path)
        message = str(error.value)
        assert str(path) in message, (case, message)
        assert expected in message, (case, message)
        assert "\n" not in message, (case, message)


@pytest.mark.parametrize("command", [["eval", "bag"], ["replay"]])
def test_the_commands_exit_non_zero_with_one_line_on_bad_files(tmp_path, capsys, command):
    for case, (path, expected) in _bad_files(tmp_path).items():
        if command == ["replay"] and case == "corrupt":
            continue   # replay reads messages only while publishing (covered by the read test above)
        code = hand_pose([*command, str(path), "--json"])
        captured = capsys.readouterr()
        assert code == 2, (case, captured.err)
        assert captured.out == "", case
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0], (case, captured.err)


def test_a_failed_read_mid_file_is_reported_by_eval_bag(tmp_path, capsys):
    path, _ = _bad_files(tmp_path)["corrupt"]
    assert hand_pose(["eval", "bag", str(path), "--no-plots"]) == 2
    assert "corrupt" in capsys.readouterr().err


# ---------------------------------------------------------------- rosbag2 .db3
def test_rosbag2_sqlite_files_are_read_too(tmp_path):
    path = tmp_path / "bag_0.db3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, "
               "serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL)")
    db.execute("CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, timestamp INTEGER NOT NULL, "
               "data BLOB NOT NULL)")
    db.execute("INSERT INTO topics VALUES (1, ?, 'sensor_msgs/msg/Image', 'cdr', '')", (DEPTH,))
    db.execute("INSERT INTO topics VALUES (2, ?, 'sensor_msgs/msg/CameraInfo', 'cdr', '')", (INFO,))
    for k in range(3):
        ns = T0 + k * 10**8
        db.execute("INSERT INTO messages(topic_id, timestamp, data) VALUES (1, ?, ?)",
                   (ns, serialize_message(image(ns, 900 + k))))
        db.execute("INSERT INTO messages(topic_id, timestamp, data) VALUES (2, ?, ?)",
                   (ns + 1, serialize_message(camera_info(ns))))
    db.commit()
    db.close()
    frames = _read_everything(path)
    assert [int(f.depth_mm[0, 0]) for f in frames] == [900, 901, 902]
    assert frames[2].stamp_ns == T0 + 2 * 10**8 and frames[0].truth_mm is None


# ---------------------------------------------------------------- replay: who listens
def test_replay_diagnoses_a_wrong_camera_name():
    from hand_pose_ros.ros.replay import GraphView, diagnose

    pose_subs = {DEPTH: [sf.IMAGE_TYPE], "/other/camera_info": [sf.CAMERA_INFO_TYPE]}
    problems = diagnose(GraphView(DEPTH, INFO, 1, 0, pose_subs))
    assert len(problems) == 1 and "/other/camera_info" in problems[0] and INFO in problems[0]
    assert "--camera-info-topic /other/camera_info" in problems[0]
    problems = diagnose(GraphView("/my/depth", INFO, 0, 1, {"/cam/depth": [sf.IMAGE_TYPE], INFO: [sf.CAMERA_INFO_TYPE]}))
    assert len(problems) == 1 and "--depth-topic /cam/depth" in problems[0]
    # no pose node: something takes the images but nothing the CameraInfo
    assert "nothing subscribes to the CameraInfo" in diagnose(GraphView(DEPTH, INFO, 1, 0, None))[0]
    assert diagnose(GraphView(DEPTH, INFO, 1, 1, {DEPTH: [sf.IMAGE_TYPE], INFO: [sf.CAMERA_INFO_TYPE]})) == []
    assert diagnose(GraphView(DEPTH, INFO, 0, 0, None)) == []
    waiting = diagnose(GraphView(DEPTH, INFO, 1, 1, None, "waiting_for_camera_info: no CameraInfo on /x yet"))
    assert len(waiting) == 1 and "/x" in waiting[0]


# ---------------------------------------------------------------- the demo's recording
def test_demo_capture_writes_the_session_the_animation_and_the_replay_line(tmp_path):
    from hand_pose_ros.ros.demo import report_markdown
    from hand_pose_ros.ros.record import SessionCapture

    launch_args = launch_plan.with_defaults({"use_synthetic_camera": "true", "model": "/m.onnx"})
    capture = SessionCapture(tmp_path / "demo", launch_args)
    for topic, type_name in sf.session_topics().items():
        capture.writer.add_topic(topic, type_name)
    for k in range(4):
        ns = T0 + k * 33_000_000
        capture.writer.write(DEPTH, serialize_message(image(ns, 450)), ns)
        capture.writer.write(INFO, serialize_message(camera_info(ns)), ns + 1)
        capture.writer.write(launch_plan.GROUND_TRUTH_TOPIC, serialize_message(pose_array(ns, truth_of(0))), ns + 2)
        capture.writer.write(launch_plan.JOINTS_TOPIC, serialize_message(pose_array(ns, truth_of(0) + 2.0)), ns + 3)
    recorded = capture.finish()
    assert recorded["errors"] == []
    assert recorded["session"] == "session.mcap" and recorded["session_frames"] == 4
    assert recorded["animation"] == "session.gif" and (tmp_path / "demo" / "session.gif").stat().st_size > 0
    assert recorded["replay_command"] == f"hand-pose replay {tmp_path / 'demo' / 'session.mcap'}"
    with sf.SessionFile(tmp_path / "demo" / "session.mcap") as session:
        assert session.session_metadata["robot_hand"] == launch_args["robot_hand"]
    markdown = report_markdown({"date": "d", "machine": "m", "model": "x", "random_model": False, "errors": [],
                                **recorded})
    assert recorded["replay_command"] in markdown and "![session view](session.gif)" in markdown


def test_restamping_moves_only_the_header_stamp():
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from hand_pose_ros.ros.replay import restamped_cdr

    original = image(T0 + 999_999_999, 321, noise=True)
    moved = deserialize_message(restamped_cdr(serialize_message(original), 2_500_000_001), Image)
    assert (moved.header.stamp.sec, moved.header.stamp.nanosec) == (T0 // 10**9 + 3, 500_000_000)
    assert bytes(moved.data) == bytes(original.data) and moved.header.frame_id == original.header.frame_id
    with pytest.raises(sf.SessionFileError, match="encapsulation"):
        restamped_cdr(b"\x00\x03" + bytes(20), 1)

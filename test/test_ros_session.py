"""Record, replay and evaluate a session over real DDS: `hand-pose record --synthetic` writes
a few seconds of the synthetic camera, pose and retarget nodes; the file is read back with
the mcap library (not our reader); `hand-pose replay` drives a pose node with it (keypoints
come out; a wrong camera name is diagnosed); `hand-pose eval bag` scores it and writes the
animation; Ctrl-C leaves a complete file, a killed recorder leaves only FILE.mcap.part."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from hand_pose_ros.ros import launch_plan  # noqa: E402

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]
HAND_POSE = Path(sys.executable).parent / "hand-pose"
POSE_PARAMS = REPO / "config" / "pose.yaml"
DEPTH = launch_plan.ARGUMENTS["depth_topic"][0]
INFO = launch_plan.ARGUMENTS["camera_info_topic"][0]
RECORD_SECONDS = 3.0


def hand_pose(args, env, timeout=300, **kw):
    return subprocess.run([str(HAND_POSE), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def one_json(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout[-2000:]
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def recording(tmp_path_factory, ros_env):
    path = tmp_path_factory.mktemp("session") / "session.mcap"
    proc = hand_pose(["record", "--synthetic", "--duration", str(RECORD_SECONDS), "-o", str(path), "--json"], ros_env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = one_json(proc.stdout)
    assert path.is_file() and not path.with_name(path.name + ".part").exists()
    return path, result, proc.stderr


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def test_recording_reads_back_with_the_mcap_library(recording):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    path, result, stderr = recording
    assert "hand-pose replay" in stderr and "frames" in stderr   # progress and the replay hint
    expected_types = {DEPTH: "sensor_msgs/msg/Image", INFO: "sensor_msgs/msg/CameraInfo",
                      launch_plan.GROUND_TRUTH_TOPIC: "geometry_msgs/msg/PoseArray",
                      launch_plan.JOINTS_TOPIC: "geometry_msgs/msg/PoseArray",
                      launch_plan.RETARGET_TOPIC: "sensor_msgs/msg/JointState"}
    stamps: dict[str, list[int]] = {}
    log_times = []
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        assert reader.get_header().profile == "ros2"
        types = {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}
        assert types == expected_types
        # a channel whose topic sent nothing during the recording has no count entry
        counts = {c.topic: summary.statistics.channel_message_counts.get(c.id, 0) for c in summary.channels.values()}
        assert counts == result["topics"]
        for _, channel, message, decoded in reader.iter_decoded_messages(log_time_order=True):
            stamps.setdefault(channel.topic, []).append(_stamp_ns(decoded))
            log_times.append(message.log_time)
            if channel.topic == DEPTH:
                assert decoded.encoding == "16UC1" and len(decoded.data) == decoded.step * decoded.height
    assert all(counts[t] > 0 for t in expected_types), counts
    assert sum(counts.values()) == len(log_times) and log_times == sorted(log_times)
    # Recorded for about the asked time (the clock starts at the first keypoints).
    assert RECORD_SECONDS - 0.5 <= (log_times[-1] - log_times[0]) * 1e-9 <= RECORD_SECONDS + 3.0
    # The camera publishes image, CameraInfo and ground truth with one stamp per frame; the
    # pose node's keypoints carry the stamp of the image they answer.
    truth = set(stamps[launch_plan.GROUND_TRUTH_TOPIC])
    assert sum(s in truth for s in stamps[DEPTH]) >= 0.9 * len(stamps[DEPTH])
    # (not all: the first keypoints answer a frame from before the recording started, and a
    # keep-last publisher may replace a sample the recorder had not taken yet)
    answered = [s in truth for s in stamps[launch_plan.JOINTS_TOPIC]]
    assert sum(answered) >= max(1, 0.6 * len(answered)), answered
    depth_stamps = np.array(stamps[DEPTH])
    assert np.all(np.diff(depth_stamps) > 0)
    # Stamps are the camera's clock, close to when they were logged.
    assert abs(depth_stamps[0] - log_times[0]) < 5e9


def test_replay_drives_the_pose_node(recording, ros, start_node, ros_env):
    from geometry_msgs.msg import PoseArray

    path, result, _ = recording
    pose = start_node("pose_node", params_files=[POSE_PARAMS], params={"publish_tf": False})
    received = ros.collect(PoseArray, launch_plan.JOINTS_TOPIC)
    started_ns = ros.node.get_clock().now().nanoseconds
    # Half speed: a pose node slowed by a loaded machine still answers several frames.
    proc = hand_pose(["replay", str(path), "--restamp", "--rate", "0.5", "--wait-for-subscribers", "60", "--json"],
                     ros_env)
    assert proc.returncode == 0, proc.stderr[-3000:] + pose.log()[-2000:]
    replay = one_json(proc.stdout)
    assert replay["frames"] == result["topics"][DEPTH] and replay["problems"] == [], replay
    ros.wait_for(lambda: len(received) > 0, 30, what="keypoints from the pose node on the replayed frames")
    assert all(len(m.poses) == 21 for m in received)
    # --restamp: the outputs carry stamps of now, not of the recording
    assert min(_stamp_ns(m) for m in received) >= started_ns
    # The replay's own count of answers (its monitor may miss the first ones to discovery).
    assert replay["keypoints_received"] is not None and replay["keypoints_received"] <= len(received) + 1, replay
    if replay["keypoints_received"]:
        assert replay["mean_error_mm"] is not None and replay["mean_error_mm"] < 60.0, replay


def test_replay_diagnoses_a_wrong_camera_name(recording, start_node, ros_env):
    path, _, _ = recording
    pose = start_node("pose_node", params_files=[POSE_PARAMS],
                      params={"camera_info_topic": "/wrong_camera/depth/camera_info", "publish_tf": False})
    proc = hand_pose(["replay", str(path), "--wait-for-subscribers", "60", "--json"], ros_env)
    assert proc.returncode == 0, proc.stderr[-3000:] + pose.log()[-2000:]
    replay = one_json(proc.stdout)
    assert replay["keypoints_received"] == 0
    assert any("/wrong_camera/depth/camera_info" in p and INFO in p for p in replay["problems"]), replay
    assert "WARNING" in proc.stderr and "--camera-info-topic /wrong_camera/depth/camera_info" in proc.stderr


def test_eval_bag_scores_the_recording_and_writes_the_animation(recording, tmp_path, ros_env):
    from PIL import Image

    path, _, _ = recording
    gif = tmp_path / "view.gif"
    proc = hand_pose(["eval", "bag", str(path), "--limit", "8", "--json", "--out-dir", str(tmp_path / "eval"),
                      "--animation", str(gif)], ros_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = one_json(proc.stdout)
    assert result["frames"] == 8 and result["ground_truth"] is True
    assert result["model"].endswith("srnet_synthetic.onnx")
    assert 0.5 <= result["hand_found_fraction"] <= 1.0
    # scored: frames with a hand and their ground truth (a keep-last publisher may have lost one)
    assert 0.7 * result["frames_with_hand"] <= result["frames_scored"] <= result["frames_with_hand"]
    assert 0 < result["median_error_mm"] and 0 < result["mean_error_mm"] < 60.0
    assert result["timing_ms"]["infer"]["mean"] > 0 and result["timing_ms"]["total"]["mean"] >= \
        result["timing_ms"]["infer"]["mean"]
    for name in ("per_frame.csv", "over_time.png", "success.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    assert len((tmp_path / "eval" / "per_frame.csv").read_text().splitlines()) == 9
    with Image.open(gif) as image:
        assert image.n_frames >= 2 and image.size[0] > image.size[1]


def test_the_animation_from_the_recorded_keypoints(recording, tmp_path):
    from PIL import Image

    from hand_pose_ros.evaluation.bag import animation_from_file

    path, _, _ = recording
    out = animation_from_file(path, tmp_path / "live.gif")
    with Image.open(out) as image:
        assert image.n_frames >= 10


def _publish_camera(ros, stop_after_s: float, condition=lambda: False):
    """A little camera: depth + CameraInfo at ~20 Hz until condition() or the time is up."""
    from sensor_msgs.msg import CameraInfo, Image

    image_pub = ros.publisher(Image, DEPTH)
    info_pub = ros.publisher(CameraInfo, INFO)
    deadline = time.monotonic() + stop_after_s
    sent = 0
    while time.monotonic() < deadline and not condition():
        stamp = ros.now_msg()
        image = Image(height=48, width=64, encoding="16UC1", step=128, data=bytes(64 * 48 * 2))
        image.header.stamp = stamp
        info = CameraInfo(width=64, height=48, k=[50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0])
        info.header.stamp = stamp
        image_pub.publish(image)
        info_pub.publish(info)
        sent += 1
        time.sleep(0.05)
    return sent


def _recorder_listens(ros) -> bool:
    return all(any(i.node_name == "hand_pose_monitor" for i in ros.node.get_subscriptions_info_by_topic(t))
               for t in (DEPTH, INFO))


def test_ctrl_c_finishes_the_file_and_a_kill_leaves_only_the_part_file(ros, tmp_path, ros_env):
    from hand_pose_ros.data.session_file import SessionFile, SessionFileError

    path = tmp_path / "live.mcap"
    part = tmp_path / "live.mcap.part"
    recorder = subprocess.Popen([str(HAND_POSE), "record", "-o", str(path)], env=ros_env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Publish until the recorder subscribes (it does once it sees a publisher), then a little more.
        _publish_camera(ros, 60.0, condition=lambda: _recorder_listens(ros))
        _publish_camera(ros, 2.0)
        assert part.exists() and not path.exists()
        recorder.send_signal(signal.SIGINT)
        out, err = recorder.communicate(timeout=30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
    assert recorder.returncode == 0, err[-3000:]
    assert path.is_file() and not part.exists()
    with SessionFile(path) as session:
        assert session.topics[DEPTH].count > 0 and session.topics[INFO].count > 0

    killed = tmp_path / "killed.mcap"
    recorder = subprocess.Popen([str(HAND_POSE), "record", "-o", str(killed)], env=ros_env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _publish_camera(ros, 60.0, condition=lambda: _recorder_listens(ros))
        _publish_camera(ros, 1.0)
    finally:
        recorder.kill()
        recorder.wait(timeout=10)
    assert not killed.exists() and killed.with_name("killed.mcap.part").exists()
    with pytest.raises(SessionFileError, match="killed.mcap.part exists"):
        SessionFile(killed)

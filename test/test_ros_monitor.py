"""The pipeline monitor of `hand-pose run` / demo, fed by a fake pose source over DDS:
its keypoint error, latency and rate figures are computed correctly."""
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import PoseArray  # noqa: E402
from sensor_msgs.msg import CameraInfo, JointState  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from hand_pose_ros.camera import Intrinsics  # noqa: E402
from hand_pose_ros.ros import conversions as conv  # noqa: E402
from hand_pose_ros.ros.launch_plan import GROUND_TRUTH_TOPIC, JOINTS_TOPIC, RETARGET_TOPIC  # noqa: E402
from hand_pose_ros.ros.monitor import PipelineMonitor, keypoint_error_mm, latency_trend  # noqa: E402

pytestmark = pytest.mark.ros
INFO_TOPIC = "/monitor_test/camera_info"


def test_keypoint_error_is_the_mean_joint_distance():
    truth = np.zeros((21, 3))
    pred = truth.copy()
    pred[:, 0] += 3.0
    pred[:, 1] += 4.0
    assert keypoint_error_mm(pred, truth) == pytest.approx(5.0)
    pred[0] += (0.0, 0.0, 21 * 10.0)  # one joint off by a lot moves the mean by its share
    assert keypoint_error_mm(pred, truth) == pytest.approx((20 * 5.0 + np.hypot(5.0, 210.0)) / 21)
    with pytest.raises(ValueError, match="shape"):
        keypoint_error_mm(np.zeros((14, 3)), truth)


def test_latency_trend_compares_first_and_last_quarters():
    samples = [(float(i), 10.0 + i) for i in range(40)]
    first, last = latency_trend(samples)
    assert first == pytest.approx(14.5) and last == pytest.approx(44.5)
    assert latency_trend(samples[:5]) == (None, None)


def test_monitor_matches_keypoints_to_ground_truth_by_stamp(ros):
    from hand_pose_ros.ros.run import MonitorThread

    watcher = MonitorThread(INFO_TOPIC)
    try:
        monitor: PipelineMonitor = watcher.monitor
        truth_pub = ros.publisher(PoseArray, GROUND_TRUTH_TOPIC, 50)
        joints_pub = ros.publisher(PoseArray, JOINTS_TOPIC, 50)
        info_pub = ros.publisher(CameraInfo, INFO_TOPIC)
        retarget_pub = ros.publisher(JointState, RETARGET_TOPIC, 50)
        for p in (truth_pub, joints_pub, info_pub, retarget_pub):
            ros.wait_for_subscribers(p)
        monitor.start_window()

        rng = np.random.default_rng(0)
        offset = np.array([3.0, 4.0, 0.0])  # every joint 5 mm off
        frames = 20
        for i in range(frames):
            header = Header(stamp=ros.now_msg(), frame_id="cam")
            truth = rng.uniform(-80, 80, (21, 3)) + (0, 0, 500)
            info_pub.publish(conv.camera_info_msg(Intrinsics(386.0, 386.0, 320.0, 240.0, 640, 480), header))
            estimate = conv.keypoints_to_pose_array(truth + offset, header)
            gt = conv.keypoints_to_pose_array(truth, header)
            if i % 2:  # ground truth first on odd frames, estimate first on even ones
                truth_pub.publish(gt)
                joints_pub.publish(estimate)
            else:
                joints_pub.publish(estimate)
                truth_pub.publish(gt)
            retarget_pub.publish(JointState(header=header, name=["j0", "j1"], position=[0.1, 0.2]))
            time.sleep(0.02)
        # Estimates whose stamp has no ground truth are not scored.
        stray = Header(stamp=Time(sec=1, nanosec=0), frame_id="cam")
        joints_pub.publish(conv.keypoints_to_pose_array(np.full((21, 3), 900.0), stray))
        ros.wait_for(lambda: monitor.summary()["frames_out"] == frames + 1, 20, what="all estimates")
        ros.wait_for(lambda: monitor.summary()["error_frames"] == frames, 20, what="all matches")
        ros.wait_for(lambda: monitor.summary()["retarget_frames"] == frames, 20, what="all commands")
        # CameraInfo is taken best effort with a short history (as from a camera driver): on a
        # busy machine some may be replaced before the monitor reads them.
        ros.wait_for(lambda: monitor.summary()["frames_in"] >= frames // 2, 20, what="the camera frames")
        summary = monitor.summary()
    finally:
        watcher.close()
    assert summary["mean_error_mm"] == pytest.approx(5.0, abs=1e-6)
    assert summary["retarget_commands_for_keypoints"] == frames  # each carries a keypoint stamp
    assert summary["retarget_latency_ms_p50"] is not None
    assert summary["retarget_non_finite"] == 0 and summary["non_finite_outputs"] == 0
    assert 0 <= summary["latency_ms_p50"] < 1000 and summary["latency_ms_p99"] >= summary["latency_ms_p50"]
    assert summary["fps"] > 0 and summary["input_fps"] > 0


def test_frame_wait_separates_backlog_from_slow_processing():
    from hand_pose_ros.ros.monitor import frame_waits

    # Processing slows from 100 to 300 ms per frame (CPU contention), no backlog: each
    # output's latency is its processing time plus 10 ms of waiting.
    arrivals, latencies, t = [], [], 0.0
    for i in range(40):
        processing = 0.1 if i < 20 else 0.3
        t += processing
        arrivals.append(t)
        latencies.append((processing + 0.010) * 1e3)
    waits = frame_waits(list(zip(arrivals, latencies)))
    first, last = latency_trend(waits)
    assert first == pytest.approx(10.0) and last == pytest.approx(10.0)
    # A backlog: latency grows by one period per frame while processing stays the same.
    backlog = [(0.1 * i, 100.0 + 50.0 * i) for i in range(1, 41)]
    first, last = latency_trend(frame_waits(backlog))
    assert last - first > 1000.0


class _FakeNode:
    """Enough of an rclpy Node for PipelineMonitor's constructor (callbacks are called directly)."""

    class _Clock:
        def now(self):
            return type("Now", (), {"nanoseconds": time.time_ns()})()

    def create_subscription(self, *args, **kwargs):
        return None

    def get_clock(self):
        return self._Clock()


def _pose_diagnostics(dropped: int, received: int = 0):
    return conv.diagnostic_array(Time(), "hand_pose: hand pose estimation", "hand_pose", "ok", "tracking",
                                 {"frames_dropped": dropped, "frames_received": received})


def test_monitor_counts_drops_in_the_window_and_fresh_commands_apart_from_repeats():
    monitor = PipelineMonitor(_FakeNode(), INFO_TOPIC)
    monitor._on_diagnostics(_pose_diagnostics(140, 300))  # before the window (start-up)
    def truth(sec):
        return conv.keypoints_to_pose_array(np.full((21, 3), 500.0), Header(stamp=Time(sec=sec), frame_id="cam"))
    monitor._on_truth(truth(1))  # a frame published before the window
    monitor.start_window()
    for sec in range(2, 9):  # 7 frames, and the 5 with keypoints below (sec 100)
        monitor._on_truth(truth(sec))
    stamps = [Time(sec=100, nanosec=k * 1000) for k in range(5)]
    for k, stamp in enumerate(stamps):
        header = Header(stamp=stamp, frame_id="cam")
        monitor._on_joints(conv.keypoints_to_pose_array(np.full((21, 3), 500.0), header))
        monitor._on_retarget(JointState(header=header, position=[0.1]))   # fresh
        monitor._on_retarget(JointState(header=header, position=[0.1]))   # same stamp again: a repeat
        monitor._on_retarget(JointState(header=Header(stamp=Time(sec=200, nanosec=k)), position=[0.1]))  # timer
    monitor._on_diagnostics(_pose_diagnostics(152, 420))
    monitor.end_window()
    monitor._on_diagnostics(_pose_diagnostics(170, 500))  # after the window: not counted
    summary = monitor.summary()
    assert summary["frames_dropped"] == 12
    assert summary["pose_frames_received"] == 120
    assert summary["camera_frames_published"] == 7 + 5
    assert summary["retarget_frames"] == 15
    assert summary["retarget_commands_for_keypoints"] == 5 and summary["retarget_repeated_commands"] == 10
    assert summary["retarget_fresh_fps"] * 2 == pytest.approx(summary["retarget_repeat_fps"])


def test_monitor_counts_a_command_taken_before_the_keypoints_it_answers():
    # Keypoints and commands come on separate subscriptions: the executor may run the
    # command's callback first. It still answers that keypoint message, once.
    monitor = PipelineMonitor(_FakeNode(), INFO_TOPIC)
    monitor.start_window()
    header = Header(stamp=Time(sec=100, nanosec=0), frame_id="cam")
    monitor._on_retarget(JointState(header=header, position=[0.1]))
    assert monitor.summary()["retarget_commands_for_keypoints"] == 0
    monitor._on_joints(conv.keypoints_to_pose_array(np.full((21, 3), 500.0), header))
    monitor._on_retarget(JointState(header=header, position=[0.1]))  # a repeat of the same stamp
    summary = monitor.summary()
    assert summary["retarget_commands_for_keypoints"] == 1 and summary["retarget_frames"] == 2


def test_monitor_pose_input_rate_spans_its_diagnostics_in_the_window(monkeypatch):
    from hand_pose_ros.ros import monitor as monitor_module

    clock = [100.0]
    monkeypatch.setattr(monitor_module.time, "monotonic", lambda: clock[0])
    monitor = PipelineMonitor(_FakeNode(), INFO_TOPIC)
    monitor._on_diagnostics(_pose_diagnostics(0, 50))  # before the window: not part of the rate
    monitor.start_window()
    for second, received in ((0.4, 60), (1.4, 90), (2.4, 118), (3.4, 150)):
        clock[0] = 100.0 + second
        monitor._on_diagnostics(_pose_diagnostics(0, received))
    clock[0] = 104.0
    monitor.end_window()
    clock[0] = 105.0
    monitor._on_diagnostics(_pose_diagnostics(0, 400))  # after the window
    assert monitor.summary()["pose_input_fps"] == pytest.approx((150 - 60) / 3.0)

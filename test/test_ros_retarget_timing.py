"""The retarget node's timing, in process (no DDS, no spinning: the callbacks are called
directly and the ROS clock is simulated): jumps of the ROS clock, the first command seeded
from /joint_states, zero stamps, output stamps that never go backwards, fresh commands
counted apart from the timer's repeats."""
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion  # noqa: E402
from rclpy.time import Time  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from hand_pose_ros.retarget import load_hand_spec  # noqa: E402
from hand_pose_ros.retarget.human_hand import named_pose, place_in_camera  # noqa: E402
from hand_pose_ros.ros import conversions as conv  # noqa: E402
from hand_pose_ros.ros.retarget_node import RetargetNode  # noqa: E402
from hand_pose_ros.ros.stats import OrderedStamps  # noqa: E402


class Recorder:
    def __init__(self):
        self.messages = []

    def publish(self, msg):
        self.messages.append(msg)


@pytest.fixture
def make_node():
    import rclpy
    from rclpy.parameter import Parameter

    context = rclpy.context.Context()
    rclpy.init(context=context)
    made = []

    def make(**params):
        params.setdefault("pose_node", "")  # no pose node to check the keypoint order with
        overrides = [Parameter("use_sim_time", value=True)] + [Parameter(k, value=v) for k, v in params.items()]
        node = rclpy.create_node(f"hand_retarget_{len(made)}", context=context, parameter_overrides=overrides)
        made.append(node)
        wrapper = RetargetNode(node)
        wrapper.pub_commands = Recorder()
        set_ros_time(wrapper, 1000.0)
        return wrapper

    yield make
    for node in made:
        node.destroy_node()
    context.shutdown()


def set_ros_time(wrapper, seconds: float) -> None:
    wrapper.node.get_clock().set_ros_time_override(Time(nanoseconds=int(seconds * 1e9)))


def pose_msg(name: str, stamp=None) -> PoseArray:
    keypoints = place_in_camera(named_pose(name), np.eye(3), [0.02, 0.0, 0.5])
    msg = PoseArray()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.poses = [Pose(position=Point(x=float(x), y=float(y), z=float(z)), orientation=Quaternion(w=1.0))
                 for x, y, z in keypoints]
    return msg


def ros_now(wrapper):
    return wrapper.node.get_clock().now().to_msg()


def feed(wrapper, name: str, seconds: float, period: float = 0.02) -> list[tuple[float, np.ndarray]]:
    """Pose messages of one named pose for `seconds` of real time: [(the monotonic time the
    pipeline read for the message, command)]."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        before = time.monotonic()
        wrapper._on_pose(pose_msg(name, ros_now(wrapper)))
        t = wrapper.pipeline.last_update
        assert before <= t <= time.monotonic()  # the monotonic clock, not the ROS one
        out.append((t, np.array(wrapper.pub_commands.messages[-1].position)))
        time.sleep(period)
    return out


def test_a_forward_jump_of_the_ros_clock_never_allows_an_unclamped_step(make_node):
    wrapper = make_node(filter_target="none")
    limit = np.minimum(wrapper.p["max_joint_velocity"], wrapper.pipeline.spec.max_velocity)
    before = feed(wrapper, "open", 0.3)
    set_ros_time(wrapper, 1000.0 + 3600.0)  # NTP step, /clock jump, bag loop
    after = feed(wrapper, "fist", 0.1)
    t0, q0 = before[-1]
    for (t1, q1) in after:
        assert np.all(np.abs(q1 - q0) <= limit * (t1 - t0) + 1e-9), "a step faster than the velocity limit"
        t0, q0 = t1, q1
    assert np.abs(after[-1][1] - before[-1][1]).max() > 0  # and it does move


def test_a_backward_jump_of_the_ros_clock_does_not_freeze_the_output(make_node):
    wrapper = make_node(filter_target="none")
    feed(wrapper, "open", 0.3)
    set_ros_time(wrapper, 10.0)  # the clock goes back by 990 s
    moved = feed(wrapper, "fist", 0.3)
    distance = np.abs(moved[-1][1] - moved[0][1]).max()
    assert distance > 0.2, f"the command moved only {distance:.3f} rad in 0.3 s after the clock went back"


def test_the_first_command_starts_from_the_robots_joint_states(make_node):
    wrapper = make_node(filter_target="none")
    spec = wrapper.pipeline.spec
    measured = np.clip(spec.safe_pose + 0.4, spec.lower, spec.upper)
    wrapper._on_joint_states(JointState(name=list(reversed(spec.joint_names)),
                                        position=[float(v) for v in reversed(measured)]))
    wrapper._on_pose(pose_msg("fist", ros_now(wrapper)))
    np.testing.assert_allclose(wrapper.pub_commands.messages[0].position, measured)
    # Later /joint_states no longer move the command: the robot follows us from here.
    wrapper._on_joint_states(JointState(name=list(spec.joint_names), position=[0.0] * len(spec.joint_names)))
    assert wrapper.pipeline.seed({n: 0.0 for n in spec.joint_names}) == "commands were already sent"


def test_joint_states_missing_a_joint_are_not_used(make_node):
    wrapper = make_node(filter_target="none")
    spec = wrapper.pipeline.spec
    wrapper._on_joint_states(JointState(name=list(spec.joint_names[:-1]), position=[0.3] * (len(spec.joint_names) - 1)))
    wrapper._on_pose(pose_msg("fist", ros_now(wrapper)))
    np.testing.assert_allclose(wrapper.pub_commands.messages[0].position, spec.safe_pose)


def test_zero_stamps_are_replaced_by_the_receive_time(make_node):
    wrapper = make_node()
    for _ in range(3):
        wrapper._on_pose(pose_msg("open"))  # header.stamp = 0
    stamps = [conv.stamp_to_seconds(m.header.stamp) for m in wrapper.pub_commands.messages]
    assert stamps and all(s == pytest.approx(1000.0) for s in stamps)
    assert not wrapper._latencies_ms  # a receive time says nothing about latency


def test_stamps_never_go_backwards_when_held_and_fresh_commands_interleave(make_node):
    wrapper = make_node(input_timeout=0.05)
    for k in range(5):
        set_ros_time(wrapper, 1000.0 + 0.1 * k)
        wrapper._on_pose(pose_msg("open", conv.seconds_to_stamp(1000.0 + 0.1 * k - 0.2)))  # 200 ms latency
        time.sleep(0.06)
        wrapper._on_timer()  # input silent for longer than input_timeout: a held command stamped 'now'
    stamps = [conv.stamp_key(m.header.stamp) for m in wrapper.pub_commands.messages]
    assert len(stamps) == 10
    assert all(b >= a for a, b in zip(stamps, stamps[1:])), stamps
    values = wrapper.diagnostics_values()
    assert values["fresh_command_rate_hz"] > 0 and values["repeated_command_rate_hz"] > 0


def test_a_configured_input_timeout_shorter_than_the_message_interval_is_reported(make_node):
    wrapper = make_node(input_timeout=0.05)
    for _ in range(4):
        wrapper._on_pose(pose_msg("open", ros_now(wrapper)))
        time.sleep(0.08)
    assert "flaps" in wrapper.input_timeout_problem()
    automatic = make_node(input_timeout=0.0)
    assert automatic.input_timeout_problem() is None


def test_ordered_stamps_clamp_small_rewinds_and_accept_clock_resets():
    stamps = OrderedStamps(clock_reset_s=1.0)
    s = int(1e9)
    assert [stamps.next(v) for v in (10 * s, 11 * s, int(10.8 * s), 12 * s)] == [10 * s, 11 * s, 11 * s, 12 * s]
    assert stamps.next(2 * s) == 2 * s and stamps.clock_resets == 1 and stamps.clamped == 1

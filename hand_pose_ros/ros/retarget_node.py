"""The retarget node (executable retarget_node, node name hand_retarget): hand keypoints in,
robot hand joint commands out, through hand_pose_ros.retarget.RetargetPipeline.

Subscribes  /hand_pose/joints (geometry_msgs/PoseArray: 21 keypoints, canonical order, metres)
Publishes   /hand_retarget/joint_commands (sensor_msgs/JointState, URDF angles, the robot's
            joint names; stamped with the pose message's stamp, so latency is end to end)
            optional driver adapters (output_adapters, comma separated):
              leap                 sensor_msgs/JointState on leap_topic, angles + the spec's
                                   command offset (LEAP: URDF + pi)
              float64_multi_array  std_msgs/Float64MultiArray for a ros2_control position
                                   controller (Allegro), spec joint order
              joint_trajectory     trajectory_msgs/JointTrajectory, one point, stamped zero
                                   (start on arrival; Shadow)
            /diagnostics (diagnostic_msgs/DiagnosticArray): input/output rate, latency,
            retarget time, state (waiting, tracking, holding, ramping to safe pose, at safe pose)
A timer drives hold and ramp while pose messages stop (input_timeout: 0 = derived from the
measured message rate). Safety timing runs on the monotonic clock, never the ROS clock.
Commands carry the pose message's stamp (the receive time for a zero stamp); the timer's
repeats carry 'now'; output stamps never go backwards. Before the first command the node
starts from the robot's measured pose on joint_states_topic when one arrives (URDF angles,
as robot_state_publisher reads them), else from the safe pose. Nothing is published before
the first usable hand (state 'waiting'). All parameters are read-only, validated at start-up; see
config/retarget_<hand>.yaml. Runs on Humble's and Kilted's rclpy.
"""
from __future__ import annotations

import sys
import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from hand_pose_ros.keypoints import CANONICAL
from hand_pose_ros.retarget import PipelineConfig, RetargetPipeline, SafetyConfig, load_hand_spec, make_retargeter
from hand_pose_ros.retarget.pipeline import FILTER_TARGETS
from hand_pose_ros.retarget.safety import TRACKING, WAITING
from hand_pose_ros.retarget.handedness import DEFAULT_SWITCH_AFTER, HandednessSwitch
from hand_pose_ros.retarget.spec import SpecError

from . import conversions
from .common import ThrottledLog, qos_profile, spin_node
from .params import Param, ParameterError, StartupError, declare_all
from .stats import OrderedStamps

AUTO_FALLBACK_SIDE = "right"  # handedness: auto, before the pose node has named a side
HANDEDNESS_MAX_AGE_S = 0.5    # an older handedness message no longer describes the hand

NODE_NAME = "hand_retarget"
ADAPTERS = ("leap", "float64_multi_array", "joint_trajectory")

PARAMS = [
    Param("robot_hand", "leap", "Robot hand spec: a name under config/hands (leap, allegro, "
          "shadow) or a path to a spec YAML file.", read_only=True),
    Param("retargeter", "analytic", "analytic: angles from keypoint geometry (fast, no URDF); "
          "optimisation: dex-retargeting on the hand's URDF.", choices=("analytic", "optimisation"),
          read_only=True),
    Param("optimisation_method", "vector", "dex-retargeting optimiser for retargeter=optimisation.",
          choices=("vector", "dexpilot"), read_only=True),
    Param("handedness", "right", "Which human hand is tracked (a left hand drives the robot "
          "as its mirror image); auto: follow the pose node's handedness topic (right until it "
          "names a side).", choices=("right", "left", "auto"), read_only=True),
    Param("handedness_topic", "/hand_pose/handedness", "std_msgs/String left | right | unknown, "
          "published just before each PoseArray (handedness: auto).", read_only=True),
    Param("handedness_switch_after", DEFAULT_SWITCH_AFTER, "handedness: auto switches sides only "
          "after this many consecutive pose messages of the other side.", range=(1, 1000), read_only=True),
    Param("input_topic", "/hand_pose/joints", "PoseArray of the 21 keypoints (metres).", read_only=True),
    Param("pose_node", "/hand_pose", "Node whose read-only joint_names parameter gives the order of the "
          "keypoints on input_topic: nothing drives the robot until it is the canonical order, and a "
          "different order is refused loudly. Empty: not checked (another keypoint source).", read_only=True),
    Param("output_topic", "/hand_retarget/joint_commands", "JointState commands (URDF angles).",
          read_only=True),
    Param("qos", "sensor_data", "QoS of the keypoint subscription (sensor_data = best effort, "
          "newest only; matches reliable publishers too).", choices=("sensor_data", "reliable"),
          read_only=True),
    Param("filter_target", "joints", "Where the One Euro filter runs (never both: two strong "
          "filters only add lag).", choices=FILTER_TARGETS, read_only=True),
    Param("filter_min_cutoff", 2.5, "One Euro cutoff at rest (Hz).", range=(0.01, 100.0), read_only=True),
    Param("filter_beta", 1.0, "One Euro speed coefficient, per unit/s of the filtered signal "
          "(rad/s for joints, m/s for keypoints).", range=(0.0, 10000.0), read_only=True),
    Param("filter_d_cutoff", 1.0, "One Euro cutoff of the speed estimate (Hz).", range=(0.01, 100.0),
          read_only=True),
    Param("max_joint_velocity", SafetyConfig.max_velocity, "Velocity clamp for every joint (rad/s), also capped by "
          "the hand's own limits.", range=(0.01, 100.0), read_only=True),
    Param("hold_timeout", SafetyConfig.hold_timeout, "Seconds to hold the last command after tracking is lost.",
          range=(0.0, 60.0), read_only=True),
    Param("ramp_time", SafetyConfig.ramp_time, "Seconds to ramp to the safe pose after the hold.", range=(0.0, 600.0),
          read_only=True),
    Param("ramp_speed", SafetyConfig.ramp_speed, "If > 0: ramp at this speed (rad/s) instead of over ramp_time.",
          range=(0.0, 100.0), read_only=True),
    Param("min_valid_keypoints", 15, "Fewer usable keypoints than this count as tracking lost.",
          range=(4, 21), read_only=True),
    Param("plausibility_check", True, "Keypoints no human hand can make (bone lengths, joint bends "
          "outside human ranges, hand_pose_ros/retarget/plausibility.py) count as no hand.", read_only=True),
    Param("max_keypoint_range", 5.0, "Keypoints farther than this from the camera (m) are unusable.",
          range=(0.1, 100.0), read_only=True),
    Param("timer_rate", 30.0, "Rate (Hz) of the timer that holds / ramps when input stops.",
          range=(1.0, 1000.0), read_only=True),
    Param("input_timeout", 0.0, "No pose message for this long (s) = input stopped: the timer "
          "then publishes the held / ramping command. 0 = automatic: 3 x the 90th percentile of "
          "the measured message interval, within [0.1, 1.0] s. A value below twice the measured "
          "interval makes the state flap and is warned about.", range=(0.0, 10.0), read_only=True),
    Param("joint_states_topic", "/joint_states", "The robot's measured joint positions (URDF "
          "angles): the first command starts there instead of at the safe pose. Empty: not used.",
          read_only=True),
    Param("output_adapters", "", "Driver outputs besides JointState, comma separated: "
          "leap, float64_multi_array, joint_trajectory (empty: none).", read_only=True),
    Param("leap_topic", "/cmd_leap", "LEAP driver topic (JointState, angles + pi).", read_only=True),
    Param("position_controller_topic", "/hand_position_controller/commands",
          "ros2_control position controller topic (Float64MultiArray).", read_only=True),
    Param("trajectory_topic", "/hand_trajectory_controller/joint_trajectory",
          "Trajectory controller topic (JointTrajectory).", read_only=True),
    Param("trajectory_time_from_start", 0.05, "time_from_start of the JointTrajectory point (s); "
          "the trajectory is stamped zero (start on arrival), so this is the time the controller "
          "takes to reach the command.", range=(0.001, 10.0), read_only=True),
    Param("diagnostics_period", 1.0, "Period of the /diagnostics status (s).", range=(0.1, 60.0),
          read_only=True),
]

# state -> diagnostic level
LEVELS = {"waiting": "ok", "tracking": "ok", "holding": "warn", "ramping to safe pose": "warn",
          "at safe pose": "warn"}


def joint_order_problem(names) -> str | None:
    """Why keypoints published in the order `names` cannot be retargeted (None: canonical)."""
    names = list(names)
    if names == list(CANONICAL):
        return None
    return (f"the keypoints arrive in the order {names}, not the canonical order {list(CANONICAL)}: "
            "retargeting them would drive the robot with scrambled joints")


def parse_adapters(text: str) -> list:
    names = [a.strip().lower() for a in str(text).split(",") if a.strip()]
    unknown = [a for a in names if a not in ADAPTERS]
    if unknown:
        raise ParameterError(f"parameter 'output_adapters' = {text!r}: unknown {unknown}; "
                             f"choose from {list(ADAPTERS)}")
    return list(dict.fromkeys(names))


def build_pipeline(p: dict) -> RetargetPipeline:
    """The retargeting pipeline the parameters describe (no ROS here)."""
    try:
        spec = load_hand_spec(p["robot_hand"])
        options = {"method": p["optimisation_method"]} if p["retargeter"] == "optimisation" else {}
        retargeter = make_retargeter(spec, p["retargeter"], **options)
        config = PipelineConfig(
            handedness=AUTO_FALLBACK_SIDE if p["handedness"] == "auto" else p["handedness"],
            filter_target=p["filter_target"],
            filter_min_cutoff=p["filter_min_cutoff"], filter_beta=p["filter_beta"],
            filter_d_cutoff=p["filter_d_cutoff"], min_valid_keypoints=p["min_valid_keypoints"],
            max_keypoint_range=p["max_keypoint_range"], input_timeout=p["input_timeout"],
            plausibility_check=p["plausibility_check"],
            safety=SafetyConfig(max_velocity=p["max_joint_velocity"], hold_timeout=p["hold_timeout"],
                                ramp_time=p["ramp_time"], ramp_speed=p["ramp_speed"]))
        return RetargetPipeline(spec, retargeter, config)
    except (SpecError, ValueError) as e:
        raise StartupError(str(e)) from None


class RetargetNode:
    def __init__(self, node):
        self.node = node
        try:
            self.p = declare_all(node, PARAMS)
            self.adapters = parse_adapters(self.p["output_adapters"])
        except ParameterError as e:
            raise StartupError(str(e)) from None
        self.pipeline = build_pipeline(self.p)
        spec = self.pipeline.spec
        self.joint_names = list(spec.joint_names)
        self.offset = spec.command_offset

        self.pub_commands = node.create_publisher(JointState, self.p["output_topic"], 10)
        self.pub_adapters = self._adapter_publishers()
        self.pub_diagnostics = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.handedness_switch = None
        self._detected_side = (None, 0.0)  # (the last handedness message, monotonic receive time)
        if self.p["handedness"] == "auto":
            self.handedness_switch = HandednessSwitch(self.p["handedness_switch_after"])
            # Created before the PoseArray subscription: with both messages of a frame waiting,
            # the executor takes this one first.
            node.create_subscription(String, self.p["handedness_topic"], self._on_handedness,
                                     qos_profile(self.p["qos"], 1))
        node.create_subscription(PoseArray, self.p["input_topic"], self._on_pose, qos_profile(self.p["qos"], 1))
        self._seed_state = "waiting" if self.p["joint_states_topic"] else "off"
        if self.p["joint_states_topic"]:
            node.create_subscription(JointState, self.p["joint_states_topic"], self._on_joint_states,
                                     qos_profile("sensor_data", 1))
        self._stamps = OrderedStamps()
        self._joint_order = "unchecked"  # unchecked | asking | canonical | wrong
        if self.p["pose_node"]:
            from rcl_interfaces.srv import GetParameters

            self._joint_order = "waiting"
            self._parameters = node.create_client(GetParameters, f"{self.p['pose_node'].rstrip('/')}/get_parameters")
            node.create_timer(0.5, self._ask_joint_order)
        self._timer_period = 1.0 / self.p["timer_rate"]
        node.create_timer(self._timer_period, self._on_timer)
        node.create_timer(self.p["diagnostics_period"], self._publish_diagnostics)

        self._inputs = deque(maxlen=1000)       # receive times (monotonic) of pose messages
        self._outputs = deque(maxlen=1000)      # publish times of commands
        self._fresh = deque(maxlen=1000)        # publish times of commands answering a pose message
        self._latencies_ms = deque(maxlen=200)  # pose stamp -> command publish
        self._retarget_ms = deque(maxlen=200)
        self._warn = ThrottledLog(node.get_logger())
        node.get_logger().info(
            f"retargeting {self.p['handedness']} hand -> {spec.name} ({len(self.joint_names)} joints, "
            f"{self.p['retargeter']}) from {self.p['input_topic']} to {self.p['output_topic']}"
            + (f", adapters: {', '.join(self.adapters)}" if self.adapters else ""))

    def stop(self) -> None:
        """Nothing runs outside the executor: no thread to join."""

    # ------------------------------------------------------------------ set-up
    def _adapter_publishers(self) -> dict:
        kinds = {"leap": (JointState, "leap_topic"),
                 "float64_multi_array": (Float64MultiArray, "position_controller_topic"),
                 "joint_trajectory": (JointTrajectory, "trajectory_topic")}
        return {name: self.node.create_publisher(kinds[name][0], self.p[kinds[name][1]], 10)
                for name in self.adapters}

    # ------------------------------------------------------------------ callbacks
    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _ask_joint_order(self) -> None:
        if self._joint_order != "waiting" or not self._parameters.service_is_ready():
            return
        from rcl_interfaces.srv import GetParameters

        self._joint_order = "asking"
        self._parameters.call_async(GetParameters.Request(names=["joint_names"])).add_done_callback(
            self._on_joint_order)

    def _on_joint_order(self, future) -> None:
        from rcl_interfaces.msg import ParameterType

        self._joint_order = "waiting"  # unless answered below: ask again
        try:
            values = future.result().values
        except Exception:  # the pose node went away mid-call
            return
        if not values or values[0].type != ParameterType.PARAMETER_STRING_ARRAY:
            return  # not declared yet: the pose node is still loading its model
        self.check_joint_order(values[0].string_array_value)

    def check_joint_order(self, names) -> None:
        problem = joint_order_problem(names)
        self._joint_order = "wrong" if problem else "canonical"
        if problem:
            self.node.get_logger().error(f"{self.p['pose_node']}: {problem}. The robot is NOT driven; "
                                         "fix the pose node (it publishes canonical order) or set pose_node: ''")
        else:
            self.node.get_logger().info(f"keypoint order of {self.p['pose_node']} checked: canonical")

    def _on_handedness(self, msg) -> None:
        self._detected_side = (msg.data, time.monotonic())

    def _follow_handedness(self) -> None:
        """handedness: auto. The pose node sends a frame's handedness just before its
        PoseArray, so the latest one belongs to this pose message (or, should DDS deliver the
        two topics out of order, to the frame before: the same hand, and the switch's
        hysteresis absorbs it). One older than HANDEDNESS_MAX_AGE_S counts as unknown."""
        detected, received = self._detected_side
        if time.monotonic() - received > HANDEDNESS_MAX_AGE_S:
            detected = None
        if detected not in (None, "left", "right", "unknown"):
            self._warn("handedness_value", f"{self.p['handedness_topic']}: {detected!r} is not left, right "
                                           "or unknown: ignored")
            detected = None
        side = self.handedness_switch.observe(detected)
        if side is None:
            self._warn("handedness_none", f"handedness auto: no side from {self.p['handedness_topic']} yet (a "
                                          f"model without a handedness output says 'unknown'): retargeting "
                                          f"as a {self.pipeline.handedness} hand")
        elif self.pipeline.set_handedness(side):
            self.node.get_logger().info(f"handedness auto: now retargeting a {side} hand")

    def _on_joint_states(self, msg) -> None:
        if self._seed_state != "waiting":
            return
        problem = self.pipeline.seed(dict(zip(msg.name, msg.position)))
        if problem is None:
            self._seed_state = "seeded"
            self.node.get_logger().info(f"starting from the robot's pose on {self.p['joint_states_topic']}")
        elif self.pipeline.safety.commanding:
            self._seed_state = "too late"
        else:
            self._warn("seed", f"cannot start from {self.p['joint_states_topic']}: {problem}")

    def _on_pose(self, msg) -> None:
        self._inputs.append(time.monotonic())
        keypoints = None
        if msg.poses:  # an empty PoseArray means no hand
            keypoints = conversions.pose_array_to_keypoints(msg) / conversions.MM_PER_M  # [J, 3] m
            if keypoints.shape != (len(CANONICAL), 3):
                self._warn("count", f"PoseArray on {self.p['input_topic']} has {len(msg.poses)} poses, "
                                    f"expected {len(CANONICAL)} (canonical keypoints): treated as no hand")
                keypoints = None
        if keypoints is not None and self._joint_order not in ("unchecked", "canonical"):
            if self._joint_order == "wrong":
                self._warn("order", f"keypoints from {self.p['pose_node']} are not in canonical order: "
                                    "not retargeted", "error")
            else:
                self._warn("order", f"waiting for {self.p['pose_node']}'s joint_names parameter to check "
                                    "the keypoint order: not retargeted yet")
            keypoints = None
        if self.handedness_switch is not None and keypoints is not None:
            self._follow_handedness()
        try:
            command = self.pipeline.update(keypoints)
        except Exception as e:  # keep commanding safely whatever went wrong
            self._warn("error", f"retargeting failed ({type(e).__name__}: {e}): holding")
            command = self.pipeline.safety.step(None, self.pipeline.clock())
        if self.pipeline.state == TRACKING:
            self._retarget_ms.append(self.pipeline.last_retarget_seconds * 1e3)
        if keypoints is not None and self.pipeline.last_rejection:
            self._warn("rejected", f"keypoints on {self.p['input_topic']} not used: {self.pipeline.last_rejection}")
        stamp, stamped = msg.header.stamp, bool(msg.header.stamp.sec or msg.header.stamp.nanosec)
        if not stamped:
            self._warn.once("zero_stamp", f"pose messages on {self.p['input_topic']} have a zero stamp: "
                                          "commands are stamped with the receive time instead")
            stamp = self.node.get_clock().now().to_msg()
        self._publish(command, stamp, fresh=True, measure_latency=stamped)

    def _on_timer(self) -> None:
        command = self.pipeline.tick()
        if command is not None:
            self._publish(command, self.node.get_clock().now().to_msg())

    def _publish(self, command: np.ndarray, stamp, fresh: bool = False, measure_latency: bool = False) -> None:
        if self.pipeline.state == WAITING:
            return  # nothing to say before the first usable hand
        stamp = conversions.nanoseconds_to_stamp(self._stamps.next(conversions.stamp_key(stamp)))
        positions = [float(v) for v in command]
        self.pub_commands.publish(self._joint_state(positions, stamp))
        if self.pub_adapters:
            driver = [float(v) for v in command + self.offset]
            for name, publisher in self.pub_adapters.items():
                publisher.publish(self._adapter_message(name, driver, stamp))
        self._outputs.append(time.monotonic())
        if fresh:
            self._fresh.append(self._outputs[-1])
        if measure_latency:
            self._latencies_ms.append((self._now() - conversions.stamp_to_seconds(stamp)) * 1e3)

    def _joint_state(self, positions: list, stamp) -> JointState:
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = list(self.joint_names)
        msg.position = positions
        return msg

    def _adapter_message(self, name: str, positions: list, stamp):
        if name == "leap":
            return self._joint_state(positions, stamp)
        if name == "float64_multi_array":
            return Float64MultiArray(data=positions)
        return conversions.joint_trajectory_msg(self.joint_names, positions, self.p["trajectory_time_from_start"])

    # ------------------------------------------------------------------ diagnostics
    def diagnostics_values(self) -> dict:
        def rate(times) -> float:
            now = time.monotonic()
            recent = [t for t in times if now - t <= 2.0]
            return len(recent) / 2.0

        mean = lambda xs: float(np.mean(xs)) if xs else 0.0  # noqa: E731
        return {"state": self.pipeline.state, "robot_hand": self.pipeline.spec.name,
                "retargeter": self.p["retargeter"], "input_rate_hz": rate(self._inputs),
                "output_rate_hz": rate(self._outputs), "fresh_command_rate_hz": rate(self._fresh),
                "repeated_command_rate_hz": rate(self._outputs) - rate(self._fresh),
                "input_timeout_s": self.pipeline.input_timeout(),
                "latency_ms_mean": mean(self._latencies_ms),
                "latency_ms_max": float(max(self._latencies_ms, default=0.0)),
                "retarget_ms_mean": mean(self._retarget_ms),
                "valid_keypoints": self.pipeline.last_valid_keypoints,
                "handedness": self.pipeline.handedness + (" (auto)" if self.handedness_switch else ""),
                "last_rejection": self.pipeline.last_rejection or "",
                "joint_order": self._joint_order}

    def input_timeout_problem(self) -> str | None:
        """Why a configured input_timeout makes the state flap (None when it does not)."""
        configured, interval = self.p["input_timeout"], self.pipeline.input_interval_p90()
        if configured > 0 and interval is not None and configured < 2 * interval:
            return (f"input_timeout {configured:.3f} s is shorter than twice the measured interval between "
                    f"pose messages ({interval:.3f} s, 90th percentile): the state flaps between tracking "
                    "and holding; set input_timeout: 0.0 (automatic) or a larger value")
        return None

    def _publish_diagnostics(self) -> None:
        state = self.pipeline.state
        problem = self.input_timeout_problem()
        if problem:
            self._warn("input_timeout", problem)
        self.pub_diagnostics.publish(conversions.diagnostic_array(
            self.node.get_clock().now().to_msg(), f"{self.node.get_name()}: retargeting",
            self.pipeline.spec.name, "error" if self._joint_order == "wrong" else LEVELS[state],
            "keypoints not in canonical order" if self._joint_order == "wrong" else state,
            self.diagnostics_values()))


def main(argv=None) -> int:
    import rclpy

    return spin_node(lambda: RetargetNode(rclpy.create_node(NODE_NAME)), NODE_NAME, argv)


if __name__ == "__main__":
    sys.exit(main())

"""`hand-pose replay`: publish a recorded session again, so that the pose and retarget
nodes run on it unchanged.

    hand-pose replay session.mcap                      # recorded rate, original stamps
    hand-pose replay session.mcap --rate 0.5 --loop --restamp
    hand-pose replay bag.mcap --depth-topic /camera/camera/depth/image_rect_raw \
        --camera-info-topic /camera/camera/depth/camera_info     # under the names the pose node listens to

By default the camera topics and the ground truth are published, not the recorded
keypoints and joint commands: live nodes make those again (`--all-topics` publishes them
too, e.g. to look at a session in rviz without running the nodes). Messages go out as the
recorded CDR bytes, at the recorded rate (`--rate` scales it), with the QoS their
publishers offered. `--restamp` moves every header stamp by one offset so the first frame
is stamped now (messages that shared a stamp still share one).

It watches who listens: a pose node that subscribes to other topics than the replay
publishes on, or depth images that have a subscriber while the CameraInfo has none (a
wrong camera name: the pose node would wait for camera info forever), is reported on
stderr and in the JSON result instead of going unnoticed. The pose node's own
`waiting_for_camera_info` diagnostics are reported too.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..data.session_file import (CAMERA_INFO_TYPE, IMAGE_TYPE, SessionFile, SessionFileError, input_topics,
                                 resolve_topics)
from . import launch_plan
from .session_ros import message_class, publisher_profile, quiet_publisher_events

POSE_NODE_NAME = "hand_pose"
DIAGNOSE_EVERY_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="session file (.mcap, or a rosbag2 .db3)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1: as recorded)")
    parser.add_argument("--loop", action="store_true", help="play the file again and again (Ctrl-C stops)")
    parser.add_argument("--restamp", action="store_true",
                        help="shift the header stamps so the first frame is stamped now")
    parser.add_argument("--all-topics", action="store_true",
                        help="also publish the recorded keypoints and joint commands (default: inputs only)")
    parser.add_argument("--depth-topic", default=None,
                        help="publish the depth images under this name (default: the recorded one)")
    parser.add_argument("--camera-info-topic", default=None,
                        help="publish the CameraInfo under this name (default: the recorded one)")
    parser.add_argument("--wait-for-subscribers", type=float, default=5.0,
                        help="seconds to wait for a depth subscriber before starting (default 5; 0 = none)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the replay's numbers")


# ---------------------------------------------------------------- who listens (pure)
@dataclass
class GraphView:
    """What the ROS graph says about the replay's camera topics."""
    depth_topic: str
    camera_info_topic: str
    depth_subscribers: int
    camera_info_subscribers: int
    pose_node_subscriptions: dict[str, list[str]] | None = None   # topic -> types; None: no pose node
    pose_node_state: str | None = None                             # its diagnostics message


def diagnose(view: GraphView) -> list[str]:
    """Problems a replay into the pose node would otherwise hide (each a sentence naming the
    topics and what to pass)."""
    problems = []
    subs = view.pose_node_subscriptions
    if subs is not None:
        depth_in = sorted(t for t, types in subs.items() if IMAGE_TYPE in types)
        info_in = sorted(t for t, types in subs.items() if CAMERA_INFO_TYPE in types)
        if depth_in and view.depth_topic not in depth_in:
            problems.append(f"the pose node /{POSE_NODE_NAME} listens for depth images on {', '.join(depth_in)}, "
                            f"but the replay publishes them on {view.depth_topic}: pass --depth-topic {depth_in[0]}")
        if info_in and view.camera_info_topic not in info_in:
            problems.append(f"no CameraInfo for the pose node: /{POSE_NODE_NAME} listens for it on "
                            f"{', '.join(info_in)}, but the replay publishes it on {view.camera_info_topic} "
                            f"(wrong camera name?): pass --camera-info-topic {info_in[0]}")
    elif view.depth_subscribers and not view.camera_info_subscribers:
        problems.append(f"{view.depth_subscribers} subscriber(s) take the depth images on {view.depth_topic}, but "
                        f"nothing subscribes to the CameraInfo on {view.camera_info_topic}: the subscriber has no "
                        "camera info (wrong camera name?); pass --camera-info-topic")
    if view.pose_node_state and view.pose_node_state.startswith("waiting_for_camera_info"):
        problems.append(f"the pose node reports no CameraInfo: {view.pose_node_state}")
    return problems


# ---------------------------------------------------------------- the publisher side
@dataclass
class ReplayStats:
    messages: int = 0
    frames: int = 0
    loops: int = 0
    problems: list[str] = field(default_factory=list)


class Replayer:
    """Publishers for the chosen topics on `node`, and the diagnostics listener."""

    def __init__(self, node, session: SessionFile, topics: list[str], rename: dict[str, str],
                 depth_topic: str, camera_info_topic: str):
        from diagnostic_msgs.msg import DiagnosticArray

        self.node = node
        self.rename = rename
        self.depth_topic, self.camera_info_topic = depth_topic, camera_info_topic
        self.publishers = {}
        self.classes = {}
        for topic in topics:
            info = session.require(topic)
            self.classes[topic] = message_class(info.type_name)
            self.publishers[topic] = node.create_publisher(self.classes[topic], rename.get(topic, topic),
                                                           publisher_profile(info.qos),
                                                           event_callbacks=quiet_publisher_events())
        self.pose_node_state: str | None = None
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.hardware_id == POSE_NODE_NAME or status.name.startswith(f"{POSE_NODE_NAME}:"):
                self.pose_node_state = status.message

    def out_name(self, topic: str) -> str:
        return self.rename.get(topic, topic)

    def graph_view(self) -> GraphView:
        depth_pub = self.publishers.get(self.depth_topic)
        info_pub = self.publishers.get(self.camera_info_topic)
        subscriptions = None
        for name, namespace in self.node.get_node_names_and_namespaces():
            if name == POSE_NODE_NAME:
                found = self.node.get_subscriber_names_and_types_by_node(name, namespace)
                subscriptions = {topic: list(types) for topic, types in found}
                break
        return GraphView(self.out_name(self.depth_topic), self.out_name(self.camera_info_topic),
                         self._others_subscribed(depth_pub), self._others_subscribed(info_pub),
                         subscriptions, self.pose_node_state)

    def _others_subscribed(self, publisher) -> int:
        """Subscribers of a publisher's topic other than this process's own node (the
        monitor on it counts input frames)."""
        if publisher is None:
            return 0
        own = self.node.get_name()
        return sum(1 for info in self.node.get_subscriptions_info_by_topic(publisher.topic_name)
                   if info.node_name != own)

    def publish(self, topic: str, data: bytes, stamp_offset_ns: int) -> None:
        if stamp_offset_ns and self._leads_with_header(topic):
            data = restamped_cdr(data, stamp_offset_ns)
        self.publishers[topic].publish(data)

    def _leads_with_header(self, topic: str) -> bool:
        fields = list(self.classes[topic].get_fields_and_field_types().items())
        return bool(fields) and fields[0] == ("header", "std_msgs/Header")


# CDR encapsulation kinds whose header fields sit plainly after the 4-byte encapsulation:
# 0 = big-endian CDR, 1 = little-endian CDR (what ROS 2 middlewares write).
PLAIN_CDR = {0: ">", 1: "<"}


def restamped_cdr(data: bytes, offset_ns: int) -> bytes:
    """The CDR bytes of a message whose first field is std_msgs/Header, with header.stamp
    moved by offset_ns: the stamp is the int32 sec and uint32 nanosec right after the
    encapsulation, so the image payload is never decoded or copied field by field."""
    import struct

    order = PLAIN_CDR.get(data[1]) if len(data) >= 12 and data[0] == 0 else None
    if order is None:
        raise SessionFileError(f"cannot restamp a message with CDR encapsulation {data[:4]!r} (not plain CDR)")
    sec, nanosec = struct.unpack_from(f"{order}iI", data, 4)
    stamp_ns = max(0, sec * 1_000_000_000 + nanosec + int(offset_ns))
    patched = bytearray(data)
    struct.pack_into(f"{order}iI", patched, 4, *divmod(stamp_ns, 1_000_000_000))
    return bytes(patched)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _first_stamp_ns(session: SessionFile, topic: str) -> int:
    for _, msg in session.decoded([topic]):
        return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
    return 0


def play(session: SessionFile, replayer: Replayer, topics: list[str], rate: float, loop: bool, restamp: bool,
         clock_ns, stats: ReplayStats) -> None:
    """Publish the topics in log-time order at `rate` x the recorded pace (once, or looped)."""
    first_stamp = _first_stamp_ns(session, replayer.depth_topic) if restamp else 0
    span_ns = max(session.end_ns - session.start_ns, 0)
    period_ns = span_ns // max(session.topics[replayer.depth_topic].count - 1, 1)  # one frame between loops
    next_check = time.monotonic() + DIAGNOSE_EVERY_S
    total = session.topics[replayer.depth_topic].count
    last_note = time.monotonic()
    while True:
        offset = (clock_ns() - first_stamp) if restamp else 0  # per loop: stamps keep rising
        start_wall, start_log = time.monotonic(), None
        for raw in session.raw_messages(topics):
            start_log = raw.log_time_ns if start_log is None else start_log
            wait = start_wall + (raw.log_time_ns - start_log) * 1e-9 / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            replayer.publish(raw.topic, raw.data, offset)
            stats.messages += 1
            if raw.topic == replayer.depth_topic:
                stats.frames += 1
            now = time.monotonic()
            if now >= next_check:
                for problem in diagnose(replayer.graph_view()):
                    if problem not in stats.problems:
                        stats.problems.append(problem)
                        _log(f"[replay] WARNING: {problem}")
                next_check = now + DIAGNOSE_EVERY_S
            if now - last_note >= 5.0:
                _log(f"[replay] {stats.frames - stats.loops * total}/{total} frames"
                     + (f", loop {stats.loops + 1}" if loop else ""))
                last_note = now
        stats.loops += 1
        if not loop:
            return
        time.sleep(period_ns * 1e-9 / rate)


def run(args) -> int:
    from .run import MonitorThread, install_stop_signals, json_safe

    install_stop_signals()
    if not args.rate > 0:
        print(f"hand-pose replay: --rate must be > 0, got {args.rate}", file=sys.stderr)
        return 2
    try:
        session = SessionFile(args.file)
    except SessionFileError as e:
        print(f"hand-pose replay: {e}", file=sys.stderr)
        return 2
    with session:
        try:
            roles = resolve_topics(session)
            topics = sorted(session.topics) if args.all_topics else input_topics(session.topics)
            for topic in topics:
                session.require(topic)
                message_class(session.topics[topic].type_name)
        except SessionFileError as e:
            print(f"hand-pose replay: {e}", file=sys.stderr)
            return 2
        rename = {}
        if args.depth_topic:
            rename[roles.depth] = args.depth_topic
        if args.camera_info_topic:
            rename[roles.camera_info] = args.camera_info_topic
        replayers: list[Replayer] = []
        watcher = MonitorThread(rename.get(roles.camera_info, roles.camera_info), extra=lambda node: replayers.append(
            Replayer(node, session, topics, rename, roles.depth, roles.camera_info)) or replayers[0])
        replayer = replayers[0]
        stats = ReplayStats()
        errors: list[str] = []
        try:
            _log(f"[replay] {session.path}: {session.topics[roles.depth].count} frames over {session.duration_s:.1f} s; "
                 f"publishing {', '.join(replayer.out_name(t) for t in topics)}"
                 + (f" at {args.rate:g}x" if args.rate != 1 else "") + (", restamped" if args.restamp else ""))
            deadline = time.monotonic() + max(args.wait_for_subscribers, 0.0)
            while time.monotonic() < deadline and not replayer.graph_view().depth_subscribers:
                time.sleep(0.1)
            if not replayer.graph_view().depth_subscribers:
                _log(f"[replay] note: nothing subscribes to {replayer.out_name(roles.depth)} yet; publishing anyway")
            watcher.monitor.start_window()
            play(session, replayer, topics, args.rate, args.loop, args.restamp,
                 lambda: watcher.node.get_clock().now().nanoseconds, stats)
            time.sleep(min(2.0, 0.5 / args.rate + 1.0))   # let the last frames' answers arrive
            for problem in diagnose(replayer.graph_view()):
                if problem not in stats.problems:
                    stats.problems.append(problem)
                    _log(f"[replay] WARNING: {problem}")
        except KeyboardInterrupt:
            pass
        except SessionFileError as e:
            errors.append(str(e))
        finally:
            watcher.monitor.end_window()
            measured = watcher.monitor.summary()
            view = replayer.graph_view()
            watcher.close()
    result = {"file": str(session.path), "frames": stats.frames, "messages": stats.messages, "loops": stats.loops,
              "topics": [replayer.out_name(t) for t in topics],
              "depth_subscribers": view.depth_subscribers, "camera_info_subscribers": view.camera_info_subscribers,
              "keypoints_received": measured.get("frames_out"), "mean_error_mm": measured.get("mean_error_mm"),
              "problems": stats.problems, "errors": errors}
    _log(f"[replay] published {stats.frames} frames ({stats.messages} messages); keypoints received on "
         f"{launch_plan.JOINTS_TOPIC}: {result['keypoints_received']}")
    if args.json:
        print(json.dumps(json_safe(result), sort_keys=True))
    for e in errors:
        _log(f"[replay] error: {e}")
    return 1 if errors else 0

"""`hand-pose record`: record a session (depth image, CameraInfo and, when present, the
synthetic ground truth, the keypoints and the robot joint commands) to an MCAP file that
`ros2 bag play`, `ros2 bag info` and Foxglove open.

    hand-pose record --synthetic --duration 10 -o session.mcap     # no camera needed
    hand-pose record -o session.mcap                                # your camera + nodes; Ctrl-C stops

With --synthetic the synthetic camera, pose and retarget nodes are started here (as
`hand-pose run --synthetic` does) and the recording starts with the first keypoints, so
the duration holds the pipeline at work, not its start-up. Without it, the topics are
recorded from whatever publishes them, from the start.

Messages are stored as received (CDR bytes, no decoding) with the QoS their publishers
offered. The file is written as FILE.mcap.part and renamed when finished, also on Ctrl-C or
`kill`; a file named FILE.mcap is always complete (see data/session_file.py).
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from ..data.session_file import SessionFileError, SessionWriter, session_topics
from . import launch_plan
from .session_ros import message_class, offer_of, subscription_profile

PROGRESS_EVERY_S = 1.0     # progress line period on a terminal (5 s into a log file)
SUBSCRIBE_CHECK_S = 0.5    # how often topics without a publisher yet are looked at again
QUEUE_DEPTH = 30           # subscription history: the writer never loses frames to a short stall


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, type=Path, help="the MCAP file to write (FILE.mcap)")
    parser.add_argument("--synthetic", action="store_true",
                        help="start the synthetic camera, pose and retarget nodes here (no camera needed)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds to record (default: until Ctrl-C); with --synthetic, from the first keypoints")
    parser.add_argument("--depth-topic", default=launch_plan.ARGUMENTS["depth_topic"][0])
    parser.add_argument("--camera-info-topic", default=launch_plan.ARGUMENTS["camera_info_topic"][0])
    parser.add_argument("--compression", default="zstd", choices=("zstd", "lz4", "none"),
                        help="MCAP chunk compression (default zstd; every MCAP reader has it)")
    parser.add_argument("--animation", type=Path, default=None,
                        help="also write the session view (GIF or MP4 by suffix) from the recording")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the recording's numbers")
    from .run import add_pipeline_arguments
    add_pipeline_arguments(parser.add_argument_group("with --synthetic"), startup_timeout=180.0, log_level="warn",
                           startup_help="seconds to wait for the first keypoints")


# ---------------------------------------------------------------- the recorder
class Recorder:
    """Subscribes (raw, no decoding) to each topic once it has a publisher, with a QoS that
    matches all of them, and writes what arrives while recording is on."""

    def __init__(self, node, writer: SessionWriter, topics: dict[str, str], depth_topic: str,
                 start_on: str | None = None):
        """start_on: a topic whose first message switches recording on (None: on at once)."""
        self.node = node
        self.writer = writer
        self.topics = dict(topics)
        self.depth_topic = depth_topic
        self.recording = start_on is None
        self.started_at = time.monotonic() if self.recording else None
        self.stopped_at: float | None = None
        self._start_on = start_on
        self._lock = threading.Lock()
        self._subscriptions = {}
        self._check_topics()
        self._timer = node.create_timer(SUBSCRIBE_CHECK_S, self._check_topics)

    def _check_topics(self) -> None:
        for topic, type_name in self.topics.items():
            if topic in self._subscriptions:
                continue
            publishers = self.node.get_publishers_info_by_topic(topic)
            if not publishers:
                continue
            offers = [offer_of(p.qos_profile) for p in publishers]
            with self._lock:
                self.writer.add_topic(topic, type_name, offers)
            self._subscriptions[topic] = self.node.create_subscription(
                message_class(type_name), topic, self._writer_for(topic),
                subscription_profile(offers, QUEUE_DEPTH), raw=True)
        if len(self._subscriptions) == len(self.topics):
            self._timer.cancel()

    def _writer_for(self, topic: str):
        def on_message(data: bytes) -> None:
            if not self.recording:
                if topic != self._start_on or self.stopped_at is not None:
                    return
                self.start()
            with self._lock:
                if self.recording and not self.writer.closed:
                    self.writer.write(topic, data, self.node.get_clock().now().nanoseconds)
        return on_message

    def start(self) -> None:
        if not self.recording and self.stopped_at is None:
            self.started_at = time.monotonic()
            self.recording = True

    def stop(self) -> None:
        """End the recording for good (a later start_on message does not restart it)."""
        with self._lock:
            if self.stopped_at is None:
                self.stopped_at = time.monotonic()
            self.recording = False

    @property
    def frames(self) -> int:
        return self.writer.count(self.depth_topic)

    def progress(self) -> dict:
        end = self.stopped_at or time.monotonic()
        elapsed = end - self.started_at if self.started_at else 0.0
        return {"frames": self.frames, "messages": self.writer.messages, "megabytes": self.writer.bytes_written / 1e6,
                "seconds": elapsed, "fps": self.frames / elapsed if elapsed > 0 else 0.0}

    def missing_topics(self) -> list[str]:
        return [t for t in self.topics if self.writer.count(t) == 0]


def progress_text(p: dict) -> str:
    return (f"[record] {p['frames']} frames, {p['megabytes']:.1f} MB, {p['fps']:.1f} fps, "
            f"{p['seconds']:.1f} s")


class ProgressLine:
    """A progress line on stderr while recording: rewritten in place on a terminal, a new
    line every 5 s in a log."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        self._tty = sys.stderr.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="record-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        period = PROGRESS_EVERY_S if self._tty else 5.0
        while not self._stop.wait(period):
            if self.recorder.recording:
                text = progress_text(self.recorder.progress())
                print(f"\r{text}   " if self._tty else text, end="" if self._tty else "\n",
                      file=sys.stderr, flush=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        if self._tty:
            print(file=sys.stderr)


# ---------------------------------------------------------------- the command
def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def session_metadata(args, launch_args: dict | None) -> dict:
    """What the file's `hand_pose_ros` metadata record says about the session."""
    meta = {"recorded_with": "hand-pose record", "synthetic": str(bool(args.synthetic)).lower(),
            "depth_topic": args.depth_topic, "camera_info_topic": args.camera_info_topic}
    if launch_args is not None:
        meta.update(robot_hand=launch_args["robot_hand"], model=launch_args["model"] or "config/pose.yaml model_path",
                    retarget=launch_args["retarget"])
    return meta


def record_live(recorder: Recorder, duration_s: float | None) -> str | None:
    """Record from whatever publishes (no nodes of ours) until the duration or Ctrl-C.
    Returns why it stopped early, or None."""
    end = None if duration_s is None else time.monotonic() + duration_s
    _log("[record] recording: Ctrl-C to stop" if end is None else f"[record] recording for {duration_s:.1f} s")
    warned = False
    try:
        while end is None or time.monotonic() < end:
            time.sleep(0.1)
            if not warned and recorder.frames == 0 and time.monotonic() - recorder.started_at > 10.0:
                _log(f"[record] no depth frame on {recorder.depth_topic} after 10 s: is the camera running, "
                     "and is that its topic (--depth-topic)?")
                warned = True
    except KeyboardInterrupt:
        return "interrupted" if end is not None else None
    return None


def run(args) -> int:
    from .run import MonitorThread, install_stop_signals, json_safe, launch_arguments, run_pipeline

    install_stop_signals()
    output = Path(args.output)
    if output.suffix != ".mcap":
        print(f"hand-pose record: {output}: the output must be a .mcap file", file=sys.stderr)
        return 2
    if args.duration is not None and not args.duration > 0:
        print(f"hand-pose record: --duration must be > 0 s, got {args.duration}", file=sys.stderr)
        return 2
    launch_args = None
    if args.synthetic:
        try:
            args.rviz = False
            launch_args = launch_arguments(args)
            from .params import share_dir
            launch_plan.plan(launch_args, share_dir())   # an unknown robot hand fails before anything starts
        except ValueError as e:
            print(f"hand-pose record: {e}", file=sys.stderr)
            return 2
    topics = session_topics(args.depth_topic, args.camera_info_topic)
    try:
        writer = SessionWriter(output, compression=args.compression, metadata=session_metadata(args, launch_args))
    except (SessionFileError, OSError) as e:
        print(f"hand-pose record: {e}", file=sys.stderr)
        return 2

    recorders: list[Recorder] = []

    def make_recorder(node, start_on=None):
        recorders.append(Recorder(node, writer, topics, args.depth_topic, start_on=start_on))
        return recorders[-1]

    progress = None
    result: dict = {"errors": []}
    try:
        if args.synthetic:
            def with_progress(node):
                nonlocal progress
                recorder = make_recorder(node, start_on=launch_plan.JOINTS_TOPIC)
                progress = ProgressLine(recorder)
                return recorder

            result = run_pipeline(launch_args, args.duration, args.startup_timeout, args.log_level, log=_log,
                                  extra=with_progress, after_window=lambda recorder: recorder.stop())
        else:
            watcher = MonitorThread(args.camera_info_topic, extra=make_recorder)
            progress = ProgressLine(recorders[0])
            try:
                stopped = record_live(recorders[0], args.duration)
                if stopped:
                    result["errors"].append("interrupted before the recording time was over")
            finally:
                recorders[0].stop()
                watcher.close()
    finally:
        if progress is not None:
            progress.close()
        for recorder in recorders:
            recorder.stop()
        try:
            path = writer.close()
        except SessionFileError as e:
            print(f"hand-pose record: {e}", file=sys.stderr)
            return 1
    recorder = recorders[0]
    summary = {"file": str(path), **{k: round(v, 3) if isinstance(v, float) else v
                                     for k, v in recorder.progress().items()},
               "megabytes": round(path.stat().st_size / 1e6, 3),
               "topics": {t: writer.count(t) for t in topics}, "missing_topics": recorder.missing_topics(),
               "errors": list(result.get("errors", []))}
    _log(progress_text(recorder.progress() | {"megabytes": summary["megabytes"]}))
    _log(f"[record] wrote {path} ({summary['megabytes']:.1f} MB); replay it with: hand-pose replay {path}")
    if recorder.frames == 0:
        summary["errors"].append(f"no depth frame on {args.depth_topic} was recorded")
    for topic in summary["missing_topics"]:
        _log(f"[record] note: nothing was recorded on {topic}")
    if args.animation is not None and recorder.frames:
        try:
            from ..evaluation.bag import animation_from_file
            summary["animation"] = str(animation_from_file(path, args.animation, log=_log))
        except (SessionFileError, ImportError, ValueError, OSError) as e:
            summary["errors"].append(f"animation: {e}")
    if args.json:
        print(json.dumps(json_safe(summary), sort_keys=True))
    for e in summary["errors"]:
        _log(f"[record] error: {e}")
    return 0 if recorder.frames and not summary["errors"] else 1


# ---------------------------------------------------------------- inside hand-pose demo
class SessionCapture:
    """The demo's recording: OUT/session.mcap of the measuring window (from the first
    keypoints to the end of the window), then OUT/session.gif from it.

        capture = SessionCapture(out_dir, launch_args)
        run_pipeline(..., extra=lambda node: capture.attach(node), after_window=... capture.stop())
        report.update(capture.finish())
    """

    def __init__(self, out_dir, launch_args: dict, name: str = "session"):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / f"{name}.mcap"
        self.animation_path = self.out_dir / f"{name}.gif"
        self.launch_args = launch_args
        self.topics = session_topics(launch_args["depth_topic"], launch_args["camera_info_topic"])
        self.writer = SessionWriter(self.path, metadata={
            "recorded_with": "hand-pose demo", "synthetic": "true", "robot_hand": launch_args["robot_hand"],
            "model": launch_args["model"], "retarget": launch_args["retarget"]})
        self.recorder: Recorder | None = None

    def attach(self, node) -> Recorder:
        self.recorder = Recorder(node, self.writer, self.topics, self.launch_args["depth_topic"],
                                 start_on=launch_plan.JOINTS_TOPIC)
        return self.recorder

    def stop(self) -> None:
        if self.recorder is not None:
            self.recorder.stop()

    def finish(self, log=_log) -> dict:
        """Close the file and write the animation. Returns the report's entries: session,
        session_frames, session_megabytes, animation, replay_command, errors."""
        self.stop()
        out: dict = {"errors": []}
        try:
            path = self.writer.close()
        except (SessionFileError, OSError) as e:
            out["errors"].append(f"recording: {e}")
            return out
        out.update(session=path.name, session_frames=self.writer.count(self.launch_args["depth_topic"]),
                   session_megabytes=round(path.stat().st_size / 1e6, 1),
                   replay_command=f"hand-pose replay {path}")
        try:
            from ..evaluation.bag import animation_from_file
            out["animation"] = animation_from_file(path, self.animation_path,
                                                   robot_hand=self.launch_args["robot_hand"], log=log).name
        except (SessionFileError, ImportError, ValueError, RuntimeError, OSError) as e:
            out["errors"].append(f"animation: {e}")
        return out

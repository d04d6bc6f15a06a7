"""Session files: recordings of the pipeline's topics as MCAP files that ROS 2 tools open
(`ros2 bag play`, `ros2 bag info`, Foxglove), read back as frames for offline work.

No rclpy here: messages travel as their CDR bytes (what DDS carries and what rosbag2
stores). The ROS adapters (ros/record.py, ros/replay.py) serialise and publish them.

What makes the file a rosbag2 MCAP file (the MCAP `ros2` profile, as rosbag2_storage_mcap
writes it):
  - header profile `ros2`;
  - one schema per message type, named `pkg/msg/Type`, encoding `ros2msg`, holding the full
    message definition: the type's .msg text, then every type it uses, each after a line of
    80 `=` and a `MSG: pkg/Type` line (read from the installed message packages);
  - one channel per topic, message encoding `cdr`, with the metadata `offered_qos_profiles`
    (YAML, rosbag2 metadata version 8: integer QoS enums, which every rosbag2 from Humble on
    reads) and `topic_type_hash` (RIHS01 hash, when the message package ships it);
  - message log time = receive time, publish time = the same (rosbag2 on Humble does so);
  - a metadata record `rosbag2` with `serialized_metadata` (the bag's metadata YAML, version 8)
    and a metadata record `hand_pose_ros` with what this package knows about the session.

A file is written as FILE.mcap.part and renamed to FILE.mcap once finished (summary, index,
footer), so a file with the final name is always complete. Reading checks the container and
says in one line what is wrong (not MCAP, truncated, corrupt, a topic missing, an encoding
that is not ROS 2 CDR), naming the file and the topic: SessionFileError.

rosbag2 SQLite files (.db3) are read too (topics, types and CDR messages from the tables
rosbag2_storage_default_plugins writes; message definitions from the installed packages).
"""
from __future__ import annotations

import importlib
import os
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import yaml

from ..ros import launch_plan

MCAP_PROFILE = "ros2"
SCHEMA_ENCODING = "ros2msg"
MESSAGE_ENCODING = "cdr"
ROSBAG2_METADATA = "rosbag2"
ROSBAG2_METADATA_VERSION = 8     # integer QoS enums: readable from Humble to the newest rosbag2
SESSION_METADATA = "hand_pose_ros"
PART_SUFFIX = ".part"
MCAP_MAGIC = b"\x89MCAP0\r\n"
SQLITE_MAGIC = b"SQLite format 3\x00"
DEFINITION_SEPARATOR = "=" * 80
COMMAND_SLACK_NS = 1_000_000

IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
POSE_ARRAY_TYPE = "geometry_msgs/msg/PoseArray"
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"


class SessionFileError(ValueError):
    """A session file cannot be written or read; the message names the file (and topic)."""


# ---------------------------------------------------------------- which topics
def session_topics(depth_topic: str | None = None, camera_info_topic: str | None = None) -> dict[str, str]:
    """topic -> message type of what a session records: the camera's depth image and
    CameraInfo, the synthetic ground truth, the keypoints and the robot joint commands."""
    return {
        depth_topic or launch_plan.ARGUMENTS["depth_topic"][0]: IMAGE_TYPE,
        camera_info_topic or launch_plan.ARGUMENTS["camera_info_topic"][0]: CAMERA_INFO_TYPE,
        launch_plan.GROUND_TRUTH_TOPIC: POSE_ARRAY_TYPE,
        launch_plan.JOINTS_TOPIC: POSE_ARRAY_TYPE,
        launch_plan.RETARGET_TOPIC: JOINT_STATE_TYPE,
    }


def input_topics(topics: dict[str, str]) -> list[str]:
    """The topics the pose node consumes (and the ground truth), not the pipeline's outputs:
    what a replay publishes by default, so that live nodes produce the outputs again."""
    outputs = {launch_plan.JOINTS_TOPIC, launch_plan.RETARGET_TOPIC}
    return [t for t in topics if t not in outputs]


# ---------------------------------------------------------------- message definitions
PRIMITIVE_TYPES = frozenset(("bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
                             "int32", "uint32", "int64", "uint64", "string", "wstring"))


def split_type_name(type_name: str) -> tuple[str, str]:
    """'sensor_msgs/msg/Image' or 'sensor_msgs/Image' -> ('sensor_msgs', 'Image')."""
    parts = type_name.strip().split("/")
    if len(parts) == 3 and parts[1] == "msg":
        return parts[0], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise SessionFileError(f"message type {type_name!r} is not of the form package/msg/Type")


def _share_dirs(package: str) -> list[Path]:
    """Where a message package's share/<package> may be: the ament index of a sourced ROS
    install, then the prefix above the package's Python module (venv or /opt/ros/...)."""
    found = []
    if os.environ.get("AMENT_PREFIX_PATH"):
        for prefix in os.environ["AMENT_PREFIX_PATH"].split(os.pathsep):
            found.append(Path(prefix) / "share" / package)
    try:
        module = importlib.import_module(package)
        start = Path(module.__file__ or next(iter(module.__path__))).resolve().parent
        found += [parent / "share" / package for parent in start.parents]
    except ImportError:
        pass
    found.append(Path(sys.prefix) / "share" / package)
    return found


def _interface_file(type_name: str, suffix: str) -> Path | None:
    package, name = split_type_name(type_name)
    for share in _share_dirs(package):
        candidate = share / "msg" / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _used_types(package: str, text: str) -> list[str]:
    """The non-primitive field types a .msg text uses, as 'pkg/Type', in order of appearance."""
    used = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        field_type = line.split()[0]
        field_type = field_type.split("[", 1)[0].split("<=", 1)[0]   # arrays, bounded strings
        if field_type in PRIMITIVE_TYPES:
            continue                                                 # (constants are primitive too)
        pkg, name = split_type_name(field_type) if "/" in field_type else (package, field_type)
        used.append(f"{pkg}/{name}")
    return used


def message_definition(type_name: str) -> str:
    """The full ros2msg definition of a type: its .msg text followed by the text of every
    type it depends on (depth first, each once), as rosbag2 stores it in MCAP schemas."""
    package, name = split_type_name(type_name)
    parts, seen, pending = [], set(), [f"{package}/{name}"]
    while pending:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.add(current)
        path = _interface_file(current, ".msg")
        if path is None:
            raise SessionFileError(f"no message definition for {current} (share/{current.split('/')[0]}/msg/"
                                   f"{current.split('/')[1]}.msg is not installed): cannot record {type_name}")
        text = path.read_text()
        parts.append(text if not parts else f"{DEFINITION_SEPARATOR}\nMSG: {current}\n{text}")
        pending = [t for t in _used_types(current.split("/")[0], text) if t not in seen] + pending
    return "\n".join(p.rstrip("\n") for p in parts) + "\n"


def type_description_hash(type_name: str) -> str:
    """The type's RIHS01 hash from the package's type description (Iron and newer ship it);
    '' where there is none (Humble)."""
    path = _interface_file(type_name, ".json")
    if path is None:
        return ""
    package, name = split_type_name(type_name)
    try:
        import json

        for entry in json.loads(path.read_text()).get("type_hashes", []):
            if entry.get("type_name") == f"{package}/msg/{name}":
                return str(entry.get("hash_string", ""))
    except (OSError, ValueError):
        pass
    return ""


# ---------------------------------------------------------------- QoS in rosbag2's YAML
# rmw enums (rmw/types.h): the integers rosbag2 metadata up to version 8 stores.
HISTORY = {"system_default": 0, "keep_last": 1, "keep_all": 2}
RELIABILITY = {"system_default": 0, "reliable": 1, "best_effort": 2}
DURABILITY = {"system_default": 0, "transient_local": 1, "volatile": 2}
LIVELINESS_AUTOMATIC = 1
INFINITE_DURATION = {"sec": 9223372036, "nsec": 854775807}   # RMW_DURATION_INFINITE


@dataclass(frozen=True)
class QosOffer:
    """The QoS a publisher offered (what a replay offers again)."""
    reliability: str = "reliable"       # reliable | best_effort
    durability: str = "volatile"        # volatile | transient_local
    history: str = "keep_last"
    depth: int = 10


def qos_profiles_yaml(offers: Iterable[QosOffer]) -> str:
    """`offered_qos_profiles` as rosbag2 writes it (metadata version 8: integer enums)."""
    profiles = [{"history": HISTORY[o.history], "depth": int(o.depth), "reliability": RELIABILITY[o.reliability],
                 "durability": DURABILITY[o.durability], "deadline": dict(INFINITE_DURATION),
                 "lifespan": dict(INFINITE_DURATION), "liveliness": LIVELINESS_AUTOMATIC,
                 "liveliness_lease_duration": dict(INFINITE_DURATION), "avoid_ros_namespace_conventions": False}
                for o in offers]
    return yaml.safe_dump(profiles, sort_keys=False) if profiles else ""


def parse_qos_profiles(text: str) -> list[QosOffer]:
    """`offered_qos_profiles` (integer enums up to rosbag2 metadata version 8, names from 9)
    -> QosOffers; unreadable entries are skipped (a replay then offers the default)."""
    try:
        profiles = yaml.safe_load(text or "") or []
    except yaml.YAMLError:
        return []
    offers = []
    for profile in profiles if isinstance(profiles, list) else []:
        if not isinstance(profile, dict):
            continue

        def name_of(key, table, default):
            value = profile.get(key, default)
            if isinstance(value, int):
                return next((n for n, v in table.items() if v == value), default)
            return str(value).lower() if str(value).lower() in table else default

        offers.append(QosOffer(name_of("reliability", RELIABILITY, "reliable"),
                               name_of("durability", DURABILITY, "volatile"),
                               name_of("history", HISTORY, "keep_last"),
                               int(profile.get("depth") or 10)))
    return offers


# ---------------------------------------------------------------- writing
@dataclass
class _Channel:
    channel_id: int
    type_name: str
    qos_yaml: str
    count: int = 0


class SessionWriter:
    """Write CDR messages to FILE.mcap (through FILE.mcap.part, renamed when finished).

        with SessionWriter("session.mcap", metadata={"robot_hand": "leap"}) as writer:
            writer.add_topic("/camera/depth", IMAGE_TYPE, [QosOffer("best_effort")])
            writer.write("/camera/depth", cdr_bytes, log_time_ns)

    Leaving the `with` block finishes the file whatever ended the recording (Ctrl-C, an
    error), as long as something was recorded; an empty recording leaves no file.
    """

    def __init__(self, path, compression: str = "zstd", chunk_size: int = 4 * 1024 * 1024,
                 metadata: dict | None = None):
        from mcap.writer import CompressionType, Writer

        self.path = Path(path)
        if self.path.suffix != ".mcap":
            raise SessionFileError(f"{self.path}: a session file is written as .mcap")
        compressions = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}
        if compression not in compressions:
            raise SessionFileError(f"{self.path}: unknown compression {compression!r}; one of {sorted(compressions)}")
        self.part_path = self.path.with_name(self.path.name + PART_SUFFIX)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
        self.compression = compression
        self._stream = open(self.part_path, "wb")
        self._writer = Writer(self._stream, chunk_size=chunk_size, compression=compressions[compression])
        self._writer.start(profile=MCAP_PROFILE, library=f"hand_pose_ros (mcap {_mcap_version()})")
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, _Channel] = {}
        self.messages = 0
        self.first_log_ns: int | None = None
        self.last_log_ns: int | None = None
        self.closed = False

    # -------------------------------------------------------- topics and messages
    def add_topic(self, topic: str, type_name: str, offers: Iterable[QosOffer] = ()) -> None:
        if topic in self._channels:
            return
        package, name = split_type_name(type_name)
        type_name = f"{package}/msg/{name}"
        if type_name not in self._schemas:
            self._schemas[type_name] = self._writer.register_schema(
                type_name, SCHEMA_ENCODING, message_definition(type_name).encode())
        qos_yaml = qos_profiles_yaml(offers)
        channel_id = self._writer.register_channel(
            topic, MESSAGE_ENCODING, self._schemas[type_name],
            {"offered_qos_profiles": qos_yaml, "topic_type_hash": type_description_hash(type_name)})
        self._channels[topic] = _Channel(channel_id, type_name, qos_yaml)

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        channel = self._channels.get(topic)
        if channel is None:
            raise SessionFileError(f"{self.part_path}: topic {topic} was not added before its first message")
        log_time_ns = int(log_time_ns)
        self._writer.add_message(channel.channel_id, log_time_ns, bytes(data),
                                 int(log_time_ns if publish_time_ns is None else publish_time_ns),
                                 sequence=channel.count)
        channel.count += 1
        self.messages += 1
        self.first_log_ns = log_time_ns if self.first_log_ns is None else min(self.first_log_ns, log_time_ns)
        self.last_log_ns = log_time_ns if self.last_log_ns is None else max(self.last_log_ns, log_time_ns)

    def count(self, topic: str) -> int:
        channel = self._channels.get(topic)
        return channel.count if channel else 0

    @property
    def bytes_written(self) -> int:
        """Bytes in the file so far (the open chunk is not counted until it is flushed)."""
        return self._stream.tell() if not self._stream.closed else self.path.stat().st_size

    # -------------------------------------------------------- finishing
    def rosbag2_metadata_yaml(self) -> str:
        start = self.first_log_ns or 0
        duration = (self.last_log_ns or start) - start
        info = {
            "version": ROSBAG2_METADATA_VERSION,
            "storage_identifier": "mcap",
            "duration": {"nanoseconds": duration},
            "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": self.messages,
            "topics_with_message_count": [
                {"topic_metadata": {"name": topic, "type": c.type_name, "serialization_format": MESSAGE_ENCODING,
                                    "offered_qos_profiles": c.qos_yaml,
                                    "type_description_hash": type_description_hash(c.type_name)},
                 "message_count": c.count}
                for topic, c in self._channels.items()],
            "compression_format": "",
            "compression_mode": "",
            "relative_file_paths": [self.path.name],
            "files": [{"path": self.path.name, "starting_time": {"nanoseconds_since_epoch": start},
                       "duration": {"nanoseconds": duration}, "message_count": self.messages}],
            "custom_data": dict(self.metadata),
            "ros_distro": os.environ.get("ROS_DISTRO", ""),
        }
        return yaml.safe_dump(info, sort_keys=False)

    def close(self) -> Path:
        """Finish the file (metadata, summary, footer), flush it to disk and give it its final
        name. With nothing recorded, remove it and raise SessionFileError."""
        if self.closed:
            return self.path
        self.closed = True
        if self.messages == 0:
            self._discard()
            raise SessionFileError(f"{self.path}: nothing was recorded (no message on "
                                   f"{', '.join(self._channels) or 'any topic'}); no file written")
        self._writer.add_metadata(ROSBAG2_METADATA, {"serialized_metadata": self.rosbag2_metadata_yaml(),
                                                     "ROS_DISTRO": os.environ.get("ROS_DISTRO", "")})
        self._writer.add_metadata(SESSION_METADATA, self.metadata)
        self._writer.finish()
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self._stream.close()
        os.replace(self.part_path, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the file being written (nothing with the final name appears)."""
        if not self.closed:
            self.closed = True
            self._discard()

    def _discard(self) -> None:
        if not self._stream.closed:
            self._stream.close()
        self.part_path.unlink(missing_ok=True)

    def __enter__(self) -> "SessionWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.closed:
            return
        if self.messages:
            self.close()   # Ctrl-C or an error mid-way: what was recorded is a complete file
        else:
            self.abort()


def _mcap_version() -> str:
    try:
        from importlib.metadata import version

        return version("mcap")
    except Exception:  # metadata missing in odd installs: the version is only informative
        return "unknown"


# ---------------------------------------------------------------- reading
@dataclass
class TopicInfo:
    topic: str
    type_name: str
    message_encoding: str
    schema_encoding: str
    count: int
    qos: list[QosOffer] = field(default_factory=list)


@dataclass
class RawMessage:
    topic: str
    log_time_ns: int
    publish_time_ns: int
    data: bytes


class SessionFile:
    """An open recording (MCAP, or rosbag2 SQLite .db3): its topics, metadata and messages.

        with SessionFile("session.mcap") as session:
            session.topics            # {topic: TopicInfo}
            for raw, msg in session.decoded([topic]): ...
    """

    def __init__(self, path):
        self.path = Path(path)
        if self.path.is_dir():
            raise SessionFileError(f"{self.path} is a folder; give the .mcap (or .db3) file inside it")
        if not self.path.is_file():
            partial = self.path.with_name(self.path.name + PART_SUFFIX)
            hint = (f" ({partial.name} exists: a recording that did not finish; `mcap recover` can salvage it)"
                    if partial.is_file() else "")
            raise SessionFileError(f"session file {self.path} does not exist{hint}")
        with open(self.path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
        if head.startswith(MCAP_MAGIC):
            self._backend = _McapBackend(self.path)
        elif head.startswith(SQLITE_MAGIC):
            self._backend = _Db3Backend(self.path)
        else:
            raise SessionFileError(f"{self.path} is not an MCAP file (nor a rosbag2 .db3): it starts with "
                                   f"{head[:8]!r}, not the MCAP magic")
        self.topics: dict[str, TopicInfo] = self._backend.topics
        self.metadata: dict[str, dict[str, str]] = self._backend.metadata
        self.start_ns, self.end_ns = self._backend.start_ns, self._backend.end_ns
        self._decoders: dict[str, object] = {}

    @property
    def duration_s(self) -> float:
        return max(0.0, (self.end_ns - self.start_ns) * 1e-9)

    @property
    def session_metadata(self) -> dict[str, str]:
        return dict(self.metadata.get(SESSION_METADATA, {}))

    def describe_topics(self) -> str:
        return ", ".join(f"{t} ({i.type_name}, {i.count})" for t, i in sorted(self.topics.items())) or "none"

    def require(self, topic: str, type_name: str | None = None) -> TopicInfo:
        """The topic's info; SessionFileError naming the file and topic when it is missing,
        of another type, or not ROS 2 CDR."""
        info = self.topics.get(topic)
        if info is None:
            raise SessionFileError(f"{self.path}: topic {topic} is not in the file (topics: {self.describe_topics()})")
        if type_name is not None and info.type_name != type_name:
            raise SessionFileError(f"{self.path}: topic {topic} has type {info.type_name}, expected {type_name}")
        if info.message_encoding != MESSAGE_ENCODING:
            raise SessionFileError(f"{self.path}: topic {topic} has message encoding {info.message_encoding!r}; "
                                   f"only ROS 2 CDR ({MESSAGE_ENCODING!r}) is supported")
        if info.schema_encoding not in (SCHEMA_ENCODING, ""):
            raise SessionFileError(f"{self.path}: topic {topic} has schema encoding {info.schema_encoding!r}; "
                                   f"only {SCHEMA_ENCODING!r} message definitions are supported")
        return info

    def find_topic(self, type_name: str, preferred: str | None, role: str) -> str:
        """The topic to use for `role`: `preferred` when the file has it, else the file's only
        topic of that type. SessionFileError naming the file when there is none or a choice."""
        if preferred and preferred in self.topics:
            self.require(preferred, type_name)
            return preferred
        candidates = sorted(t for t, i in self.topics.items() if i.type_name == type_name)
        if len(candidates) == 1:
            self.require(candidates[0], type_name)
            return candidates[0]
        wanted = f" (looked for {preferred})" if preferred else ""
        if not candidates:
            raise SessionFileError(f"{self.path}: no {type_name} topic for the {role}{wanted}; "
                                   f"topics: {self.describe_topics()}")
        raise SessionFileError(f"{self.path}: several {type_name} topics could be the {role}{wanted}: "
                               f"{candidates}; name one")

    def raw_messages(self, topics: Iterable[str] | None = None) -> Iterator[RawMessage]:
        """Messages in log-time order (all topics, or these)."""
        wanted = None if topics is None else list(topics)
        for topic in wanted or []:
            self.require(topic)
        try:
            yield from self._backend.messages(wanted)
        except SessionFileError:
            raise
        except Exception as e:  # the container library's errors: corrupt or truncated data
            raise SessionFileError(f"{self.path}: cannot read the messages ({type(e).__name__}: {e}); "
                                   "the file is corrupt or truncated") from e

    def decode(self, raw: RawMessage):
        """A message's CDR bytes -> a message object with the fields of its definition."""
        decoder = self._decoders.get(raw.topic)
        if decoder is None:
            decoder = self._decoders[raw.topic] = self._backend.decoder(self.require(raw.topic))
        try:
            return decoder(raw.data)
        except Exception as e:
            raise SessionFileError(f"{self.path}: a message on topic {raw.topic} (log time {raw.log_time_ns} ns) "
                                   f"does not decode as {self.topics[raw.topic].type_name} "
                                   f"({type(e).__name__}: {e})") from e

    def decoded(self, topics: Iterable[str] | None = None) -> Iterator[tuple[RawMessage, object]]:
        for raw in self.raw_messages(topics):
            yield raw, self.decode(raw)

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> "SessionFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _ros2_decoder(path: Path, info: TopicInfo, definition: str):
    from mcap.records import Schema
    from mcap_ros2.decoder import DecoderFactory

    try:
        decoder = DecoderFactory().decoder_for(MESSAGE_ENCODING, Schema(id=1, name=info.type_name,
                                                                         encoding=SCHEMA_ENCODING,
                                                                         data=definition.encode()))
    except Exception as e:
        raise SessionFileError(f"{path}: the message definition of topic {info.topic} ({info.type_name}) "
                               f"does not parse ({type(e).__name__}: {e})") from e
    if decoder is None:
        raise SessionFileError(f"{path}: no decoder for topic {info.topic} ({info.type_name})")
    return decoder


class _McapBackend:
    def __init__(self, path: Path):
        from mcap.exceptions import McapError
        from mcap.reader import make_reader

        self.path = path
        self._file = open(path, "rb")
        try:
            self._reader = make_reader(self._file)
            self.header = self._reader.get_header()
            summary = self._reader.get_summary()
        except (McapError, EOFError, OSError, ValueError, KeyError) as e:
            self._file.close()
            size = path.stat().st_size
            raise SessionFileError(f"{path} is truncated or corrupt ({type(e).__name__}: {e}; {size} bytes, no valid "
                                   "MCAP footer or summary): the recording did not finish; `mcap recover` may "
                                   "salvage its messages") from e
        if summary is None:
            self._file.close()
            raise SessionFileError(f"{path} has no MCAP summary (written without an index, or cut off): "
                                   "cannot read it as a session; `mcap recover` rewrites it with one")
        self._summary = summary
        counts = summary.statistics.channel_message_counts if summary.statistics else {}
        self.topics = {}
        for channel_id, channel in summary.channels.items():
            schema = summary.schemas.get(channel.schema_id)
            self.topics[channel.topic] = TopicInfo(
                channel.topic, _normal_type(schema.name) if schema else "", channel.message_encoding,
                schema.encoding if schema else "", int(counts.get(channel_id, 0)),
                parse_qos_profiles(channel.metadata.get("offered_qos_profiles", "")))
        stats = summary.statistics
        self.start_ns = int(stats.message_start_time) if stats else 0
        self.end_ns = int(stats.message_end_time) if stats else 0
        self.metadata = {}
        try:
            for record in self._reader.iter_metadata():
                self.metadata[record.name] = dict(record.metadata)
        except (McapError, EOFError, ValueError) as e:
            raise SessionFileError(f"{path}: its metadata records cannot be read ({e}): the file is corrupt") from e
        self._schemas = {s.name: s for s in summary.schemas.values()}

    def messages(self, topics):
        for schema, channel, message in self._reader.iter_messages(topics=topics, log_time_order=True):
            yield RawMessage(channel.topic, int(message.log_time), int(message.publish_time), message.data)

    def decoder(self, info: TopicInfo):
        schema = next((s for s in self._schemas.values() if _normal_type(s.name) == info.type_name), None)
        definition = schema.data.decode() if schema is not None and schema.data else message_definition(info.type_name)
        return _ros2_decoder(self.path, info, definition)

    def close(self) -> None:
        self._file.close()


class _Db3Backend:
    """rosbag2's SQLite storage: tables `topics` (id, name, type, serialization_format,
    offered_qos_profiles) and `messages` (id, topic_id, timestamp, data)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            rows = self._db.execute("SELECT id, name, type, serialization_format, offered_qos_profiles "
                                    "FROM topics").fetchall()
            counts = dict(self._db.execute("SELECT topic_id, COUNT(*) FROM messages GROUP BY topic_id").fetchall())
            start, end = self._db.execute("SELECT MIN(timestamp), MAX(timestamp) FROM messages").fetchone()
        except sqlite3.Error as e:
            raise SessionFileError(f"{path} is an SQLite file but not a readable rosbag2 bag ({e})") from e
        self._ids = {name: topic_id for topic_id, name, *_ in rows}
        self._names = {topic_id: name for name, topic_id in self._ids.items()}
        self.topics = {name: TopicInfo(name, _normal_type(type_name), fmt, SCHEMA_ENCODING, int(counts.get(tid, 0)),
                                       parse_qos_profiles(qos or ""))
                       for tid, name, type_name, fmt, qos in rows}
        self.start_ns, self.end_ns = int(start or 0), int(end or 0)
        self.metadata = {}

    def messages(self, topics):
        query = "SELECT topic_id, timestamp, data FROM messages"
        args: list = []
        if topics is not None:
            query += f" WHERE topic_id IN ({', '.join('?' * len(topics))})"
            args = [self._ids[t] for t in topics]
        for topic_id, stamp, data in self._db.execute(query + " ORDER BY timestamp, id", args):
            yield RawMessage(self._names[topic_id], int(stamp), int(stamp), bytes(data))

    def decoder(self, info: TopicInfo):
        return _ros2_decoder(self.path, info, message_definition(info.type_name))

    def close(self) -> None:
        self._db.close()


def _normal_type(name: str) -> str:
    """'sensor_msgs/Image' (ROS 1 style, some writers) -> 'sensor_msgs/msg/Image'."""
    try:
        package, type_name = split_type_name(name)
    except SessionFileError:
        return name
    return f"{package}/msg/{type_name}"


# ---------------------------------------------------------------- frames
@dataclass
class SessionFrame:
    """One recorded depth frame with what belongs to it (matched by header stamp)."""
    index: int
    stamp_ns: int
    log_time_ns: int
    frame_id: str
    depth_mm: np.ndarray                 # [H, W] float32 mm, 0 = no reading
    intrinsics: object                   # camera.Intrinsics
    truth_mm: np.ndarray | None = None   # [21, 3] canonical order, camera frame
    keypoints_mm: np.ndarray | None = None  # the keypoints the live pose node published for it
    joint_names: list[str] | None = None    # the robot joint command that answered it
    joint_positions: np.ndarray | None = None


@dataclass
class SessionTopics:
    """Which topic of a file plays which part."""
    depth: str
    camera_info: str
    ground_truth: str | None
    keypoints: str | None
    joint_commands: str | None

    def present(self) -> list[str]:
        return [t for t in (self.depth, self.camera_info, self.ground_truth, self.keypoints, self.joint_commands) if t]


def resolve_topics(session: SessionFile, depth_topic: str | None = None,
                   camera_info_topic: str | None = None) -> SessionTopics:
    """The depth and CameraInfo topics (required: SessionFileError naming the file when
    missing) and the optional ground truth, keypoints and joint commands."""
    defaults = list(session_topics())

    def optional(topic: str, type_name: str) -> str | None:
        if topic not in session.topics:
            return None
        session.require(topic, type_name)
        return topic

    return SessionTopics(
        depth=session.find_topic(IMAGE_TYPE, depth_topic or defaults[0], "depth image"),
        camera_info=session.find_topic(CAMERA_INFO_TYPE, camera_info_topic or defaults[1], "camera info"),
        ground_truth=optional(launch_plan.GROUND_TRUTH_TOPIC, POSE_ARRAY_TYPE),
        keypoints=optional(launch_plan.JOINTS_TOPIC, POSE_ARRAY_TYPE),
        joint_commands=optional(launch_plan.RETARGET_TOPIC, JOINT_STATE_TYPE))


def _stamp_ns(msg) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _positions_mm(msg) -> np.ndarray:
    return np.array([[p.position.x, p.position.y, p.position.z] for p in msg.poses],
                    dtype=np.float64).reshape(-1, 3) * 1000.0


def read_frames(session: SessionFile, topics: SessionTopics | None = None, depth_scale_mm: float | None = None,
                rectified: bool = True, stride: int = 1, limit: int | None = None,
                progress=None) -> Iterator[SessionFrame]:
    """The file's depth frames in log-time order, each with its camera intrinsics and, where
    recorded, the ground truth, the live keypoints and the joint command of the same stamp.

    Two passes: the small messages first (by stamp), then the images one at a time, so a long
    recording never sits in memory. stride: every n-th frame; limit: at most that many.
    progress(done, total): called per depth frame read.
    """
    from ..ros.conversions import camera_info_to_intrinsics   # message packages only, no rclpy

    topics = topics or resolve_topics(session)
    small = [t for t in (topics.camera_info, topics.ground_truth, topics.keypoints, topics.joint_commands) if t]
    cameras: list[tuple[int, object]] = []     # (stamp, intrinsics) in log order
    by_stamp: dict[str, dict[int, object]] = {t: {} for t in small}
    camera_problem = None
    for raw, msg in session.decoded(small):
        stamp = _stamp_ns(msg)
        if raw.topic == topics.camera_info:
            try:
                cameras.append((stamp, camera_info_to_intrinsics(msg, rectified=rectified)))
            except ValueError as e:
                camera_problem = f"{session.path}: CameraInfo on {raw.topic} is unusable: {e}"
        elif raw.topic == topics.joint_commands:
            by_stamp[raw.topic].setdefault(stamp, (list(msg.name), np.asarray(msg.position, dtype=np.float64)))
        else:
            by_stamp[raw.topic].setdefault(stamp, _positions_mm(msg))
    if not cameras:
        raise SessionFileError(camera_problem or f"{session.path}: no CameraInfo message on {topics.camera_info}: "
                               "cannot turn the depth frames into 3D")
    camera_stamps = np.array([s for s, _ in cameras], dtype=np.int64)
    commands = by_stamp.get(topics.joint_commands, {}) if topics.joint_commands else {}
    command_stamps = np.array(sorted(commands), dtype=np.int64)

    from .depth import FLOAT_ENCODINGS, image_msg_to_depth

    total = session.topics[topics.depth].count
    emitted = 0
    for index, (raw, msg) in enumerate(session.decoded([topics.depth])):
        if progress is not None:
            progress(index + 1, total)
        if index % max(1, stride):
            continue
        stamp = _stamp_ns(msg)
        try:
            depth = image_msg_to_depth(msg.data, msg.width, msg.height, msg.step, msg.encoding, bool(msg.is_bigendian),
                                       depth_scale_mm=None if msg.encoding in FLOAT_ENCODINGS else depth_scale_mm)
        except ValueError as e:
            raise SessionFileError(f"{session.path}: depth image on {topics.depth} (stamp {stamp} ns): {e}") from e
        # The CameraInfo of the same stamp, else the nearest one (intrinsics rarely change).
        cam = cameras[int(np.argmin(np.abs(camera_stamps - stamp)))][1]
        # The robot's command at this frame: the newest stamped at or before it (the retarget
        # node may bump a stamp by a few ns to keep them increasing, hence the slack).
        k = int(np.searchsorted(command_stamps, stamp + COMMAND_SLACK_NS, side="right")) - 1
        joint = commands[int(command_stamps[k])] if k >= 0 else None
        yield SessionFrame(
            index=index, stamp_ns=stamp, log_time_ns=raw.log_time_ns, frame_id=str(msg.header.frame_id),
            depth_mm=depth, intrinsics=cam,
            truth_mm=by_stamp[topics.ground_truth].get(stamp) if topics.ground_truth else None,
            keypoints_mm=by_stamp[topics.keypoints].get(stamp) if topics.keypoints else None,
            joint_names=joint[0] if joint else None, joint_positions=joint[1] if joint else None)
        emitted += 1
        if limit is not None and emitted >= limit:
            return


def describe(path) -> dict:
    """A JSON-friendly summary of a session file (topics, counts, duration, metadata)."""
    with SessionFile(path) as session:
        return {"file": str(session.path), "duration_s": round(session.duration_s, 3),
                "topics": {t: {"type": i.type_name, "count": i.count} for t, i in sorted(session.topics.items())},
                "metadata": session.session_metadata}


"""What `hand-pose record` and `hand-pose replay` share on the ROS side: message classes
from type names, and QoS between rclpy profiles and the session file's QosOffer.
rclpy is imported inside the functions (the session file core has no ROS at all)."""
from __future__ import annotations

import importlib

from ..data.session_file import QosOffer, SessionFileError, split_type_name


def message_class(type_name: str):
    """'sensor_msgs/msg/Image' -> the sensor_msgs.msg.Image class (SessionFileError when the
    message package is not installed)."""
    package, name = split_type_name(type_name)
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as e:
        raise SessionFileError(f"message type {type_name} is not installed here ({e})") from e


def offer_of(profile) -> QosOffer:
    """An rclpy QoSProfile (a publisher's, from the graph) -> QosOffer."""
    def name(policy, default: str) -> str:
        text = getattr(policy, "name", str(policy)).lower()
        return text if text in ("reliable", "best_effort", "volatile", "transient_local",
                                "keep_last", "keep_all") else default

    return QosOffer(reliability=name(profile.reliability, "reliable"),
                    durability=name(profile.durability, "volatile"),
                    history=name(profile.history, "keep_last"), depth=int(profile.depth or 10))


def subscription_profile(offers: list[QosOffer], depth: int):
    """What to request so that every offering publisher matches (rosbag2's rule): reliable
    only if all offer reliable, transient-local only if all offer it."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliable = bool(offers) and all(o.reliability == "reliable" for o in offers)
    latched = bool(offers) and all(o.durability == "transient_local" for o in offers)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def publisher_profile(offers: list[QosOffer], depth: int = 10):
    """What a replay offers: what the recorded publishers offered (reliable and volatile
    when unknown; reliable publishers also serve best-effort subscribers)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    best_effort = bool(offers) and all(o.reliability == "best_effort" for o in offers)
    latched = bool(offers) and all(o.durability == "transient_local" for o in offers)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def quiet_publisher_events():
    """Publisher event callbacks that ignore 'incompatible QoS': a replay publisher offers
    the recorded QoS, and latched twins of subscriptions (the pose node's CameraInfo) are
    expected not to match it."""
    try:
        from rclpy.event_handler import PublisherEventCallbacks
    except ImportError:  # Humble
        from rclpy.qos_event import PublisherEventCallbacks

    return PublisherEventCallbacks(incompatible_qos=lambda event: None)

"""What every node of this package shares: QoS profiles, the spin / shutdown main, a
throttled logger and the /tf sender. rclpy is imported inside the functions, so the pure
parts (ThrottledLog, InterruptLatch) work and test without it.
"""
from __future__ import annotations

import math
import signal
import time

from .params import StartupError

WARN_EVERY_S = 5.0  # throttle for repeated warnings of one kind


# ---------------------------------------------------------------- QoS
def qos_profile(kind: str, depth: int = 1, latched: bool = False):
    """KEEP_LAST `depth`. kind 'sensor_data': best effort (what camera drivers offer; it
    also matches reliable publishers); 'reliable': reliable. latched: reliable and
    transient-local, which hears a latched publisher's last message after joining late
    (it matches only transient-local publishers)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    if kind not in ("sensor_data", "reliable"):
        raise ValueError(f"QoS kind {kind!r} is not 'sensor_data' or 'reliable'")
    reliable = latched or kind == "reliable"
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def quiet_incompatible_qos():
    """Subscription event callbacks that ignore 'incompatible QoS' (for a subscription that
    is expected to match only some publishers, e.g. the latched twin of a volatile one)."""
    try:
        from rclpy.event_handler import SubscriptionEventCallbacks
    except ImportError:  # Humble
        from rclpy.qos_event import SubscriptionEventCallbacks

    return SubscriptionEventCallbacks(incompatible_qos=lambda event: None)


# ---------------------------------------------------------------- logging
class ThrottledLog:
    """At most one message per key every `every_s` seconds (monotonic clock); every_s=inf
    logs a key once. rclpy binds one call site to one severity, hence one call per level."""

    def __init__(self, logger, every_s: float = WARN_EVERY_S, clock=time.monotonic):
        self.logger = logger
        self.every_s = every_s
        self._clock = clock
        self._last: dict[str, float] = {}

    def __call__(self, key: str, text: str, level: str = "warn", every_s: float | None = None) -> bool:
        """Log `text` unless `key` was logged less than every_s ago. True if it was logged."""
        every_s = self.every_s if every_s is None else every_s
        now = self._clock()
        last = self._last.get(key)
        if last is not None and (math.isinf(every_s) or now - last < every_s):
            return False
        self._last[key] = now
        if level == "error":
            self.logger.error(text)
        elif level == "info":
            self.logger.info(text)
        else:
            self.logger.warning(text)
        return True

    def once(self, key: str, text: str, level: str = "warn") -> bool:
        return self(key, text, level, every_s=math.inf)


# ---------------------------------------------------------------- /tf
class TfSender:
    """Sends lists of TransformStamped on /tf: through tf2_ros's TransformBroadcaster when
    installed, else a raw tf2_msgs/TFMessage publisher (what the broadcaster does: same
    topic, type and QoS depth)."""

    def __init__(self, node):
        from tf2_msgs.msg import TFMessage

        self._message = TFMessage
        try:
            from tf2_ros import TransformBroadcaster
        except ImportError:
            self._broadcaster = None
            self._publisher = node.create_publisher(TFMessage, "/tf", 100)
        else:
            self._broadcaster = TransformBroadcaster(node)
            self._publisher = getattr(self._broadcaster, "pub_tf", None)

    def wanted(self) -> bool:
        """Whether anything listens on /tf (always True when that cannot be asked)."""
        return self._publisher is None or self._publisher.get_subscription_count() > 0

    def send(self, transforms) -> None:
        if self._broadcaster is not None:
            self._broadcaster.sendTransform(transforms)
        else:
            self._publisher.publish(self._message(transforms=transforms))


# ---------------------------------------------------------------- main
class InterruptLatch:
    """SIGINT handler: the first SIGINT raises KeyboardInterrupt (stops start-up or the
    spin), every later one is ignored. `ros2 launch` plus a terminal Ctrl-C (or a
    process-group SIGINT) deliver SIGINT twice; the second must not interrupt the clean-up
    (worker join, destroy_node) with a traceback. rclpy's own handler runs first and chains
    to this one."""

    def __init__(self):
        self.interrupted = False

    def __call__(self, signum, frame):
        if not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt


def spin_node(make, name: str, argv=None) -> int:
    """rclpy.init, build the node wrapper with `make()` (an object with `.node` and
    `.stop()`), spin until Ctrl-C / shutdown, clean up. Returns the process exit code: 1 when
    start-up fails (the reason logged), 0 otherwise, including a Ctrl-C during start-up."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    latch = InterruptLatch()
    signal.signal(signal.SIGINT, latch)  # before rclpy.init, so rclpy's handler chains to it
    rclpy.init(args=argv)
    wrapper = None
    try:
        try:
            wrapper = make()
        except StartupError as e:
            rclpy.logging.get_logger(name).error(f"start-up failed: {e}")
            return 1
        except KeyboardInterrupt:
            return 0
        executor = SingleThreadedExecutor()
        executor.add_node(wrapper.node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        return 0
    finally:
        latch.interrupted = True  # from here on every SIGINT is ignored
        if wrapper is not None:
            wrapper.stop()
            wrapper.node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        # Python puts its own handlers back to the default while the interpreter exits,
        # which a late SIGINT would turn into death by signal; an ignored signal stays ignored.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

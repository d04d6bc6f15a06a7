"""Shared pytest fixtures.

ROS isolation: every test session picks its own ROS_DOMAIN_ID (a free one, held with a
file lock for the session, so parallel pytest runs on one machine never see each other's
nodes) and keeps DDS discovery on this machine. This happens at import time, before any
test imports rclpy, and the subprocesses the tests start inherit it.

Fixtures for DDS tests (mark them @pytest.mark.ros):
  ros          a RosHarness: an rclpy node spinning in a background thread, with helpers to
               publish, collect messages, wait for a message / subscribers / any condition.
  start_node   start one of this package's console-script nodes in a subprocess with
               parameters; stopped (SIGINT, then kill) at the end of the test; `.log()`
               returns its output for assertion messages.
  ros_env      the environment the subprocesses get.
  random_onnx_model   a randomly initialised full-size SRNet as ONNX (once per session).
"""
from __future__ import annotations

import fcntl
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

# `make test` sets this: there, every package the tests `importorskip` must be importable, so
# a broken install fails the run instead of silently skipping whole test files.
REQUIRED_IN_DEV_ENV = ("torch", "onnx", "onnxruntime", "rclpy", "tf2_msgs", "pinocchio",
                       "dex_retargeting", "scipy", "matplotlib")


def pytest_sessionstart(session):
    if os.environ.get("HAND_POSE_REQUIRE_FULL_ENV") != "1":
        return
    import importlib.util

    missing = [name for name in REQUIRED_IN_DEV_ENV if importlib.util.find_spec(name) is None]
    if missing:
        raise pytest.UsageError(f"the dev environment lacks {missing}: re-run `make setup` "
                                "(HAND_POSE_REQUIRE_FULL_ENV=1 forbids skipping their tests)")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
VENV_BIN = Path(sys.executable).parent

# Domain IDs 1..100 are safe for Fast DDS port arithmetic; 0 (the default) is left to humans.
_DOMAIN_RANGE = range(1, 101)
_domain_lock_file = None


def _claim_domain_id() -> int:
    """Lock /tmp/hand_pose_ros_domain_<id>.lock for the first free id, starting at a
    pid-dependent offset; the lock lives as long as this process."""
    global _domain_lock_file
    start = os.getpid() % len(_DOMAIN_RANGE)
    for i in range(len(_DOMAIN_RANGE)):
        domain = _DOMAIN_RANGE[(start + i) % len(_DOMAIN_RANGE)]
        f = open(Path(tempfile.gettempdir()) / f"hand_pose_ros_domain_{domain}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _domain_lock_file = f  # keep it open: closing releases the lock
        return domain
    raise RuntimeError("every ROS_DOMAIN_ID in 1..100 is taken by other test sessions")


os.environ["ROS_DOMAIN_ID"] = str(_claim_domain_id())
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("PYTHONUNBUFFERED", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def ros_env() -> dict:
    """Environment for node subprocesses (the session's domain, localhost discovery)."""
    return dict(os.environ)


# ---------------------------------------------------------------- in-process harness
class RosHarness:
    """An rclpy node in its own context, spun by a background thread."""

    def __init__(self, name: str = "test_harness"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:
            pass

    def collect(self, msg_type, topic: str, qos=10) -> list:
        """Subscribe and append every message to the returned list (thread-safe appends)."""
        received: list = []
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def publisher(self, msg_type, topic: str, qos=10):
        return self.node.create_publisher(msg_type, topic, qos)

    def now_msg(self):
        return self.node.get_clock().now().to_msg()

    @staticmethod
    def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition") -> None:
        """Poll `predicate()` until true; AssertionError naming `what` after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def wait_for_message(self, msg_type, topic: str, timeout: float = 30.0, qos=10, predicate=None):
        """The first message on `topic` (satisfying `predicate`, if given) within `timeout` s."""
        received = self.collect(msg_type, topic, qos)
        match = (lambda: next((m for m in list(received) if predicate is None or predicate(m)), None))
        self.wait_for(lambda: match() is not None, timeout, what=f"a message on {topic}")
        return match()

    def wait_for_subscribers(self, publisher, count: int = 1, timeout: float = 30.0) -> None:
        self.wait_for(lambda: publisher.get_subscription_count() >= count, timeout,
                      what=f"{count} subscriber(s) on {publisher.topic_name}")

    def close(self):
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        if self.context.ok():
            self.context.shutdown()
        self._thread.join(timeout=3.0)


@pytest.fixture
def ros():
    pytest.importorskip("rclpy")
    harness = RosHarness(f"test_harness_{os.getpid()}")
    yield harness
    harness.close()


# ---------------------------------------------------------------- node subprocesses
class NodeProcess:
    def __init__(self, cmd: list[str], env: dict, log_path: Path):
        self.cmd = cmd
        self.log_path = log_path
        self._log_file = open(log_path, "w")
        self.process = subprocess.Popen(cmd, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)

    def log(self) -> str:
        self._log_file.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT (clean ROS shutdown), then SIGKILL. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log_file.close()
        return self.process.returncode

    def wait_exit(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)


def _format_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return str(value)


def node_command(executable: str, params: dict | None = None, params_files=(), name: str | None = None) -> list[str]:
    """Command line of one of this package's console scripts with ROS parameters."""
    exe = VENV_BIN / executable
    cmd = [str(exe) if exe.exists() else executable, "--ros-args"]
    if name:
        cmd += ["-r", f"__node:={name}"]
    for f in params_files:
        cmd += ["--params-file", str(f)]
    for key, value in (params or {}).items():
        cmd += ["-p", f"{key}:={_format_value(value)}"]
    return cmd


@pytest.fixture
def start_node(ros_env, tmp_path):
    """start_node('pose_node', params={...}, params_files=[...]) -> NodeProcess."""
    started: list[NodeProcess] = []

    def start(executable: str, params: dict | None = None, params_files=(), name: str | None = None,
              env: dict | None = None) -> NodeProcess:
        cmd = node_command(executable, params, params_files, name)
        proc = NodeProcess(cmd, {**ros_env, **(env or {})}, tmp_path / f"{executable}_{len(started)}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


# ---------------------------------------------------------------- models
@pytest.fixture(scope="session")
def random_onnx_model(tmp_path_factory) -> Path:
    """A randomly initialised SRNet of the shipped size exported to ONNX (once per session:
    the export takes ~15 s). The real file format, graph and CPU cost; its keypoints are
    meaningless, so use it for plumbing and timing behaviour, not accuracy. Its handedness
    head has a known answer: P(left) = RANDOM_MODEL_LEFT_PROBABILITY for every crop."""
    torch = pytest.importorskip("torch")
    from hand_pose_ros.inference.export import export_onnx
    from hand_pose_ros.model import SRNet, SRNetConfig

    torch.manual_seed(0)
    config = SRNetConfig()
    model = SRNet(config).eval()
    with torch.no_grad():  # the output layer starts at zero weights: only its bias speaks
        model.handedness.classifier.bias.fill_(RANDOM_MODEL_LEFT_LOGIT)
    path = tmp_path_factory.mktemp("models") / "random_srnet.onnx"
    return export_onnx(model, config, path)


RANDOM_MODEL_LEFT_LOGIT = 3.0
RANDOM_MODEL_LEFT_PROBABILITY = 1.0 / (1.0 + math.exp(-RANDOM_MODEL_LEFT_LOGIT))  # 0.9526


"""Nodes stop cleanly on a repeated SIGINT (ros2 launch forwards Ctrl-C, and the terminal
sends it to the process group too), and the shared ROS helpers in ros/common.py."""
import signal
import time
from pathlib import Path

import pytest

from hand_pose_ros.ros.common import InterruptLatch, ThrottledLog

REPO = Path(__file__).resolve().parents[1]
SHIPPED_MODEL = REPO / "models" / "srnet_synthetic.onnx"


class RecordingLogger:
    def __init__(self):
        self.lines = []

    def warning(self, text):
        self.lines.append(("warn", text))

    def error(self, text):
        self.lines.append(("error", text))

    def info(self, text):
        self.lines.append(("info", text))


def test_throttled_log_per_key_and_once():
    now = [0.0]
    logger = RecordingLogger()
    log = ThrottledLog(logger, every_s=5.0, clock=lambda: now[0])
    assert log("a", "first a") and log("b", "first b", "error")
    assert not log("a", "again a")
    now[0] = 5.0
    assert log("a", "a after 5 s")
    assert log.once("zero", "once") and not log.once("zero", "twice")
    now[0] = 1e9
    assert not log.once("zero", "still not")
    assert logger.lines == [("warn", "first a"), ("error", "first b"), ("warn", "a after 5 s"), ("warn", "once")]


def test_interrupt_latch_raises_once_then_ignores():
    latch = InterruptLatch()
    with pytest.raises(KeyboardInterrupt):
        latch(signal.SIGINT, None)
    latch(signal.SIGINT, None)  # the second SIGINT: no exception
    latch(signal.SIGINT, None)
    assert latch.interrupted


def _wait_for_log(node, text: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in node.log():
            return
        assert node.alive(), node.log()
        time.sleep(0.05)
    raise AssertionError(f"node never logged {text!r}:\n{node.log()}")


NODES = {
    "retarget_node": ({}, "retargeting right hand"),
    "pose_node": ({"model_path": str(SHIPPED_MODEL)}, "listening on"),
}


@pytest.mark.ros
@pytest.mark.parametrize("gap_s", [0.0, 0.2])
@pytest.mark.parametrize("executable", sorted(NODES))
def test_a_repeated_sigint_shuts_down_cleanly(start_node, executable, gap_s):
    pytest.importorskip("rclpy")
    params, ready = NODES[executable]
    node = start_node(executable, params)
    _wait_for_log(node, ready)
    time.sleep(0.5)  # spinning
    node.process.send_signal(signal.SIGINT)
    time.sleep(gap_s)
    node.process.send_signal(signal.SIGINT)
    assert node.wait_exit(timeout=20) == 0, node.log()
    log = node.log()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log

"""Whole 640x480 16UC1 depth frames (614 KB) reach a best-effort subscriber in another
process when the publisher runs with the nodes' environment (run.node_environment: the
Fast DDS profile config/fastdds.xml). Fast DDS's default 512 KiB shared-memory segment is
smaller than one frame: without the profile most frames are lost whole (34 to 70 of 300 at
30 Hz on an idle machine), which is what cost `make demo` a third of its frames."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("rclpy")

from hand_pose_ros.ros import launch_plan, run
from hand_pose_ros.ros.params import repo_root

pytestmark = pytest.mark.ros

TOPIC = "/large_images/depth"
FRAMES = 30

# The synthetic camera's publisher (reliable, keep last 1), 30 frames at its 30 Hz, once
# (re-sending would let lost frames through by chance). The frame number is the stamp.
PUBLISHER = textwrap.dedent(f"""
    import time
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image
    from hand_pose_ros.ros.common import qos_profile
    rclpy.init()
    node = rclpy.create_node("large_image_publisher")
    pub = node.create_publisher(Image, "{TOPIC}", qos_profile("reliable", 1))
    deadline = time.monotonic() + 60
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let the match settle on both sides
    depth = (np.arange(640 * 480, dtype=np.uint32) % 4000).astype(np.uint16).reshape(480, 640)
    for i in range({FRAMES}):
        msg = Image(height=480, width=640, encoding="16UC1", is_bigendian=0, step=1280)
        msg.header.stamp.sec = i
        msg.data = depth.tobytes()
        pub.publish(msg)
        time.sleep(1 / 30)
    time.sleep(2.0)  # keep the writer alive while the reader catches up
    node.destroy_node()
    rclpy.shutdown()
""")


def test_every_depth_frame_reaches_a_best_effort_subscriber(ros, monkeypatch):
    from sensor_msgs.msg import Image

    from hand_pose_ros.ros.common import qos_profile

    for name in launch_plan.DDS_PROFILE_VARIABLES:  # the project's profile, not the caller's
        monkeypatch.delenv(name, raising=False)
    env = run.node_environment(repo_root())
    assert env[launch_plan.DDS_PROFILE_VARIABLE].endswith(launch_plan.DDS_PROFILE)
    received = ros.collect(Image, TOPIC, qos_profile("sensor_data", FRAMES))  # what the pose node uses
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    try:
        ros.wait_for(lambda: len({m.header.stamp.sec for m in list(received)}) >= FRAMES, timeout=10.0,
                     what=f"all {FRAMES} frames")
    except AssertionError:
        pass  # reported below with the numbers
    got = sorted({m.header.stamp.sec for m in list(received)})
    assert got == list(range(FRAMES)), f"received {len(got)} of {FRAMES} frames: {got}\n{output}"
    first = received[0]
    assert (first.width, first.height, first.encoding, len(first.data)) == (640, 480, "16UC1", 640 * 480 * 2)
    expected = (np.arange(640 * 480, dtype=np.uint32) % 4000).astype(np.uint16)
    assert np.array_equal(np.frombuffer(bytes(first.data), dtype=np.uint16), expected)

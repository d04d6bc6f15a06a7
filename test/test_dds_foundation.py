"""ROS 2 works here without sourcing: two processes exchange messages over DDS on loopback."""
import os
import subprocess
import sys
import textwrap
import time

import pytest

rclpy = pytest.importorskip("rclpy")  # the ROS 2 wheels are part of the dev environment

pytestmark = pytest.mark.ros

PUBLISHER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image
    from tf2_msgs.msg import TFMessage
    from geometry_msgs.msg import TransformStamped
    rclpy.init()
    node = rclpy.create_node("foundation_publisher")
    images = node.create_publisher(Image, "/foundation/depth", 10)
    tf = node.create_publisher(TFMessage, "/tf", 10)
    depth = (np.arange(6 * 4, dtype=np.uint16) * 37).reshape(6, 4)
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        msg = Image(height=6, width=4, encoding="16UC1", is_bigendian=0, step=8)
        msg.header.frame_id = "camera_depth_optical_frame"
        msg.data = depth.tobytes()
        images.publish(msg)
        t = TransformStamped()
        t.header.frame_id = "camera_depth_optical_frame"
        t.child_frame_id = "hand_wrist"
        t.transform.translation.z = 0.5
        t.transform.rotation.w = 1.0
        tf.publish(TFMessage(transforms=[t]))
        rclpy.spin_once(node, timeout_sec=0.05)
    rclpy.shutdown()
""")


def test_image_and_tf_cross_process_round_trip():
    import numpy as np
    from sensor_msgs.msg import Image
    from tf2_msgs.msg import TFMessage

    env = dict(os.environ, ROS_DOMAIN_ID=str(100 + os.getpid() % 100),
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, "20"], env=env)
    rclpy.init()
    try:
        node = rclpy.create_node("foundation_subscriber")
        got = {}
        node.create_subscription(Image, "/foundation/depth", lambda m: got.setdefault("image", m), 10)
        node.create_subscription(TFMessage, "/tf", lambda m: got.setdefault("tf", m), 10)
        deadline = time.monotonic() + 20
        while len(got) < 2 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert set(got) == {"image", "tf"}, f"received only {sorted(got)}"
        img = got["image"]
        depth = np.frombuffer(bytes(img.data), dtype=np.uint16).reshape(img.height, img.width)
        assert depth[5, 3] == 23 * 37 and img.encoding == "16UC1"
        (t,) = got["tf"].transforms
        assert t.child_frame_id == "hand_wrist" and t.transform.translation.z == 0.5
    finally:
        rclpy.shutdown()
        proc.terminate()
        proc.wait(timeout=10)

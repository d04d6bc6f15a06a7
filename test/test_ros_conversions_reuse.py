"""The PoseArray, TF and marker conversions refill the message they returned last frame
(`out=`) instead of building 21 new poses, transforms and points: the result must equal what
building every message anew, pose by pose, gives (the reference builders below are the
straightforward per-joint construction the node used before), frame after frame, with the
handedness label coming and going."""
import numpy as np
import pytest

pytest.importorskip("geometry_msgs")

from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion, TransformStamped  # noqa: E402
from std_msgs.msg import ColorRGBA, Header  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from hand_pose_ros import keypoints  # noqa: E402
from hand_pose_ros.ros import conversions as conv  # noqa: E402

NAMES = keypoints.CANONICAL


def header_copy(h):
    return Header(stamp=Time(sec=h.stamp.sec, nanosec=h.stamp.nanosec), frame_id=h.frame_id)


def reference_pose_array(xyz_mm, header, q):
    poses = []
    for name, (x, y, z) in zip(NAMES, (np.asarray(xyz_mm) / 1000.0).tolist()):
        pose = Pose()
        pose.position = Point(x=x, y=y, z=z)
        if name == "wrist":
            pose.orientation = Quaternion(x=q[0], y=q[1], z=q[2], w=q[3])
        poses.append(pose)
    return PoseArray(header=header_copy(header), poses=poses)


def reference_transforms(xyz_mm, header, prefix, q):
    transforms = []
    for name, (x, y, z) in zip(NAMES, (np.asarray(xyz_mm) / 1000.0).tolist()):
        t = TransformStamped(header=header_copy(header), child_frame_id=prefix + name)
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = x, y, z
        if name == "wrist":
            t.transform.rotation = Quaternion(x=q[0], y=q[1], z=q[2], w=q[3])
        transforms.append(t)
    return transforms


def reference_markers(xyz_mm, header, label):
    xyz = np.asarray(xyz_mm) / 1000.0
    points = [Point(x=x, y=y, z=z) for x, y, z in xyz.tolist()]
    colours = [ColorRGBA(r=float(c[0]), g=float(c[1]), b=float(c[2]), a=1.0)
               for c in (keypoints.colour_of(n) for n in NAMES)]
    lifetime = conv.seconds_to_duration(0.5)
    joints = Marker(header=header_copy(header), ns="hand/joints", id=0, type=Marker.SPHERE_LIST,
                    action=Marker.ADD, lifetime=lifetime, points=points, colors=colours)
    joints.pose.orientation.w = 1.0
    joints.scale.x = joints.scale.y = joints.scale.z = 0.012
    bones = Marker(header=header_copy(header), ns="hand/bones", id=1, type=Marker.LINE_LIST,
                   action=Marker.ADD, lifetime=lifetime)
    bones.pose.orientation.w = 1.0
    bones.scale.x = 0.006
    for a, b in keypoints.edges(NAMES):
        bones.points.append(Point(x=points[a].x, y=points[a].y, z=points[a].z))
        bones.points.append(Point(x=points[b].x, y=points[b].y, z=points[b].z))
        bones.colors += [colours[b], colours[b]]
    markers = [joints, bones]
    if label:
        wrist = xyz[NAMES.index("wrist")]
        text = Marker(header=header_copy(header), ns="hand/handedness", id=2, type=Marker.TEXT_VIEW_FACING,
                      action=Marker.ADD, lifetime=lifetime, text=label)
        text.pose.position = Point(x=float(wrist[0]), y=float(wrist[1]) - 0.04, z=float(wrist[2]))
        text.pose.orientation.w = 1.0
        text.scale.z = 0.02
        text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        markers.append(text)
    return MarkerArray(markers=markers)


def frames(count=12, seed=0):
    """(xyz mm [21, 3], header, palm quaternion, label) of a moving hand-sized point cloud."""
    rng = np.random.default_rng(seed)
    labels = [None, "left 0.97", "right (set)", "right 0.51"]
    for i in range(count):
        xyz = rng.normal([0.0, 0.0, 500.0], 60.0, (21, 3))
        header = Header(stamp=Time(sec=100 + i, nanosec=1000 * i), frame_id=f"camera_{i % 2}")
        yield xyz, header, conv.palm_quaternion(xyz), labels[i % len(labels)]


def test_refilled_messages_equal_fresh_per_joint_ones_every_frame():
    pose_array = transforms = markers = None
    for xyz, header, q, label in frames():
        pose_array = conv.keypoints_to_pose_array(xyz, header, q, out=pose_array)
        assert pose_array == reference_pose_array(xyz, header, q)
        transforms = conv.keypoints_to_transforms(xyz, header, "hand_", q, out=transforms)
        assert transforms == reference_transforms(xyz, header, "hand_", q)
        markers = conv.keypoints_to_markers(xyz, header, label=label, out=markers)
        assert markers == reference_markers(xyz, header, label)
    # without out= the same messages come out, built anew
    assert conv.keypoints_to_pose_array(xyz, header, q) == pose_array
    assert conv.keypoints_to_markers(xyz, header, label=label) == markers


def test_refill_reuses_the_message_and_never_the_input_header():
    xyz, header, q, _ = next(frames())
    first = conv.keypoints_to_pose_array(xyz, header, q)
    assert conv.keypoints_to_pose_array(xyz + 1.0, header, q, out=first) is first
    assert first.header is not header and first.header.stamp is not header.stamp
    header.frame_id = "changed later"
    assert first.header.frame_id != "changed later"
    transforms = conv.keypoints_to_transforms(xyz, header, "hand_", q)
    assert conv.keypoints_to_transforms(xyz, header, "hand_", q, out=transforms) is transforms
    # another prefix or another keypoint count cannot reuse the old transforms
    other = conv.keypoints_to_transforms(xyz, header, "left_", q, out=transforms)
    assert other is not transforms and other[0].child_frame_id == "left_wrist"
    shorter = conv.keypoints_to_pose_array(xyz[:14], header, names=keypoints.order("nyu"), out=first)
    assert shorter is not first and len(shorter.poses) == 14

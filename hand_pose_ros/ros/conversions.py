"""Pure functions between numpy arrays and ROS messages (no rclpy: message packages only).

Units: the core speaks millimetres, ROS messages metres (REP 103). Every function here
converts at the boundary, so callers never scale by hand. Keypoints are in the input
image's optical frame (x right, y down, z forward) and in canonical order unless `names`
says otherwise.
"""
from __future__ import annotations

import array
import math

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion, TransformStamped
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA, Header, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from .. import keypoints
from ..camera import Intrinsics
from ..data.depth import FLOAT_ENCODINGS, image_msg_to_depth
from ..retarget.hand_frame import PALM_KEYPOINTS, hand_frame

MM_PER_M = 1000.0
IDENTITY_QUATERNION = (0.0, 0.0, 0.0, 1.0)  # (x, y, z, w)


# ---------------------------------------------------------------- time and headers
def stamp_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_stamp(seconds: float) -> Time:
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def nanoseconds_to_stamp(nanoseconds: int) -> Time:
    return Time(sec=int(nanoseconds) // 1_000_000_000, nanosec=int(nanoseconds) % 1_000_000_000)


def stamp_key(stamp: Time) -> int:
    """An exact integer key for matching messages by stamp (nanoseconds)."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def copy_header(header: Header) -> Header:
    return Header(stamp=Time(sec=header.stamp.sec, nanosec=header.stamp.nanosec),
                  frame_id=header.frame_id)


def _fill_header(target: Header, source: Header) -> None:
    """Make `target` a copy of `source` in place."""
    target.stamp.sec, target.stamp.nanosec = source.stamp.sec, source.stamp.nanosec
    target.frame_id = source.frame_id


def seconds_to_duration(seconds: float) -> Duration:
    nanoseconds = int(round(seconds * 1e9))
    return Duration(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


# ---------------------------------------------------------------- rotations
def rotation_to_quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """3x3 rotation matrix -> unit quaternion (x, y, z, w), w >= 0 (Shepperd's method:
    pivot on the largest of w, x, y, z, numerically stable for any rotation). Plain float
    arithmetic: this runs every frame and numpy scalars are slow."""
    r = np.asarray(rotation, dtype=np.float64)
    if r.shape != (3, 3) or not np.isfinite(r).all():
        raise ValueError(f"expected a finite 3x3 rotation matrix, got {r.tolist()}")
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = r.tolist()
    trace = r00 + r11 + r22
    pivot = max(range(4), key=lambda i: (trace, r00, r11, r22)[i])
    if pivot == 0:
        s = 2.0 * math.sqrt(max(1.0 + trace, 1e-12))
        q = ((r21 - r12) / s, (r02 - r20) / s, (r10 - r01) / s, 0.25 * s)
    elif pivot == 1:
        s = 2.0 * math.sqrt(max(1.0 + r00 - r11 - r22, 1e-12))
        q = (0.25 * s, (r01 + r10) / s, (r02 + r20) / s, (r21 - r12) / s)
    elif pivot == 2:
        s = 2.0 * math.sqrt(max(1.0 - r00 + r11 - r22, 1e-12))
        q = ((r01 + r10) / s, 0.25 * s, (r12 + r21) / s, (r02 - r20) / s)
    else:
        s = 2.0 * math.sqrt(max(1.0 - r00 - r11 + r22, 1e-12))
        q = ((r02 + r20) / s, (r12 + r21) / s, 0.25 * s, (r10 - r01) / s)
    norm = math.sqrt(sum(c * c for c in q))
    sign = -1.0 if q[3] < 0 else 1.0
    return tuple(sign * c / norm for c in q)


def quaternion_to_rotation(q) -> np.ndarray:
    """(x, y, z, w) -> 3x3 rotation matrix."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def palm_quaternion(xyz_mm: np.ndarray, names=keypoints.CANONICAL) -> tuple[float, float, float, float]:
    """Orientation of the palm frame (retarget.hand_frame: x wrist -> middle MCP, y toward the
    index side, z = x cross y) as a quaternion (x, y, z, w) in the camera frame.

    The pose node does not know the handedness, so the right-hand construction is used: it
    is a proper rotation for either hand (for a left hand z points out of the palm, not the
    back). Identity when the palm points are missing or degenerate.
    """
    names = tuple(names)
    xyz = np.asarray(xyz_mm, dtype=np.float64)
    if names == keypoints.CANONICAL and xyz.shape == (len(names), 3):
        canonical = xyz  # already in the order hand_frame reads (the pose node's case)
    elif any(n not in names for n in PALM_KEYPOINTS):
        return IDENTITY_QUATERNION
    else:
        canonical = np.full((len(keypoints.CANONICAL), 3), np.nan)
        canonical[keypoints.indices(PALM_KEYPOINTS)] = xyz[keypoints.indices(PALM_KEYPOINTS, of=names)]
    _, axes = hand_frame(canonical, "right")  # [3, 3], columns x, y, z
    if not np.isfinite(axes).all():
        return IDENTITY_QUATERNION
    return rotation_to_quaternion(axes)


def _check_xyz(xyz_mm: np.ndarray, names) -> np.ndarray:
    xyz = np.asarray(xyz_mm, dtype=np.float64)
    if xyz.shape != (len(names), 3):
        raise ValueError(f"keypoints have shape {xyz.shape}, expected ({len(names)}, 3)")
    if not np.isfinite(xyz).all():
        raise ValueError("keypoints contain NaN or inf: refusing to publish them")
    return xyz


# ---------------------------------------------------------------- PoseArray
def keypoints_to_pose_array(xyz_mm: np.ndarray, header: Header,
                            wrist_orientation=IDENTITY_QUATERNION,
                            names=keypoints.CANONICAL, out: PoseArray | None = None) -> PoseArray:
    """[J, 3] mm -> PoseArray (metres), one pose per keypoint in `names` order.

    The wrist pose carries `wrist_orientation` (the palm frame, quaternion x, y, z, w); the
    other poses carry the identity orientation.

    out: a PoseArray this function returned before for the same names, refilled in place and
    returned instead of building 21 new poses (publish() serialises the message before it
    returns, so a node can reuse one message every frame).
    """
    names = tuple(names)
    xyz = _check_xyz(xyz_mm, names) / MM_PER_M
    if out is None or len(out.poses) != len(names):
        out = PoseArray(poses=[Pose() for _ in names])  # orientations default to identity (w = 1)
    _fill_header(out.header, header)
    for pose, (x, y, z) in zip(out.poses, xyz.tolist()):
        position = pose.position
        position.x, position.y, position.z = x, y, z
    if "wrist" in names:
        _fill_quaternion(out.poses[names.index("wrist")].orientation, wrist_orientation)
    return out


def _fill_quaternion(target: Quaternion, q) -> None:
    target.x, target.y, target.z, target.w = (float(c) for c in q)


def pose_array_to_keypoints(msg: PoseArray) -> np.ndarray:
    """PoseArray -> [N, 3] mm (positions only)."""
    return np.array([[p.position.x, p.position.y, p.position.z] for p in msg.poses],
                    dtype=np.float64).reshape(-1, 3) * MM_PER_M


# ---------------------------------------------------------------- TF
def keypoints_to_transforms(xyz_mm: np.ndarray, header: Header, prefix: str = "hand_",
                            wrist_orientation=IDENTITY_QUATERNION,
                            names=keypoints.CANONICAL, out: list | None = None) -> list[TransformStamped]:
    """One TransformStamped per keypoint: child `<prefix><name>` under header.frame_id.
    out: a list this function returned before for the same prefix and names, refilled in
    place and returned (see keypoints_to_pose_array)."""
    names = tuple(names)
    xyz = _check_xyz(xyz_mm, names) / MM_PER_M
    if out is None or len(out) != len(names) or out[0].child_frame_id != prefix + names[0]:
        shared_header = Header()  # read-only once filled: one object serves all transforms
        out = []
        for name in names:
            t = TransformStamped(header=shared_header, child_frame_id=prefix + name)
            t.transform.rotation.w = 1.0
            out.append(t)
    _fill_header(out[0].header, header)
    for t, (x, y, z) in zip(out, xyz.tolist()):
        translation = t.transform.translation
        translation.x, translation.y, translation.z = x, y, z
    if "wrist" in names:
        _fill_quaternion(out[names.index("wrist")].transform.rotation, wrist_orientation)
    return out


def keypoints_to_tf_message(xyz_mm, header, prefix="hand_", wrist_orientation=IDENTITY_QUATERNION,
                            names=keypoints.CANONICAL):
    """The same transforms as a tf2_msgs/TFMessage (what a TransformBroadcaster sends on /tf)."""
    from tf2_msgs.msg import TFMessage  # imported here: only the raw-/tf fallback needs it

    return TFMessage(transforms=keypoints_to_transforms(xyz_mm, header, prefix, wrist_orientation, names))


# ---------------------------------------------------------------- markers
def _colour(rgb, alpha: float = 1.0) -> ColorRGBA:
    r, g, b = rgb
    return ColorRGBA(r=float(r), g=float(g), b=float(b), a=float(alpha))


def keypoints_to_markers(xyz_mm: np.ndarray, header: Header, names=keypoints.CANONICAL,
                         namespace: str = "hand", joint_diameter_m: float = 0.012,
                         bone_width_m: float = 0.006, lifetime_s: float = 0.5,
                         label: str | None = None, label_height_m: float = 0.02,
                         out: MarkerArray | None = None) -> MarkerArray:
    """Keypoint spheres (SPHERE_LIST) and the skeleton (LINE_LIST), coloured by finger, and
    with `label` (e.g. handedness_label's "left 0.97") a TEXT_VIEW_FACING marker
    (`<namespace>/handedness`) 4 cm above the wrist: up in the image, -y of the optical frame.

    The lifetime makes a lost hand vanish from rviz instead of freezing there.
    out: a MarkerArray this function returned before for the same names and styling (label
    aside), refilled in place and returned (see keypoints_to_pose_array).
    """
    names = tuple(names)
    xyz = _check_xyz(xyz_mm, names) / MM_PER_M
    if out is None or len(out.markers) < 2 or len(out.markers[0].points) != len(names):
        out = _skeleton_markers(names, namespace, joint_diameter_m, bone_width_m, lifetime_s)
    joints = out.markers[0]
    # the bones' line ends are these same Point objects: filling the joints moves them too
    for point, (x, y, z) in zip(joints.points, xyz.tolist()):
        point.x, point.y, point.z = x, y, z
    for marker in out.markers:
        _fill_header(marker.header, header)
    if not label:
        del out.markers[2:]
        return out
    if len(out.markers) < 3:
        text = Marker(header=copy_header(header), ns=f"{namespace}/handedness", id=2,
                      type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, lifetime=seconds_to_duration(lifetime_s))
        text.pose.orientation.w = 1.0
        text.scale.z = label_height_m  # TEXT_VIEW_FACING: only z (the letter height) counts
        text.color = _colour((1.0, 1.0, 1.0))
        out.markers.append(text)
    text = out.markers[2]
    anchor = xyz[names.index("wrist")] if "wrist" in names else xyz.mean(axis=0)
    text.text = label
    text.pose.position.x, text.pose.position.y, text.pose.position.z = \
        float(anchor[0]), float(anchor[1]) - 0.04, float(anchor[2])
    return out


def _skeleton_markers(names, namespace, joint_diameter_m, bone_width_m, lifetime_s) -> MarkerArray:
    """The spheres and bones markers of keypoints_to_markers with every point at the origin."""
    points = [Point() for _ in names]
    colours = [_colour(keypoints.colour_of(n)) for n in names]
    lifetime = seconds_to_duration(lifetime_s)
    joints = Marker(ns=f"{namespace}/joints", id=0, type=Marker.SPHERE_LIST,
                    action=Marker.ADD, lifetime=lifetime, points=points, colors=colours)
    joints.pose.orientation.w = 1.0
    joints.scale.x = joints.scale.y = joints.scale.z = joint_diameter_m
    bones = Marker(ns=f"{namespace}/bones", id=1, type=Marker.LINE_LIST,
                   action=Marker.ADD, lifetime=seconds_to_duration(lifetime_s))
    bones.pose.orientation.w = 1.0
    bones.scale.x = bone_width_m
    for a, b in keypoints.edges(names):
        bones.points += [points[a], points[b]]
        bones.colors += [colours[b], colours[b]]  # a bone takes the colour of its distal joint
    return MarkerArray(markers=[joints, bones])


# ---------------------------------------------------------------- handedness
HANDEDNESS_VALUES = ("left", "right", "unknown")  # the ~/handedness topic's strings


def handedness_msg(side: str | None) -> String:
    """std_msgs/String "left" / "right", or "unknown" (None: the model cannot tell)."""
    value = "unknown" if side is None else str(side)
    if value not in HANDEDNESS_VALUES:
        raise ValueError(f"handedness {side!r} is not one of {HANDEDNESS_VALUES[:2]} or None")
    return String(data=value)


def handedness_label(side: str | None, left_probability: float | None = None, overridden: bool = False) -> str | None:
    """What rviz shows beside the hand: "left 0.97" (the network's probability of that side),
    "right (set)" (handedness_override), "right"; None when unknown."""
    if side is None:
        return None
    if overridden:
        return f"{side} (set)"
    if left_probability is None:
        return side
    return f"{side} {left_probability if side == 'left' else 1.0 - left_probability:.2f}"


# ---------------------------------------------------------------- images
def rgb_to_image_msg(rgb: np.ndarray, header: Header) -> Image:
    """[H, W, 3] uint8 -> rgb8 Image."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an [H, W, 3] image, got shape {rgb.shape}")
    height, width = rgb.shape[:2]
    # array('B') is the fast path for uint8[] fields on Humble and Kilted alike; frombytes
    # of the array's own buffer copies once (array("B", rgb.tobytes()) copies twice).
    data = array.array("B")
    data.frombytes(memoryview(rgb).cast("B"))
    return Image(header=copy_header(header), height=height, width=width, encoding="rgb8",
                 is_bigendian=0, step=3 * width, data=data)


def depth_to_image_msg(depth_mm: np.ndarray, header: Header) -> Image:
    """[H, W] uint16 millimetres -> 16UC1 Image (REP 118: 0 = invalid)."""
    depth = np.asarray(depth_mm)
    if depth.ndim != 2 or depth.dtype != np.uint16:
        raise ValueError(f"expected an [H, W] uint16 depth image, got {depth.dtype} {depth.shape}")
    depth = depth.astype("<u2", copy=False)  # little-endian on the wire, whatever the host
    height, width = depth.shape
    return Image(header=copy_header(header), height=height, width=width, encoding="16UC1",
                 is_bigendian=0, step=2 * width, data=array.array("B", depth.tobytes()))


def image_msg_to_depth_mm(msg: Image, depth_scale_mm: float | None = None, integer_mm: bool = False) -> np.ndarray:
    """Image (16UC1 / mono16 / 32FC1) -> [H, W] float32 millimetres, 0 = invalid.

    depth_scale_mm: millimetres per 16-bit unit (None = 1, the REP 118 default; D405: 0.1).
    It never applies to 32FC1, which is metres by REP 118.
    integer_mm: a 16-bit image at 1 mm per unit stays uint16 millimetres (a view of
    msg.data, no conversion: see data.depth.image_msg_to_depth).
    Raises ValueError naming the problem (encoding, size) on bad input.
    """
    if msg.encoding in FLOAT_ENCODINGS:
        depth_scale_mm = None
    return image_msg_to_depth(msg.data, msg.width, msg.height, msg.step, msg.encoding,
                              msg.is_bigendian, depth_scale_mm=depth_scale_mm, integer_mm=integer_mm)


def camera_info_msg(cam: Intrinsics, header: Header) -> CameraInfo:
    """CameraInfo of an undistorted pinhole camera (plumb_bob with zero distortion)."""
    k = cam.k()
    p = np.zeros((3, 4))
    p[:, :3] = k
    return CameraInfo(header=copy_header(header), height=int(cam.height), width=int(cam.width),
                      distortion_model="plumb_bob", d=[0.0] * 5, k=k.ravel().tolist(),
                      r=np.eye(3).ravel().tolist(), p=p.ravel().tolist())


MAX_FIELD_OF_VIEW_DEG = 160.0  # wider than any depth camera: the focal length is wrong


def camera_info_to_intrinsics(msg: CameraInfo, rectified: bool = True) -> Intrinsics:
    """Intrinsics of the image the CameraInfo describes. rectified: the image is rectified
    (image_rect*, REP 104), so its camera is P's left 3x3 rather than K (the raw camera);
    P is used when set, K must be valid either way. ValueError for an all-zero / non-finite matrix or a focal length so
    small that the field of view would exceed MAX_FIELD_OF_VIEW_DEG."""
    cam = Intrinsics.from_k(np.asarray(msg.k), width=msg.width, height=msg.height)  # K must be valid anyway
    p = np.asarray(msg.p, dtype=np.float64)
    if rectified and p.size == 12 and np.isfinite(p).all() and p[0] != 0 and p[5] != 0:
        cam = Intrinsics.from_k(p.reshape(3, 4)[:, :3], width=msg.width, height=msg.height)
    half = math.tan(math.radians(MAX_FIELD_OF_VIEW_DEG / 2))
    for name, focal, size in (("fx", cam.fx, cam.width), ("fy", cam.fy, cam.height)):
        if abs(focal) < max(size / (2 * half), 1.0):
            raise ValueError(f"focal length {name}={focal:g} px is too small for a {cam.width}x{cam.height} "
                             f"image (a field of view over {MAX_FIELD_OF_VIEW_DEG:.0f} deg): the CameraInfo is wrong")
    return cam


# ---------------------------------------------------------------- robot commands
def joint_trajectory_msg(joint_names, positions, time_from_start_s: float) -> JointTrajectory:
    """A one-point JointTrajectory that starts when it arrives: header.stamp is zero.

    ros2_control's joint_trajectory_controller starts a trajectory at header.stamp (zero =
    now) and drops every point whose start + time_from_start has passed, rejecting a
    trajectory with no point left. Stamping it with the image time would therefore make the
    controller drop every command once the pipeline latency exceeds time_from_start.
    """
    if not time_from_start_s > 0:
        raise ValueError(f"time_from_start must be > 0 s, got {time_from_start_s}")
    point = JointTrajectoryPoint(positions=[float(p) for p in positions],
                                 time_from_start=seconds_to_duration(time_from_start_s))
    msg = JointTrajectory(joint_names=list(joint_names), points=[point])
    msg.header.stamp = Time(sec=0, nanosec=0)
    return msg


# ---------------------------------------------------------------- diagnostics
LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN,
          "error": DiagnosticStatus.ERROR, "stale": DiagnosticStatus.STALE}


def diagnostic_array(stamp: Time, name: str, hardware_id: str, level: str, message: str,
                     values: dict) -> DiagnosticArray:
    """One DiagnosticStatus in a DiagnosticArray. level: ok | warn | error | stale.

    Floats in `values` are written with 3 decimals; everything else with str().
    """
    if level not in LEVELS:
        raise ValueError(f"diagnostic level {level!r} is not one of {sorted(LEVELS)}")
    pairs = [KeyValue(key=str(k), value=f"{v:.3f}" if isinstance(v, float) else str(v))
             for k, v in values.items()]
    status = DiagnosticStatus(level=LEVELS[level], name=name, message=message,
                              hardware_id=hardware_id, values=pairs)
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])


def diagnostic_values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}

"""Which nodes the system runs, with which parameter files: the one place both
`launch/pose.launch.py` (real ROS installs) and `hand-pose run` (this venv, no ros2 launch)
read, so the two cannot drift apart.

A launch argument value is always a string (as in ROS launch). `plan(args)` turns the
arguments into `NodeLaunch` rows: package, executable, node name, parameter files
(relative to the package share directory), parameter overrides, remappings, arguments.
No ROS imports here.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "hand_pose_ros"
CAMERA_FRAME = "camera_depth_optical_frame"
JOINTS_TOPIC = "/hand_pose/joints"
RETARGET_TOPIC = "/hand_retarget/joint_commands"
GROUND_TRUTH_TOPIC = "/synthetic_camera/ground_truth"
# Fast DDS profile with a shared-memory segment that holds whole depth frames (why: in the file).
DDS_PROFILE = "config/fastdds.xml"
DDS_PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
# A profile the user chose (either name; Fast DDS 2 reads only the older one) is left alone.
DDS_PROFILE_VARIABLES = (DDS_PROFILE_VARIABLE, "FASTRTPS_DEFAULT_PROFILES_FILE")

# launch argument -> (default, description)
ARGUMENTS: dict[str, tuple[str, str]] = {
    "depth_topic": ("/camera/camera/depth/image_rect_raw", "depth image topic (16UC1 mm or 32FC1 m)"),
    "camera_info_topic": ("/camera/camera/depth/camera_info", "CameraInfo topic matching the depth topic"),
    "use_synthetic_camera": ("false", "start the synthetic depth camera (an animated hand) on those topics"),
    "backend": ("auto", "inference backend: auto | onnxruntime | torch | tensorrt"),
    "model": ("", "model file (.onnx / .pt) or auto; empty = model_path from config/pose.yaml (auto: the fast "
                    "model on a CPU or small Jetson, the full one on a big GPU)"),
    "robot_hand": ("leap", "robot hand to retarget to (config/retarget_<robot_hand>.yaml)"),
    "retarget": ("true", "start the retargeting node"),
    "rviz": ("false", "start rviz2 with config/hand_pose.rviz (and robot_state_publisher for the hand)"),
}


@dataclass(frozen=True)
class NodeLaunch:
    package: str
    executable: str
    name: str
    params_files: tuple[str, ...] = ()          # relative to the package share directory
    overrides: dict = field(default_factory=dict)  # parameter name -> value (after the files)
    remappings: tuple[tuple[str, str], ...] = ()
    arguments: tuple[str, ...] = ()             # plain command-line arguments (e.g. rviz2 -d FILE)
    ours: bool = True                           # a console script of this package

    def params_paths(self, share_dir) -> list[Path]:
        return [Path(share_dir) / f for f in self.params_files]


def dds_environment(share_dir, environ=None) -> dict[str, str]:
    """Environment variables the started nodes get on top of `environ` (default os.environ):
    FASTDDS_DEFAULT_PROFILES_FILE -> config/fastdds.xml, unless a profile file is set already.
    Only the variable Fast DDS 3 (Kilted) reads is set: the older name logs a deprecation
    warning there."""
    environ = os.environ if environ is None else environ
    if any(environ.get(name) for name in DDS_PROFILE_VARIABLES):
        return {}
    return {DDS_PROFILE_VARIABLE: str(Path(share_dir) / DDS_PROFILE)}


def as_bool(value: str | bool, name: str = "") -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"launch argument {name}={value!r} is not a boolean (true/false)")


def with_defaults(args: dict | None = None) -> dict[str, str]:
    unknown = sorted(set(args or {}) - set(ARGUMENTS))
    if unknown:
        raise ValueError(f"unknown launch arguments {unknown}; known: {sorted(ARGUMENTS)}")
    return {name: str((args or {}).get(name, default)) for name, (default, _) in ARGUMENTS.items()}


def robot_hands(share_dir) -> list[str]:
    """Robot hands with a retargeting parameter file (config/retarget_<hand>.yaml)."""
    return sorted(p.stem[len("retarget_"):] for p in (Path(share_dir) / "config").glob("retarget_*.yaml"))


def retarget_params_file(robot_hand: str) -> str:
    return f"config/retarget_{robot_hand}.yaml"


def urdf_file(share_dir, robot_hand: str) -> Path | None:
    path = Path(share_dir) / "config" / "hands" / f"{robot_hand}.urdf"
    return path if path.is_file() else None


def urdf_root_link(urdf_path) -> str:
    """The link that is no joint's child (the robot's base)."""
    robot = ElementTree.parse(urdf_path).getroot()
    children = {j.find("child").get("link") for j in robot.iter("joint")}
    roots = [link.get("name") for link in robot.iter("link") if link.get("name") not in children]
    if len(roots) != 1:
        raise ValueError(f"{urdf_path}: expected one root link, found {roots}")
    return roots[0]


def plan(args: dict | None, share_dir) -> list[NodeLaunch]:
    """The nodes to start for these launch arguments (defaults filled in)."""
    a = with_defaults(args)
    topics = {"depth_topic": a["depth_topic"], "camera_info_topic": a["camera_info_topic"]}
    nodes = []
    if as_bool(a["use_synthetic_camera"], "use_synthetic_camera"):
        nodes.append(NodeLaunch(PACKAGE, "synthetic_camera", "synthetic_camera",
                                ("config/synthetic_camera.yaml",), dict(topics)))
    pose_overrides = dict(topics, backend=a["backend"])
    if a["model"]:
        pose_overrides["model_path"] = a["model"]
    nodes.append(NodeLaunch(PACKAGE, "pose_node", "hand_pose", ("config/pose.yaml",), pose_overrides))

    robot_hand = a["robot_hand"].strip().lower()
    if as_bool(a["retarget"], "retarget"):
        params = retarget_params_file(robot_hand)
        if not (Path(share_dir) / params).is_file():
            raise ValueError(f"no retargeting parameters for robot_hand={robot_hand!r}: {params} is missing "
                             f"under {share_dir}; available: {robot_hands(share_dir) or 'none'}")
        nodes.append(NodeLaunch(PACKAGE, "retarget_node", "hand_retarget", (params,)))

    if as_bool(a["rviz"], "rviz"):
        nodes += visualisation_nodes(share_dir, robot_hand)
    return nodes


def visualisation_nodes(share_dir, robot_hand: str) -> list[NodeLaunch]:
    """rviz2, plus the robot hand model when its URDF exists: robot_state_publisher fed by the
    retargeted joint commands, its base attached beside the tracked wrist (the URDFs use the
    retargeting hand frame as their base frame, see retarget/hand_frame.py)."""
    nodes = [NodeLaunch("rviz2", "rviz2", "rviz2", arguments=("-d", str(Path(share_dir) / "config/hand_pose.rviz")),
                        ours=False)]
    urdf = urdf_file(share_dir, robot_hand)
    if urdf is not None:
        nodes.append(NodeLaunch("robot_state_publisher", "robot_state_publisher", "robot_state_publisher",
                                overrides={"robot_description": urdf.read_text()},
                                remappings=(("joint_states", RETARGET_TOPIC),), ours=False))
        # 15 cm to the thumb side of the human hand (hand frame y), so the two do not overlap.
        nodes.append(NodeLaunch("tf2_ros", "static_transform_publisher", "robot_hand_anchor",
                                arguments=("--y", "0.15", "--frame-id", "hand_wrist",
                                           "--child-frame-id", urdf_root_link(urdf)), ours=False))
    return nodes

"""Robot hand specifications: joint names, limits, safe pose, command offset, the analytic
retargeting table and the optimisation-retargeting links, loaded from config/hands/*.yaml.

One YAML file per robot hand (see config/hands/leap.yaml for the annotated format).
Everything is validated at load time and every error names the file and the bad value.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from hand_pose_ros.keypoints import CANONICAL, FINGERS

JOINT_GROUPS = FINGERS + ("wrist",)  # which part of the hand a robot joint belongs to
LONG_FINGERS = FINGERS[1:]

# Human hand angles the analytic retargeter measures (rad; see analytic.py for definitions).
FEATURES = tuple(f"{f}_{j}" for f in LONG_FINGERS for j in ("abd", "mcp", "pip", "dip")) + (
    "thumb_cmc_abd", "thumb_cmc_spread", "thumb_mcp", "thumb_ip")


class SpecError(ValueError):
    """A robot hand spec file is missing something or holds an impossible value."""


@dataclass(frozen=True)
class JointSpec:
    name: str
    group: str            # thumb | index | middle | ring | pinky | wrist
    lower: float          # rad, URDF convention
    upper: float          # rad
    safe: float           # rad: where the joint goes when tracking is lost
    max_velocity: float   # rad/s, the hardware's limit (inf when the spec gives none)


@dataclass(frozen=True)
class OptimizationSpec:
    """What dex-retargeting needs besides the URDF."""
    wrist_link: str
    fingertip_links: dict          # finger name -> URDF link at that fingertip
    scaling_factor: float          # robot size / human size, applied to human vectors
    # Extra vectors for the vector optimiser: ((human keypoint from, to), (robot link from, to)).
    vector_targets: tuple = ()


@dataclass(frozen=True)
class RobotHandSpec:
    name: str
    description: str
    joints: tuple
    command_offset: np.ndarray     # [N] added for driver adapters (LEAP: +pi)
    analytic: dict                 # joint name -> {feature: gain, "offset": rad}
    urdf: Path | None
    optimization: OptimizationSpec | None
    source: Path = field(compare=False)

    @property
    def joint_names(self) -> tuple:
        return tuple(j.name for j in self.joints)

    @property
    def lower(self) -> np.ndarray:
        return np.array([j.lower for j in self.joints])

    @property
    def upper(self) -> np.ndarray:
        return np.array([j.upper for j in self.joints])

    @property
    def safe_pose(self) -> np.ndarray:
        return np.array([j.safe for j in self.joints])

    @property
    def max_velocity(self) -> np.ndarray:
        return np.array([j.max_velocity for j in self.joints])

    @property
    def groups(self) -> tuple:
        return tuple(j.group for j in self.joints)

    def analytic_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """The analytic table as gains [len(FEATURES), N] and offsets [N]: q = f @ G + o."""
        gains = np.zeros((len(FEATURES), len(self.joints)))
        offsets = np.zeros(len(self.joints))
        for col, joint in enumerate(self.joints):
            for key, value in self.analytic[joint.name].items():
                if key == "offset":
                    offsets[col] = value
                else:
                    gains[FEATURES.index(key), col] = value
        return gains, offsets


def hands_dir() -> Path:
    """config/hands of the source tree, else of the installed ROS package share."""
    source_tree = Path(__file__).resolve().parents[2] / "config" / "hands"
    if source_tree.is_dir():
        return source_tree
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory("hand_pose_ros")) / "config" / "hands"
    except Exception:  # not a ROS install either: report the source-tree path in errors
        return source_tree


def available_hands() -> list:
    return sorted(p.stem for p in hands_dir().glob("*.yaml"))


def load_hand_spec(name_or_path) -> RobotHandSpec:
    """A spec by name ('leap' -> config/hands/leap.yaml) or by path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = hands_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise SpecError(f"unknown robot hand {str(name_or_path)!r}: no {path}; "
                            f"known: {available_hands()}")
    if not path.is_file():
        raise SpecError(f"robot hand spec {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from None
    return _parse(data, path)


def _number(value, where: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{path}: {where} must be a finite number, got {value!r}")
    return float(value)


def _parse(data, path: Path) -> RobotHandSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    for key in ("name", "joints", "analytic"):
        if key not in data:
            raise SpecError(f"{path}: missing required key {key!r}")
    joints = _parse_joints(data["joints"], path)
    names = [j.name for j in joints]

    offset = data.get("command_offset", 0.0)
    if isinstance(offset, list):
        if len(offset) != len(joints):
            raise SpecError(f"{path}: command_offset has {len(offset)} values for {len(joints)} joints")
        offset = np.array([_number(v, "command_offset", path) for v in offset])
    else:
        offset = np.full(len(joints), _number(offset, "command_offset", path))

    analytic = _parse_analytic(data["analytic"], names, path)

    urdf = None
    if data.get("urdf") is not None:
        urdf = (path.parent / str(data["urdf"])).resolve()
        if not urdf.is_file():
            raise SpecError(f"{path}: urdf {data['urdf']!r} not found (looked for {urdf})")
        _check_against_urdf(joints, urdf, path)

    optimization = None
    if data.get("optimization") is not None:
        if urdf is None:
            raise SpecError(f"{path}: an 'optimization' section needs a 'urdf'")
        optimization = _parse_optimization(data["optimization"], urdf, path)

    return RobotHandSpec(name=str(data["name"]), description=str(data.get("description", "")),
                         joints=tuple(joints), command_offset=offset, analytic=analytic,
                         urdf=urdf, optimization=optimization, source=path)


def _parse_joints(raw, path: Path) -> list:
    if not isinstance(raw, list) or not raw:
        raise SpecError(f"{path}: 'joints' must be a non-empty list")
    joints, seen = [], set()
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise SpecError(f"{path}: joints[{i}] must be a mapping, got {entry!r}")
        missing = {"name", "group", "lower", "upper"} - set(entry)
        if missing:
            raise SpecError(f"{path}: joints[{i}] is missing {sorted(missing)}")
        name = str(entry["name"])
        where = f"joint {name!r}"
        if name in seen:
            raise SpecError(f"{path}: joint name {name!r} appears twice")
        seen.add(name)
        group = entry["group"]
        if group not in JOINT_GROUPS:
            raise SpecError(f"{path}: {where} has group {group!r}; expected one of {JOINT_GROUPS}")
        lower = _number(entry["lower"], f"{where} lower", path)
        upper = _number(entry["upper"], f"{where} upper", path)
        if not lower < upper:
            raise SpecError(f"{path}: {where} has lower {lower} >= upper {upper}")
        safe = _number(entry.get("safe", min(max(0.0, lower), upper)), f"{where} safe", path)
        if not lower <= safe <= upper:
            raise SpecError(f"{path}: {where} safe pose {safe} is outside [{lower}, {upper}]")
        velocity = entry.get("max_velocity")
        velocity = math.inf if velocity is None else _number(velocity, f"{where} max_velocity", path)
        if velocity <= 0:
            raise SpecError(f"{path}: {where} max_velocity must be > 0, got {velocity}")
        joints.append(JointSpec(name, group, lower, upper, safe, velocity))
    return joints


def _parse_analytic(raw, names: list, path: Path) -> dict:
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: 'analytic' must map joint names to {{feature: gain}}")
    table = {str(k): v for k, v in raw.items()}
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise SpecError(f"{path}: analytic table names joints {unknown} that are not in 'joints'")
    missing = [n for n in names if n not in table]
    if missing:
        raise SpecError(f"{path}: analytic table has no entry for joints {missing} "
                        f"(use {{offset: <rad>}} for a joint held still)")
    parsed = {}
    for name in names:
        entry = table[name] or {}
        if not isinstance(entry, dict):
            raise SpecError(f"{path}: analytic entry of joint {name!r} must be a mapping, got {entry!r}")
        for key, value in entry.items():
            if key != "offset" and key not in FEATURES:
                raise SpecError(f"{path}: analytic entry of joint {name!r} uses unknown feature "
                                f"{key!r}; features: {FEATURES}")
            _number(value, f"analytic[{name!r}][{key!r}]", path)
        parsed[name] = {k: float(v) for k, v in entry.items()}
    return parsed


def _parse_optimization(raw, urdf: Path, path: Path) -> OptimizationSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: 'optimization' must be a mapping")
    for key in ("wrist_link", "fingertip_links", "scaling_factor"):
        if key not in raw:
            raise SpecError(f"{path}: optimization is missing {key!r}")
    tips = raw["fingertip_links"]
    if not isinstance(tips, dict) or len(tips) < 2 or set(tips) - set(FINGERS):
        raise SpecError(f"{path}: optimization.fingertip_links must map 2-5 of {FINGERS} to link "
                        f"names, got {tips!r}")
    # dex-retargeting's DexPilot pairs fingers in thumb-first order, as MediaPipe numbers them.
    tips = {f: str(tips[f]) for f in FINGERS if f in tips}
    links = {link.get("name") for link in ET.parse(urdf).getroot().iter("link")}
    for link in [raw["wrist_link"], *tips.values()]:
        if link not in links:
            raise SpecError(f"{path}: optimization link {link!r} is not a link of {urdf.name}")
    extra = []
    for i, entry in enumerate(raw.get("vector_targets") or []):
        where = f"{path}: optimization.vector_targets[{i}]"
        try:
            human, robot = tuple(map(str, entry["human"])), tuple(map(str, entry["robot"]))
        except (TypeError, KeyError):
            raise SpecError(f"{where} must be {{human: [keypoint, keypoint], robot: [link, link]}}, "
                            f"got {entry!r}") from None
        if len(human) != 2 or len(robot) != 2:
            raise SpecError(f"{where} needs two keypoints and two links, got {entry!r}")
        for keypoint in human:
            if keypoint not in CANONICAL:
                raise SpecError(f"{where}: {keypoint!r} is not a canonical keypoint name; names: {CANONICAL}")
        for link in robot:
            if link not in links:
                raise SpecError(f"{where}: {link!r} is not a link of {urdf.name}")
        extra.append((human, robot))
    scale = _number(raw["scaling_factor"], "optimization.scaling_factor", path)
    if scale <= 0:
        raise SpecError(f"{path}: optimization.scaling_factor must be > 0, got {scale}")
    return OptimizationSpec(str(raw["wrist_link"]), tips, scale, tuple(extra))


def _check_against_urdf(joints: list, urdf: Path, path: Path) -> None:
    """Every spec joint must be a movable URDF joint, and spec limits must lie inside its limits."""
    try:
        root = ET.parse(urdf).getroot()
    except ET.ParseError as e:
        raise SpecError(f"{urdf}: not valid XML: {e}") from None
    urdf_joints = {j.get("name"): j for j in root.iter("joint")
                   if j.get("type") in ("revolute", "prismatic")}
    for joint in joints:
        element = urdf_joints.get(joint.name)
        if element is None:
            raise SpecError(f"{path}: joint {joint.name!r} is not a revolute joint of {urdf.name}")
        limit = element.find("limit")
        lo, hi = float(limit.get("lower")), float(limit.get("upper"))
        if joint.lower < lo - 1e-9 or joint.upper > hi + 1e-9:
            raise SpecError(f"{path}: joint {joint.name!r} limits [{joint.lower}, {joint.upper}] "
                            f"exceed the URDF's [{lo}, {hi}]")

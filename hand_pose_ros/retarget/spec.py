"""Robot hand specifications: joint names, limits, safe pose, command offset, the analytic
retargeting table and the optimisation-retargeting links, loaded from config/hands/*.yaml.

One YAML file per robot hand (see config/hands/leap.yaml for the annotated format).
Everything is validated at load time and every error names the file and the bad value.

A spec can be pointed at any URDF of its hand (ours in config/hands/, or the manufacturer's):
its `urdf_descriptions` say, per family of URDFs, where the hand frame lies in the URDF
(a link plus a fixed offset and rotation) and which URDF joints and links carry the spec's
joint and link names. The first description whose names all exist in the URDF is used; a
URDF whose root link is the hand frame and whose names are the spec's needs none. Binding
checks limits (to LIMIT_TOLERANCE) and, by forward kinematics at the zero pose, that the
frame is right: fingers along +x, index on the +y side, the palm in the xy plane.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from hand_pose_ros.keypoints import CANONICAL, FINGERS
from hand_pose_ros.retarget.urdf import Urdf, UrdfError, pose_matrix, read_urdf

JOINT_GROUPS = FINGERS + ("wrist",)  # which part of the hand a robot joint belongs to
LONG_FINGERS = FINGERS[1:]
# Spec limits may exceed the URDF's by this much (rad): real files round limits differently
# (Shadow's 1.5708 vs pi/2), far below anything a joint controller resolves.
LIMIT_TOLERANCE = 1e-4

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
    """What dex-retargeting needs besides the URDF. Link names are the spec's: a URDF
    description maps them to the URDF's links (see UrdfDescription)."""
    wrist_link: str | None         # origin of the wrist vectors; None: the hand frame's origin
    fingertip_links: dict          # finger name -> link at that fingertip's surface
    scaling_factor: float          # robot size / human size, applied to human vectors
    # Extra vectors for the vector optimiser: ((human keypoint from, to), (robot link from, to)).
    vector_targets: tuple = ()
    rest_weights: dict = field(default_factory=dict)  # joint -> w: + w (q - safe)^2 in the objective

    @property
    def links(self) -> tuple:
        """Every link name this section uses, without repeats."""
        names = [*self.fingertip_links.values(), *(link for _, pair in self.vector_targets for link in pair)]
        if self.wrist_link is not None:
            names.append(self.wrist_link)
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class UrdfDescription:
    """How one family of URDFs names and places this hand (an entry of urdf_descriptions)."""
    label: str
    frame_link: str | None   # the link the hand frame is fixed to; None: the URDF's root link
    frame: np.ndarray        # 4x4 pose of the hand frame in frame_link
    joints: dict             # spec joint name -> URDF joint name, where they differ
    links: dict              # spec link name -> (URDF link, xyz offset [3] in that link's frame)
    prefix: tuple = ("", "")  # (spec, URDF): other names starting with the first get the second instead

    def _renamed(self, name: str) -> str:
        spec_prefix, urdf_prefix = self.prefix
        return urdf_prefix + name[len(spec_prefix):] if name.startswith(spec_prefix) else name

    def joint(self, name: str) -> str:
        return self.joints.get(name) or self._renamed(name)

    def link(self, name: str) -> tuple:
        return self.links.get(name) or (self._renamed(name), np.zeros(3))


# A URDF written for the spec: its root link is the hand frame and it uses the spec's names.
AS_IS = UrdfDescription("the URDF as it is (root link = hand frame, the spec's names)", None, np.eye(4), {}, {})


@dataclass(frozen=True)
class UrdfBinding:
    """A spec bound to one URDF file: the names, frame and held joints, all checked."""
    urdf: Urdf
    description: UrdfDescription
    spec_joints: tuple       # spec joint names, in spec order
    joint_names: dict        # spec joint -> URDF joint
    links: dict              # spec link -> (URDF link, xyz offset in it)
    frame_link: str
    frame: np.ndarray        # 4x4, hand frame in frame_link
    held: dict               # URDF joint -> value, for the joints the optimiser never moves

    @property
    def optimised_joints(self) -> tuple:
        """URDF names of the joints retargeting moves (the spec's joints minus the held wrist)."""
        return tuple(self.joint_names[n] for n in self.spec_joints if self.joint_names[n] not in self.held)

    def _poses(self, q) -> dict:
        values = dict(zip((self.joint_names[n] for n in self.spec_joints), np.asarray(q, dtype=np.float64)))
        values.update(self.held)
        return self.urdf.link_poses(values)

    def hand_frame_in_root(self) -> np.ndarray:
        """4x4 pose of the hand frame in the URDF root frame (constant: only held or fixed
        joints lie between the two, checked at binding)."""
        return self.urdf.link_poses(self.held)[self.frame_link] @ self.frame

    def link_positions(self, q, links) -> np.ndarray:
        """[L, 3] metres in the hand frame, spec joint angles q [N] (numpy FK, no pinocchio)."""
        poses = self._poses(q)
        to_hand = np.linalg.inv(poses[self.frame_link] @ self.frame)
        points = []
        for name in links:
            link, offset = self.links[name]
            points.append((to_hand @ poses[link] @ np.append(offset, 1.0))[:3])
        return np.array(points)


@dataclass(frozen=True)
class RobotHandSpec:
    name: str
    description: str
    joints: tuple
    command_offset: np.ndarray     # [N] added for driver adapters (LEAP: +pi)
    analytic: dict                 # joint name -> {feature: gain, "offset": rad}
    urdf: Path | None              # the bound URDF file (robot.urdf.path), if any
    optimization: OptimizationSpec | None
    source: Path = field(compare=False)
    robot: UrdfBinding | None = field(default=None, compare=False)
    descriptions: tuple = field(default=(), compare=False)   # UrdfDescription, tried in order

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


def load_hand_spec(name_or_path, urdf=None) -> RobotHandSpec:
    """A spec by name ('leap' -> config/hands/leap.yaml) or by path to a YAML file, bound to
    the URDF file `urdf` when given (a user's or manufacturer's) instead of the spec's own."""
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
    spec = _parse(data, path)
    if urdf is not None:
        urdf = Path(urdf).expanduser()
        if not urdf.is_file():
            raise SpecError(f"{path}: urdf {str(urdf)!r} not found")
        spec = bind_urdf(spec, urdf)
    return spec


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
        urdf = (path.parent / Path(str(data["urdf"])).expanduser()).resolve()
        if not urdf.is_file():
            raise SpecError(f"{path}: urdf {data['urdf']!r} not found (looked for {urdf})")

    # Without a URDF the section waits for one (load_hand_spec(..., urdf=) or check-hand --urdf).
    optimization = None
    if data.get("optimization") is not None:
        optimization = _parse_optimization(data["optimization"], path)
        unknown = sorted(set(optimization.rest_weights) - {j.name for j in joints})
        if unknown:
            raise SpecError(f"{path}: optimization.rest_weights names joints {unknown} that are not in 'joints'")

    spec = RobotHandSpec(name=str(data["name"]), description=str(data.get("description", "")),
                         joints=tuple(joints), command_offset=offset, analytic=analytic,
                         urdf=None, optimization=optimization, source=path,
                         descriptions=_parse_descriptions(data.get("urdf_descriptions"), path))
    return spec if urdf is None else bind_urdf(spec, urdf)


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


def _parse_optimization(raw, path: Path) -> OptimizationSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: 'optimization' must be a mapping")
    for key in ("fingertip_links", "scaling_factor"):
        if key not in raw:
            raise SpecError(f"{path}: optimization is missing {key!r}")
    tips = raw["fingertip_links"]
    if not isinstance(tips, dict) or len(tips) < 2 or set(tips) - set(FINGERS):
        raise SpecError(f"{path}: optimization.fingertip_links must map 2-5 of {FINGERS} to link "
                        f"names, got {tips!r}")
    # dex-retargeting's DexPilot pairs fingers in thumb-first order, as MediaPipe numbers them.
    tips = {f: str(tips[f]) for f in FINGERS if f in tips}
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
        extra.append((human, robot))
    scale = _number(raw["scaling_factor"], "optimization.scaling_factor", path)
    if scale <= 0:
        raise SpecError(f"{path}: optimization.scaling_factor must be > 0, got {scale}")
    wrist = raw.get("wrist_link")
    rest = raw.get("rest_weights") or {}
    if not isinstance(rest, dict):
        raise SpecError(f"{path}: optimization.rest_weights must map joint names to weights, got {rest!r}")
    rest = {str(k): _number(v, f"optimization.rest_weights[{k!r}]", path) for k, v in rest.items()}
    if any(v < 0 for v in rest.values()):
        raise SpecError(f"{path}: optimization.rest_weights must be >= 0, got {rest}")
    return OptimizationSpec(None if wrist is None else str(wrist), tips, scale, tuple(extra), rest)


def _vector(value, n: int, where: str, path: Path) -> np.ndarray:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise SpecError(f"{path}: {where} must be a list of {n} numbers, got {value!r}")
    return np.array([_number(v, where, path) for v in value])


def _parse_descriptions(raw, path: Path) -> tuple:
    """urdf_descriptions: [{label, frame: {link, xyz, rpy}, joints: {spec: urdf},
    links: {spec: urdf | {link, xyz}}, prefix: [spec, urdf]}], tried in order, then AS_IS."""
    if raw is None:
        return (AS_IS,)
    if not isinstance(raw, list):
        raise SpecError(f"{path}: urdf_descriptions must be a list, got {type(raw).__name__}")
    parsed = []
    for i, entry in enumerate(raw):
        where = f"urdf_descriptions[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("frame", {}), dict):
            raise SpecError(f"{path}: {where} must be a mapping with a 'frame' mapping, got {entry!r}")
        unknown = sorted(set(entry) - {"label", "frame", "joints", "links", "prefix"})
        if unknown:
            raise SpecError(f"{path}: {where} has unknown keys {unknown}")
        frame = entry.get("frame", {})
        pose = pose_matrix(_vector(frame.get("xyz", [0, 0, 0]), 3, f"{where}.frame.xyz", path),
                           _vector(frame.get("rpy", [0, 0, 0]), 3, f"{where}.frame.rpy", path))
        links = {}
        for name, target in (entry.get("links") or {}).items():
            if isinstance(target, str):
                links[str(name)] = (target, np.zeros(3))
            elif isinstance(target, dict) and isinstance(target.get("link"), str):
                links[str(name)] = (target["link"], _vector(target.get("xyz", [0, 0, 0]), 3,
                                                             f"{where}.links.{name}.xyz", path))
            else:
                raise SpecError(f"{path}: {where}.links.{name} must be a link name or {{link, xyz}}, "
                                f"got {target!r}")
        prefix = entry.get("prefix", ["", ""])
        if not (isinstance(prefix, list) and len(prefix) == 2 and all(isinstance(p, str) for p in prefix)):
            raise SpecError(f"{path}: {where}.prefix must be [spec prefix, URDF prefix], got {prefix!r}")
        joints = entry.get("joints") or {}
        if not isinstance(joints, dict):
            raise SpecError(f"{path}: {where}.joints must map spec joint names to URDF joint names")
        parsed.append(UrdfDescription(str(entry.get("label", where)), frame.get("link"), pose,
                                      {str(k): str(v) for k, v in joints.items()}, links, tuple(prefix)))
    return (*parsed, AS_IS)


def _names_missing(spec: RobotHandSpec, description: UrdfDescription, urdf: Urdf) -> list:
    """The spec names this description leaves without a URDF joint or link ([] = it fits)."""
    movable = set(urdf.movable)
    links = set(urdf.links)
    missing = [f"joint {description.joint(n)!r}" for n in spec.joint_names if description.joint(n) not in movable]
    if description.frame_link is not None and description.frame_link not in links:
        missing.append(f"frame link {description.frame_link!r}")
    used = spec.optimization.links if spec.optimization is not None else ()
    missing += [f"link {description.link(n)[0]!r}" for n in used if description.link(n)[0] not in links]
    return missing


def bind_urdf(spec: RobotHandSpec, urdf_path) -> RobotHandSpec:
    """The spec bound to a URDF file through the first of its descriptions that fits, with
    limits, held joints and the hand frame checked. SpecError names the spec and the URDF."""
    path = spec.source
    try:
        urdf = read_urdf(urdf_path)
    except UrdfError as e:
        raise SpecError(f"{path}: {e}") from None
    tried = []
    for description in spec.descriptions:
        missing = _names_missing(spec, description, urdf)
        if not missing:
            break
        tried.append(f"{description.label}: no {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
    else:
        raise SpecError(f"{path}: no urdf description fits {urdf.path.name}; " + "; ".join(tried))

    joint_names = {n: description.joint(n) for n in spec.joint_names}
    for joint in spec.joints:
        element = urdf.joints[joint_names[joint.name]]
        if joint.lower < element.lower - LIMIT_TOLERANCE or joint.upper > element.upper + LIMIT_TOLERANCE:
            raise SpecError(f"{path}: joint {joint.name!r} limits [{joint.lower}, {joint.upper}] "
                            f"exceed the URDF's [{element.lower}, {element.upper}] ({urdf.path.name}, "
                            f"joint {element.name!r}; tolerance {LIMIT_TOLERANCE} rad)")
        if element.mimic is not None:
            raise SpecError(f"{path}: joint {element.name!r} of {urdf.path.name} mimics {element.mimic!r}: "
                            "list only independent joints in a spec")
    # Held still: the wrist (the target is palm-relative, it says nothing about the wrist) at
    # its safe pose, and URDF joints the spec does not command at 0 (clipped to their limits).
    held = {joint_names[j.name]: j.safe for j in spec.joints if j.group == "wrist"}
    commanded = set(joint_names.values())
    for name in urdf.movable:
        if name not in commanded:
            element = urdf.joints[name]
            held[name] = float(np.clip(0.0, element.lower, element.upper))
    frame_link = description.frame_link or urdf.root
    by_child = {j.child: j for j in urdf.joints.values()}
    link = frame_link
    while link != urdf.root:  # the hand frame must not move with a retargeted joint
        joint = by_child[link]
        if joint.type != "fixed" and joint.name not in held:
            raise SpecError(f"{path}: the hand frame's link {frame_link!r} moves with joint {joint.name!r} "
                            f"of {urdf.path.name}; fix the frame to a link before the finger joints")
        link = joint.parent
    used = spec.optimization.links if spec.optimization is not None else ()
    binding = UrdfBinding(urdf=urdf, description=description, spec_joints=spec.joint_names,
                          joint_names=joint_names, links={n: description.link(n) for n in used},
                          frame_link=frame_link, frame=description.frame, held=held)
    if spec.optimization is not None:
        _check_zero_pose(spec, binding)
    return replace(spec, urdf=urdf.path, robot=binding)


def _check_zero_pose(spec: RobotHandSpec, binding: UrdfBinding) -> None:
    """Forward kinematics at the zero pose (clipped to the limits), in the hand frame: a flat
    hand has its fingertips distal (+x) near the palm plane, ordered index to pinky along -y,
    and the thumb on the radial (+y) side of the ring or little finger."""
    tips = spec.optimization.fingertip_links
    zero = np.clip(0.0, spec.lower, spec.upper)
    where = (f"{spec.source}: {binding.description.label} with {binding.urdf.path.name}: at the zero pose "
             "the hand frame (frame: link, xyz, rpy) does not fit the robot:")
    position = dict(zip(tips, binding.link_positions(zero, list(tips.values()))))
    shown = {f: np.round(p * 1000).astype(int).tolist() for f, p in position.items()}
    long = [f for f in LONG_FINGERS if f in position]
    for finger in long:
        x, y, z = position[finger]
        if not (x > 0.04 and x > 2 * abs(z) and x > abs(y)):
            raise SpecError(f"{where} the {finger} tip is at {shown[finger]} mm; a straight finger must point "
                            f"along +x (distal), in the palm plane (xy). Tips: {shown}")
    ys = [position[f][1] for f in long]
    if any(a <= b for a, b in zip(ys, ys[1:])):
        raise SpecError(f"{where} the fingertips are not ordered index -> little finger along -y "
                        f"(y is radial, toward the thumb). Tips: {shown}")
    if "thumb" in position and long and position["thumb"][1] <= position[long[-1]][1]:
        raise SpecError(f"{where} the thumb tip is not on the radial (+y) side. Tips: {shown}")

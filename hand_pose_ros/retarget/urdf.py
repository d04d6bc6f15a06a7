"""A small URDF reader with numpy forward kinematics: enough to check a robot hand spec
against any manufacturer's URDF at load time without pinocchio (kinematics only: links,
joints, origins, axes, limits, mimic tags; visuals, collisions and meshes are ignored).

Also accepts files that real descriptions ship but strict XML parsers refuse: an XML
declaration after a leading comment (Shadow's xacro-generated sr_common files).
"""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MOVABLE_TYPES = ("revolute", "prismatic")  # what a spec joint may be (nq = 1 in pinocchio)
_XML_DECLARATION = re.compile(r"<\?xml[^>]*\?>")


class UrdfError(ValueError):
    """The file is not a URDF we can read (the message names the file and the problem)."""


def pose_matrix(xyz=(0.0, 0.0, 0.0), rpy=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 transform of a URDF origin: rotation Rz(yaw) Ry(pitch) Rx(roll), then translation."""
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    m = np.eye(4)
    m[:3, :3] = [[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                 [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                 [-sp, cp * sr, cp * cr]]
    m[:3, 3] = [float(v) for v in xyz]
    return m


def _axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix about a unit axis (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


@dataclass(frozen=True)
class UrdfJoint:
    name: str
    type: str
    parent: str
    child: str
    origin: np.ndarray      # 4x4, child joint frame in the parent link frame
    axis: np.ndarray        # unit vector in the joint frame
    lower: float            # -inf / inf where the file gives no limit
    upper: float
    mimic: str | None       # the joint this one mimics, if any

    def motion(self, q: float) -> np.ndarray:
        """4x4 transform the joint adds at position q."""
        m = np.eye(4)
        if self.type in ("revolute", "continuous"):
            m[:3, :3] = _axis_rotation(self.axis, q)
        elif self.type == "prismatic":
            m[:3, 3] = self.axis * q
        return m


@dataclass(frozen=True)
class Urdf:
    path: Path
    name: str
    text: str               # the XML text as parsed (declaration dropped), for pinocchio
    root: str               # the one link that is no joint's child
    links: tuple
    joints: dict            # name -> UrdfJoint, in file order

    @property
    def movable(self) -> tuple:
        """Names of the joints with one degree of freedom, in file order."""
        return tuple(n for n, j in self.joints.items() if j.type in MOVABLE_TYPES)

    def link_poses(self, q: dict | None = None) -> dict:
        """Every link's 4x4 pose in the root link frame, joints at q (name -> value; missing
        joints at 0)."""
        q = q or {}
        by_child = {j.child: j for j in self.joints.values()}
        poses = {self.root: np.eye(4)}

        def pose(link: str) -> np.ndarray:
            # Walk up to a known ancestor (URDF trees are shallow: no recursion limit issue).
            chain = []
            while link not in poses:
                chain.append(by_child[link])
                link = chain[-1].parent
            for joint in reversed(chain):
                poses[joint.child] = poses[joint.parent] @ joint.origin @ joint.motion(float(q.get(joint.name, 0.0)))
            return poses[chain[0].child] if chain else poses[link]

        for link in self.links:
            pose(link)
        return poses


def _floats(text, count: int, where: str, path: Path) -> list:
    try:
        values = [float(v) for v in (text or "").split()] if text is not None else [0.0] * count
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise UrdfError(f"{path}: {where} must be {count} finite numbers, got {text!r}")
    return values


def read_urdf(path) -> Urdf:
    path = Path(path).expanduser()
    if not path.is_file():
        raise UrdfError(f"URDF {path} does not exist")
    text = _XML_DECLARATION.sub("", path.read_text(errors="replace"), count=1)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise UrdfError(f"{path}: not valid XML: {e}") from None
    if root.tag != "robot":
        raise UrdfError(f"{path}: not a URDF (top element <{root.tag}>, expected <robot>)")
    links = tuple(link.get("name") for link in root.findall("link"))
    joints = {}
    for element in root.findall("joint"):
        name, kind = element.get("name"), element.get("type")
        where = f"joint {name!r}"
        parent, child = element.find("parent"), element.find("child")
        if parent is None or child is None:
            raise UrdfError(f"{path}: {where} needs <parent> and <child>")
        origin = element.find("origin")
        xyz = _floats(None if origin is None else origin.get("xyz"), 3, f"{where} origin xyz", path)
        rpy = _floats(None if origin is None else origin.get("rpy"), 3, f"{where} origin rpy", path)
        axis_element = element.find("axis")
        axis = np.array(_floats(None if axis_element is None else axis_element.get("xyz"), 3,
                                f"{where} axis", path)) if axis_element is not None else np.array([1.0, 0, 0])
        if kind in MOVABLE_TYPES + ("continuous",):
            norm = np.linalg.norm(axis)
            if norm < 1e-9:
                raise UrdfError(f"{path}: {where} has a zero axis")
            axis = axis / norm
        limit = element.find("limit")
        lower, upper = -math.inf, math.inf
        if kind in MOVABLE_TYPES:
            if limit is None or limit.get("lower") is None or limit.get("upper") is None:
                raise UrdfError(f"{path}: {where} ({kind}) has no <limit lower upper>")
            lower, upper = (_floats(limit.get(k), 1, f"{where} limit {k}", path)[0] for k in ("lower", "upper"))
        mimic = element.find("mimic")
        joints[name] = UrdfJoint(name, kind, parent.get("link"), child.get("link"), pose_matrix(xyz, rpy),
                                 axis, lower, upper, None if mimic is None else mimic.get("joint"))
    children = {j.child for j in joints.values()}
    unknown = sorted(({j.parent for j in joints.values()} | children) - set(links))
    if unknown:
        raise UrdfError(f"{path}: joints name links that the file does not define: {unknown}")
    roots = [link for link in links if link not in children]
    if len(roots) != 1:
        raise UrdfError(f"{path}: expected one root link, found {roots}")
    return Urdf(path=path.resolve(), name=str(root.get("name")), text=text, root=roots[0], links=links,
                joints=joints)

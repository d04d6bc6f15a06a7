"""An animated view of a session a person would rather watch than read: per frame, three
panels side by side,

  1. the depth frame, colour-mapped and cropped around the hand, with the estimated skeleton
     (finger colours) over the ground truth (thin white) where there is one;
  2. the 3D hand (estimate and truth, camera frame) from a fixed oblique viewpoint, over a
     floor grid with the hand's shadow for depth;
  3. the robot hand posed by the joint commands: forward kinematics of its URDF (the spec's
     bound URDF, through retarget/spec.py and retarget/urdf.py), links drawn as capsules
     coloured by finger, fingertips marked, from a fixed view.

Written as an animated GIF (Pillow) or, where an `ffmpeg` executable is on PATH, an MP4.
Drawing is Pillow only (no matplotlib, no display): about 20 ms per frame on the 2-core
development machine. Frames with no estimate, no command or NaNs still render, with a note
("no hand", "no command").

Use: build one `ViewFrame` per depth frame (from a recording, or live with
`frames_from_streams`), then `write_animation(frames, "out/session.gif", robot_hand="leap")`.
`render_frames` gives the same frames as RGB arrays (e.g. for a still in a report).
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import keypoints
from ..camera import Intrinsics
from ..retarget.spec import RobotHandSpec, load_hand_spec
from ..ros.launch_plan import ARGUMENTS as LAUNCH_ARGUMENTS
from ..ros.overlay import colourise_depth

DEFAULT_ROBOT_HAND = LAUNCH_ARGUMENTS["robot_hand"][0]
PANEL_PX = 320            # each panel is square
TITLE_PX = 26             # title bar above the panels
MAX_SECONDS = 10.0        # longer inputs are subsampled evenly to this many seconds of frames
SUFFIXES = (".gif", ".mp4")

# Depth panel: the crop is a square covering +-CROP_HALF_MM around the hand at its depth;
# colours span the hand's depth -NEAR_MM .. +FAR_MM (contrast on the hand, background dark).
CROP_HALF_MM = 170.0
NEAR_MM, FAR_MM = 150.0, 300.0
# 3D panel: a cube of this many mm fills the panel; the eye sits this far right of and above
# the camera's line of sight (enough parallax to read depth, close enough to match panel 1).
VIEW_SPAN_MM = 280.0
AZIMUTH_DEG, ELEVATION_DEG = 35.0, 22.0
GRID_MM = 50.0
MAX_RANGE_MM = 10_000.0       # keypoints farther out (or not in front of the camera) count as missing
CENTRE_SMOOTHING_FRAMES = 7   # moving average of the hand centre: the crop and 3D view do not jitter

BACKGROUND = (24, 26, 32)
TEXT = (235, 235, 235)
DIM_TEXT = (150, 155, 165)
WARNING = (255, 170, 60)
TRUTH = (240, 240, 240)
GRID = (58, 62, 72)
SHADOW = (44, 47, 55)
EDGES = keypoints.edges(keypoints.CANONICAL)
FINGER_RGB = {name: tuple(int(round(255 * c)) for c in rgb) for name, rgb in keypoints.FINGER_COLOURS.items()}
JOINT_RGB = [FINGER_RGB[keypoints.finger_of(n)] for n in keypoints.CANONICAL]


@dataclass
class ViewFrame:
    depth_mm: np.ndarray            # [H, W] float32 millimetres, 0 = no reading
    intrinsics: Intrinsics          # of that frame
    keypoints_mm: np.ndarray | None  # [21, 3] estimate, camera frame, mm, keypoints.CANONICAL order
    truth_mm: np.ndarray | None     # [21, 3] ground truth, same frame and order, or None
    joint_names: list[str] | None   # the robot joint command answering this frame
    joint_positions: np.ndarray | None
    stamp_s: float


# ---------------------------------------------------------------- input checks
def _keypoint_array(value, what: str, index: int) -> np.ndarray | None:
    if value is None:
        return None
    array = np.array(value, dtype=np.float64)  # a copy: missing points become NaN here
    if array.shape != (len(keypoints.CANONICAL), 3):
        raise ValueError(f"frame {index}: {what} must be [{len(keypoints.CANONICAL)}, 3] (mm, "
                         f"keypoints.CANONICAL order), got shape {array.shape}")
    with np.errstate(invalid="ignore"):
        implausible = ~((np.abs(array) < MAX_RANGE_MM).all(axis=1) & (array[:, 2] > 1.0))
    array[implausible] = np.nan   # behind the camera, beyond any sensor, NaN: missing, not drawn
    return None if implausible.all() else array


def _checked(frames: Sequence[ViewFrame]) -> list[ViewFrame]:
    """Copies with arrays of the right dtype; ValueError naming the frame for a wrong shape."""
    if frames is None or len(frames) == 0:
        raise ValueError("no frames to animate (the frame list is empty)")
    out = []
    for i, frame in enumerate(frames):
        if not isinstance(frame, ViewFrame):
            raise ValueError(f"frame {i}: expected a ViewFrame, got {type(frame).__name__}")
        if not isinstance(frame.intrinsics, Intrinsics):
            raise ValueError(f"frame {i}: intrinsics must be a hand_pose_ros.camera.Intrinsics, "
                             f"got {type(frame.intrinsics).__name__}")
        depth = frame.depth_mm
        if depth is not None:
            depth = np.asarray(depth, dtype=np.float32)
            if depth.ndim != 2 or depth.size == 0:
                raise ValueError(f"frame {i}: depth_mm must be a 2-D [H, W] image, got shape {depth.shape}")
        positions = frame.joint_positions
        if positions is not None:
            positions = np.asarray(positions, dtype=np.float64).ravel()
        names = None if frame.joint_names is None else [str(n) for n in frame.joint_names]
        if names is not None and positions is not None and len(names) != len(positions):
            raise ValueError(f"frame {i}: {len(names)} joint names but {len(positions)} joint positions")
        try:
            stamp = float(frame.stamp_s) if frame.stamp_s is not None else math.nan
        except (TypeError, ValueError):
            raise ValueError(f"frame {i}: stamp_s must be a number of seconds, got {frame.stamp_s!r}") from None
        out.append(ViewFrame(depth, frame.intrinsics, _keypoint_array(frame.keypoints_mm, "keypoints_mm", i),
                             _keypoint_array(frame.truth_mm, "truth_mm", i), names, positions, stamp))
    return out


def subsample(frames: Sequence, fps: float, max_seconds: float = MAX_SECONDS) -> list:
    """At most max_seconds * fps frames, picked evenly (first and last kept)."""
    limit = max(1, int(round(max_seconds * fps)))
    if len(frames) <= limit:
        return list(frames)
    picks = np.round(np.linspace(0, len(frames) - 1, limit)).astype(int)
    return [frames[i] for i in picks]


# ---------------------------------------------------------------- a tiny 3D painter
class _View:
    """Orthographic projection: `toward_viewer` is the direction from the scene to the eye,
    `up` the world direction that is up on screen; `centre` lands mid-panel at `scale` px
    per world unit."""

    def __init__(self, toward_viewer, up, centre, scale: float, size: int = PANEL_PX):
        back = np.asarray(toward_viewer, dtype=np.float64)
        back = back / np.linalg.norm(back)
        right = np.cross(up, back)
        right = right / np.linalg.norm(right)
        self.rotation = np.stack([right, np.cross(back, right), back])  # rows: right, up, toward the eye
        self.centre = np.asarray(centre, dtype=np.float64)
        self.scale = float(scale)
        self.size = size

    def project(self, points) -> tuple[np.ndarray, np.ndarray]:
        """[N, 3] world -> ([N, 2] pixels, [N] nearness: larger is closer to the eye)."""
        local = (np.asarray(points, dtype=np.float64) - self.centre) @ self.rotation.T
        uv = np.stack([self.size / 2 + self.scale * local[:, 0], self.size / 2 - self.scale * local[:, 1]], axis=1)
        return uv, local[:, 2]


_FAR_PX = 1e5  # beyond this a point is off any panel (and too big for Pillow's integer coordinates)


def _finite(*points) -> bool:
    """Drawable: finite and within reach of the panel."""
    return all(np.isfinite(p).all() and np.abs(p).max() < _FAR_PX for p in map(np.asarray, points))


class _Painter:
    """Collects segments and discs with a nearness, then paints far to near."""

    def __init__(self):
        self.items = []

    def segment(self, a, b, near: float, colour, width: float, outline=None, outline_px: float = 0.0) -> None:
        if _finite(a, b) and math.isfinite(near):
            self.items.append((near, 0, (tuple(a), tuple(b), colour, width, outline, outline_px)))

    def disc(self, centre, near: float, colour, radius: float, outline=None) -> None:
        if _finite(centre) and math.isfinite(near):
            self.items.append((near, 1, (tuple(centre), colour, radius, outline)))

    def polygon(self, points, near: float, colour) -> None:
        if len(points) >= 3 and _finite(points) and math.isfinite(near):
            self.items.append((near, -1, ([tuple(p) for p in points], colour)))

    def paint(self, draw) -> None:
        for _, kind, args in sorted(self.items, key=lambda item: (item[0], item[1])):
            if kind == 0:
                a, b, colour, width, outline, outline_px = args
                if outline is not None:
                    _capsule(draw, a, b, outline, width + 2 * outline_px)
                _capsule(draw, a, b, colour, width)
            elif kind == 1:
                centre, colour, radius, outline = args
                _dot(draw, centre, radius, colour, outline)
            else:
                points, colour = args
                draw.polygon(points, fill=colour)


def _capsule(draw, a, b, colour, width: float) -> None:
    """A line with round ends (ImageDraw's own joints leave square ends)."""
    width = max(1, int(round(width)))
    draw.line([a, b], fill=colour, width=width)
    if width > 2:
        for p in (a, b):
            _dot(draw, p, width / 2 - 0.5, colour)


def _dot(draw, centre, radius: float, colour, outline=None) -> None:
    u, v = centre
    draw.ellipse([u - radius, v - radius, u + radius, v + radius], fill=colour,
                 outline=outline, width=1 if outline is not None else 0)


def _shade(colour, factor: float) -> tuple:
    return tuple(int(max(0, min(255, round(c * factor)))) for c in colour)


# ---------------------------------------------------------------- fonts and text
_FONTS: dict[int, object] = {}


def _font(size: int):
    if size not in _FONTS:
        from PIL import ImageFont
        try:
            _FONTS[size] = ImageFont.load_default(size=size)
        except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
            _FONTS[size] = ImageFont.load_default()
    return _FONTS[size]


def _label(draw, xy, text: str, colour=TEXT, size: int = 13, anchor: str = "la") -> None:
    draw.text(xy, text, fill=colour, font=_font(size), anchor=anchor, stroke_width=2, stroke_fill=BACKGROUND)


# ---------------------------------------------------------------- hand centre over time
def _hand_points(frame: ViewFrame) -> np.ndarray | None:
    """The finite keypoints the views centre on: the estimate's, else the truth's."""
    for points in (frame.keypoints_mm, frame.truth_mm):
        if points is not None:
            finite = points[np.isfinite(points).all(axis=1)]
            if len(finite):
                return finite
    return None


def _smoothed_centres(frames: list[ViewFrame]) -> list[np.ndarray | None]:
    """Per frame, the hand centre (mm, camera frame) averaged over nearby frames that have a
    hand; frames without one take the nearest frame's. None when no frame has a hand."""
    raw = [None if (p := _hand_points(f)) is None else p.mean(axis=0) for f in frames]
    have = [i for i, c in enumerate(raw) if c is not None]
    if not have:
        return [None] * len(frames)
    half = CENTRE_SMOOTHING_FRAMES // 2
    out = []
    for i in range(len(frames)):
        near = [j for j in have if abs(j - i) <= half] or [min(have, key=lambda j: abs(j - i))]
        out.append(np.mean([raw[j] for j in near], axis=0))
    return out


# ---------------------------------------------------------------- panel 1: depth
def _project(points_mm: np.ndarray, cam: Intrinsics) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        uv = cam.xyz_to_uvd(points_mm)[:, :2]
    uv[~(points_mm[:, 2] > 1.0)] = np.nan
    return uv


def _skeleton_2d(draw, uv: np.ndarray, colours, width: float, outline=None, radius: float = 0.0) -> None:
    for a, b in EDGES:
        if _finite(uv[a], uv[b]):
            colour = colours if isinstance(colours, tuple) else colours[b]
            if outline is not None:
                _capsule(draw, tuple(uv[a]), tuple(uv[b]), outline, width + 2)
            _capsule(draw, tuple(uv[a]), tuple(uv[b]), colour, width)
    if radius > 0:
        for j, p in enumerate(uv):
            if _finite(p):
                _dot(draw, tuple(p), radius, colours if isinstance(colours, tuple) else colours[j], outline)


def _mean_error_mm(frame: ViewFrame) -> float | None:
    if frame.keypoints_mm is None or frame.truth_mm is None:
        return None
    errors = np.linalg.norm(frame.keypoints_mm - frame.truth_mm, axis=1)
    errors = errors[np.isfinite(errors)]
    return float(errors.mean()) if errors.size else None


def depth_panel(frame: ViewFrame, centre_mm: np.ndarray | None, size: int = PANEL_PX):
    """The depth crop around the hand with the skeletons, as a Pillow image."""
    from PIL import Image, ImageDraw

    depth, cam = frame.depth_mm, frame.intrinsics
    if depth is None:
        image = Image.new("RGB", (size, size), BACKGROUND)
        draw = ImageDraw.Draw(image)
        _label(draw, (size / 2, size / 2), "no depth image", WARNING, 15, "mm")
        _label(draw, (8, 6), "depth + skeleton")
        return image
    height, width = depth.shape
    if centre_mm is not None and centre_mm[2] > 1.0:
        u, v = _project(centre_mm[None], cam)[0]
        half = max(8.0, cam.fx * CROP_HALF_MM / centre_mm[2])
        near, far = max(centre_mm[2] - NEAR_MM, 1.0), centre_mm[2] + FAR_MM
    else:  # no hand anywhere: the whole frame, squared around its middle
        u, v, half = width / 2, height / 2, max(width, height) / 2
        valid = depth[::4, ::4]
        valid = valid[np.isfinite(valid) & (valid > 0)]
        near, far = np.percentile(valid, [1, 99]) if valid.size else (0.0, 1.0)
        far = max(far, near + 1.0)
    left, top, side = int(round(u - half)), int(round(v - half)), max(2, int(round(2 * half)))
    crop = np.zeros((side, side), dtype=np.float32)  # zero padding beyond the frame's edge
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + side, width), min(top + side, height)
    if x1 > x0 and y1 > y0:
        crop[y0 - top:y1 - top, x0 - left:x1 - left] = depth[y0:y1, x0:x1]
    rgb = colourise_depth(crop, float(near), float(far))
    image = Image.fromarray(rgb).resize((size, size), Image.Resampling.NEAREST if side < size else
                                        Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    zoom = size / side

    def to_panel(points_mm):
        return (_project(points_mm, cam) - np.array([left, top])) * zoom

    if frame.truth_mm is not None:
        _skeleton_2d(draw, to_panel(frame.truth_mm), TRUTH, 2, radius=2)
    if frame.keypoints_mm is not None:
        _skeleton_2d(draw, to_panel(frame.keypoints_mm), JOINT_RGB, 4, outline=(0, 0, 0), radius=3.5)
    _label(draw, (8, 6), "depth + skeleton")
    notes = []
    if frame.keypoints_mm is None:
        notes.append(("no hand", WARNING))
    error = _mean_error_mm(frame)
    if error is not None:
        notes.append((f"error {error:.1f} mm", TEXT))
    legend = [text for text, shown in (("estimate: colour", frame.keypoints_mm is not None),
                                       ("truth: white", frame.truth_mm is not None)) if shown]
    if legend:
        notes.append((", ".join(legend), DIM_TEXT))
    for k, (text, colour) in enumerate(reversed(notes)):
        _label(draw, (8, size - 8 - 17 * k), text, colour, 13, "ld")
    return image


# ---------------------------------------------------------------- panel 2: 3D hand
def _camera_view(centre_mm: np.ndarray, size: int) -> _View:
    """Camera frame (x right, y down, z away): up is -y; the eye sits on the camera's side of
    the hand, turned AZIMUTH_DEG to the right and ELEVATION_DEG up."""
    az, el = math.radians(AZIMUTH_DEG), math.radians(ELEVATION_DEG)
    toward_viewer = np.array([math.sin(az) * math.cos(el), -math.sin(el), -math.cos(az) * math.cos(el)])
    return _View(toward_viewer, np.array([0.0, -1.0, 0.0]), centre_mm, size / VIEW_SPAN_MM, size)


def hand_3d_panel(frame: ViewFrame, centre_mm: np.ndarray | None, size: int = PANEL_PX):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    centre = np.array([0.0, 0.0, 500.0]) if centre_mm is None else centre_mm
    view = _camera_view(centre, size)
    painter = _Painter()
    floor_y = centre[1] + 0.36 * VIEW_SPAN_MM   # below the hand (camera y points down)
    half = GRID_MM * round(0.5 * VIEW_SPAN_MM / GRID_MM)   # whole grid squares
    ticks = np.arange(-half, half + 1e-6, GRID_MM)
    for t in ticks:  # a floor grid in x-z under the hand
        for a, b in (((centre[0] + t, floor_y, centre[2] - half), (centre[0] + t, floor_y, centre[2] + half)),
                     ((centre[0] - half, floor_y, centre[2] + t), (centre[0] + half, floor_y, centre[2] + t))):
            (pa, pb), _ = view.project(np.array([a, b]))
            painter.segment(pa, pb, -1e9, GRID, 1)
    hands = [(frame.truth_mm, True), (frame.keypoints_mm, False)]
    for points, is_truth in hands:
        if points is None:
            continue
        shadow = points.copy()
        shadow[:, 1] = floor_y
        uv_shadow, _ = view.project(shadow)
        uv, nearness = view.project(points)
        for a, b in EDGES:
            painter.segment(uv_shadow[a], uv_shadow[b], -1e8, SHADOW, 5 if not is_truth else 2)
            near = 0.5 * (nearness[a] + nearness[b])
            if is_truth:
                painter.segment(uv[a], uv[b], near + 0.01, TRUTH, 2)
            else:
                painter.segment(uv[a], uv[b], near, FINGER_RGB[keypoints.finger_of(keypoints.CANONICAL[b])], 5,
                                outline=(0, 0, 0), outline_px=1)
        if not is_truth:
            for j in range(len(uv)):
                painter.disc(uv[j], nearness[j] + 0.02, JOINT_RGB[j], 3.5, outline=(0, 0, 0))
    painter.paint(draw)
    _label(draw, (8, 6), "3D hand (camera frame)")
    _label(draw, (size - 8, 6), f"grid {GRID_MM:.0f} mm", DIM_TEXT, 11, "ra")
    if frame.keypoints_mm is None:
        _label(draw, (8, size - 8), "no hand" + (" (truth only)" if frame.truth_mm is not None else ""),
               WARNING, 13, "ld")
    return image


# ---------------------------------------------------------------- panel 3: the robot hand
class RobotHandView:
    """Forward kinematics of a robot hand spec's bound URDF for drawing: link origins in the
    hand frame (retarget/hand_frame.py: x distal, y radial, z dorsal, metres), each link
    coloured by the finger its spec joint belongs to, fingertips from the spec's
    optimization.fingertip_links (else the URDF's leaf links)."""

    LINK_RADIUS_M = 0.009

    def __init__(self, spec: RobotHandSpec, size: int = PANEL_PX):
        self.spec = spec
        self.size = size
        self.binding = spec.robot
        if self.binding is None:
            return
        urdf = self.binding.urdf
        self.joints = list(urdf.joints.values())
        group_of_joint = {self.binding.joint_names[j.name]: j.group for j in spec.joints}
        children = {}
        for joint in self.joints:
            children.setdefault(joint.parent, []).append(joint)
        self.group = {urdf.root: "palm"}
        stack = [urdf.root]
        while stack:  # a link belongs to the nearest spec joint above it (the wrist counts as palm)
            link = stack.pop()
            for joint in children.get(link, []):
                group = group_of_joint.get(joint.name, self.group[link])
                self.group[joint.child] = "palm" if group == "wrist" else group
                stack.append(joint.child)
        tip_links = spec.optimization.fingertip_links if spec.optimization is not None else {}
        if tip_links and all(name in self.binding.links for name in tip_links.values()):
            self.tips = [(finger, self.binding.links[name]) for finger, name in tip_links.items()]
        else:
            self.tips = [(self.group[link], (link, np.zeros(3))) for link in urdf.links if link not in children]
        # Fingers are farthest out when straight: the zero pose bounds every pose's drawing.
        zero = self.positions(np.clip(0.0, spec.lower, spec.upper))
        points = np.concatenate([zero["links"], zero["tips"]])
        lo, hi = points.min(axis=0), points.max(axis=0)
        self.centre = 0.5 * (lo + hi)
        reach = np.linalg.norm(points - self.centre, axis=1).max() + self.LINK_RADIUS_M
        # Look at the palm, fingers up, turned toward the thumb side and tilted from the
        # fingertips' end: flexion (toward -z, the palm) curls toward the eye, a pinch shows.
        self.view = _View(np.array([0.3, 0.5, -1.0]), np.array([1.0, 0.0, 0.0]), self.centre,
                          0.44 * size / reach, size)

    def command_values(self, names, positions) -> tuple[np.ndarray, list[str], int]:
        """(spec-ordered angles, notes, how many joints the command set) from a command (names
        may be spec or URDF joint names; no names: spec order). Joints it lacks or gives as
        NaN stay at their safe pose."""
        spec = self.spec
        q = spec.safe_pose.copy()
        notes = []
        if positions is None:
            return q, ["no command"], 0
        if names is None:
            if len(positions) != len(spec.joints):
                return q, [f"command has {len(positions)} values, {spec.name} has {len(spec.joints)} joints"], 0
            names = list(spec.joint_names)
        index = {n: i for i, n in enumerate(spec.joint_names)}
        index.update({self.binding.joint_names[n]: i for n, i in list(index.items())})
        unknown = [n for n in names if n not in index]
        given = 0
        for name, value in zip(names, positions):
            if name in index and math.isfinite(value):
                q[index[name]] = value
                given += 1
        if unknown:
            notes.append(f"{len(unknown)} unknown joint name{'s' if len(unknown) > 1 else ''} ({unknown[0]!r})")
        if given < len(spec.joints):
            notes.append(f"{len(spec.joints) - given}/{len(spec.joints)} joints not commanded: safe pose")
        return q, notes, given

    def positions(self, q) -> dict:
        """{'links': [L, 3] link origins, 'tips': [F, 3] fingertip points}, hand frame, metres."""
        binding = self.binding
        values = dict(zip((binding.joint_names[n] for n in binding.spec_joints), np.asarray(q, dtype=np.float64)))
        values.update(binding.held)
        poses = binding.urdf.link_poses(values)
        to_hand = np.linalg.inv(poses[binding.frame_link] @ binding.frame)
        links = np.array([(to_hand @ poses[link])[:3, 3] for link in binding.urdf.links])
        tips = np.array([(to_hand @ poses[link] @ np.append(offset, 1.0))[:3] for _, (link, offset) in self.tips])
        return {"links": links, "tips": tips}

    def panel(self, names, positions):
        from PIL import Image, ImageDraw

        size = self.size
        image = Image.new("RGB", (size, size), BACKGROUND)
        draw = ImageDraw.Draw(image)
        title = self.spec.description.split(",")[0] or self.spec.name
        _label(draw, (8, 6), f"robot: {title}")
        if self.binding is None:
            _label(draw, (size / 2, size / 2), f"{self.spec.name}: no URDF", WARNING, 15, "mm")
            _label(draw, (size / 2, size / 2 + 20), f"({self.spec.source.name} names none)", DIM_TEXT, 12, "mm")
            return image
        q, notes, given = self.command_values(names, positions)
        commanded = given > 0
        world = self.positions(q)
        uv, nearness = self.view.project(world["links"])
        tip_uv, tip_near = self.view.project(world["tips"])
        links = self.binding.urdf.links
        index = {link: i for i, link in enumerate(links)}
        painter = _Painter()
        width = 2 * self.LINK_RADIUS_M * self.view.scale
        factor = 1.0 if commanded else 0.45   # no command: a ghost at the safe pose
        palm = [index[j.child] for j in self.joints if self.group.get(j.child) != "palm"
                and self.group.get(j.parent) == "palm"] + [index[self.binding.urdf.root]]
        hull = _convex_hull(uv[palm])
        painter.polygon(hull, float(np.mean(nearness[palm])) - 0.05, _shade(FINGER_RGB["palm"], 0.55 * factor))
        for joint in self.joints:
            a, b = index[joint.parent], index[joint.child]
            if np.linalg.norm(world["links"][a] - world["links"][b]) < 1e-3:
                continue   # a joint with no length (two joints at one point)
            colour = FINGER_RGB[self.group.get(joint.child, "palm")]
            near = 0.5 * (nearness[a] + nearness[b])
            # nearer links a little brighter: depth you can read without perspective
            painter.segment(uv[a], uv[b], near, _shade(colour, factor * (0.85 + 2.0 * near)), width,
                            outline=(10, 10, 12), outline_px=1)
        for k, (finger, _) in enumerate(self.tips):
            painter.disc(tip_uv[k], tip_near[k] + 1.0, _shade((255, 255, 255), factor), 0.45 * width + 1,
                         outline=_shade(FINGER_RGB.get(finger, FINGER_RGB["palm"]), factor))
        painter.paint(draw)
        if positions is None:
            notes = ["no command (safe pose shown)"]
        for k, text in enumerate(reversed(notes)):
            _label(draw, (8, size - 8 - 17 * k), text, WARNING, 13, "ld")
        _label(draw, (size - 8, 24), "fingertips: white", DIM_TEXT, 11, "ra")
        return image


def _convex_hull(points: np.ndarray) -> list:
    """2-D convex hull (monotone chain), counter-clockwise, of the finite points."""
    pts = sorted({(float(u), float(v)) for u, v in points if math.isfinite(u) and math.isfinite(v)})
    if len(pts) < 3:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def robot_hand_view(robot_hand: str = DEFAULT_ROBOT_HAND, size: int = PANEL_PX) -> RobotHandView:
    """The drawing of a robot hand by name ('leap', 'allegro', ...) or spec path; SpecError
    (a ValueError) naming the known hands for an unknown name."""
    return RobotHandView(load_hand_spec(robot_hand), size)


# ---------------------------------------------------------------- frames and files
def render_frames(frames: Sequence[ViewFrame], robot_hand: str = DEFAULT_ROBOT_HAND, title: str = "",
                  fps: float = 10.0, progress: bool = True, size: int = PANEL_PX) -> list[np.ndarray]:
    """Each frame as an RGB array [TITLE_PX + size, 3 * size, 3] (depth | 3D hand | robot),
    after subsampling to MAX_SECONDS at fps (only the frames kept are checked)."""
    from PIL import Image, ImageDraw
    from tqdm import tqdm

    # Subsample first: checking copies arrays, and only the frames shown need it.
    frames = _checked(subsample(frames if frames is not None else [], fps))
    robot = robot_hand_view(robot_hand, size)
    centres = _smoothed_centres(frames)
    stamps = [f.stamp_s for f in frames if math.isfinite(f.stamp_s)]
    start = min(stamps) if stamps else 0.0
    out = []
    for i, (frame, centre) in enumerate(tqdm(list(zip(frames, centres)), desc="session view", unit="frame",
                                             disable=not progress, leave=False)):
        canvas = Image.new("RGB", (3 * size, TITLE_PX + size), BACKGROUND)
        canvas.paste(depth_panel(frame, centre, size), (0, TITLE_PX))
        canvas.paste(hand_3d_panel(frame, centre, size), (size, TITLE_PX))
        canvas.paste(robot.panel(frame.joint_names, frame.joint_positions), (2 * size, TITLE_PX))
        draw = ImageDraw.Draw(canvas)
        for k in (1, 2):  # thin separators between the panels
            draw.line([(k * size, TITLE_PX), (k * size, TITLE_PX + size)], fill=GRID, width=1)
        _label(draw, (8, TITLE_PX / 2), title or "hand_pose_ros session", TEXT, 14, "lm")
        clock = f"t = {frame.stamp_s - start:6.2f} s" if math.isfinite(frame.stamp_s) else "t = ?"
        _label(draw, (3 * size - 8, TITLE_PX / 2), f"{clock}   frame {i + 1}/{len(frames)}", DIM_TEXT, 13, "rm")
        out.append(np.asarray(canvas))
    return out


def _write_gif(images: list[np.ndarray], path: Path, fps: float) -> None:
    from PIL import Image

    # One palette for the whole animation (from a few frames side by side): no colour flicker
    # between frames, and mapping onto a fixed palette is much faster than one per frame.
    picks = sorted({0, len(images) // 2, len(images) - 1})
    sample = Image.fromarray(np.concatenate([images[i] for i in picks], axis=0))
    palette = sample.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    frames = [Image.fromarray(a).quantize(palette=palette, dither=Image.Dither.NONE) for a in images]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:],
                   duration=max(20, int(round(1000.0 / fps))), loop=0, optimize=False, disposal=1)


def _ffmpeg(path: Path) -> str:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError(f"cannot write {path}: MP4 needs an `ffmpeg` executable on PATH and there is none; "
                           "write a .gif instead")
    return ffmpeg


def _write_mp4(images: list[np.ndarray], path: Path, fps: float) -> None:
    ffmpeg = _ffmpeg(path)
    height, width = images[0].shape[:2]
    even_h, even_w = height - height % 2, width - width % 2   # H.264 with yuv420p needs even sizes
    command = [ffmpeg, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{even_w}x{even_h}", "-r", f"{fps:g}", "-i", "-", "-an", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", "-f", "mp4", str(path)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for image in images:
            process.stdin.write(np.ascontiguousarray(image[:even_h, :even_w]).tobytes())
        process.stdin.close()
    except BrokenPipeError:
        pass
    error = process.stderr.read().decode(errors="replace").strip()
    if process.wait() != 0:
        raise RuntimeError(f"ffmpeg could not write {path}: {error or f'exit status {process.returncode}'}")


def write_animation(frames: Sequence[ViewFrame], path, robot_hand: str = DEFAULT_ROBOT_HAND, fps: float = 10.0,
                    title: str = "", progress: bool = True) -> Path:
    """Render the frames (at most MAX_SECONDS of them at fps, subsampled evenly) and write an
    animated .gif, or .mp4 where ffmpeg is on PATH. The file appears only when complete
    (written under a temporary name, then renamed). Returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"cannot write {path}: unsupported file type {path.suffix or '(none)'!r}; "
                         f"use one of {', '.join(SUFFIXES)}")
    if suffix == ".mp4":
        _ffmpeg(path)   # before the rendering, not after
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    images = render_frames(frames, robot_hand, title, fps, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden name beside the target (same file system: the rename is atomic), created by the
    # writer with the usual permissions.
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.part{suffix}")
    try:
        (_write_gif if suffix == ".gif" else _write_mp4)(images, temporary, fps)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------- live collection (hand-pose demo)
def frames_from_streams(depth_mm: dict, intrinsics: Intrinsics, keypoints_mm: dict, truth_mm: dict | None = None,
                        commands: dict | None = None, command_slack_ns: int = 1_000_000,
                        depth_of=None) -> list[ViewFrame]:
    """ViewFrames from what a live subscriber collected, keyed by stamp in nanoseconds
    (conversions.stamp_key): one per depth frame, in stamp order.

    depth_mm: {stamp: [H, W] mm}; keypoints_mm / truth_mm: {stamp: [21, 3] mm} (matched
    exactly by stamp; a missing one is None); commands: {stamp: (joint names, positions)},
    each frame taking the newest command stamped at or before its own stamp plus
    command_slack_ns (the retarget node may bump a stamp by a few ns to keep them increasing).
    depth_of: turns a depth_mm value into [H, W] mm (e.g. conversions.image_msg_to_depth_mm,
    so a dict of sensor_msgs/Image can be passed as it was collected)."""
    truth_mm = truth_mm or {}
    commands = commands or {}
    command_stamps = np.array(sorted(commands), dtype=np.int64)
    frames = []
    for stamp in sorted(depth_mm):
        names = positions = None
        if command_stamps.size:
            k = int(np.searchsorted(command_stamps, stamp + command_slack_ns, side="right")) - 1
            if k >= 0:
                names, positions = commands[int(command_stamps[k])]
                names, positions = list(names), np.asarray(positions, dtype=np.float64)
        depth = depth_mm[stamp] if depth_of is None else depth_of(depth_mm[stamp])
        frames.append(ViewFrame(np.asarray(depth, dtype=np.float32), intrinsics,
                                keypoints_mm.get(stamp), truth_mm.get(stamp), names, positions, stamp * 1e-9))
    return frames

"""Draw a depth frame with the crop box and the hand skeleton, with numpy only (no OpenCV).

Used for the pose node's debug image and the demo report's PNG. No ROS imports.
"""
from __future__ import annotations

import functools
import sys

import numpy as np

from .. import keypoints

# Colour map anchors (near -> far): yellow, orange, magenta, blue, dark blue. Hand close to
# the camera reads warm, the background cold; invalid pixels (0) stay black.
_ANCHORS = np.array([[255, 235, 80], [250, 140, 30], [200, 40, 120], [60, 60, 200], [20, 20, 80]],
                    dtype=np.float64)
_LUT_SIZE = 256
# Entry 0 is black for invalid pixels; each RGB entry is packed into one uint32 (RGBA bytes)
# because a uint32 gather is several times faster than gathering [N, 3] rows.
_LUT_RGBA = np.zeros((_LUT_SIZE + 1, 4), dtype=np.uint8)
_LUT_RGBA[1:, :3] = np.stack([np.interp(np.linspace(0, 1, _LUT_SIZE), np.linspace(0, 1, len(_ANCHORS)),
                                        _ANCHORS[:, c]) for c in range(3)], axis=-1).astype(np.uint8)
_LUT_PACKED = _LUT_RGBA.view(np.uint32).ravel()  # [257]


def colourise_depth(depth_mm: np.ndarray, near_mm: float, far_mm: float) -> np.ndarray:
    """[H, W] depth (mm, 0 = invalid) -> [H, W, 3] uint8 RGB, near..far spread over the map."""
    if far_mm <= near_mm:
        raise ValueError(f"colour range far_mm={far_mm} must be above near_mm={near_mm}")
    depth = np.asarray(depth_mm)
    if depth.dtype == np.uint16:
        # whole millimetres (a 16UC1 camera): colour each of the 65,536 values once, then
        # look the frame up (the same colour per value as computing it per pixel)
        lut = _LUT_PACKED.take(_colour_index(np.arange(65536, dtype=np.float32), near_mm, far_mm))
        return _packed_to_rgb(lut.take(depth))
    return _packed_to_rgb(_LUT_PACKED.take(_colour_index(np.asarray(depth, dtype=np.float32), near_mm, far_mm)))


def _colour_index(depth: np.ndarray, near_mm: float, far_mm: float) -> np.ndarray:
    """float32 depths -> indices into _LUT_PACKED (0 = invalid)."""
    with np.errstate(invalid="ignore"):
        scaled = (depth - np.float32(near_mm)) * np.float32((_LUT_SIZE - 1) / (far_mm - near_mm))
        np.clip(scaled, 0, _LUT_SIZE - 1, out=scaled)  # NaN stays NaN, masked below
        invalid = ~(depth > 0) | ~np.isfinite(depth)
    scaled[invalid] = -1.0
    return (scaled + 1.0).astype(np.uint16)  # same shape, 0 = invalid


def _packed_to_rgb(packed: np.ndarray) -> np.ndarray:
    """[H, W] uint32 packed RGBA -> [H, W, 3] uint8 RGB. On a little-endian host, four pixels'
    RGB bytes are three uint32 words made by shifts: several times faster than copying
    every 3 of 4 bytes."""
    if sys.byteorder != "little" or packed.size % 4:
        return np.ascontiguousarray(packed.view(np.uint8).reshape(*packed.shape, 4)[..., :3])
    p = packed.reshape(-1, 4)
    words = np.empty((p.shape[0], 3), dtype=np.uint32)
    np.bitwise_or(p[:, 0], p[:, 1] << 24, out=words[:, 0])
    np.bitwise_or(p[:, 1] >> 8, p[:, 2] << 16, out=words[:, 1])
    np.bitwise_or(p[:, 2] >> 16, p[:, 3] << 8, out=words[:, 2])
    return words.view(np.uint8).reshape(*packed.shape, 3)


def _as_rgb255(colour) -> np.ndarray:
    colour = np.asarray(colour, dtype=np.float64)
    return np.round(colour * 255 if colour.max() <= 1.0 else colour).astype(np.uint8)


def _segment_points(p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """Integer pixels along the segment p0 -> p1 (both (u, v)): [steps, 2]."""
    return _segments_points(np.asarray(p0, dtype=np.float64)[None], np.asarray(p1, dtype=np.float64)[None])[0]


def _segments_points(p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixels along every segment p0[k] -> p1[k] ([S, 2] each, (u, v)) in one go:
    (points [N, 2], steps [S]: how many of them belong to each segment, in order). Segment k
    samples t = i / (steps - 1), i = 0..steps-1, steps = ceil(max |p1 - p0|) + 1, as
    np.linspace(0, 1, steps) does (its last t exactly 1)."""
    delta = p1 - p0                                                      # [S, 2]
    steps = np.ceil(np.abs(delta).max(axis=1)).astype(np.int64) + 1     # [S]
    segment = np.repeat(np.arange(len(steps)), steps)                   # [N]: which segment
    first = np.cumsum(steps) - steps
    i = np.arange(len(segment)) - first[segment]                        # index within the segment
    last = steps[segment] - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(last > 0, i * (1.0 / last), 0.0)
    t[i == last] = np.where(last[i == last] > 0, 1.0, 0.0)
    return np.round(p0[segment] + delta[segment] * t[:, None]).astype(np.int64), steps


def _drawable_points(points: np.ndarray, image: np.ndarray) -> np.ndarray:
    """_drawable for each row of points [N, 2] -> [N] bool."""
    limit = 2 * sum(image.shape[:2])
    with np.errstate(invalid="ignore"):
        return np.isfinite(points).all(axis=1) & (np.abs(points).max(axis=1) < limit)


@functools.lru_cache(maxsize=8)
def _finger_colours(names: tuple) -> np.ndarray:
    colours = np.stack([_as_rgb255(keypoints.colour_of(n)) for n in names])  # [J, 3]
    colours.flags.writeable = False
    return colours


def _drawable(p: np.ndarray, image: np.ndarray) -> bool:
    # Finite and not absurdly far outside (a wild point would make a huge segment).
    limit = 2 * sum(image.shape[:2])
    return bool(np.isfinite(p).all() and np.abs(p).max() < limit)


def draw_line(image: np.ndarray, p0, p1, colour, thickness: int = 1) -> None:
    """Draw a line segment in place, clipped to the image. Points are (u, v) pixels."""
    p0 = np.asarray(p0, dtype=np.float64)
    p1 = np.asarray(p1, dtype=np.float64)
    if _drawable(p0, image) and _drawable(p1, image):
        _stamp(image, _segment_points(p0, p1), _as_rgb255(colour)[None], thickness)


def draw_disc(image: np.ndarray, centre, radius: int, colour) -> None:
    """Filled disc in place, clipped to the image."""
    centre = np.asarray(centre, dtype=np.float64)
    if _drawable(centre, image):
        _stamp(image, np.round(centre[None]).astype(np.int64), _as_rgb255(colour)[None],
               2 * radius + 1, round_tip=True)


def draw_rectangle(image: np.ndarray, left: float, top: float, right: float, bottom: float,
                   colour, thickness: int = 1) -> None:
    corners = [(left, top), (right, top), (right, bottom), (left, bottom)]
    for a, b in zip(corners, corners[1:] + corners[:1]):
        draw_line(image, a, b, colour, thickness)


def _stamp(image: np.ndarray, points: np.ndarray, colours: np.ndarray, size: int,
           round_tip: bool = False) -> None:
    """Paint a size x size square (or disc) centred on each (u, v) of points [N, 2].

    colours: [N, 3] or [1, 3] uint8.
    """
    height, width = image.shape[:2]
    half = size // 2
    offsets = np.arange(-half, size - half)
    du, dv = np.meshgrid(offsets, offsets)
    if round_tip:
        keep = du ** 2 + dv ** 2 <= half ** 2 + half
        du, dv = du[keep], dv[keep]
    u = (points[:, 0:1] + du.ravel()[None]).ravel()  # [N * K]
    v = (points[:, 1:2] + dv.ravel()[None]).ravel()
    colours = np.broadcast_to(colours[:, None, :], (len(points), du.size, 3)).reshape(-1, 3)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    image[v[inside], u[inside]] = colours[inside]


def draw_skeleton(image: np.ndarray, uv: np.ndarray, names=keypoints.CANONICAL,
                  thickness: int = 2, joint_radius: int = 3) -> None:
    """Bones coloured by finger and a dot per joint, in place. uv: [J, 2] pixels in `names` order.

    Joints with non-finite coordinates are skipped.
    """
    names = tuple(names)
    uv = np.asarray(uv, dtype=np.float64)
    if uv.shape != (len(names), 2):
        raise ValueError(f"uv has shape {uv.shape}, expected ({len(names)}, 2) for the given names")
    colours = _finger_colours(names)                                    # [J, 3]
    drawable = _drawable_points(uv, image)
    # All bones in one stamp (one fancy-index write instead of one per bone).
    bones = [(a, b) for a, b in keypoints.edges(names) if drawable[a] and drawable[b]]
    if bones:
        a, b = np.array(bones).T
        points, steps = _segments_points(uv[a], uv[b])
        _stamp(image, points, np.repeat(colours[b], steps, axis=0), thickness)
    joints = np.flatnonzero(drawable)
    if joints.size:
        _stamp(image, np.round(uv[joints]).astype(np.int64), colours[joints], 2 * joint_radius + 1,
               round_tip=True)


def debug_overlay(depth_mm: np.ndarray, uv: np.ndarray | None = None, names=keypoints.CANONICAL,
                  box: tuple[float, float, float, float] | None = None,
                  depth_range_mm: tuple[float, float] | None = None) -> np.ndarray:
    """Colour-mapped depth with the crop box (left, top, right, bottom) and the skeleton.

    depth_range_mm: the colour range; by default the valid depths' 1st..99th percentile
    (computed on a subsample: this runs every frame).
    """
    depth = np.asarray(depth_mm)
    if depth.ndim != 2:
        raise ValueError(f"depth image must be 2-D [H, W], got shape {depth.shape}")
    if depth_range_mm is None:
        sample = depth[::4, ::4]
        sample = sample[np.isfinite(sample) & (sample > 0)]
        near, far = (np.percentile(sample, [1, 99]) if sample.size else (0.0, 1.0))
        depth_range_mm = (float(near), float(max(far, near + 1.0)))
    rgb = colourise_depth(depth, *depth_range_mm)
    if box is not None:
        draw_rectangle(rgb, *box, colour=(255, 255, 255), thickness=1)
    if uv is not None:
        draw_skeleton(rgb, uv, names)
    return rgb

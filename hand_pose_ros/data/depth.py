"""Depth decoding to float32 millimetres with 0 = invalid (numpy only, no ROS imports).

Supported encodings (sensor_msgs/Image names):
- '16UC1' / 'mono16': unsigned 16-bit integers, `depth_scale_mm` mm per unit (default 1;
  a RealSense D405 streams 0.1 mm units). 0 stays 0 (the sensor's "no reading").
- '32FC1': float32 metres (REP 118); NaN, +-inf and values <= 0 become 0.
- NYU's RGB PNG encoding (decode_nyu_rgb): mm = G * 256 + B.
"""
from __future__ import annotations

import numpy as np

UINT16_ENCODINGS = ("16UC1", "mono16")
FLOAT_ENCODINGS = ("32FC1",)
SUPPORTED_ENCODINGS = UINT16_ENCODINGS + FLOAT_ENCODINGS


def decode_depth(raw: np.ndarray, encoding: str, depth_scale_mm: float | None = None) -> np.ndarray:
    """[H, W] raw depth -> [H, W] float32 mm, 0 = invalid.

    depth_scale_mm: mm per unit of a 16-bit image (default 1.0); for 32FC1 it overrides the
    metres -> mm factor (default 1000)."""
    raw = np.asarray(raw)
    if raw.ndim != 2:
        raise ValueError(f"depth image must be 2-D [H, W], got shape {raw.shape}")
    if encoding in UINT16_ENCODINGS:
        if raw.dtype != np.uint16:
            raise ValueError(f"encoding {encoding!r} needs a uint16 array, got {raw.dtype}")
        scale = 1.0 if depth_scale_mm is None else float(depth_scale_mm)
        _check_scale(scale)
        depth = raw.astype(np.float32)
        if scale != 1.0:
            depth *= np.float32(scale)
        return depth
    if encoding in FLOAT_ENCODINGS:
        scale = 1000.0 if depth_scale_mm is None else float(depth_scale_mm)
        _check_scale(scale)
        depth = raw.astype(np.float32) * np.float32(scale)
        # NaN compares False, so this also clears NaN; inf is cleared by the isfinite test.
        depth[~(np.isfinite(depth) & (depth > 0))] = 0
        return depth
    raise ValueError(f"unsupported depth encoding {encoding!r}; supported: {list(SUPPORTED_ENCODINGS)} "
                     "(NYU's RGB PNGs: decode_nyu_rgb)")


def _check_scale(scale: float) -> None:
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"depth_scale_mm must be a positive number, got {scale!r}")


def decode_nyu_rgb(rgb: np.ndarray) -> np.ndarray:
    """NYU depth PNG [H, W, 3] uint8 (R, G, B) -> [H, W] float32 mm = G * 256 + B."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
        raise ValueError(f"NYU depth must be an [H, W, 3] uint8 RGB image, got shape {rgb.shape} {rgb.dtype}")
    millimetres = rgb[..., 1].astype(np.uint16)
    millimetres <<= 8                      # G * 256
    millimetres |= rgb[..., 2]             # + B
    return millimetres.astype(np.float32)


def image_msg_to_depth(data: bytes, width: int, height: int, step: int, encoding: str,
                       is_bigendian: bool, depth_scale_mm: float | None = None,
                       integer_mm: bool = False) -> np.ndarray:
    """Decode a sensor_msgs/Image payload (its fields passed as plain values) to [H, W]
    float32 mm. Honours row padding (step > width * bytes per pixel) and endianness.

    integer_mm: a 16-bit image at 1 mm per unit comes back as its uint16 millimetres
    instead (a view of `data` when it is little-endian: no copy, no float conversion; the
    localiser and the crop take it as it is)."""
    if encoding in UINT16_ENCODINGS:
        pixel_type = np.dtype(np.uint16)
    elif encoding in FLOAT_ENCODINGS:
        pixel_type = np.dtype(np.float32)
    else:
        raise ValueError(f"unsupported depth image encoding {encoding!r}; supported: {list(SUPPORTED_ENCODINGS)}")
    width, height, step = int(width), int(height), int(step)
    row_bytes = width * pixel_type.itemsize
    if width <= 0 or height <= 0:
        raise ValueError(f"depth image has no pixels: {width} x {height}")
    if step < row_bytes:
        raise ValueError(f"step {step} is smaller than width {width} x {pixel_type.itemsize} bytes = {row_bytes}")
    if isinstance(data, (list, tuple)):   # some rclpy versions hand uint8[] over as a list
        data = bytes(data)
    buffer = np.frombuffer(memoryview(data), dtype=np.uint8)
    if buffer.size != step * height:
        raise ValueError(f"{encoding} image {width} x {height} with step {step} needs {step * height} bytes, "
                         f"got {buffer.size}")
    # A strided view over the payload skips each row's padding without copying (numpy
    # handles rows whose start is not aligned to the pixel size).
    byte_order = ">" if is_bigendian else "<"
    raw = np.ndarray((height, width), dtype=pixel_type.newbyteorder(byte_order), buffer=buffer,
                     strides=(step, pixel_type.itemsize))
    raw = raw.astype(pixel_type.newbyteorder("="), copy=False)
    if integer_mm and encoding in UINT16_ENCODINGS and (depth_scale_mm is None or float(depth_scale_mm) == 1.0):
        return raw
    return decode_depth(raw, encoding, depth_scale_mm)

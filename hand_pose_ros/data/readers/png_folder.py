"""Real depth frames saved as PNG files: any depth unit, any intrinsics, labels if present.

    reader = open_dataset("png", "../shared/realdata/sr305_ladaondris", depth_unit_mm=0.125,
                          fx=476.0068, fy=476.0068, cx=313.683, cy=242.755)
    reader = open_dataset("png", "../shared/data/real/nyu", encoding="nyu_rgb", camera="nyu")

Layout (ROOT is searched recursively; frames are in natural order of their path below
ROOT, so 2.png comes before 10.png):

    ROOT/camera.yaml              optional sidecar (YAML, or JSON as camera.json), e.g.
                                      fx: 476.0068
                                      fy: 476.0068
                                      cx: 313.683
                                      cy: 242.755
                                      depth_unit_mm: 0.125    # mm per PNG count (default 1)
                                      encoding: gray16        # gray16 (default) | nyu_rgb
                                      joint_order: nyu        # order of the label rows
                                      width: 640              # optional: required frame size
                                      height: 480
    ROOT/[SUB/]NAME.png           one depth frame
    ROOT/[SUB/]NAME_uvd.txt       optional labels: J x (u px, v px, d mm)
    ROOT/[SUB/]NAME_xyz.txt       or J x (x, y, z) mm in the camera's optical frame
                                  (x right, y down, z forward)

Encodings: 'gray16' = a 16-bit single-channel PNG, mm = count * depth_unit_mm (SR305:
0.125, D405: 0.1); 'nyu_rgb' = NYU's RGB-encoded PNG (counts = G * 256 + B, in mm).
0 stays 0 (no reading).

Which value wins: an explicit reader argument (fx, fy, cx, cy, depth_unit_mm, encoding,
joint_order) > the `camera` preset (a camera.DATASET_INTRINSICS name: intrinsics, frame
size, and the label order when that name is a dataset) > the sidecar > the defaults. Label
rows are given in `joint_order` (a keypoints.DATASET_ORDERS key) and come out reordered
by name: the canonical keypoints in canonical order first, then the extra points
(keypoints.ALL_NAMES order). `split` is ignored (kept for the open_dataset signature).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ... import keypoints
from ...camera import DATASET_INTRINSICS, HALF_CUBE_MM, Intrinsics
from ..depth import decode_depth, decode_nyu_rgb
from ..sample import Sample
from .base import DatasetLayoutError, DatasetReader

ENCODINGS = ("gray16", "nyu_rgb")
SIDECAR_NAMES = ("camera.yaml", "camera.json")
SIDECAR_KEYS = ("fx", "fy", "cx", "cy", "depth_unit_mm", "encoding", "joint_order", "width", "height")
LABEL_SUFFIXES = {"uvd": "_uvd.txt", "xyz": "_xyz.txt"}
_GRAY16_MODES = ("I;16", "I;16B", "I;16L", "I")
_EIGHT_BIT_MODES = ("1", "L", "P", "LA", "PA")
_INTRINSIC_KEYS = ("fx", "fy", "cx", "cy")


def natural_key(relative: Path) -> tuple:
    """Sort key of a relative path in which digit runs compare as numbers ('2' < '10');
    the plain text breaks ties ('01' vs '1')."""
    parts = tuple(tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", part))
                  for part in relative.parts)
    return parts, str(relative)


def read_sidecar(path: Path) -> dict:
    """camera.yaml / camera.json -> dict of the known keys (ValueError naming the file)."""
    import yaml
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML/JSON: {e}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a mapping of {', '.join(SIDECAR_KEYS)}, got {type(content).__name__}")
    unknown = sorted(str(k) for k in content if k not in SIDECAR_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; known: {list(SIDECAR_KEYS)}")
    for key in ("fx", "fy", "cx", "cy", "depth_unit_mm", "width", "height"):
        if key in content and (isinstance(content[key], bool) or not isinstance(content[key], (int, float))):
            raise ValueError(f"{path}: {key} must be a number, got {content[key]!r}")
    if ("width" in content) != ("height" in content):
        raise ValueError(f"{path}: give both width and height (the required frame size), or neither")
    return dict(content)


class PNGFolderReader(DatasetReader):
    __doc__ = __doc__
    dataset = "png"

    def __init__(self, root, split: str | None = None, *, encoding: str | None = None,
                 depth_unit_mm: float | None = None, camera: str | None = None,
                 fx: float | None = None, fy: float | None = None, cx: float | None = None,
                 cy: float | None = None, joint_order: str | None = None):
        if root is None:
            raise ValueError("png: give the folder of depth PNGs (--root)")
        super().__init__(root, split or "frames")
        if not self.root.exists():
            raise DatasetLayoutError(f"png: {self.root} does not exist")
        folder = self.root if self.root.is_dir() else self.root.parent
        if self.root.is_file():
            self._files = [self.root]
        else:
            found = [p for p in self.root.rglob("*") if p.suffix.lower() == ".png" and p.is_file()]
            self._files = sorted(found, key=lambda p: natural_key(p.relative_to(self.root)))
        if not self._files:
            raise DatasetLayoutError(f"png: no .png depth frames in {self.root} or its sub-folders")
        self._folder = folder

        sidecars = [folder / name for name in SIDECAR_NAMES if (folder / name).is_file()]
        if len(sidecars) > 1:
            raise ValueError(f"png: both {sidecars[0]} and {sidecars[1]} exist; keep one")
        self.sidecar = sidecars[0] if sidecars else None
        settings = read_sidecar(self.sidecar) if self.sidecar else {}
        size_source = str(self.sidecar) if "width" in settings or "height" in settings else None

        if camera is not None:
            if camera not in DATASET_INTRINSICS:
                raise ValueError(f"png: unknown camera {camera!r}; known: {sorted(DATASET_INTRINSICS)}")
            preset = DATASET_INTRINSICS[camera].to_dict()
            if preset["width"] and preset["height"]:            # 0 = unknown size
                size_source = f"camera preset {camera!r}"
            else:
                del preset["width"], preset["height"]
            settings.update(preset)
        explicit = dict(fx=fx, fy=fy, cx=cx, cy=cy, depth_unit_mm=depth_unit_mm, encoding=encoding,
                        joint_order=joint_order)
        settings.update({k: v for k, v in explicit.items() if v is not None})
        if "joint_order" not in settings and camera in keypoints.DATASET_ORDERS:
            settings["joint_order"] = camera

        missing = [k for k in _INTRINSIC_KEYS if k not in settings]
        if missing:
            raise ValueError(f"png: no intrinsics for {self.root}: missing {', '.join(missing)}. Pass them "
                             f"(fx=, fy=, cx=, cy=; on the command line --fx --fy --cx --cy), a camera preset "
                             f"({', '.join(sorted(DATASET_INTRINSICS))}), or write them into "
                             f"{folder / SIDECAR_NAMES[0]}")
        values = {k: float(settings[k]) for k in _INTRINSIC_KEYS}
        where = f" (from {self.sidecar})" if self.sidecar else ""
        if not all(math.isfinite(v) for v in values.values()) or values["fx"] == 0 or values["fy"] == 0:
            raise ValueError(f"png: intrinsics must be finite with non-zero fx, fy, got {values}{where}")
        self.expected_size = (int(settings.get("width", 0)), int(settings.get("height", 0)))
        self.cam = Intrinsics(**values, width=self.expected_size[0], height=self.expected_size[1])

        self.depth_unit_mm = float(settings.get("depth_unit_mm", 1.0))
        if not (math.isfinite(self.depth_unit_mm) and self.depth_unit_mm > 0):
            raise ValueError(f"png: depth_unit_mm must be a positive number of mm per count, "
                             f"got {settings.get('depth_unit_mm')!r}{where}")
        self.encoding = str(settings.get("encoding", "gray16"))
        if self.encoding not in ENCODINGS:
            raise ValueError(f"png: unknown encoding {self.encoding!r}{where}; choose one of {list(ENCODINGS)}")
        self.joint_order = settings.get("joint_order")
        if self.joint_order is not None:
            if str(self.joint_order).lower() not in keypoints.DATASET_ORDERS:
                raise ValueError(f"png: unknown joint_order {self.joint_order!r}{where}; "
                                 f"choose one of {sorted(keypoints.DATASET_ORDERS)}")
            order = keypoints.order(str(self.joint_order))
            self.label_names = tuple(n for n in keypoints.ALL_NAMES if n in order)
        else:
            self.label_names = keypoints.CANONICAL
        self._half_cube = HALF_CUBE_MM.get(camera) if camera else None
        self._size_source = size_source

    @property
    def files(self) -> list[Path]:
        return list(self._files)

    def __len__(self) -> int:
        return len(self._files)

    # ------------------------------------------------------------------ loading
    def read_depth(self, path: Path) -> np.ndarray:
        """One PNG -> [H, W] float32 mm. ValueError naming the file when its bit depth, colour
        layout or size does not fit."""
        from PIL import Image
        try:
            with Image.open(path) as image:
                mode, size = image.mode, image.size
                self._check_mode(path, mode)
                self._check_size(path, size)
                pixels = np.asarray(image)
        except FileNotFoundError:
            raise DatasetLayoutError(f"png: depth frame {path} not found") from None
        except Image.UnidentifiedImageError:
            raise ValueError(f"png: {path} is not a readable PNG image") from None
        if self.encoding == "nyu_rgb":
            counts = decode_nyu_rgb(pixels[..., :3])
            return counts if self.depth_unit_mm == 1.0 else counts * np.float32(self.depth_unit_mm)
        if pixels.dtype != np.uint16:         # Pillow's mode 'I' holds 32-bit integers
            if pixels.min() < 0 or pixels.max() > np.iinfo(np.uint16).max:
                raise ValueError(f"png: {path} has values outside 0..65535; not a 16-bit depth PNG")
            pixels = pixels.astype(np.uint16)
        return decode_depth(pixels, "16UC1", self.depth_unit_mm)

    def _check_mode(self, path: Path, mode: str) -> None:
        if self.encoding == "gray16":
            if mode in _GRAY16_MODES:
                return
            if mode in _EIGHT_BIT_MODES:
                raise ValueError(f"png: {path} is an 8-bit PNG (Pillow mode {mode!r}); depth frames must be "
                                 f"16-bit single-channel PNGs (8 bits cannot hold metric depth)")
            if mode in ("RGB", "RGBA"):
                raise ValueError(f"png: {path} is a colour PNG (mode {mode!r}), not 16-bit grey; if it is NYU's "
                                 f"RGB-encoded depth, use encoding nyu_rgb")
            raise ValueError(f"png: {path} has Pillow mode {mode!r}; expected a 16-bit single-channel PNG")
        if mode != "RGB":
            hint = "; it is 16-bit grey: use encoding gray16" if mode in _GRAY16_MODES else ""
            raise ValueError(f"png: {path} has Pillow mode {mode!r}, expected an RGB PNG for encoding "
                             f"nyu_rgb{hint}")

    def _check_size(self, path: Path, size: tuple[int, int]) -> None:
        if not (self.expected_size[0] and self.expected_size[1]):
            self.expected_size = size            # the first frame read sets the folder's size
            self._size_source = f"the first frame read, {path}"
            return
        if tuple(size) != tuple(self.expected_size):
            raise ValueError(f"png: {path} is {size[0]} x {size[1]} pixels, expected "
                             f"{self.expected_size[0]} x {self.expected_size[1]} (from {self._size_source})")

    def label_file(self, path: Path) -> tuple[str, Path] | None:
        """('uvd' | 'xyz', label path) beside a frame, or None."""
        found = [(kind, path.with_name(path.stem + suffix)) for kind, suffix in LABEL_SUFFIXES.items()]
        found = [(kind, p) for kind, p in found if p.is_file()]
        if len(found) > 1:
            raise ValueError(f"png: {path} has both {found[0][1].name} and {found[1][1].name}; keep one")
        return found[0] if found else None

    def read_labels(self, kind: str, path: Path) -> np.ndarray:
        """A label file -> [J, 3] uvd (u px, v px, d mm) in the order self.label_names."""
        if self.joint_order is None:
            raise ValueError(f"png: {path} has labels but no joint order is known: pass joint_order= "
                             f"(--joint-order) or set joint_order in {self._folder / SIDECAR_NAMES[0]}; "
                             f"choose one of {sorted(keypoints.DATASET_ORDERS)}")
        order = keypoints.order(str(self.joint_order))
        try:
            values = np.array(path.read_text().split(), dtype=np.float64)
        except ValueError:
            raise ValueError(f"png: {path}: the labels are not all numbers") from None
        if values.size != len(order) * 3:
            raise ValueError(f"png: {path}: {values.size} numbers, expected {len(order)} joints x 3 = "
                             f"{len(order) * 3} for joint order {self.joint_order!r}")
        if not np.isfinite(values).all():
            raise ValueError(f"png: {path}: the labels hold NaN or infinite values")
        joints = values.reshape(len(order), 3)
        if kind == "xyz":
            if not (joints[:, 2] > 0).all():
                raise ValueError(f"png: {path}: every xyz label needs z > 0 (in front of the camera)")
            joints = self.cam.xyz_to_uvd(joints)
        return keypoints.reorder(joints, order, self.label_names)

    def _load(self, index: int) -> Sample:
        path = self._files[index]
        depth = self.read_depth(path)
        label = self.label_file(path)
        uvd = self.read_labels(*label) if label else None
        name = path.name if self.root.is_file() else path.relative_to(self.root).as_posix()
        meta = {"dataset": self.dataset, "path": str(path), "depth_unit_mm": self.depth_unit_mm,
                "encoding": self.encoding, "label_file": str(label[1]) if label else None}
        extra = {} if self._half_cube is None else {"half_cube_mm": self._half_cube}
        return Sample(depth_mm=depth, cam=self.cam, keypoint_names=self.label_names, uvd=uvd, name=name,
                      meta=meta, **extra)

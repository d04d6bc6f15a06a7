"""Loose depth frames: a folder (or a list) of images, with optional per-frame labels."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ... import keypoints
from ...camera import DATASET_INTRINSICS, HALF_CUBE_MM
from ..depth import decode_nyu_rgb
from ..sample import Sample
from .base import DatasetLayoutError, DatasetReader, parse_float_rows

SUFFIXES = (".png", ".npy")
LABEL_SUFFIX = "_uvd.txt"


def read_depth_file(path: Path) -> np.ndarray:
    """A depth image in any of the layouts we meet -> [H, W] float32 mm:
    RGB PNG (NYU encoding, mm = G*256 + B), 16-bit PNG (mm), .npy (mm, any numeric dtype)."""
    path = Path(path)
    if path.suffix == ".npy":
        depth = np.load(path)
        if depth.ndim != 2:
            raise ValueError(f"{path}: expected a 2-D depth array in mm, got shape {depth.shape}")
        return np.nan_to_num(depth.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)
    from PIL import Image
    with Image.open(path) as image:
        mode = image.mode
        pixels = np.asarray(image)
    if mode == "RGB":
        return decode_nyu_rgb(pixels)
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        return pixels.astype(np.float32)
    raise ValueError(f"{path}: unsupported image mode {mode!r}; expected an NYU RGB-encoded or a 16-bit depth PNG")


class FrameFolderReader(DatasetReader):
    """Depth frames in a folder, e.g. shared/data/real/nyu.

    Layout: ROOT/NAME.png (NYU RGB-encoded or 16-bit mm) or ROOT/NAME.npy (mm), sorted by
    name; ROOT may also be one file or a list of files. Optional labels beside a frame:
    ROOT/NAME_uvd.txt with J x (u v d) numbers in `camera`'s dataset joint order.
    `camera`: a dataset name of camera.DATASET_INTRINSICS (gives intrinsics, joint order
    and half cube size). `split` is ignored (kept for the open_dataset signature).
    """

    def __init__(self, root, split: str | None = None, camera: str = "nyu"):
        self.dataset = f"{camera}-frames"
        if isinstance(root, (list, tuple)):
            files = [Path(p).expanduser() for p in root]
            super().__init__(files[0].parent if files else ".", split or "frames")
        else:
            super().__init__(root, split or "frames")
            if not self.root.exists():
                raise DatasetLayoutError(f"{self.dataset}: {self.root} does not exist")
            if self.root.is_file():
                files = [self.root]
            else:
                files = sorted(p for p in self.root.iterdir() if p.suffix in SUFFIXES)
        if not files:
            raise DatasetLayoutError(f"{self.dataset}: no depth frames ({', '.join(SUFFIXES)}) in {self.root}")
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise DatasetLayoutError(f"{self.dataset}: depth frames not found: {missing[:5]}")
        self._files = files
        self._cam = DATASET_INTRINSICS[camera] if camera in DATASET_INTRINSICS else None
        if self._cam is None:
            raise ValueError(f"unknown camera {camera!r}; known: {sorted(DATASET_INTRINSICS)}")
        base = camera.split("_")[0]        # 'synthetic_msra' -> 'synthetic'
        self._names = keypoints.order(base)
        self._half_cube = HALF_CUBE_MM.get(base, 150.0)

    def __len__(self) -> int:
        return len(self._files)

    def _load(self, index: int) -> Sample:
        path = self._files[index]
        label_path = path.with_name(path.stem + LABEL_SUFFIX)
        uvd = None
        if label_path.exists():
            with open(label_path) as f:
                _, values = parse_float_rows([" ".join(f.read().split())], len(self._names) * 3,
                                             label_path, first_is_name=False)
            uvd = values.reshape(len(self._names), 3)
        return Sample(depth_mm=read_depth_file(path), cam=self._cam, keypoint_names=self._names, uvd=uvd,
                      name=path.name, half_cube_mm=self._half_cube, meta={"dataset": self.dataset, "path": str(path)})

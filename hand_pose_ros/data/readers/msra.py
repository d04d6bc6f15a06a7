"""MSRA hand gesture dataset (Sun et al., CVPR 2015)."""
from __future__ import annotations

import numpy as np

from ... import keypoints
from ...camera import DATASET_INTRINSICS, HALF_CUBE_MM
from ..sample import Sample
from .base import DatasetLayoutError, DatasetReader, check_split, parse_float_rows

SUBJECTS = tuple(f"P{i}" for i in range(9))
GESTURES = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "I", "IP", "L", "MP", "RP", "T", "TIP", "Y")

LAYOUT = """\
  ROOT/P0/1/joint.txt            line 1: frame count N; then N lines of 21 x (x y z) mm
  ROOT/P0/1/000000_depth.bin     six little-endian uint32 (width, height, left, top, right,
  ROOT/P0/1/000001_depth.bin     bottom), then float32 depth over [top, bottom) x [left, right)
  ...                            gestures 1..9 I IP L MP RP T TIP Y, subjects P0..P8"""

_HEADER = np.dtype("<u4")


def read_msra_bin(path) -> np.ndarray:
    """One MSRA .bin frame -> [height, width] float32 mm, zero outside its bounding box."""
    raw = path.read_bytes()
    if len(raw) < 24:
        raise ValueError(f"msra: {path} is {len(raw)} bytes, shorter than its 24-byte header")
    width, height, left, top, right, bottom = (int(x) for x in np.frombuffer(raw, _HEADER, count=6))
    if not (0 <= left <= right <= width and 0 <= top <= bottom <= height):
        raise ValueError(f"msra: {path} has an inconsistent header: image {width} x {height}, "
                         f"box left {left} top {top} right {right} bottom {bottom}")
    box = np.frombuffer(raw, "<f4", offset=24)
    if box.size != (right - left) * (bottom - top):
        raise ValueError(f"msra: {path} holds {box.size} depth values, its header says "
                         f"{right - left} x {bottom - top} = {(right - left) * (bottom - top)}")
    depth = np.zeros((height, width), np.float32)
    depth[top:bottom, left:right] = box.reshape(bottom - top, right - left)
    return depth


class MSRAReader(DatasetReader):
    __doc__ = f"""MSRA frames with 21 joints, leave-one-subject-out splits.

    Expected layout (the dataset's own, ROOT = .../cvpr15_MSRAHandGestureDB):
{LAYOUT}
    split='test': the frames of subject P<test_subject>; split='train': the other eight;
    split='all': all nine. Order: subjects P0 -> P8, gestures in the order above, frames
    in file order (so nine test folds concatenate to the standard P0 -> P8 result file).
    Labels: y and z of joint.txt are negated (the reference does; it turns the file's
    y-up, z-backwards coordinates into the camera optical frame), then projected to uvd
    with the MSRA intrinsics. Half cube 125 mm.
    """
    dataset = "msra"

    def __init__(self, root, split: str = "test", test_subject: int | None = None):
        super().__init__(root, check_split("msra", split, ("train", "test", "all")))
        if split == "all":
            subjects = SUBJECTS
        else:
            if test_subject is None or not 0 <= int(test_subject) <= 8:
                raise ValueError(f"msra: split {split!r} needs test_subject=0..8 (leave-one-subject-out fold), "
                                 f"got {test_subject!r}")
            held_out = SUBJECTS[int(test_subject)]
            subjects = (held_out,) if split == "test" else tuple(s for s in SUBJECTS if s != held_out)
        self.test_subject = None if test_subject is None else int(test_subject)
        self._cam = DATASET_INTRINSICS["msra"]
        self._names, self._paths, xyz = [], [], []
        for subject in subjects:
            for gesture in GESTURES:
                folder = self.root / subject / gesture
                label_path = self._require(folder / "joint.txt", f"the labels of {subject}/{gesture}", LAYOUT)
                joints = self._read_joints(label_path)
                for frame in range(joints.shape[0]):
                    self._names.append(f"{subject}/{gesture}/{frame:06d}_depth.bin")
                    self._paths.append(folder / f"{frame:06d}_depth.bin")
                xyz.append(joints)
        xyz = np.concatenate(xyz).reshape(-1, 21, 3)
        xyz[..., 1:] *= -1                                   # y, z negated, as in the reference
        self._uvd = self._cam.xyz_to_uvd(xyz)               # [N, 21, 3]
        if self._paths and not self._paths[0].exists():
            raise DatasetLayoutError(f"msra reader: {self._paths[0].parent / 'joint.txt'} lists frames but "
                                     f"{self._paths[0]} does not exist.\nExpected layout:\n{LAYOUT}")

    @staticmethod
    def _read_joints(path):
        with open(path) as f:
            lines = f.read().splitlines()
        header = lines[0].split() if lines else []
        if len(header) != 1 or not header[0].isdigit():
            raise ValueError(f"msra: {path} should start with a line holding the frame count, got {lines[:1]}")
        _, values = parse_float_rows(lines[1:], 63, path, first_is_name=False)
        if values.shape[0] != int(header[0]):
            raise ValueError(f"msra: {path} announces {header[0]} frames but holds {values.shape[0]} rows")
        return values

    def __len__(self) -> int:
        return len(self._names)

    def _load(self, index: int) -> Sample:
        path = self._paths[index]
        if not path.exists():
            raise DatasetLayoutError(f"msra: frame {path} not found.\nExpected layout:\n{LAYOUT}")
        return Sample(depth_mm=read_msra_bin(path), cam=self._cam, keypoint_names=keypoints.DATASET_ORDERS["msra"],
                      uvd=self._uvd[index].copy(), name=self._names[index], half_cube_mm=HALF_CUBE_MM["msra"],
                      meta={"dataset": "msra", "index": index, "subject": self._names[index].split("/")[0]})

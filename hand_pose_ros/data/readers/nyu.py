"""NYU hand pose dataset (Tompson et al. 2014)."""
from __future__ import annotations

import numpy as np

from ... import keypoints
from ...camera import DATASET_INTRINSICS, HALF_CUBE_MM
from ..sample import Sample
from .base import DatasetLayoutError, DatasetReader, check_split, read_nyu_png

LAYOUT = """\
  ROOT/train/joint_data.mat          field joint_uvd: [kinects=3, frames, 36, 3] (u px, v px, d mm)
  ROOT/train/depth_1_0000001.png     RGB-encoded depth (mm = G*256 + B), 640 x 480, kinect 1
  ...                                one depth_1_%07d.png per frame, numbered from 1
  ROOT/test/joint_data.mat
  ROOT/test/depth_1_0000001.png ... depth_1_0008252.png"""

# NYU test frames from this 0-based index on (file numbers above 2440) use a smaller cube
# (5/6 of 150 mm), as the reference implementations do.
SMALL_CUBE_FROM = 2440
SMALL_CUBE_MM = 125.0


class NYUReader(DatasetReader):
    __doc__ = f"""NYU frames of kinect view 1 with the 14 evaluation joints.

    Expected layout (the dataset's own; ROOT = .../nyu_hand_dataset_v2/dataset):
{LAYOUT}
    Labels: joint_uvd[0] (kinect 1), joints keypoints.NYU_JOINT_IDS, names
    keypoints.DATASET_ORDERS['nyu']. Half cube 150 mm; test frames with 0-based index
    >= {SMALL_CUBE_FROM} (file number > {SMALL_CUBE_FROM}) use {SMALL_CUBE_MM:.0f} mm.
    Split sizes: 72,757 train / 8,252 test.
    """
    dataset = "nyu"

    def __init__(self, root, split: str = "test"):
        super().__init__(root, check_split("nyu", split, ("train", "test")))
        label_path = self._require(self.root / split / "joint_data.mat", f"the {split} labels", LAYOUT)
        from scipy.io import loadmat
        try:
            mat = loadmat(str(label_path), variable_names=["joint_uvd"])
        except Exception as e:  # scipy raises several types for a corrupt file
            raise ValueError(f"nyu: cannot read {label_path} as a MATLAB file: {e}") from None
        if "joint_uvd" not in mat:
            raise DatasetLayoutError(f"nyu: {label_path} has no field 'joint_uvd'.\nExpected layout:\n{LAYOUT}")
        uvd = np.asarray(mat["joint_uvd"])
        if uvd.ndim != 4 or uvd.shape[2] != 36 or uvd.shape[3] != 3:
            raise ValueError(f"nyu: {label_path} joint_uvd has shape {uvd.shape}, expected [kinects, frames, 36, 3]")
        self._uvd = uvd[0][:, list(keypoints.NYU_JOINT_IDS), :].astype(np.float64)   # [N, 14, 3]
        self._cam = DATASET_INTRINSICS["nyu"]
        self._names = keypoints.DATASET_ORDERS["nyu"]

    def __len__(self) -> int:
        return self._uvd.shape[0]

    def frame_name(self, index: int) -> str:
        return f"{self.split}/depth_1_{index + 1:07d}.png"

    def half_cube_mm(self, index: int) -> float:
        if self.split == "test" and index >= SMALL_CUBE_FROM:
            return SMALL_CUBE_MM
        return HALF_CUBE_MM["nyu"]

    def _load(self, index: int) -> Sample:
        name = self.frame_name(index)
        depth = read_nyu_png(self._require(self.root / name, f"frame {index}", LAYOUT))
        return Sample(depth_mm=depth, cam=self._cam, keypoint_names=self._names, uvd=self._uvd[index].copy(),
                      name=name, half_cube_mm=self.half_cube_mm(index), meta={"dataset": "nyu", "index": index})

"""HANDS 2017 challenge, frame-based track (BigHand2.2M / FHAD subsets)."""
from __future__ import annotations

import os

from ... import keypoints
from ...camera import DATASET_INTRINSICS, HALF_CUBE_MM
from ..sample import Sample
from .base import DatasetReader, check_split, parse_float_rows, read_depth_png

LAYOUT = """\
  ROOT/training/Training_Annotation.txt      per line: image_D00000001.png then 21 x (x y z) mm
  ROOT/training/images/image_D00000001.png   16-bit PNG, depth in mm, 640 x 480
  ROOT/frame/images/image_D00000001.png      test images (no public labels)"""


class HANDS2017Reader(DatasetReader):
    __doc__ = f"""HANDS 2017 frames with 21 joints.

    Expected layout (the challenge's own):
{LAYOUT}
    train: Training_Annotation.txt in file order; xyz (camera optical frame, mm) projected
    to uvd with the HANDS 2017 intrinsics. test: every image_D*.png of frame/images
    sorted by name, unlabelled (uvd None; results go to the challenge server as lines
    'frame\\images\\image_D%08d.png' + 63 tab-separated xyz). Half cube 150 mm.
    """
    dataset = "hands2017"

    def __init__(self, root, split: str = "train"):
        super().__init__(root, check_split("hands2017", split, ("train", "test")))
        self._cam = DATASET_INTRINSICS["hands2017"]
        if split == "train":
            label_path = self._require(self.root / "training" / "Training_Annotation.txt",
                                       "the training annotation", LAYOUT)
            with open(label_path) as f:
                self._names, xyz = parse_float_rows(f, 63, label_path, first_is_name=True)
            self._uvd = self._cam.xyz_to_uvd(xyz.reshape(-1, 21, 3))
            self._folder = self._require(self.root / "training" / "images", "the training images", LAYOUT)
        else:
            self.labelled = False
            self._folder = self._require(self.root / "frame" / "images", "the test images", LAYOUT)
            with os.scandir(self._folder) as entries:
                self._names = sorted(e.name for e in entries if e.name.startswith("image_D") and e.name.endswith(".png"))
            self._uvd = None

    def __len__(self) -> int:
        return len(self._names)

    def _load(self, index: int) -> Sample:
        name = self._names[index]
        return Sample(depth_mm=read_depth_png(self._folder / name, "hands2017"), cam=self._cam,
                      keypoint_names=keypoints.DATASET_ORDERS["hands2017"],
                      uvd=None if self._uvd is None else self._uvd[index].copy(), name=name,
                      half_cube_mm=HALF_CUBE_MM["hands2017"], meta={"dataset": "hands2017", "index": index})

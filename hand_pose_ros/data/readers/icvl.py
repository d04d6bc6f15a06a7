"""ICVL hand posture dataset (Tang et al. 2014)."""
from __future__ import annotations

from pathlib import PurePosixPath

import numpy as np

from ... import keypoints
from ...camera import DATASET_INTRINSICS, HALF_CUBE_MM
from ..sample import Sample
from .base import DatasetLayoutError, DatasetReader, check_split, parse_float_rows, read_depth_png

LAYOUT = """\
  ROOT/Training/labels.txt                     per line: NAME then 16 x (u v d), NAME relative to Training/Depth
  ROOT/Training/Depth/201403121135/image_0000.png   16-bit PNG, depth in mm, 320 x 240
  ROOT/Testing/test_seq_1.txt                  per line: image_0000.png then 16 x (u v d)
  ROOT/Testing/test_seq_2.txt
  ROOT/Testing/Depth/test_seq_1/image_0000.png ... (702 frames)
  ROOT/Testing/Depth/test_seq_2/image_0000.png ... (894 frames)"""

TEST_SEQUENCES = ("test_seq_1", "test_seq_2")
INVALID_DEPTH = 32001     # ICVL's "no reading" value


class ICVLReader(DatasetReader):
    __doc__ = f"""ICVL frames with 16 joints (uvd labels as given).

    Expected layout (the dataset's own):
{LAYOUT}
    train: labels.txt in file order, skipping entries whose name has more than two path
    components (the pre-augmented rotated copies, e.g. '45/2014.../image_0000.png').
    test: test_seq_1 then test_seq_2, each sorted by image name: the order of the
    community ground truth (icvl_test_list.txt); names are 'test_seq_1/image_0000.png'.
    Depth 32001 (no reading) becomes 0. Half cube 125 mm.
    """
    dataset = "icvl"

    def __init__(self, root, split: str = "test"):
        super().__init__(root, check_split("icvl", split, ("train", "test")))
        if split == "train":
            label_path = self._require(self.root / "Training" / "labels.txt", "the training labels", LAYOUT)
            names, values = self._read_labels(label_path)
            original = [i for i, n in enumerate(names) if len(PurePosixPath(n).parts) <= 2]
            self._names = [names[i] for i in original]
            self._uvd = values[original].reshape(-1, 16, 3)
            self._paths = [self.root / "Training" / "Depth" / n for n in self._names]
        else:
            self._names, uvd, self._paths = [], [], []
            for sequence in TEST_SEQUENCES:
                label_path = self._require(self.root / "Testing" / f"{sequence}.txt", f"the {sequence} labels", LAYOUT)
                names, values = self._read_labels(label_path)
                # accept names with or without the 'test_seq_N/' prefix
                names = [n.split("/", 1)[1] if n.startswith(sequence + "/") else n for n in names]
                order = sorted(range(len(names)), key=names.__getitem__)
                self._names += [f"{sequence}/{names[i]}" for i in order]
                uvd.append(values[order])
                self._paths += [self.root / "Testing" / "Depth" / sequence / names[i] for i in order]
            self._uvd = np.concatenate(uvd).reshape(-1, 16, 3)
        if self._paths and not self._paths[0].parent.is_dir():
            raise DatasetLayoutError(f"icvl reader: expected the depth images of {self._names[0]!r} in "
                                     f"{self._paths[0].parent}, which does not exist.\nExpected layout:\n{LAYOUT}")
        self._cam = DATASET_INTRINSICS["icvl"]

    @staticmethod
    def _read_labels(path):
        with open(path) as f:
            return parse_float_rows(f, 48, path, first_is_name=True)

    def __len__(self) -> int:
        return len(self._names)

    def _load(self, index: int) -> Sample:
        depth = read_depth_png(self._paths[index], "icvl")
        depth[depth >= INVALID_DEPTH] = 0
        return Sample(depth_mm=depth, cam=self._cam, keypoint_names=keypoints.DATASET_ORDERS["icvl"],
                      uvd=self._uvd[index].copy(), name=self._names[index], half_cube_mm=HALF_CUBE_MM["icvl"],
                      meta={"dataset": "icvl", "index": index})

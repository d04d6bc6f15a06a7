"""Dataset readers on tiny files written in each dataset's exact format, the registry, and
the whole preprocessing pipeline on the real NYU frame."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from hand_pose_ros import keypoints
from hand_pose_ros.camera import DATASET_INTRINSICS
from hand_pose_ros.data.crop import crop_hand, normalise_uvd, recover_uvd
from hand_pose_ros.data.localise import HandLocaliser
from hand_pose_ros.data.readers import (READERS, DatasetLayoutError, FrameFolderReader, HANDS2017Reader,
                                        ICVLReader, MSRAReader, NYUReader, open_dataset, read_msra_bin,
                                        register_reader)
from hand_pose_ros.data.readers.msra import GESTURES

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL_NYU = SHARED / "data" / "real" / "nyu"


def write_png16(path: Path, depth: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(depth.astype(np.uint16)).save(path)   # mode I;16


def write_nyu_png(path: Path, depth_mm: np.ndarray) -> None:
    depth_mm = depth_mm.astype(np.uint16)
    rgb = np.zeros(depth_mm.shape + (3,), np.uint8)
    rgb[..., 0] = 17                                      # R carries nothing
    rgb[..., 1] = depth_mm >> 8
    rgb[..., 2] = depth_mm & 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, "RGB").save(path)


# ----------------------------------------------------------------------------- NYU

def test_nyu_reader(tmp_path):
    rng = np.random.default_rng(0)
    frames = 2442
    uvd = rng.uniform(0, 600, (3, frames, 36, 3))
    (tmp_path / "test").mkdir()
    savemat(tmp_path / "test" / "joint_data.mat", {"joint_uvd": uvd})
    depth0 = rng.integers(0, 3000, (480, 640))
    write_nyu_png(tmp_path / "test" / "depth_1_0000001.png", depth0)
    write_nyu_png(tmp_path / "test" / "depth_1_0002441.png", depth0[::-1])

    reader = NYUReader(tmp_path, "test")
    assert len(reader) == frames
    s = reader[0]
    assert s.name == "test/depth_1_0000001.png" and s.keypoint_names == keypoints.DATASET_ORDERS["nyu"]
    np.testing.assert_array_equal(s.depth_mm, depth0)
    assert s.depth_mm.dtype == np.float32
    np.testing.assert_allclose(s.uvd, uvd[0, 0, list(keypoints.NYU_JOINT_IDS)])   # kinect 1, 14 joints
    assert s.cam == DATASET_INTRINSICS["nyu"] and s.half_cube_mm == 150.0
    # test frames with 0-based index >= 2440 (file number > 2440) use a 125 mm half cube
    assert reader.half_cube_mm(2439) == 150.0 and reader.half_cube_mm(2440) == 125.0
    late = reader[2440]
    assert late.name == "test/depth_1_0002441.png" and late.half_cube_mm == 125.0
    with pytest.raises(DatasetLayoutError, match="depth_1_0000002.png"):
        reader[1]                                   # its PNG was not written
    with pytest.raises(IndexError):
        reader[frames]
    # the train split has no such rule, and is missing here: one clear error
    with pytest.raises(DatasetLayoutError, match=r"train/joint_data.mat.*\n.*Expected layout"):
        NYUReader(tmp_path, "train")


def test_nyu_bad_label_file(tmp_path):
    (tmp_path / "test").mkdir()
    savemat(tmp_path / "test" / "joint_data.mat", {"joint_uvd": np.zeros((3, 4, 14, 3))})
    with pytest.raises(ValueError, match=r"shape \(3, 4, 14, 3\)"):
        NYUReader(tmp_path, "test")
    savemat(tmp_path / "test" / "joint_data.mat", {"joint_xyz": np.zeros((3, 4, 36, 3))})
    with pytest.raises(DatasetLayoutError, match="no field 'joint_uvd'"):
        NYUReader(tmp_path, "test")
    with pytest.raises(ValueError, match="unknown split 'val'"):
        NYUReader(tmp_path, "val")


# ----------------------------------------------------------------------------- ICVL

def icvl_line(name, values):
    return name + " " + " ".join(f"{v:.3f}" for v in values.ravel()) + "\n"


def test_icvl_reader_train_and_test(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.uniform(50, 300, (4, 16, 3))
    train = tmp_path / "Training"
    train.mkdir()
    (train / "labels.txt").write_text(
        icvl_line("201403121135/image_0000.png", labels[0])
        + icvl_line("45/201403121135/image_0000.png", labels[1])      # pre-augmented copy: skipped
        + icvl_line("201403121135/image_0001.png", labels[2]))
    depth = rng.integers(200, 600, (240, 320))
    depth[0, :5] = 32001                                              # ICVL's "no reading"
    write_png16(train / "Depth" / "201403121135" / "image_0000.png", depth)
    reader = ICVLReader(tmp_path, "train")
    assert len(reader) == 2
    s = reader[0]
    assert s.name == "201403121135/image_0000.png" and s.half_cube_mm == 125.0
    np.testing.assert_allclose(s.uvd, labels[0], atol=1e-3)
    np.testing.assert_allclose(reader._uvd[1], labels[2], atol=1e-3)
    assert (s.depth_mm[0, :5] == 0).all() and s.depth_mm[1, 0] == depth[1, 0]
    assert s.keypoint_names == keypoints.DATASET_ORDERS["icvl"] and s.cam == DATASET_INTRINSICS["icvl"]

    # test: sequences 1 then 2, each sorted by name, whatever order the label files use
    testing = tmp_path / "Testing"
    testing.mkdir()
    seq1 = [f"image_{i:04d}.png" for i in range(3)]
    seq2 = [f"image_{i:04d}.png" for i in range(2)]
    gt = {f"test_seq_1/{n}": rng.uniform(50, 300, (16, 3)) for n in seq1}
    gt.update({f"test_seq_2/{n}": rng.uniform(50, 300, (16, 3)) for n in seq2})
    (testing / "test_seq_1.txt").write_text(
        "".join(icvl_line(n, gt[f"test_seq_1/{n}"]) + "\n" for n in reversed(seq1)))  # blank lines between
    (testing / "test_seq_2.txt").write_text("".join(icvl_line(n, gt[f"test_seq_2/{n}"]) for n in seq2))
    for key in gt:
        write_png16(testing / "Depth" / key, depth)
    reader = open_dataset("icvl", tmp_path, "test")
    names = [reader[i].name for i in range(len(reader))]
    # the same names, in the same order, as the community ground truth list
    community = (SHARED / "data" / "eval" / "icvl" / "icvl_test_list.txt").read_text().split()
    expected = [n for n in community if n in gt]
    assert names == expected == sorted(gt)
    for i, name in enumerate(names):
        np.testing.assert_allclose(reader[i].uvd, gt[name], atol=1e-3)


def test_icvl_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"Testing/test_seq_1.txt"):
        ICVLReader(tmp_path, "test")
    (tmp_path / "Training").mkdir()
    (tmp_path / "Training" / "labels.txt").write_text("a/b.png 1 2 3\n")
    with pytest.raises(ValueError, match=r"labels.txt: row 1: expected 48 numbers after the image name, got 3"):
        ICVLReader(tmp_path, "train")
    (tmp_path / "Training" / "labels.txt").write_text(icvl_line("a/b.png", np.ones(48)))
    with pytest.raises(DatasetLayoutError, match=r"Training/Depth/a"):
        ICVLReader(tmp_path, "train")


# ----------------------------------------------------------------------------- MSRA

def write_msra_bin(path: Path, depth: np.ndarray, box) -> None:
    left, top, right, bottom = box
    header = np.array([depth.shape[1], depth.shape[0], left, top, right, bottom], "<u4").tobytes()
    path.write_bytes(header + depth[top:bottom, left:right].astype("<f4").tobytes())


def make_msra(root: Path, frames_per_gesture=1, seed=2):
    """All 9 subjects x 17 gestures; returns {name: xyz as written in joint.txt}."""
    rng = np.random.default_rng(seed)
    written = {}
    for p in range(9):
        for gesture in GESTURES:
            folder = root / f"P{p}" / gesture
            folder.mkdir(parents=True)
            rows = []
            for f in range(frames_per_gesture):
                xyz = np.column_stack([rng.uniform(-60, 60, 21), rng.uniform(-60, 60, 21), -rng.uniform(300, 450, 21)])
                written[f"P{p}/{gesture}/{f:06d}_depth.bin"] = xyz
                rows.append(" ".join(f"{v:.4f}" for v in xyz.ravel()))
                depth = np.zeros((240, 320), np.float32)
                depth[100:140, 150:180] = 350 + p
                write_msra_bin(folder / f"{f:06d}_depth.bin", depth, (150, 100, 180, 140))
            (folder / "joint.txt").write_text(f"{frames_per_gesture}\n" + "\n".join(rows) + "\n")
    return written


def test_msra_bin_layout(tmp_path):
    depth = np.zeros((240, 320), np.float32)
    depth[50:60, 70:75] = np.arange(50, dtype=np.float32).reshape(10, 5) + 300
    write_msra_bin(tmp_path / "f.bin", depth, (70, 50, 75, 60))
    np.testing.assert_array_equal(read_msra_bin(tmp_path / "f.bin"), depth)
    raw = (tmp_path / "f.bin").read_bytes()
    (tmp_path / "short.bin").write_bytes(raw[:-4])
    with pytest.raises(ValueError, match="holds 49 depth values, its header says 5 x 10 = 50"):
        read_msra_bin(tmp_path / "short.bin")


def test_msra_leave_one_subject_out(tmp_path):
    written = make_msra(tmp_path)
    cam = DATASET_INTRINSICS["msra"]
    test = MSRAReader(tmp_path, "test", test_subject=3)
    train = open_dataset("msra", tmp_path, "train", test_subject=3)
    assert len(test) == 17 and len(train) == 8 * 17
    assert all(test[i].name.startswith("P3/") for i in range(len(test)))
    assert not any(n.startswith("P3/") for n in train._names)
    assert [n.split("/")[1] for n in test._names] == list(GESTURES)          # gesture order
    s = test[0]
    assert s.name == "P3/1/000000_depth.bin" and s.depth_mm[120, 160] == 353 and s.depth_mm[0, 0] == 0
    # y and z negated, then projected with the MSRA intrinsics
    xyz = written[s.name] * np.array([1, -1, -1])
    np.testing.assert_allclose(s.uvd[:, 0], xyz[:, 0] * cam.fx / xyz[:, 2] + cam.cx, atol=1e-3)
    np.testing.assert_allclose(s.uvd[:, 1], xyz[:, 1] * cam.fy / xyz[:, 2] + cam.cy, atol=1e-3)
    np.testing.assert_allclose(s.xyz, xyz, atol=1e-3)
    assert s.keypoint_names == keypoints.DATASET_ORDERS["msra"] and s.half_cube_mm == 125.0
    # the nine test folds concatenate to the 'all' order P0 -> P8
    folds = [name for k in range(9) for name in MSRAReader(tmp_path, "test", test_subject=k)._names]
    assert folds == MSRAReader(tmp_path, "all")._names
    with pytest.raises(ValueError, match="test_subject=0..8"):
        MSRAReader(tmp_path, "test")


def test_msra_layout_errors(tmp_path):
    make_msra(tmp_path)
    (tmp_path / "P5" / "TIP" / "joint.txt").unlink()
    with pytest.raises(DatasetLayoutError, match=r"labels of P5/TIP at .*P5/TIP/joint.txt"):
        MSRAReader(tmp_path, "all")
    (tmp_path / "P5" / "TIP" / "joint.txt").write_text("3\n" + " ".join(["1"] * 63) + "\n")
    with pytest.raises(ValueError, match="announces 3 frames but holds 1 rows"):
        MSRAReader(tmp_path, "test", test_subject=5)


# ----------------------------------------------------------------------------- HANDS2017

def test_hands2017_train_and_test(tmp_path):
    rng = np.random.default_rng(3)
    cam = DATASET_INTRINSICS["hands2017"]
    xyz = np.stack([np.column_stack([rng.uniform(-80, 80, 21), rng.uniform(-80, 80, 21),
                                     rng.uniform(300, 600, 21)]) for _ in range(2)])
    lines = [f"image_D{i + 1:08d}.png\t" + "\t".join(f"{v:.4f}" for v in xyz[i].ravel()) for i in range(2)]
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "Training_Annotation.txt").write_text("\n".join(lines) + "\n")
    depth = rng.integers(0, 2000, (480, 640))
    write_png16(tmp_path / "training" / "images" / "image_D00000002.png", depth)
    reader = open_dataset("hands2017", tmp_path, "train")
    assert len(reader) == 2
    s = reader[1]
    assert s.name == "image_D00000002.png" and s.half_cube_mm == 150.0 and s.cam == cam
    np.testing.assert_array_equal(s.depth_mm, depth)
    np.testing.assert_allclose(s.xyz, xyz[1], atol=1e-3)
    np.testing.assert_allclose(s.uvd[:, :2], xyz[1][:, :2] * [cam.fx, cam.fy] / xyz[1][:, 2:] + [cam.cx, cam.cy],
                               atol=1e-3)
    assert s.keypoint_names == keypoints.DATASET_ORDERS["hands2017"]
    # test images: unlabelled, sorted by name
    for i in (3, 1, 2):
        write_png16(tmp_path / "frame" / "images" / f"image_D{i:08d}.png", depth)
    test = HANDS2017Reader(tmp_path, "test")
    assert [test[i].name for i in range(3)] == [f"image_D{i:08d}.png" for i in (1, 2, 3)]
    assert test[0].uvd is None and test.labelled is False and test[0].xyz is None


def test_hands2017_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="Training_Annotation.txt"):
        HANDS2017Reader(tmp_path, "train")
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "Training_Annotation.txt").write_text("image_D00000001.png " + "1 " * 62 + "x\n")
    with pytest.raises(ValueError, match="row 1: not a number"):
        HANDS2017Reader(tmp_path, "train")


# ----------------------------------------------------------------------------- registry

def test_registry(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        open_dataset("nope", tmp_path)

    class Tiny(list):
        def __init__(self, root, split, size=2):
            super().__init__(range(size))
            self.root, self.split = root, split

    register_reader("tiny-test-reader", Tiny)
    try:
        reader = open_dataset("Tiny-Test-Reader", tmp_path, "val", size=3)
        assert len(reader) == 3 and reader.split == "val"
        with pytest.raises(ValueError, match="already registered"):
            register_reader("tiny-test-reader", list)
    finally:
        READERS.pop("tiny-test-reader")


# ----------------------------------------------------------------------------- the real NYU frame

def test_real_nyu_frame_through_the_whole_pipeline():
    reader = open_dataset("nyu-frames", REAL_NYU)
    assert len(reader) == 1
    s = reader[0]
    assert s.depth_mm.shape == (480, 640) and s.uvd.shape == (14, 3)
    assert s.keypoint_names == keypoints.DATASET_ORDERS["nyu"] and s.half_cube_mm == 150.0
    assert 730 <= s.depth_mm.min() and s.depth_mm.max() <= 2001          # decoded: mm = G*256 + B
    gt_line = (SHARED / "data" / "eval" / "nyu" / "nyu_test_groundtruth_label.txt").open().readline()
    np.testing.assert_allclose(s.uvd.ravel(), np.array(gt_line.split(), float), atol=1e-3)

    det = HandLocaliser().locate(s.depth_mm, s.cam)
    assert det is not None
    assert 720 < det.com_uvd[2] < 800 and abs(det.com_uvd[0] - s.uvd[:, 0].mean()) < 25
    crop = crop_hand(s.depth_mm, det.com_uvd, s.cam, s.half_cube_mm)
    norm = normalise_uvd(s.uvd.astype(np.float32), crop)       # float32, as training stores labels
    # every joint inside the crop square and the depth cube
    assert np.abs(norm[:, :2]).max() < 0.5 and np.abs(norm[:, 2]).max() < 1
    # ... and on the hand in the crop image: the crop pixel under each joint is hand
    px = np.rint((norm[:, :2] * (crop.box - 1) + crop.box // 2 + 0.5) * 128 / crop.size - 0.5).astype(int)
    near_joint = [np.abs(crop.image[max(0, y - 2):y + 3, max(0, x - 2):x + 3]).max() for x, y in px]
    assert min(near_joint) > 0
    back = recover_uvd(norm, crop)
    error_mm = np.linalg.norm(s.cam.uvd_to_xyz(back.astype(np.float64)) - s.cam.uvd_to_xyz(s.uvd), axis=-1)
    assert error_mm.max() < 0.5


def test_frame_folder_reader(tmp_path):
    depth = np.full((240, 320), 500)
    write_png16(tmp_path / "b.png", depth)
    np.save(tmp_path / "a.npy", np.where(depth > 0, np.nan, 0).astype(np.float32))
    (tmp_path / "b_uvd.txt").write_text(" ".join(["1"] * 63))
    reader = FrameFolderReader(tmp_path, camera="msra")
    assert [reader[i].name for i in range(2)] == ["a.npy", "b.png"]
    assert (reader[0].depth_mm == 0).all() and reader[0].uvd is None
    assert reader[1].uvd.shape == (21, 3) and reader[1].cam == DATASET_INTRINSICS["msra"]
    (tmp_path / "b_uvd.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match="expected 63 numbers"):
        reader[1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="no depth frames"):
        FrameFolderReader(tmp_path / "empty")
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        FrameFolderReader(tmp_path / "missing")

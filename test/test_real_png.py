"""Real depth PNG folders: the 'png' reader, `eval run --dataset png` on the real NYU frame
and `hand-pose show --model` grids."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SHARED
from PIL import Image

from hand_pose_ros import cli, keypoints
from hand_pose_ros.camera import DATASET_INTRINSICS
from hand_pose_ros.data.readers import DatasetLayoutError, open_dataset
from hand_pose_ros.data.readers.png_folder import PNGFolderReader

REAL_NYU = SHARED / "data" / "real" / "nyu"
SR305 = SHARED / "realdata" / "sr305_ladaondris"
SR305_CAMERA = dict(fx=476.0068, fy=476.0068, cx=313.683, cy=242.755)
CAMERA = dict(fx=200.0, fy=201.0, cx=31.5, cy=23.5)


def write_gray16(path, counts) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(counts, dtype=np.uint16)).save(path)


def counts_image(seed=0, shape=(48, 64)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65535, shape, dtype=np.uint16)


# ---------------------------------------------------------------- reading frames

def test_gray16_with_a_depth_unit_and_natural_order(tmp_path):
    counts = {name: counts_image(i) for i, name in enumerate(["10.png", "2.png", "seq/1.png", "seq/b/0.png"])}
    for name, values in counts.items():
        write_gray16(tmp_path / name, values)
    reader = open_dataset("png", tmp_path, depth_unit_mm=0.125, **CAMERA)
    assert [reader[i].name for i in range(len(reader))] == ["2.png", "10.png", "seq/1.png", "seq/b/0.png"]
    sample = reader[1]
    np.testing.assert_array_equal(sample.depth_mm, counts["10.png"].astype(np.float32) / 8)
    assert sample.depth_mm.dtype == np.float32 and sample.uvd is None
    assert (sample.cam.fx, sample.cam.fy, sample.cam.cx, sample.cam.cy) == tuple(CAMERA.values())


def test_nyu_rgb_encoding(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "f.png")
    depth = open_dataset("png", tmp_path, encoding="nyu_rgb", **CAMERA)[0].depth_mm
    np.testing.assert_array_equal(depth, rgb[..., 1].astype(np.float32) * 256 + rgb[..., 2])


def test_labels_are_reordered_to_canonical_names(tmp_path):
    write_gray16(tmp_path / "a.png", counts_image())
    write_gray16(tmp_path / "b.png", counts_image(1))
    nyu = keypoints.DATASET_ORDERS["nyu"]
    uvd = np.column_stack([np.arange(14) * 2.0, np.arange(14) + 5.0, 700.0 + np.arange(14)])
    np.savetxt(tmp_path / "a_uvd.txt", uvd.reshape(1, -1))
    xyz = np.column_stack([np.linspace(-50, 50, 14), np.linspace(-20, 30, 14), np.linspace(500, 600, 14)])
    (tmp_path / "b_xyz.txt").write_text("\n".join(" ".join(map(str, row)) for row in xyz))
    reader = open_dataset("png", tmp_path, joint_order="nyu", **CAMERA)
    a, b = reader[0], reader[1]
    # canonical keypoints in canonical order, then NYU's three extra points
    assert a.keypoint_names == tuple(n for n in keypoints.CANONICAL if n in nyu) + keypoints.EXTRA
    for row, name in enumerate(a.keypoint_names):
        np.testing.assert_array_equal(a.uvd[row], uvd[nyu.index(name)])
    np.testing.assert_allclose(b.xyz[b.keypoint_names.index("thumb_tip")], xyz[nyu.index("thumb_tip")])
    assert b.meta["label_file"].endswith("b_xyz.txt")


def test_sidecar_and_explicit_arguments(tmp_path):
    write_gray16(tmp_path / "f.png", counts_image())
    (tmp_path / "camera.yaml").write_text("fx: 300\nfy: 301\ncx: 30\ncy: 20\ndepth_unit_mm: 0.1\n")
    from_sidecar = open_dataset("png", tmp_path)
    assert (from_sidecar.cam.fx, from_sidecar.cam.fy, from_sidecar.cam.cx, from_sidecar.cam.cy) == (300, 301, 30, 20)
    np.testing.assert_allclose(from_sidecar[0].depth_mm, counts_image() * np.float32(0.1))
    overridden = open_dataset("png", tmp_path, fx=111.0, depth_unit_mm=1.0)
    assert (overridden.cam.fx, overridden.cam.fy) == (111.0, 301)
    np.testing.assert_array_equal(overridden[0].depth_mm, counts_image().astype(np.float32))
    preset = open_dataset("png", tmp_path, camera="hands2017")
    assert preset.cam == DATASET_INTRINSICS["hands2017"]     # a preset is an explicit argument too
    (tmp_path / "camera.yaml").unlink()
    (tmp_path / "camera.json").write_text(json.dumps({"fx": 5, "fy": 6, "cx": 7, "cy": 8, "encoding": "gray16"}))
    assert open_dataset("png", tmp_path).cam.fy == 6


def test_errors_name_the_file(tmp_path):
    write_gray16(tmp_path / "ok.png", counts_image())
    with pytest.raises(ValueError, match=r"no intrinsics .*missing fx, fy, cx, cy.*camera\.yaml"):
        open_dataset("png", tmp_path)
    with pytest.raises(ValueError, match="missing cy"):
        open_dataset("png", tmp_path, fx=1.0, fy=1.0, cx=1.0)
    (tmp_path / "camera.yaml").write_text("fx: 300\nfy: 300\ncx: 30\ncy: 20\ndepth_unit: 0.1\n")
    with pytest.raises(ValueError, match=r"camera\.yaml: unknown keys \['depth_unit'\]"):
        open_dataset("png", tmp_path)
    (tmp_path / "camera.yaml").write_text("fx: 300\nfy: 300\ncx: 30\ncy: 20\nwidth: 64\nheight: 48\n")
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        open_dataset("png", tmp_path / "nowhere")

    Image.fromarray(np.zeros((48, 64), np.uint8)).save(tmp_path / "eight_bit.png")
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "rgb.png")
    write_gray16(tmp_path / "small.png", counts_image(shape=(24, 32)))
    write_gray16(tmp_path / "wrong_labels.png", counts_image())
    (tmp_path / "wrong_labels_uvd.txt").write_text(" ".join(["1"] * 45))
    reader = open_dataset("png", tmp_path, joint_order="nyu")
    by_name = {path.name: i for i, path in enumerate(reader.files)}
    with pytest.raises(ValueError, match=r"eight_bit\.png is an 8-bit PNG"):
        reader[by_name["eight_bit.png"]]
    with pytest.raises(ValueError, match=r"rgb\.png is a colour PNG .*nyu_rgb"):
        reader[by_name["rgb.png"]]
    with pytest.raises(ValueError, match=r"small\.png is 32 x 24 pixels, expected 64 x 48 .*camera\.yaml"):
        reader[by_name["small.png"]]
    with pytest.raises(ValueError, match=r"wrong_labels_uvd\.txt: 45 numbers, expected 14 joints x 3 = 42"):
        reader[by_name["wrong_labels.png"]]
    np.testing.assert_array_equal(reader[by_name["ok.png"]].depth_mm, counts_image())
    with pytest.raises(ValueError, match=r"wrong_labels_uvd\.txt has labels but no joint order"):
        open_dataset("png", tmp_path)[by_name["wrong_labels.png"]]
    with pytest.raises(ValueError, match=r"ok\.png has Pillow mode 'I;16', expected an RGB PNG .*gray16"):
        open_dataset("png", tmp_path, encoding="nyu_rgb")[by_name["ok.png"]]
    with pytest.raises(ValueError, match=r"ok\.png is 64 x 48 pixels, expected 640 x 480 \(from camera preset 'nyu'"):
        open_dataset("png", tmp_path, camera="nyu")[by_name["ok.png"]]
    (tmp_path / "camera.yaml").write_text("fx: 300\nfy: 300\ncx: 30\ncy: 20\nwidth: 64\n")
    with pytest.raises(ValueError, match=r"camera\.yaml: give both width and height"):
        open_dataset("png", tmp_path)


def test_frame_size_comes_from_the_first_frame_without_a_camera_size(tmp_path):
    write_gray16(tmp_path / "1.png", counts_image())
    write_gray16(tmp_path / "2.png", counts_image(shape=(40, 64)))
    reader = PNGFolderReader(tmp_path, **CAMERA)
    reader[0]
    with pytest.raises(ValueError, match=r"2\.png is 64 x 40 pixels, expected 64 x 48 \(from the first frame"):
        reader[1]


def test_real_nyu_frame_through_the_reader():
    sample = open_dataset("png", REAL_NYU, encoding="nyu_rgb", camera="nyu")[0]
    assert sample.depth_mm.shape == (480, 640) and sample.cam == DATASET_INTRINSICS["nyu"]
    labels = np.loadtxt(REAL_NYU / "depth_1_0000001_uvd.txt").reshape(14, 3)
    nyu = keypoints.DATASET_ORDERS["nyu"]
    assert sorted(sample.keypoint_names) == sorted(nyu)
    np.testing.assert_array_equal(sample.uvd[sample.keypoint_names.index("palm_center")],
                                  labels[nyu.index("palm_center")])
    # the hand is the nearest thing in the frame, 730-790 mm, where its labels are
    u0, v0 = labels[:, :2].min(axis=0).astype(int)
    u1, v1 = labels[:, :2].max(axis=0).astype(int)
    hand = sample.depth_mm[v0:v1, u0:u1]
    hand = hand[(hand > 0) & (hand < 900)]
    assert hand.size > 1000
    assert 725 <= hand.min() and hand.max() <= 800
    assert sample.depth_mm[sample.depth_mm > 0].min() == hand.min()


def test_sr305_frames_are_value_over_eight():
    reader = open_dataset("png", SR305, depth_unit_mm=0.125, **SR305_CAMERA)
    assert len(reader) == 19
    assert reader[0].name == "20210326-230536/30.png" and reader[8].name == "20210326-231615/0.png"
    nearest, farthest = np.inf, 0.0
    for sample in reader:
        raw = np.asarray(Image.open(sample.meta["path"]))
        np.testing.assert_array_equal(sample.depth_mm, raw.astype(np.float32) / 8)
        valid = sample.depth_mm[sample.depth_mm > 0]
        nearest, farthest = min(nearest, valid.min()), max(farthest, valid.max())
    assert (nearest, farthest) == (2621 / 8, 9184 / 8)


# ---------------------------------------------------------------- eval run and show --model

@pytest.fixture(scope="module")
def small_canonical_checkpoint(tmp_path_factory):
    """A randomly initialised small SRNet predicting the canonical 21 keypoints."""
    torch = pytest.importorskip("torch")
    from hand_pose_ros.model import SRNet, SRNetConfig
    from hand_pose_ros.model.checkpoint import save_checkpoint
    torch.manual_seed(0)
    config = SRNetConfig(features=16)
    return save_checkpoint(tmp_path_factory.mktemp("models") / "canonical_small.pt", SRNet(config).eval(), config)


def test_eval_run_on_the_real_nyu_frame_scores_the_shared_joints(capsys, tmp_path, small_canonical_checkpoint):
    args = ["eval", "run", "--model", str(small_canonical_checkpoint), "--dataset", "png", "--root", str(REAL_NYU),
            "--encoding", "nyu_rgb", "--camera", "nyu", "--backend", "torch"]
    assert cli.main(args + ["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    shared = [n for n in keypoints.CANONICAL if n in keypoints.DATASET_ORDERS["nyu"]]
    assert len(shared) == 11 and summary["shared_joints"] == shared
    assert summary["missing_joints"] == list(keypoints.EXTRA)
    assert list(summary["per_joint_error_mm"]) == shared and summary["frames_without_hand"] == 0
    assert np.isfinite(summary["mean_error_mm"]) and summary["mean_error_mm"] > 0
    assert summary["mean_error_mm"] == pytest.approx(np.mean(list(summary["per_joint_error_mm"].values())))
    # A community result file needs all 14 NYU joints: refused, nothing written.
    assert cli.main(args + ["-o", str(tmp_path / "r.txt")]) == 2
    assert "palm_center" in capsys.readouterr().err and not (tmp_path / "r.txt").exists()
    assert cli.main(["eval", "run", "--model", str(small_canonical_checkpoint), "--dataset", "nyu-frames",
                     "--root", str(REAL_NYU), "--encoding", "nyu_rgb"]) == 2
    assert "only for --dataset png" in capsys.readouterr().err


def test_show_model_grid_of_a_folder(capsys, tmp_path, small_canonical_checkpoint):
    from hand_pose_ros.evaluation.estimate_grid import grid_size_px
    # frame 1: a hand-sized dome at ~500 mm (counts of 0.125 mm); frame 2: nothing in range
    v, u = np.mgrid[0:240, 0:320]
    r2 = ((u - 160) ** 2 + (v - 120) ** 2) / 45.0 ** 2
    dome = np.where(r2 < 1, (500 - 20 * np.sqrt(np.clip(1 - r2, 0, 1))) * 8, 0)
    write_gray16(tmp_path / "frames" / "1.png", dome)
    write_gray16(tmp_path / "frames" / "2.png", np.zeros((240, 320)))
    out = tmp_path / "grid.png"
    code = cli.main(["show", "--dataset", "png", "--root", str(tmp_path / "frames"), "--depth-unit-mm", "0.125",
                     "--fx", "240", "--fy", "240", "--cx", "160", "--cy", "120", "--model",
                     str(small_canonical_checkpoint), "--backend", "torch", "-o", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert (summary["frames"], summary["localised"]) == (2, 1)
    assert [f["localised"] for f in summary["per_frame"]] == [True, False]
    with Image.open(out) as image:
        assert image.size == grid_size_px(2) == tuple(summary["size_px"])
        rgb = np.asarray(image.convert("RGB")).astype(int)
    # The estimate is drawn in the finger colours on the first tile (an untrained network puts
    # all joints close together, so only a few pixels), none on the "no hand" tile.
    coloured = np.zeros(rgb.shape[:2], bool)
    for finger in keypoints.FINGERS:
        coloured |= np.abs(rgb - np.array(keypoints.FINGER_COLOURS[finger]) * 255).max(axis=-1) < 30
    first_tile = coloured[:, :image.size[0] // 2].sum()
    assert first_tile > 10 and coloured.sum() == first_tile
    assert grid_size_px(19)[0] == grid_size_px(5)[0] and grid_size_px(19)[1] > grid_size_px(15)[1]

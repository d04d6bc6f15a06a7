"""`hand-pose show`: grids of dataset samples and loose frames with the skeleton drawn."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hand_pose_ros import cli, keypoints
from hand_pose_ros.data.readers import open_dataset
from hand_pose_ros.data.show import pick_indices, render_grid

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL_NYU = SHARED / "data" / "real" / "nyu"


def pixels_near(png: Path, colour, tolerance=40) -> int:
    """How many pixels of the PNG are close to an RGB colour in [0, 1]."""
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    target = np.array(colour) * 255
    return int((np.abs(rgb - target).max(axis=-1) < tolerance).sum())


def test_show_real_nyu_frame_with_images_option(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert cli.main(["show", "--images", str(REAL_NYU), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] >= 200 and image.size[1] >= 200
    # the thumb (red) and index (orange) bones are drawn; viridis has neither colour
    assert pixels_near(out, keypoints.FINGER_COLOURS["thumb"]) > 20
    assert pixels_near(out, keypoints.FINGER_COLOURS["index"]) > 20


def test_skeleton_only_where_there_are_labels(tmp_path):
    sample = open_dataset("nyu-frames", REAL_NYU)[0]
    unlabelled = dataclasses.replace(sample, uvd=None)
    for view in ("frame", "crop"):
        render_grid([sample], tmp_path / f"{view}.png", view=view)
        render_grid([unlabelled], tmp_path / f"{view}_bare.png", view=view)
        thumb = keypoints.FINGER_COLOURS["thumb"]
        assert pixels_near(tmp_path / f"{view}.png", thumb) > 20
        assert pixels_near(tmp_path / f"{view}_bare.png", thumb) == 0


def test_show_dataset_grid_and_crop_view(tmp_path):
    # a tiny ICVL test split: 3 + 2 frames, a flat 'hand' square, labels on it
    rng = np.random.default_rng(0)
    root = tmp_path / "icvl"
    for sequence, count in (("test_seq_1", 3), ("test_seq_2", 2)):
        lines = []
        for i in range(count):
            depth = np.zeros((240, 320), np.uint16)
            depth[80:160, 120:200] = 400
            path = root / "Testing" / "Depth" / sequence / f"image_{i:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(depth).save(path)
            uvd = np.column_stack([rng.uniform(125, 195, 16), rng.uniform(85, 155, 16), np.full(16, 400.0)])
            lines.append(f"image_{i:04d}.png " + " ".join(f"{v:.2f}" for v in uvd.ravel()))
        (root / "Testing" / f"{sequence}.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "icvl.png"
    args = ["show", "--dataset", "icvl", "--root", str(root), "--count", "4", "--seed", "1", "-o", str(out)]
    assert cli.main(args) == 0
    crops = tmp_path / "icvl_crops.png"
    assert cli.main(args[:-2] + ["--view", "crop", "--columns", "4", "-o", str(crops)]) == 0
    with Image.open(out) as grid, Image.open(crops) as row:
        assert grid.size[0] < row.size[0] and grid.size[1] > row.size[1]     # 2 x 2 vs 4 x 1 tiles
    assert pixels_near(crops, keypoints.FINGER_COLOURS["ring"]) > 10


def test_pick_indices():
    assert pick_indices(5, 16, 0) == [0, 1, 2, 3, 4]
    chosen = pick_indices(1000, 10, 3)
    assert len(set(chosen)) == 10 and chosen == sorted(chosen) and chosen == pick_indices(1000, 10, 3)
    assert chosen != pick_indices(1000, 10, 4)
    with pytest.raises(ValueError, match="no samples"):
        pick_indices(0, 3, 0)


def test_show_errors_are_clear(tmp_path, capsys):
    assert cli.main(["show", "--dataset", "nyu", "--root", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "joint_data.mat" in err and "Expected layout" in err
    assert cli.main(["show", "-o", str(tmp_path / "x.png")]) == 2
    assert "--dataset" in capsys.readouterr().err
    assert cli.main(["show", "--images", str(tmp_path / "none.png"), "-o", str(tmp_path / "x.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()

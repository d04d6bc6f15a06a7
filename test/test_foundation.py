"""The shared tables: keypoint orders, skeleton edges, intrinsics, the model config."""
import json
import math

import numpy as np
import pytest

from hand_pose_ros import camera, keypoints
from hand_pose_ros.model.config import SRNetConfig


@pytest.mark.parametrize("dataset, joints", [("msra", 21), ("hands2017", 21), ("icvl", 16),
                                             ("nyu", 14), ("canonical", 21)])
def test_dataset_orders_are_named_subsets(dataset, joints):
    order = keypoints.order(dataset)
    assert len(order) == joints
    assert len(set(order)) == joints
    assert set(order) <= set(keypoints.ALL_NAMES)


def test_canonical_order_is_mediapipe():
    c = keypoints.CANONICAL
    assert c[0] == "wrist" and c[4] == "thumb_tip" and c[8] == "index_tip"
    assert c[12] == "middle_tip" and c[16] == "ring_tip" and c[20] == "pinky_tip"


def test_skeleton_is_a_tree_connecting_every_joint():
    for dataset in ("msra", "hands2017", "icvl", "nyu", "canonical"):
        names = keypoints.order(dataset)
        e = keypoints.edges(names)
        touched = {i for pair in e for i in pair}
        assert touched == set(range(len(names))), dataset
    # The 21-point hand: 20 bones plus the 3 links between neighbouring MCPs.
    assert len(keypoints.edges(keypoints.CANONICAL)) == 23


def test_reorder_maps_by_name():
    msra = keypoints.order("msra")
    joints = np.arange(21 * 3, dtype=float).reshape(21, 3)
    canon = keypoints.reorder(joints, msra, keypoints.CANONICAL)
    assert np.array_equal(canon[keypoints.CANONICAL.index("thumb_tip")], joints[msra.index("thumb_tip")])
    with pytest.raises(ValueError, match="not in this order"):
        keypoints.reorder(joints[:14], keypoints.order("nyu"), keypoints.CANONICAL)


def test_finger_colours_cover_every_name():
    for name in keypoints.ALL_NAMES:
        assert len(keypoints.colour_of(name)) == 3
    assert keypoints.finger_of("thumb_cmc") == "thumb"
    assert keypoints.finger_of("palm_center") == "palm"


def test_uvd_xyz_round_trip_numpy_and_torch():
    torch = pytest.importorskip("torch")
    cam = camera.dataset_intrinsics("nyu")
    uvd = np.array([[320.0, 240.0, 700.0], [100.5, 400.25, 950.0]])
    xyz = cam.uvd_to_xyz(uvd)
    assert np.allclose(xyz[0], [0, 0, 700])
    assert np.allclose(cam.xyz_to_uvd(xyz), uvd)
    t = torch.tensor(uvd, dtype=torch.float64)
    assert torch.allclose(camera.uvd_to_xyz(t, cam), torch.tensor(xyz))


def test_intrinsics_from_k_and_crop_window():
    cam = camera.Intrinsics.from_k([600, 0, 330, 0, 610, 250, 0, 0, 1], 640, 480)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (600, 610, 330, 250)
    sub = cam.cropped(100, 50, 128, 128)
    # The same 3D point lands on the same pixel, shifted by the window's corner.
    p = np.array([[30.0, -20.0, 500.0]])
    assert np.allclose(cam.xyz_to_uvd(p)[0, :2] - [100, 50], sub.xyz_to_uvd(p)[0, :2])
    with pytest.raises(ValueError, match="invalid camera matrix"):
        camera.Intrinsics.from_k([0, 0, 0, 0, 0, 0, 0, 0, 1])


def test_model_config_round_trip_and_validation():
    cfg = SRNetConfig(keypoint_names=keypoints.order("nyu"), norm="batch", half_cube_mm=125, handedness_head=False)
    assert cfg.num_joints == 14
    again = SRNetConfig.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(cfg.to_json())["keypoint_names"][0] == "pinky_tip"
    with pytest.raises(ValueError, match="norm"):
        SRNetConfig(norm="group")
    with pytest.raises(ValueError, match="unknown keypoint"):
        SRNetConfig(keypoint_names=("wrist", "sixth_finger"))
    with pytest.raises(ValueError, match="unknown model config fields"):
        SRNetConfig.from_dict({"features": 64, "colour": "red"})
    assert math.isclose(cfg.replace(features=64).features, 64)

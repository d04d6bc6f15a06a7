"""The hand localiser with the operator's body in view (localise_report.body_in_view_samples:
the torso beside the hand at about its depth, running out of the image, joined to the hand
by the upper arm)."""
import numpy as np

from hand_pose_ros.data.crop import crop_hand
from hand_pose_ros.data.localise import HandLocaliser, _box_open
from hand_pose_ros.data.localise_report import body_in_view_samples


def _all_joints_in_crop(localiser, sample):
    det = localiser.locate(sample.depth_mm, sample.cam)
    if det is None:
        return False
    norm = crop_hand(sample.depth_mm, det.com_uvd, sample.cam, sample.half_cube_mm).normalise_uvd(sample.uvd)
    return bool(np.abs(norm[:, :2]).max() <= 0.5 and np.abs(norm[:, 2]).max() < 1)


def test_hand_joined_to_the_body_is_found_not_the_torso():
    # frame 20 of seed 1: hand, arm and torso are one piece without a depth jump; taking the
    # whole piece as a surface (body_width_mm=0, the old rule) centres the crop off the hand
    sample = list(body_in_view_samples(21, seed=1))[20]
    assert _all_joints_in_crop(HandLocaliser(), sample)
    assert not _all_joints_in_crop(HandLocaliser(body_width_mm=0), sample)


def test_box_open_matches_a_brute_force_opening():
    rng = np.random.default_rng(0)
    mask = np.zeros((40, 50), dtype=bool)
    mask[5:30, 0:30] = True               # a thick block at the left border
    mask[15:18, 30:48] = True             # a thin arm sticking out of it
    mask[rng.random(mask.shape) > 0.995] = False    # one-pixel dropouts: still thick
    opened = _box_open(mask, 4)
    assert opened[10:25, 0:25].all() and not opened[:, 36:].any() and not (opened & ~mask).any()
    # brute force on the hole-filled mask, outside the image counting as inside
    filled = mask.copy()
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            filled |= np.roll(np.roll(np.pad(mask, 1), dr, 0), dc, 1)[1:-1, 1:-1]
    padded = np.pad(filled, 4, constant_values=True)
    core = np.array([[padded[r:r + 9, c:c + 9].all() for c in range(50)] for r in range(40)])
    core_padded = np.pad(core, 4)
    expected = np.array([[core_padded[r:r + 9, c:c + 9].any() for c in range(50)] for r in range(40)]) & mask
    np.testing.assert_array_equal(opened, expected)

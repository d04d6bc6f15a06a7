"""The localiser's crop centre must not jump under sensor noise far below a real camera's.

Whole-millimetre noise in [-1, 1] on synthetic frames (a seed apart from the test set's):
starting the refinement from the single nearest pixel moved the centre by more than 5 px in
about one frame in five (several fingertips at nearly the same depth); starting from the
middle of the nearest front keeps every frame within a few pixels.
"""
import numpy as np
import pytest

from hand_pose_ros.data.localise import HandLocaliser
from hand_pose_ros.data.synthetic.disk import _sample, fixed_test_config, generate_frames
from hand_pose_ros.evaluation.run_model import with_depth_noise

pytestmark = pytest.mark.slow
FRAMES, DRAWS, SEED = 30, 4, 4242


@pytest.fixture(scope="module")
def frames():
    config = fixed_test_config()
    cam = config.intrinsics()
    return [_sample(depth, cam, uvd, str(i), i, side)
            for i, (depth, uvd, _, side) in enumerate(generate_frames(SEED, FRAMES, config))]


def centre_spread_px(localiser, sample):
    """Largest spread (px, u or v) of the detected centres over the noisy copies."""
    centres = [d.com_uvd[:2] for copy in with_depth_noise([sample], 1, DRAWS, seed=7)
               if (d := localiser.locate(copy.depth_mm, copy.cam)) is not None]
    return float(np.ptp(np.array(centres), axis=0).max()) if len(centres) > 1 else 0.0


def test_centre_is_stable_under_one_millimetre_of_noise(frames):
    spreads = np.array([centre_spread_px(HandLocaliser(), s) for s in frames])
    assert spreads.max() <= 5.0, f"centre jumps by {spreads.max():.1f} px (frame {spreads.argmax()})"


def test_the_single_nearest_pixel_start_was_not_stable(frames):
    # What the fix is against: the same frames, refinement started from the nearest pixel.
    spreads = np.array([centre_spread_px(HandLocaliser(front_slab_mm=0.0), s) for s in frames])
    assert (spreads > 5.0).sum() >= 2

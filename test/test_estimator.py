"""The per-frame pipeline: localise -> crop -> infer -> recover -> xyz. A random model
cannot be checked for accuracy, so these tests check shapes, where things land, the
recovery arithmetic (with a backend that returns chosen outputs), no hand -> None, and
non-finite outputs -> an invalid (but finite) estimate."""
import numpy as np
import pytest

from hand_pose_ros.camera import DATASET_INTRINSICS
from hand_pose_ros.data.crop import crop_hand
from hand_pose_ros.data.localise import HandLocaliser
from hand_pose_ros.inference.backends.base import Backend
from hand_pose_ros.inference.estimator import STAGES, Estimate, HandPoseEstimator
from hand_pose_ros.inference.sample_inputs import realistic_frames
from hand_pose_ros.model.config import SRNetConfig

from conftest import RANDOM_MODEL_LEFT_PROBABILITY

CONFIG = SRNetConfig(half_cube_mm=150.0, handedness_head=False)


class FixedBackend(Backend):
    """Returns the same normalised output for every crop, and records what it was given.
    left_probability: a model with a handedness head, saying this for crop k of a call
    (a sequence, repeated as needed); None: a model without the head."""
    name = "fixed"

    def __init__(self, uvd_norm, confidence=None, config=CONFIG, left_probability=None):
        if left_probability is not None:
            config = config.replace(handedness_head=True)
        super().__init__(config)
        self.uvd_norm = np.asarray(uvd_norm, np.float32)
        self.confidence = np.full(config.num_joints, 0.5, np.float32) if confidence is None else confidence
        self.left_probability = None if left_probability is None else np.atleast_1d(left_probability)
        self.calls = []

    @classmethod
    def load(cls, model_path, device=None, precision=None, **opts):
        raise NotImplementedError

    def _infer(self, crops):
        self.calls.append(crops.copy())
        batch = crops.shape[0]
        outputs = (np.repeat(self.uvd_norm[None], batch, 0), np.repeat(self.confidence[None], batch, 0))
        if self.left_probability is not None:
            outputs += (np.resize(self.left_probability, batch),)
        return outputs


@pytest.fixture(scope="module")
def frame():
    return realistic_frames(8)[0]  # the frames `hand-pose bench --pipeline` uses


def test_recovery_arithmetic_with_a_known_network_output(frame):
    depth, cam = frame
    joints = CONFIG.num_joints
    uvd_norm = np.zeros((joints, 3), np.float32)
    uvd_norm[1] = (0.25, -0.1, 0.2)
    backend = FixedBackend(uvd_norm)
    estimate = HandPoseEstimator(backend).estimate(depth, cam)

    assert isinstance(estimate, Estimate) and estimate.valid and estimate.reason == ""
    assert estimate.uvd.shape == (joints, 3) and estimate.xyz.shape == (joints, 3)
    assert estimate.confidence.shape == (joints,) and estimate.mean_confidence == pytest.approx(0.5)
    # the crop the backend saw is exactly crop_hand at the localiser's centre
    found = HandLocaliser().locate(depth, cam)
    crop = crop_hand(depth, found.com_uvd, cam, 150.0, 128)
    assert np.array_equal(backend.calls[0][0, 0], crop.image)
    # u = u_n * (box - 1) + floor(com_u); d = d_n * cube + com_d; then pinhole back-projection
    com = estimate.com_uvd
    assert np.allclose(estimate.uvd[0], (np.floor(com[0]), np.floor(com[1]), com[2]))
    expected = (0.25 * (crop.box - 1) + np.floor(com[0]), -0.1 * (crop.box - 1) + np.floor(com[1]),
                0.2 * 150.0 + com[2])
    assert np.allclose(estimate.uvd[1], expected, atol=1e-4)
    assert np.allclose(estimate.xyz, cam.uvd_to_xyz(estimate.uvd))
    left, top, right, bottom = estimate.crop_box
    assert right - left == crop.size == bottom - top and (left, top) == (crop.left, crop.top)
    assert set(STAGES) | {"total"} == set(estimate.timings_ms) and all(v >= 0 for v in estimate.timings_ms.values())


def test_random_model_gives_finite_xyz_inside_the_hand_cube(random_onnx_model, frame):
    depth, cam = frame
    estimator = HandPoseEstimator.from_model_file(random_onnx_model, backend="onnxruntime", threads=1)
    assert estimator.half_cube_mm == 150.0 and estimator.keypoint_names == CONFIG.keypoint_names
    estimate = estimator.estimate(depth, cam)
    assert estimate.valid and np.isfinite(estimate.xyz).all()
    centre = cam.uvd_to_xyz(estimate.com_uvd)
    # whatever the random weights say, decoded joints stay within the crop cube
    assert np.abs(estimate.xyz - centre).max() < 2 * 150.0
    assert 150 < centre[2] < 1200  # inside the localiser's depth range
    # conftest's model says "left" with a known probability
    assert estimate.handedness == "left"
    assert estimate.left_probability == pytest.approx(RANDOM_MODEL_LEFT_PROBABILITY, abs=1e-5)
    # seeding with the last estimate keeps the same hand
    again = estimator.estimate(depth, cam, seed=estimate)
    assert np.array_equal(estimate.seed_uvd(), estimate.com_uvd)
    assert np.abs(again.com_uvd - estimate.com_uvd).max() < 20.0


def test_no_hand_gives_none(frame):
    depth, cam = frame
    estimator = HandPoseEstimator(FixedBackend(np.zeros((21, 3))))
    assert estimator.estimate(np.zeros_like(depth), cam) is None
    far = np.full_like(depth, 3000.0)  # only a wall beyond the localiser's range
    assert estimator.estimate(far, cam) is None
    assert estimator.backend.calls == []


def test_non_finite_network_output_is_invalid_never_nan(frame):
    depth, cam = frame
    uvd_norm = np.zeros((21, 3), np.float32)
    uvd_norm[3, 2] = np.nan
    estimate = HandPoseEstimator(FixedBackend(uvd_norm)).estimate(depth, cam)
    assert estimate is not None and not estimate.valid and "non-finite" in estimate.reason
    for array in (estimate.uvd, estimate.xyz, estimate.confidence, estimate.uvd_norm):
        assert np.isfinite(array).all()
    confidence = np.full(21, np.inf, np.float32)
    assert not HandPoseEstimator(FixedBackend(np.zeros((21, 3)), confidence)).estimate(depth, cam).valid
    # a depth pushed behind the camera is rejected too
    behind = np.zeros((21, 3), np.float32)
    behind[:, 2] = -10.0
    assert "depth" in HandPoseEstimator(FixedBackend(behind)).estimate(depth, cam).reason


def test_batch_keeps_order_and_makes_one_backend_call(frame):
    depth, cam = frame
    other, other_cam = realistic_frames(8)[1]
    assert not np.array_equal(other, depth)
    backend = FixedBackend(np.zeros((21, 3)))
    results = HandPoseEstimator(backend).estimate_batch(
        [(depth, cam), (np.zeros_like(depth), cam), (other, other_cam, None)])
    assert results[1] is None and results[0].valid and results[2].valid
    assert len(backend.calls) == 1 and backend.calls[0].shape == (2, 1, 128, 128)
    assert not np.allclose(results[0].com_uvd, results[2].com_uvd)
    assert HandPoseEstimator(backend).estimate_batch([]) == []


def test_half_cube_override_and_bad_input(frame):
    depth, cam = frame
    estimator = HandPoseEstimator(FixedBackend(np.zeros((21, 3))), half_cube_mm=100.0)
    estimate = estimator.estimate(depth, cam)
    assert estimate.half_cube_mm == 100.0
    assert estimate.crop_box[2] - estimate.crop_box[0] < HandPoseEstimator(
        FixedBackend(np.zeros((21, 3)))).estimate(depth, cam).crop_box[2] - estimate.crop_box[0] + 1
    with pytest.raises(ValueError, match="half_cube_mm must be > 0"):
        HandPoseEstimator(FixedBackend(np.zeros((21, 3))), half_cube_mm=-1)
    with pytest.raises(ValueError, match=r"2-D \[H, W\]"):
        estimator.estimate(depth[None], cam)
    # uint16 depth (as decoded from a 16UC1 message, before float conversion) works too
    assert estimator.estimate(depth.astype(np.uint16), cam).valid
    assert DATASET_INTRINSICS["synthetic"] == cam


def test_each_frame_reports_its_handedness(frame):
    depth, cam = frame
    other, other_cam = realistic_frames(8)[1]
    backend = FixedBackend(np.zeros((21, 3)), left_probability=[0.9, 0.2])
    results = HandPoseEstimator(backend).estimate_batch([(depth, cam), (np.zeros_like(depth), cam),
                                                         (other, other_cam)])
    assert results[1] is None  # no hand: nothing to say about it
    assert (results[0].handedness, results[2].handedness) == ("left", "right")
    assert results[0].left_probability == pytest.approx(0.9) and results[2].left_probability == pytest.approx(0.2)
    # A model without a handedness head: unknown, not a guess.
    plain = HandPoseEstimator(FixedBackend(np.zeros((21, 3)))).estimate(depth, cam)
    assert plain.handedness is None and plain.left_probability is None
    # A non-finite probability is unknown too.
    nan = HandPoseEstimator(FixedBackend(np.zeros((21, 3)), left_probability=np.nan)).estimate(depth, cam)
    assert nan.valid and nan.handedness is None and nan.left_probability is None


def test_backend_handedness_must_match_the_model():
    """The shared interface refuses a backend whose outputs contradict its model config."""
    crops = np.zeros((2, 1, 128, 128), np.float32)
    lying = FixedBackend(np.zeros((21, 3)), left_probability=0.7)
    lying.config = CONFIG  # says "no head" but the backend returns a handedness
    with pytest.raises(RuntimeError, match="handedness for a model with handedness_head=False"):
        lying.infer_outputs(crops)
    silent = FixedBackend(np.zeros((21, 3)))
    silent.config = CONFIG.replace(handedness_head=True)
    with pytest.raises(RuntimeError, match="no handedness for a model with handedness_head=True"):
        silent.infer(crops)

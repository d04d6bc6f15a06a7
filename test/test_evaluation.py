"""Evaluation: community result files, metrics, success curves, plots and `hand-pose eval`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hand_pose_ros import camera, keypoints
from hand_pose_ros.cli import main
from hand_pose_ros.evaluation import metrics
from hand_pose_ros.evaluation.result_files import ResultFileError, read_result_file, write_result_file

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
EVAL = SHARED / "data" / "eval"
NYU_GT = EVAL / "nyu" / "nyu_test_groundtruth_label.txt"
NYU_SRNET = EVAL / "nyu" / "TMM21_NYU_SRNet.txt"
ICVL_GT = EVAL / "icvl" / "icvl_test_groundtruth_label.txt"
ICVL_SRNET = EVAL / "icvl" / "TMM21_ICVL_SRNet.txt"
CAM = camera.Intrinsics(500.0, 500.0, 320.0, 240.0)


def _run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["eval", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _random_uvd(frames=5, joints=14, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    uv = rng.uniform(100, 400, size=(frames, joints, 2))
    d = rng.uniform(600, 900, size=(frames, joints, 1))
    return np.concatenate([uv, d], axis=-1)


# ---- published SRNet scores -------------------------------------------------------------------

@pytest.mark.parametrize("dataset, gt, pred, mean_mm, success_20", [
    ("nyu", NYU_GT, NYU_SRNET, 9.173, 0.725),
    ("icvl", ICVL_GT, ICVL_SRNET, 6.152, 0.853),
])
def test_reproduces_published_srnet_scores(capsys, dataset, gt, pred, mean_mm, success_20):
    code, out, _ = _run_cli(capsys, "score", "--dataset", dataset, "--gt", gt, pred, "--json")
    assert code == 0
    result = json.loads(out)["results"][0]
    assert result["mean_error_mm"] == pytest.approx(mean_mm, abs=0.01)
    assert result["max_error_success"]["20"] == pytest.approx(success_20, abs=0.0005)
    assert result["frames"] == {"nyu": 8252, "icvl": 1596}[dataset]
    assert result["joints"] == len(keypoints.DATASET_ORDERS[dataset])


def test_ground_truth_defaults_to_shared_eval_file(capsys):
    code, out, _ = _run_cli(capsys, "score", "--dataset", "icvl", ICVL_SRNET, "--json")
    assert code == 0
    summary = json.loads(out)
    assert Path(summary["gt"]).resolve() == ICVL_GT.resolve()
    assert summary["results"][0]["mean_error_mm"] == pytest.approx(6.152, abs=0.01)


def test_ground_truth_scores_zero_against_itself(capsys):
    code, out, _ = _run_cli(capsys, "score", "--dataset", "icvl", "--gt", ICVL_GT, ICVL_GT, "--json")
    result = json.loads(out)["results"][0]
    assert code == 0 and result["mean_error_mm"] == 0.0
    assert result["max_error_success"]["0"] == 1.0


# ---- metrics on hand-made arrays ------------------------------------------------------------

def test_constant_depth_offset_gives_exact_error_and_step_curves():
    # Joints on the optical axis: a 10 mm depth offset is a 10 mm 3D error, exactly.
    gt = np.zeros((4, 3, 3))
    gt[..., 0], gt[..., 1], gt[..., 2] = CAM.cx, CAM.cy, 800.0
    pred = gt.copy()
    pred[..., 2] += 10.0
    result = metrics.score(gt, pred, CAM, ("wrist", "thumb_tip", "index_tip"))
    assert result["mean_error_mm"] == 10.0
    assert result["per_joint_mm"] == {"wrist": 10.0, "thumb_tip": 10.0, "index_tip": 10.0}
    for curve in ("max_error_success", "mean_error_success", "joint_success"):
        assert len(result[curve]) == 81 and list(result[curve])[:2] == ["0", "1"]
        assert all(result[curve][str(t)] == 0.0 for t in range(10))
        assert all(result[curve][str(t)] == 1.0 for t in range(10, 81))


def test_three_curves_count_different_things():
    # Frame 0 errors (3, 4, 5) mm via x offsets at d = fx (1 px = 1 mm); frame 1 errors (0, 0, 30).
    gt = np.zeros((2, 3, 3))
    gt[..., 0], gt[..., 1], gt[..., 2] = CAM.cx, CAM.cy, CAM.fx
    pred = gt.copy()
    pred[0, :, 0] += [3.0, 4.0, 5.0]
    pred[1, 2, 0] += 30.0
    errors = metrics.joint_errors_mm(gt, pred, CAM)
    np.testing.assert_allclose(errors, [[3, 4, 5], [0, 0, 30]], atol=1e-9)
    result = metrics.score(gt, pred, CAM, ("wrist", "thumb_tip", "index_tip"))
    assert result["mean_error_mm"] == pytest.approx(42 / 6)
    assert result["per_joint_mm"] == pytest.approx({"wrist": 1.5, "thumb_tip": 2.0, "index_tip": 17.5})
    # max per frame: 5, 30.   mean per frame: 4, 10.   joints: 0, 0, 3, 4, 5, 30.
    assert result["max_error_success"]["5"] == 0.5 and result["max_error_success"]["29"] == 0.5
    assert result["max_error_success"]["30"] == 1.0
    assert result["mean_error_success"]["4"] == 0.5 and result["mean_error_success"]["10"] == 1.0
    assert result["joint_success"]["0"] == pytest.approx(2 / 6)
    assert result["joint_success"]["4"] == pytest.approx(4 / 6)
    assert result["joint_success"]["29"] == pytest.approx(5 / 6)
    json.dumps(result)  # JSON-friendly: plain floats, ints, str keys


def test_uvd_to_xyz_uses_each_focal_length():
    # 10 px right and 10 px down at 1000 mm with fx 500, fy 250 -> 20 mm and 40 mm.
    cam = camera.Intrinsics(500.0, 250.0, 100.0, 100.0)
    gt = np.array([[[100.0, 100.0, 1000.0]]])
    assert metrics.joint_errors_mm(gt, gt + [[[10.0, 0.0, 0.0]]], cam)[0, 0] == pytest.approx(20.0)
    assert metrics.joint_errors_mm(gt, gt + [[[0.0, 10.0, 0.0]]], cam)[0, 0] == pytest.approx(40.0)


def test_per_frame_intrinsics():
    gt = np.array([[[110.0, 100.0, 1000.0]], [[110.0, 100.0, 1000.0]]])
    pred = gt.copy()
    pred[:, 0, 0] += 10.0
    cams = [camera.Intrinsics(500.0, 500.0, 100.0, 100.0), camera.Intrinsics(1000.0, 1000.0, 100.0, 100.0)]
    np.testing.assert_allclose(metrics.joint_errors_mm(gt, pred, cams)[:, 0], [20.0, 10.0])
    with pytest.raises(ValueError, match="2 frames"):
        metrics.joint_errors_mm(gt, pred, cams[:1])


def test_thresholds_and_mismatched_shapes():
    assert metrics.thresholds_mm(2, 0.5).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert metrics.threshold_key(2.5) == "2.5" and metrics.threshold_key(20.0) == "20"
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.score(_random_uvd(3), _random_uvd(4), CAM, keypoints.DATASET_ORDERS["nyu"])
    with pytest.raises(ValueError, match="13 joint names for 14 joints"):
        metrics.score(_random_uvd(), _random_uvd(), CAM, keypoints.DATASET_ORDERS["nyu"][:13])


# ---- result files -------------------------------------------------------------------------------

def test_write_then_read_round_trip(tmp_path):
    uvd = _random_uvd(frames=7, joints=21)
    path = write_result_file(tmp_path / "sub" / "result.txt", uvd)
    lines = path.read_text().splitlines()
    assert len(lines) == 7 and all(len(line.split()) == 63 for line in lines)
    np.testing.assert_allclose(read_result_file(path, num_joints=21, num_frames=7), uvd, atol=1e-4)
    assert read_result_file(path).shape == (7, 21, 3)  # shape taken from the file
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["result.txt"]  # no temp left over


def test_write_refuses_non_finite_and_keeps_old_file(tmp_path):
    path = write_result_file(tmp_path / "r.txt", _random_uvd(2))
    before = path.read_text()
    bad = _random_uvd(2)
    bad[1, 3, 2] = np.nan
    with pytest.raises(ValueError, match="frame 2 value 12 is nan"):
        write_result_file(path, bad)
    assert path.read_text() == before
    with pytest.raises(ValueError, match=r"\[N, J, 3\]"):
        write_result_file(path, np.zeros((2, 5, 2)))


def _write_lines(path: Path, lines) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _good_lines(frames=3, joints=2) -> list[str]:
    return [" ".join(f"{v:.3f}" for v in frame.ravel()) for frame in _random_uvd(frames, joints)]


def test_read_rejects_wrong_line_count(tmp_path):
    path = _write_lines(tmp_path / "short.txt", _good_lines(frames=3))
    with pytest.raises(ResultFileError, match=r"short\.txt: 3 lines \(frames\); expected 4"):
        read_result_file(path, num_joints=2, num_frames=4)
    with pytest.raises(ResultFileError, match="expected 2"):
        read_result_file(path, num_joints=2, num_frames=2)  # too many is an error too


def test_read_rejects_wrong_column_count(tmp_path):
    lines = _good_lines(frames=3, joints=2)
    lines[1] += " 1.0 2.0 3.0"
    path = _write_lines(tmp_path / "wide.txt", lines)
    with pytest.raises(ResultFileError, match=r"wide\.txt: line 2 has 9 values; expected 6 \(2 joints x 3"):
        read_result_file(path, num_joints=2)
    with pytest.raises(ResultFileError, match="line 2 has 9 values; expected 6"):
        read_result_file(path)  # expectation from line 1


def test_read_rejects_values_not_a_multiple_of_three(tmp_path):
    path = _write_lines(tmp_path / "odd.txt", ["1 2 3 4"])
    with pytest.raises(ResultFileError, match=r"odd\.txt: line 1 has 4 values, which is not a multiple of 3"):
        read_result_file(path)


@pytest.mark.parametrize("garbage, shown", [("abc", "'abc'"), ("nan", "'nan'"), ("inf", "'inf'"), ("1,5", "'1,5'")])
def test_read_rejects_garbage(tmp_path, garbage, shown):
    lines = _good_lines(frames=3, joints=2)
    values = lines[2].split()
    values[4] = garbage
    lines[2] = " ".join(values)
    path = _write_lines(tmp_path / "bad.txt", lines)
    with pytest.raises(ResultFileError, match=rf"bad\.txt: line 3, value 5 is {shown}"):
        read_result_file(path, num_joints=2, num_frames=3)


def test_read_rejects_blank_line_inside_and_empty_file(tmp_path):
    lines = _good_lines(frames=3)
    path = _write_lines(tmp_path / "gap.txt", lines[:1] + [""] + lines[1:])
    with pytest.raises(ResultFileError, match=r"gap\.txt: line 2 is empty"):
        read_result_file(path)
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ResultFileError, match="empty"):
        read_result_file(tmp_path / "empty.txt")
    with pytest.raises(ResultFileError, match="no such result file"):
        read_result_file(tmp_path / "missing.txt")


def test_cli_reports_bad_prediction_file(capsys, tmp_path):
    truncated = _write_lines(tmp_path / "truncated.txt", ICVL_SRNET.read_text().splitlines()[:100])
    code, out, err = _run_cli(capsys, "score", "--dataset", "icvl", "--gt", ICVL_GT, truncated)
    assert code == 2 and out == ""
    assert "truncated.txt: 100 lines (frames); expected 1596" in err
    # NYU ground truth has 14 joints: an ICVL file (16) is rejected on its first line.
    code, _, err = _run_cli(capsys, "score", "--dataset", "nyu", "--gt", NYU_GT, ICVL_SRNET)
    assert code == 2 and "line 1 has 48 values; expected 42 (14 joints" in err


# ---- CLI output ---------------------------------------------------------------------------------

def _synthetic_files(tmp_path, offsets_mm=(5.0, 12.0)):
    """Ground truth in the synthetic camera plus one prediction per constant depth offset."""
    gt = _random_uvd(frames=6, joints=21, seed=3)
    gt_path = write_result_file(tmp_path / "gt.txt", gt)
    preds = []
    for offset in offsets_mm:
        pred = gt.copy()
        pred[..., 2] += offset
        preds.append(write_result_file(tmp_path / f"pred_{offset:g}.txt", pred))
    return gt, gt_path, preds


def test_score_json_shape(capsys, tmp_path):
    gt, gt_path, preds = _synthetic_files(tmp_path)
    code, out, err = _run_cli(capsys, "score", "--dataset", "synthetic", "--gt", gt_path, *preds, "--json")
    assert code == 0
    summary = json.loads(out)  # exactly one JSON object on stdout
    assert summary["dataset"] == "synthetic" and summary["joint_names"] == list(keypoints.CANONICAL)
    assert summary["intrinsics"]["fx"] == camera.EVAL_INTRINSICS["synthetic"].fx
    assert [r["file"] for r in summary["results"]] == [str(p) for p in preds]
    for result in summary["results"]:
        assert {"file", "label", "frames", "joints", "mean_error_mm", "per_joint_mm", "max_error_success",
                "mean_error_success", "joint_success"} <= set(result)
        assert result["frames"] == 6 and result["joints"] == 21
        assert list(result["per_joint_mm"]) == list(keypoints.CANONICAL)
        assert list(result["max_error_success"]) == [str(t) for t in range(81)]
    # A depth offset moves x and y too (x = (u - cx) d / fx): error >= the offset, = it on average only at cx.
    cam = camera.EVAL_INTRINSICS["synthetic"]
    expected = metrics.joint_errors_mm(gt, read_result_file(preds[1]), cam).mean()
    assert summary["results"][1]["mean_error_mm"] == pytest.approx(expected)
    assert summary["results"][0]["mean_error_mm"] > 5.0


def test_score_explicit_intrinsics_change_the_score(capsys, tmp_path):
    _, gt_path, preds = _synthetic_files(tmp_path)
    base = ["score", "--dataset", "synthetic", "--gt", gt_path, preds[0], "--json"]
    _, out, _ = _run_cli(capsys, *base)
    _, out_cam, _ = _run_cli(capsys, *base, "--fx", 200, "--fy", 200, "--cx", 250, "--cy", 250)
    assert json.loads(out_cam)["intrinsics"] == {"fx": 200.0, "fy": 200.0, "cx": 250.0, "cy": 250.0}
    assert json.loads(out_cam)["results"][0]["mean_error_mm"] != json.loads(out)["results"][0]["mean_error_mm"]
    # A dataset without an evaluation camera needs all four.
    code, _, err = _run_cli(capsys, "score", "--dataset", "canonical", "--gt", gt_path, preds[0], "--fx", 200)
    assert code == 2 and "--fy, --cx, --cy" in err


def test_score_table_and_unknown_dataset(capsys, tmp_path):
    _, gt_path, preds = _synthetic_files(tmp_path)
    code, out, _ = _run_cli(capsys, "score", "--dataset", "synthetic", "--gt", gt_path, *preds,
                            "--labels", "near", "far")
    assert code == 0
    lines = out.splitlines()
    assert "mean mm" in lines[2] and "<=20mm" in lines[2]
    assert lines[3].split()[0] == "near" and lines[4].split()[0] == "far"
    assert lines[4].split()[-1] == "100.0%"  # everything within 40 mm
    code, _, err = _run_cli(capsys, "score", "--dataset", "kinect9", "--gt", gt_path, preds[0])
    assert code == 2 and "unknown dataset 'kinect9'" in err
    code, _, err = _run_cli(capsys, "score", "--dataset", "synthetic", preds[0])
    assert code == 2 and "pass --gt" in err


# ---- plots ----------------------------------------------------------------------------------------

def _png_size(path: Path) -> tuple[int, int]:
    from PIL import Image
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_plot_command_writes_labelled_pngs(capsys, tmp_path):
    _, gt_path, preds = _synthetic_files(tmp_path)
    out_dir = tmp_path / "plots"
    code, out, _ = _run_cli(capsys, "plot", "--dataset", "synthetic", "--gt", gt_path, *preds,
                            "--labels", "ours", "SRNet (published)", "-o", out_dir, "--json")
    assert code == 0
    written = [Path(p) for p in json.loads(out)["plots"]]
    assert sorted(p.name for p in written) == ["synthetic_per_joint.png", "synthetic_success.png",
                                               "synthetic_success_all.png"]
    for path in written:
        assert path.parent == out_dir and path.stat().st_size > 20_000
        width, height = _png_size(path)
        assert width >= 600 and height >= 400
    # 21 joints x 2 files of grouped bars make the per-joint chart wider than tall.
    width, height = _png_size(out_dir / "synthetic_per_joint.png")
    assert width > 2 * height


def test_score_plot_dir_and_label_count(capsys, tmp_path):
    _, gt_path, preds = _synthetic_files(tmp_path)
    code, out, _ = _run_cli(capsys, "score", "--dataset", "synthetic", "--gt", gt_path, preds[0],
                            "--plot-dir", tmp_path / "p")
    assert code == 0 and "wrote" in out and (tmp_path / "p" / "synthetic_success.png").is_file()
    code, _, err = _run_cli(capsys, "plot", "--dataset", "synthetic", "--gt", gt_path, *preds,
                            "--labels", "only-one", "-o", tmp_path / "q")
    assert code == 2 and "1 --labels for 2 result files" in err


# ---- eval run: a model through the pose node's pipeline ----------------------------------------

REAL_NYU = SHARED / "data" / "real" / "nyu"


def _real_nyu_sample():
    from hand_pose_ros.data.readers import open_dataset
    return open_dataset("nyu-frames", REAL_NYU)[0]


class _JointIndexBackend:
    """Stands in for a network: joint j of the model lands at normalised u = j / 100, so after
    recovery the u order of the written joints shows which model row each came from."""

    def __init__(self, names):
        from hand_pose_ros.model.config import SRNetConfig
        self.config = SRNetConfig(keypoint_names=names, features=16, handedness_head=False)
        self.calls = 0

    def infer_outputs(self, crops):
        from hand_pose_ros.inference.backends.base import ModelOutputs
        self.calls += 1
        joints = self.config.num_joints
        uvd = np.zeros((len(crops), joints, 3), np.float32)
        uvd[:, :, 0] = np.arange(joints) / 100.0
        return ModelOutputs(uvd, np.ones((len(crops), joints), np.float32), None)

    def describe(self):
        return {"backend": "joint-index"}


def test_predict_maps_model_joints_to_dataset_order_by_name():
    from hand_pose_ros.data.sample import Sample
    from hand_pose_ros.evaluation.run_model import predict
    from hand_pose_ros.inference.estimator import HandPoseEstimator

    nyu = keypoints.DATASET_ORDERS["nyu"]
    model_names = keypoints.CANONICAL + ("palm_center", "wrist_ulnar", "wrist_radial")  # 24, another order
    backend = _JointIndexBackend(model_names)
    sample = _real_nyu_sample()
    blank = Sample(np.zeros_like(sample.depth_mm), sample.cam, nyu, sample.uvd, "blank")
    predictions = predict(HandPoseEstimator(backend), [sample, blank, sample], batch=2, progress=False)
    assert backend.calls == 2                              # batches of 2, then 1
    assert predictions.uvd.shape == (3, 14, 3) and predictions.keypoint_names == nyu
    model_rows = [model_names.index(n) for n in nyu]
    u = predictions.uvd[0, :, 0]
    px_per_row = (u[1] - u[0]) / (model_rows[1] - model_rows[0])  # float32 network output: rtol 1e-5
    np.testing.assert_allclose(np.diff(u), np.diff(model_rows) * px_per_row, rtol=1e-5)
    np.testing.assert_array_equal(predictions.uvd[2], predictions.uvd[0])
    # No hand in the blank frame: still one line, at the principal point, counted.
    assert predictions.no_hand == [1] and predictions.invalid == []
    np.testing.assert_array_equal(predictions.uvd[1], np.tile([sample.cam.cx, sample.cam.cy, 0.0], (14, 1)))
    np.testing.assert_array_equal(predictions.gt_uvd[0], sample.uvd)


def test_predict_dataset_cube_uses_each_frames_half_cube():
    from hand_pose_ros.evaluation.run_model import predict
    from hand_pose_ros.inference.estimator import HandPoseEstimator

    small, large = _real_nyu_sample(), _real_nyu_sample()
    small.half_cube_mm, large.half_cube_mm = 100.0, 150.0
    estimator = HandPoseEstimator(_JointIndexBackend(keypoints.DATASET_ORDERS["nyu"]), half_cube_mm=150.0)
    by_model = predict(estimator, [small, large], cube="model", progress=False).uvd
    by_dataset = predict(estimator, [small, large], cube="dataset", progress=False).uvd
    np.testing.assert_array_equal(by_model[0], by_model[1])
    np.testing.assert_array_equal(by_dataset[1], by_model[1])
    # A smaller cube is a smaller crop box: the same normalised u spreads over fewer pixels.
    assert np.ptp(by_dataset[0][:, 0]) < np.ptp(by_model[0][:, 0])


def test_model_lacking_dataset_joints_fails_clearly():
    from hand_pose_ros.evaluation.run_model import model_to_dataset_indices
    with pytest.raises(ValueError, match=r"needs joints \['wrist_ulnar', 'wrist_radial', 'palm_center'\]"):
        model_to_dataset_indices(keypoints.CANONICAL, keypoints.DATASET_ORDERS["nyu"])
    np.testing.assert_array_equal(model_to_dataset_indices(keypoints.CANONICAL, keypoints.DATASET_ORDERS["icvl"]),
                                  keypoints.indices(keypoints.DATASET_ORDERS["icvl"]))


@pytest.fixture(scope="module")
def small_nyu_checkpoint(tmp_path_factory):
    """A randomly initialised small SRNet predicting NYU's 14 joints, in reversed order."""
    torch = pytest.importorskip("torch")
    from hand_pose_ros.model import SRNet, SRNetConfig
    from hand_pose_ros.model.checkpoint import save_checkpoint
    torch.manual_seed(0)
    config = SRNetConfig(keypoint_names=keypoints.DATASET_ORDERS["nyu"][::-1], features=16, handedness_head=False)
    return save_checkpoint(tmp_path_factory.mktemp("models") / "nyu_small.pt", SRNet(config).eval(), config)


def test_eval_run_writes_and_scores_a_result_file(capsys, tmp_path, small_nyu_checkpoint):
    out = tmp_path / "run" / "result.txt"
    code, stdout, err = _run_cli(capsys, "run", "--model", small_nyu_checkpoint, "--dataset", "nyu-frames",
                                 "--root", REAL_NYU, "--backend", "torch", "-o", out, "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["frames"] == 1 and summary["frames_without_hand"] == 0
    assert summary["intrinsics"] == {k: camera.EVAL_INTRINSICS["nyu"].to_dict()[k] for k in ("fx", "fy", "cx", "cy")}
    written = read_result_file(out, num_joints=14, num_frames=1)
    result = summary["results"][0]
    assert result["file"] == str(out) and list(result["per_joint_mm"]) == list(keypoints.DATASET_ORDERS["nyu"])
    # The summary's score is the score of the written file against the frame's labels.
    gt = np.loadtxt(REAL_NYU / "depth_1_0000001_uvd.txt").reshape(1, 14, 3)
    expected = metrics.score(gt, written, camera.EVAL_INTRINSICS["nyu"], keypoints.DATASET_ORDERS["nyu"])
    assert result["mean_error_mm"] == pytest.approx(expected["mean_error_mm"], abs=1e-3)
    # An untrained network still lands on the hand: within the crop cube of the located centre.
    assert 0 < result["mean_error_mm"] < 300
    code, _, err = _run_cli(capsys, "score", "--dataset", "nyu", "--gt", REAL_NYU / "depth_1_0000001_uvd.txt",
                            out, "--json")
    assert code == 0, err


def test_eval_run_errors_name_the_problem(capsys, tmp_path, small_nyu_checkpoint):
    code, _, err = _run_cli(capsys, "run", "--model", small_nyu_checkpoint, "--dataset", "nyu",
                            "-o", tmp_path / "r.txt")
    assert code == 2 and "needs --root" in err
    code, _, err = _run_cli(capsys, "run", "--model", small_nyu_checkpoint, "--dataset", "nyu",
                            "--root", tmp_path / "nowhere", "-o", tmp_path / "r.txt")
    assert code == 2 and "joint_data.mat" in err
    code, _, err = _run_cli(capsys, "run", "--model", tmp_path / "missing.pt", "--dataset", "nyu-frames",
                            "--root", REAL_NYU, "-o", tmp_path / "r.txt")
    assert code == 2 and "missing.pt" in err
    assert not (tmp_path / "r.txt").exists()


def test_eval_run_on_the_synthetic_test_set(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    from hand_pose_ros.model import SRNet, SRNetConfig
    from hand_pose_ros.model.checkpoint import save_checkpoint
    torch.manual_seed(1)
    config = SRNetConfig(features=16)  # the canonical 21 joints
    model = save_checkpoint(tmp_path / "canonical_small.pt", SRNet(config).eval(), config)
    out, gt_out = tmp_path / "synthetic.txt", tmp_path / "synthetic_gt.txt"
    code, stdout, err = _run_cli(capsys, "run", "--model", model, "--dataset", "synthetic-test", "--limit", 3,
                                 "--batch", 2, "--backend", "torch", "-o", out, "--write-gt", gt_out, "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["frames"] == 3 and summary["intrinsics"] == "per-frame"
    assert summary["keypoint_names"] == list(keypoints.CANONICAL)
    run_score = summary["results"][0]
    # The written files score the same with `eval score` (the synthetic camera is the set's camera).
    code, stdout, err = _run_cli(capsys, "score", "--dataset", "synthetic", "--gt", gt_out, out, "--json")
    assert code == 0, err
    file_score = json.loads(stdout)["results"][0]
    assert file_score["mean_error_mm"] == pytest.approx(run_score["mean_error_mm"], abs=1e-3)
    assert file_score["max_error_success"] == pytest.approx(run_score["max_error_success"])
    # The same model on NYU frames lacks three NYU joints: refused before anything is written.
    code, _, err = _run_cli(capsys, "run", "--model", model, "--dataset", "nyu-frames", "--root", REAL_NYU,
                            "--backend", "torch", "-o", tmp_path / "nyu.txt")
    assert code == 2 and "palm_center" in err and not (tmp_path / "nyu.txt").exists()


def test_eval_run_passes_the_precision_to_the_backend(capsys, tmp_path, small_nyu_checkpoint):
    out = tmp_path / "result.txt"
    code, stdout, err = _run_cli(capsys, "run", "--model", small_nyu_checkpoint, "--dataset", "nyu-frames",
                                 "--root", REAL_NYU, "--backend", "torch", "--precision", "fp32", "-o", out, "--json")
    assert code == 0, err
    assert json.loads(stdout)["backend"]["precision"] == "fp32"


def test_depth_noise_copies_frames_and_keeps_holes():
    from hand_pose_ros.camera import Intrinsics
    from hand_pose_ros.data.sample import Sample
    from hand_pose_ros.evaluation.run_model import with_depth_noise
    depth = np.full((6, 8), 500.0, np.float32)
    depth[0, :] = 0.0
    sample = Sample(depth_mm=depth, cam=Intrinsics(100, 100, 4, 3), keypoint_names=("wrist",),
                    uvd=np.zeros((1, 3)), name="f")
    copies = list(with_depth_noise([sample], amplitude_mm=2, draws=3, seed=5))
    assert [c.name for c in copies] == ["f#noise0", "f#noise1", "f#noise2"]
    for copy in copies:
        assert (copy.depth_mm[0] == 0).all()                      # holes stay holes
        change = copy.depth_mm[1:] - 500.0
        assert np.abs(change).max() <= 2 and (change == np.round(change)).all()
        assert copy.uvd is sample.uvd and copy.cam is sample.cam
    assert not np.array_equal(copies[0].depth_mm, copies[1].depth_mm)   # independent draws
    assert (sample.depth_mm[1:] == 500.0).all()                   # the source frame is untouched
    again = list(with_depth_noise([sample], amplitude_mm=2, draws=3, seed=5))
    assert all(np.array_equal(a.depth_mm, b.depth_mm) for a, b in zip(copies, again))
    with pytest.raises(ValueError, match="depth-noise-mm"):
        list(with_depth_noise([sample], amplitude_mm=0, draws=3))
    with pytest.raises(ValueError, match="noise-draws"):
        list(with_depth_noise([sample], amplitude_mm=1, draws=0))


def test_eval_run_with_depth_noise_scores_every_copy(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    from hand_pose_ros.model import SRNet, SRNetConfig
    from hand_pose_ros.model.checkpoint import save_checkpoint
    torch.manual_seed(1)
    config = SRNetConfig(features=16)
    model = save_checkpoint(tmp_path / "canonical_small.pt", SRNet(config).eval(), config)
    out = tmp_path / "noisy.txt"
    code, stdout, err = _run_cli(capsys, "run", "--model", model, "--dataset", "synthetic-test", "--limit", 2,
                                 "--backend", "torch", "--depth-noise-mm", 1, "--noise-draws", 3, "-o", out, "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["frames"] == 6 and len(out.read_text().splitlines()) == 6
    spread = summary["depth_noise"]["frame_mean_error_mm"]
    assert spread["min"] <= spread["median"] <= spread["max"]
    assert spread["min"] <= summary["mean_error_mm"] <= spread["max"]
    assert "depth noise" in err
    code, _, err = _run_cli(capsys, "run", "--model", model, "--dataset", "synthetic-test", "--limit", 2,
                            "--backend", "torch", "--depth-noise-mm", 1, "--gt", out)
    assert code == 2 and "--gt" in err

"""`hand-pose train`: config, data plumbing, a short run's outputs, exact resume, DDP (gloo,
2 processes), clear errors, the ablation command and the throughput benchmark.

Everything runs on CPU with a tiny model (F=16, hourglass level 1, 64 x 64 input) and tiny
synthetic frames (a 160 x 120 camera, no sensor noise or clutter), a few steps each."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hand_pose_ros import keypoints
from hand_pose_ros.camera import DATASET_INTRINSICS
from hand_pose_ros.cli import main as hand_pose_main
from hand_pose_ros.data.sample import Sample
from hand_pose_ros.model.checkpoint import read_checkpoint
from hand_pose_ros.training.ablation import run_ablation, variant_config
from hand_pose_ros.training.config import TrainConfig, load_config
from hand_pose_ros.training.data import (CropDataset, DiskEvalSet, DiskTrainStream, batch_errors_mm,
                                         ground_truth_centre, held_out_split)
from hand_pose_ros.training.distributed import DistContext
from hand_pose_ros.training.throughput import measure_throughput
from hand_pose_ros.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

TINY = {
    "dataset": "synthetic", "device": "cpu", "epochs": 2, "steps_per_epoch": 2, "batch_size": 4,
    "val_frames": 8, "log_every": 1, "num_workers": 0,
    "model": {"features": 16, "hourglass_level": 1, "input_size": 64, "map_size": 32},
    "synthetic": {"camera": "synthetic_msra", "width": 160, "height": 120, "forearm": False,
                  "com_stride": 8, "noise": False, "quantise_mm": 0.0, "table_prob": 0.0,
                  "distractor_prob": 0.0, "distance_mm": [400.0, 600.0]},
}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: one thread is faster, and much faster on a busy shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(out, **changes) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, "out": str(out)}).updated(changes)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """One short synthetic run shared by the output tests: (config, summary)."""
    config = tiny_config(tmp_path_factory.mktemp("train") / "run")
    return config, Trainer(config).fit()


# ----------------------------------------------------------------------------- config

def test_config_yaml_flags_and_set_resolve(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"epochs": 7, "optim": {"lr": 5e-4}, "model": {"features": 32}}))
    config = load_config(path).with_set(["optim.lr_step_epochs=3", "loss.alpha=0.25",
                                         "optim.lr=2e-4", "augment.enabled=false"])
    assert (config.epochs, config.optim.lr, config.optim.lr_step_epochs) == (7, 2e-4, 3)
    assert config.loss.alpha == 0.25 and config.augment.enabled is False
    assert config.model == {"features": 32}
    assert config.optim.step_epochs(50) == 3
    assert TrainConfig().optim.step_epochs(50) == 15       # the release's 15 of 50
    assert TrainConfig().optim.step_epochs(20) == 6
    # round trip through the saved YAML
    config.save(tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == config


@pytest.mark.parametrize("data, message", [
    ({"epochz": 3}, "unknown key(s) ['epochz']"),
    ({"optim": {"lrr": 1}}, "unknown key(s) ['lrr']"),
    ({"model": {"featurez": 8}}, "unknown model config fields ['featurez']"),
    ({"epochs": "many"}, "TrainConfig.epochs='many' must be of type int"),
    ({"amp": "fp8"}, "amp='fp8' is not one of"),
    ({"fold": 3}, "only applies to dataset msra"),
    ({"dataset": "msra", "root": "/x", "fold": "9"}, "use 0..8 or 'all'"),
    ({"model": {"keypoint_names": ["wrist"]}}, "comes from the dataset"),
    ({"optim": {"schedule": "time"}}, "needs time_budget_min"),
    ({"synthetic": {"camera": "nope"}}, "camera 'nope'"),
])
def test_config_errors_name_the_key(data, message):
    with pytest.raises(ValueError) as error:
        TrainConfig.from_dict(data, "my.yaml")
    assert message in str(error.value) and "my.yaml" in str(error.value)


def test_handedness_head_only_where_the_dataset_has_handedness_labels(tmp_path):
    from hand_pose_ros.training.data import dataset_joints

    synthetic = tiny_config(tmp_path)
    assert synthetic.model_config(*dataset_joints("synthetic")).handedness_head is True
    off = tiny_config(tmp_path, model={"handedness_head": False})
    assert off.model_config(*dataset_joints("synthetic")).handedness_head is False
    nyu = TrainConfig.from_dict({"dataset": "nyu", "root": str(tmp_path)})
    assert nyu.model_config(*dataset_joints("nyu")).handedness_head is False  # nothing to learn from
    with pytest.raises(ValueError, match="nyu frames have no handedness labels"):
        TrainConfig.from_dict({"dataset": "nyu", "model": {"handedness_head": True}})
    with pytest.raises(ValueError, match="handedness_weight"):
        tiny_config(tmp_path, loss={"handedness_weight": -0.1})


def test_init_from_a_checkpoint_without_the_handedness_head(tmp_path):
    """--init from a model file written before the head existed: every other weight is
    taken, the head starts untrained."""
    from hand_pose_ros.model import SRNet, SRNetConfig
    from hand_pose_ros.training.trainer import _load_init_weights

    config = SRNetConfig(features=16, hourglass_level=1, input_size=64, map_size=32)
    old = SRNet(config.replace(handedness_head=False))
    new = SRNet(config)
    head_before = {k: v.clone() for k, v in new.state_dict().items() if k.startswith("handedness.")}
    _load_init_weights(new, old.state_dict(), "old.pt")
    for name, value in old.state_dict().items():
        assert torch.equal(new.state_dict()[name], value), name
    for name, value in head_before.items():
        assert torch.equal(new.state_dict()[name], value), name
    # The other way round (a synthetic model fine-tuned on a dataset without labels): head dropped.
    _load_init_weights(old, new.state_dict(), "new.pt")
    # Anything else missing is still an error.
    partial = {k: v for k, v in old.state_dict().items() if not k.startswith("low_level.")}
    with pytest.raises(ValueError, match="weights do not match"):
        _load_init_weights(SRNet(config), partial, "partial.pt")


def test_set_needs_key_value():
    with pytest.raises(ValueError, match="expected key=value"):
        TrainConfig().with_set(["epochs"])


def test_shipped_configs_load():
    paths = sorted((REPO / "config" / "train").glob("*.yaml"))
    assert paths, "config/train/*.yaml missing"
    for path in paths:
        config = load_config(path)
        assert config.dataset in ("synthetic", "nyu", "icvl", "msra", "hands2017")


# ----------------------------------------------------------------------------- disk data

class ListReader(list):
    """The reader interface (len, [i] -> Sample) over in-memory frames."""


def blob_frame(seed: int, names=keypoints.order("icvl")) -> Sample:
    """A 320 x 240 frame: a 'hand' disc at ~450 mm in front of a wall at 1500 mm, with joints
    scattered on the disc."""
    rng = np.random.default_rng(seed)
    cam = DATASET_INTRINSICS["icvl"]
    depth = np.full((240, 320), 1500.0, np.float32)
    centre = np.array([150.0 + 10 * rng.standard_normal(), 120.0 + 10 * rng.standard_normal()])
    rows, cols = np.mgrid[0:240, 0:320]
    disc = (rows - centre[1]) ** 2 + (cols - centre[0]) ** 2 < 30 ** 2
    depth[disc] = 450.0 + 0.1 * (cols[disc] - centre[0])
    uv = centre + rng.uniform(-20, 20, size=(len(names), 2))
    uvd = np.concatenate([uv, 450.0 + rng.uniform(-15, 15, size=(len(names), 1))], axis=1)
    return Sample(depth_mm=depth, cam=cam, keypoint_names=names, uvd=uvd, half_cube_mm=125.0,
                  name=f"frame{seed}")


def test_ground_truth_centre_ignores_the_background():
    sample = blob_frame(0)
    centre = ground_truth_centre(sample.depth_mm, sample.uvd, sample.cam, 125.0)
    hand = np.argwhere((sample.depth_mm > 0) & (sample.depth_mm < 1000))
    expected = [hand[:, 1].mean(), hand[:, 0].mean(), sample.depth_mm[sample.depth_mm < 1000].mean()]
    np.testing.assert_allclose(centre, expected, atol=1e-3)
    # no pixel inside the cube: the joint mean
    empty = np.zeros_like(sample.depth_mm)
    np.testing.assert_allclose(ground_truth_centre(empty, sample.uvd, sample.cam, 125.0),
                               sample.uvd.mean(axis=0))


def test_disk_pipeline_crops_labels_and_scores_in_mm():
    reader = ListReader(blob_frame(i) for i in range(10))
    names = keypoints.order("icvl")
    train_ids, val_ids = held_out_split(len(reader), val_frames=3)
    assert list(val_ids) == [8, 9] and list(train_ids) == list(range(8))  # at most 20% held out
    dataset = CropDataset(reader, train_ids, 128, names)
    item = dataset[0]
    assert item["crops"].shape == (1, 128, 128) and item["uvd_norm"].shape == (len(names), 3)
    assert item["crops"].max() < 1 and item["crops"].min() > -1 and (item["crops"] == 0).any()

    ctx = DistContext()
    stream = DiskTrainStream(dataset, batch_size=3, device=ctx.device, seed=0, rank=0,
                             world_size=1, num_workers=0)
    assert stream.steps_per_epoch == 2
    first = [b.uvd_norm for b in stream.batches(epoch=0)]
    again = [b.uvd_norm for b in stream.batches(epoch=0, start_step=1)]
    torch.testing.assert_close(again[0], first[1])          # mid-epoch resume skips batches
    other_epoch = [b.uvd_norm for b in stream.batches(epoch=1)]
    assert not torch.equal(torch.cat(other_epoch), torch.cat(first))

    # Perfect predictions score 0 mm; +0.01 in normalised depth is +1.25 mm along each ray.
    evaluation = DiskEvalSet(CropDataset(reader, val_ids, 128, names), 4, ctx.device, 0, 1, 0)
    batch = next(evaluation.batches())
    truth = torch.stack([torch.from_numpy(dataset.reader[i].uvd) for i in val_ids])
    from hand_pose_ros.data.crop import normalise_uvd
    perfect = normalise_uvd(truth.numpy(), batch.crop)
    np.testing.assert_allclose(batch_errors_mm(torch.from_numpy(perfect), batch), 0, atol=1e-6)
    shifted = perfect.copy()
    shifted[..., 2] += 0.01
    cam = DATASET_INTRINSICS["icvl"]
    ray = np.stack([(truth[..., 0] - cam.cx) / cam.fx, (truth[..., 1] - cam.cy) / cam.fy,
                    np.ones(truth.shape[:2])], axis=-1)                       # [B,J,3]
    expected = (1.25 * np.linalg.norm(ray, axis=-1)).mean(axis=1)
    np.testing.assert_allclose(batch_errors_mm(torch.from_numpy(shifted), batch), expected, atol=1e-6)


def write_msra(root: Path, frames_per_subject: int = 2) -> np.ndarray:
    """A tiny MSRA tree in the dataset's own format (.bin frames, joint.txt with y and z
    negated); only gesture '1' holds frames. Returns the true uvd [9 * n, 21, 3], P0 -> P8."""
    from hand_pose_ros.data.readers.msra import GESTURES

    cam = DATASET_INTRINSICS["msra"]
    rng = np.random.default_rng(0)
    truth = []
    for subject in range(9):
        for gesture in GESTURES:
            folder = root / f"P{subject}" / gesture
            folder.mkdir(parents=True)
            count = frames_per_subject if gesture == "1" else 0
            rows = []
            for frame in range(count):
                centre = np.array([160 + rng.uniform(-15, 15), 120 + rng.uniform(-15, 15), 420.0])
                uvd = centre + np.concatenate([rng.uniform(-25, 25, (21, 2)), rng.uniform(-15, 15, (21, 1))], 1)
                truth.append(uvd)
                xyz = cam.uvd_to_xyz(uvd) * np.array([1, -1, -1])     # the file's y-up, z-back
                rows.append(" ".join(f"{v:.4f}" for v in xyz.ravel()))
                left, top, right, bottom = 110, 70, 210, 170           # the hand's bounding box
                yy, xx = np.mgrid[top:bottom, left:right]
                disc = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < 35 ** 2
                box = np.where(disc, 420.0 + 0.2 * (xx - centre[0]), 0).astype("<f4")
                header = np.array([320, 240, left, top, right, bottom], "<u4")
                (folder / f"{frame:06d}_depth.bin").write_bytes(header.tobytes() + box.tobytes())
            (folder / "joint.txt").write_text("\n".join([str(count), *rows]) + "\n")
    return np.stack(truth)


def test_msra_leave_one_subject_out_concatenates_p0_to_p8(tmp_path):
    from hand_pose_ros.evaluation import read_result_file
    from hand_pose_ros.training.folds import train_all_folds

    truth = write_msra(tmp_path / "msra", frames_per_subject=1)
    config = TrainConfig.from_dict({
        "dataset": "msra", "root": str(tmp_path / "msra"), "fold": "all", "device": "cpu",
        "epochs": 1, "batch_size": 4, "val_frames": 4, "num_workers": 0,
        "model": TINY["model"], "out": str(tmp_path / "loso")})
    result = train_all_folds(config)
    assert [f["fold"] for f in result["folds"]] == [str(k) for k in range(9)]
    assert all(f["test_frames"] == 1 for f in result["folds"]) and result["frames"] == 9
    ground_truth = read_result_file(tmp_path / "loso" / "msra_loso_groundtruth.txt", num_joints=21)
    np.testing.assert_allclose(ground_truth, truth, atol=1e-3)      # P0 -> P8, file order
    predictions = read_result_file(tmp_path / "loso" / "msra_loso_predictions.txt", num_joints=21)
    assert predictions.shape == (9, 21, 3) and np.isfinite(predictions).all()
    assert np.isfinite(result["mean_error_mm"]) and result["mean_error_mm"] > 0
    for fold in range(9):
        summary = json.loads((tmp_path / "loso" / f"fold_{fold}" / "summary.json").read_text())
        # 8 training subjects x 1 frame: 1 held out for validation, 7 -> one batch of 4
        assert summary["fold"] == str(fold) and summary["validation_frames"] == 1
        assert summary["steps"] == 1


# ----------------------------------------------------------------------------- a short run

def test_short_run_writes_everything(short_run):
    config, summary = short_run
    out = Path(config.out)
    for name in ("last.pt", "best.pt", "config.yaml", "summary.json"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert load_config(out / "config.yaml") == config
    saved = json.loads((out / "summary.json").read_text())
    assert saved["steps"] == 4 and saved["epochs_completed"] == 2
    assert np.isfinite(saved["best_val_error_mm"]) and saved["best_val_error_mm"] > 0
    assert saved["best_val_error_mm"] == min(c["val_error_mm"] for c in saved["val_curve"])
    assert saved["images_per_s"] > 0 and saved["device"] == "cpu"
    assert saved["loss_weights"]["alpha"] == 0.5           # two_stage default: both terms
    assert saved["loss_weights"]["handedness_weight"] == 0.05
    # Synthetic frames say which hand they show: the model has the head, validation scores it.
    accuracy = saved["final_val_handedness_acc"]
    assert 0 <= accuracy <= 1 and (accuracy * config.val_frames) % 1 == 0  # a share of the 8 frames

    last = read_checkpoint(out / "last.pt")
    assert last["train_config"] == config.to_dict()
    assert last["config"]["keypoint_names"] == list(keypoints.CANONICAL)
    assert last["config"]["features"] == 16 and last["config"]["extra"]["dataset"] == "synthetic"
    assert last["config"]["handedness_head"] is True
    assert any(name.startswith("handedness.") for name in last["state_dict"])
    assert {"optimizer", "scheduler", "rng", "epoch", "global_step"} <= set(last)
    best = read_checkpoint(out / "best.pt")
    assert best["val_error_mm"] == saved["best_val_error_mm"]


def test_scalars_have_loss_lr_val_and_throughput(short_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config, summary = short_run
    events = EventAccumulator(str(Path(config.out) / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {"loss/total", "loss/stage1/uvd", "loss/stage2/heatmap", "loss/stage2/depth", "lr",
                "val/mean_error_mm", "throughput/images_per_s", "loss/handedness", "val/handedness_acc"}
    assert expected <= tags
    lines = [json.loads(line) for line in (Path(config.out) / "scalars.jsonl").read_text().splitlines()]
    assert expected <= {line["tag"] for line in lines}
    val = [line["value"] for line in lines if line["tag"] == "val/mean_error_mm"]
    assert val == [c["val_error_mm"] for c in summary["val_curve"]]
    handedness = [line["value"] for line in lines if line["tag"] == "val/handedness_acc"]
    assert len(handedness) == len(val) and handedness[-1] == summary["final_val_handedness_acc"]


def test_resume_is_exact(short_run, tmp_path):
    """Stopped after one step (time budget) and resumed == the uninterrupted run."""
    config, summary = short_run
    interrupted = tiny_config(tmp_path / "run", time_budget_min=0.001)
    first = Trainer(interrupted).fit()
    assert first["stopped_by_time_budget"] and first["steps"] == 1
    resumed_config = interrupted.updated({"time_budget_min": None})
    second = Trainer(resumed_config, resume=str(tmp_path / "run")).fit()
    assert second["steps"] == 4 and second["epochs_completed"] == 2

    reference = read_checkpoint(Path(config.out) / "last.pt")
    result = read_checkpoint(tmp_path / "run" / "last.pt")
    for name, weights in reference["state_dict"].items():
        assert torch.equal(weights, result["state_dict"][name]), name
    # the validation error after the last epoch matches too
    assert second["final_val_error_mm"] == summary["final_val_error_mm"]
    assert result["optimizer"]["state"][0]["step"] == reference["optimizer"]["state"][0]["step"]


def test_time_schedule_follows_the_budget(tmp_path):
    config = tiny_config(tmp_path, val_frames=4, time_budget_min=5.0,
                         optim={"schedule": "time", "lr": 1e-3, "lr_step_fraction": 0.3})
    trainer = Trainer(config, write_files=False)
    lrs = []
    for progress in (0.0, 0.29, 0.31, 0.61, 0.95):
        trainer._set_time_lr(progress)
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
    np.testing.assert_allclose(lrs, [1e-3, 1e-3, 2e-4, 4e-5, 8e-6])


# ----------------------------------------------------------------------------- command line

def run_cli(args, capsys):
    code = hand_pose_main(["train", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_missing_dataset_folder(capsys, tmp_path):
    code, _, err = run_cli(["--dataset", "nyu", "--device", "cpu"], capsys)
    assert code == 2 and "needs its folder: --root" in err
    code, out, err = run_cli(["--dataset", "nyu", "--root", str(tmp_path / "nowhere"),
                              "--device", "cpu"], capsys)
    assert code == 2 and out == ""
    assert "nyu dataset folder" in err and "nowhere" in err and "does not exist" in err


def test_cli_wrong_layout_is_the_readers_error(capsys, tmp_path):
    code, _, err = run_cli(["--dataset", "icvl", "--root", str(tmp_path), "--device", "cpu"], capsys)
    assert code == 2 and "icvl reader: expected" in err and str(tmp_path) in err


def test_cli_joint_count_mismatch(short_run, capsys, tmp_path):
    config, _ = short_run
    code, _, err = run_cli(["--dataset", "nyu", "--root", str(tmp_path), "--device", "cpu",
                            "--init", str(Path(config.out) / "best.pt")], capsys)
    assert code == 2 and "predicts 21 joints" in err and "'nyu' has 14" in err
    icvl = tmp_path / "icvl.yaml"
    icvl.write_text(yaml.safe_dump({"dataset": "icvl", "root": str(tmp_path), "device": "cpu"}))
    code, _, err = run_cli(["--config", str(icvl), "--resume", config.out], capsys)
    assert code == 2 and "predicts 21 joints" in err and "'icvl' has 16" in err


def test_cli_resume_needs_last_pt(short_run, capsys):
    config, _ = short_run
    code, _, err = run_cli(["--resume", str(Path(config.out) / "best.pt")], capsys)
    assert code == 2 and "no optimiser/random state" in err and "last.pt" in err


def test_cli_json_run_and_benchmark(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    code, out, _ = run_cli(["--config", str(path), "--out", str(tmp_path / "cli"), "--epochs", "1",
                            "--steps-per-epoch", "1", "--val-frames", "4", "--json"], capsys)
    assert code == 0
    summary = json.loads(out)                           # exactly one JSON object on stdout
    assert summary["steps"] == 1 and (tmp_path / "cli" / "summary.json").is_file()

    code, out, _ = run_cli(["--config", str(path), "--benchmark-steps", "1", "--json"], capsys)
    assert code == 0
    bench = json.loads(out)
    assert bench["images_per_s"] > 0 and 0 < bench["data_share"] < 1.5
    assert bench["data_ms_per_step"] > 0 and bench["compute_ms_per_step"] > 0


def test_throughput_reports_data_and_compute(tmp_path):
    result = measure_throughput(tiny_config(tmp_path), steps=1, warmup=1)
    assert result["global_batch"] == 4 and result["world_size"] == 1
    assert result["combined_ms_per_step"] > 0 and result["images_per_s"] > 0
    assert not list(tmp_path.iterdir())                 # the benchmark writes nothing


# ----------------------------------------------------------------------------- ablation

def test_ablation_variants_keep_their_defining_loss(tmp_path):
    base = tiny_config(tmp_path).updated({"loss": {"alpha": 0.3}})
    alphas = {v: variant_config(base, v, tmp_path, None).loss.alpha
              for v in ("two_stage", "one_stage", "direct_regression",
                        "coordinate_unsupervised", "representation_unsupervised")}
    assert alphas == {"two_stage": 0.3, "one_stage": 0.3, "direct_regression": None,
                      "coordinate_unsupervised": None, "representation_unsupervised": None}


def test_ablation_command_writes_table_json_and_curves(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "epochs": 1, "steps_per_epoch": 1, "val_frames": 4}))
    code, out, _ = run_cli(["--config", str(path), "--out", str(tmp_path / "ablation"),
                            "--ablation", "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    variants = [row["variant"] for row in result["variants"]]
    assert variants == ["two_stage", "one_stage", "direct_regression", "coordinate_unsupervised",
                        "representation_unsupervised"]
    alphas = {row["variant"]: row["loss_weights"]["alpha"] for row in result["variants"]}
    assert alphas["coordinate_unsupervised"] == 0 and alphas["direct_regression"] == 1
    params = {row["variant"]: row["parameters"] for row in result["variants"]}
    assert params["one_stage"] < params["two_stage"]
    table = (tmp_path / "ablation" / "ablation.md").read_text()
    assert all(v in table for v in variants)
    assert json.loads((tmp_path / "ablation" / "ablation.json").read_text())["variants"]
    png = tmp_path / "ablation" / "ablation_curves.png"
    assert png.stat().st_size > 1000
    png.unlink()                                            # redrawn from the JSON alone
    subprocess.run([sys.executable, "-m", "hand_pose_ros.training.ablation",
                    str(tmp_path / "ablation" / "ablation.json")], check=True, timeout=120)
    assert png.stat().st_size > 1000
    for v in variants:
        assert (tmp_path / "ablation" / v / "best.pt").is_file()


# ----------------------------------------------------------------------------- DDP

def test_ddp_two_cpu_processes_with_gloo(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "epochs": 1, "val_frames": 4}))
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0",
               "-m", "hand_pose_ros.cli", "train", "--config", str(path), "--out", str(out), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1                           # only rank 0 prints
    summary = summaries[0]
    assert summary["world_size"] == 2 and summary["global_batch"] == 8 and summary["steps"] == 2
    assert np.isfinite(summary["best_val_error_mm"])
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    last = read_checkpoint(out / "last.pt")
    assert last["world_size"] == 2 and len(last["rng"]) == 2
    # the two ranks drew different synthetic batches (rank-offset seeds)
    assert not torch.equal(last["rng"][0]["data"]["generator"], last["rng"][1]["data"]["generator"])

    # A 2-process run continues on one process (new random streams, said on stderr).
    code, stdout, stderr = run_cli(["--resume", str(out), "--epochs", "2", "--json"], capsys)
    assert code == 0 and "written by 2 processes" in stderr
    resumed = json.loads(stdout)
    assert resumed["world_size"] == 1 and resumed["steps"] == 4 and resumed["epochs_completed"] == 2

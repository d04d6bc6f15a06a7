"""`hand-pose bench`: the JSON it prints and the table, with a tiny model and few
iterations (speed goals are measured by running the command, never asserted here)."""
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from hand_pose_ros import cli  # noqa: E402
from hand_pose_ros.inference import bench  # noqa: E402
from hand_pose_ros.model import SRNet, SRNetConfig, save_checkpoint  # noqa: E402

LATENCY_KEYS = {"mean", "p50", "p95", "p99", "min"}


def run_json(capsys, *argv) -> dict:
    assert cli.main(["bench", *argv, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # exactly one JSON object, nothing else on stdout


def test_onnxruntime_model_and_pipeline_json(capsys, random_onnx_model):
    report = run_json(capsys, "--model", str(random_onnx_model), "--backend", "onnxruntime", "--device", "cpu",
                      "--batch", "1", "2",
                      "--iters", "2", "--warmup", "1", "--threads", "1", "--pipeline", "--preprocess")
    assert report["model"] == str(random_onnx_model) and report["random_model"] is False
    assert report["device"] == "cpu" and report["machine"]["cpu_count"] >= 1
    assert [(r["backend"], r["batch"]) for r in report["results"]] == [("onnxruntime", 1), ("onnxruntime", 2)]
    for row in report["results"]:
        assert set(row["latency_ms"]) == LATENCY_KEYS == set(row["cpu_ms"]) and row["iters"] == 2
        assert row["frames_per_s"] > 0 and row["latency_ms"]["p50"] <= row["latency_ms"]["p99"]
        assert row["threads"] == 1
    (pipeline,) = report["pipeline"]
    assert pipeline["width"] == 640 and pipeline["height"] == 480 and pipeline["hand_found_fraction"] == 1.0
    for stage in ("decode", "localise", "crop", "infer", "recover", "total", "total_cpu"):
        assert set(pipeline[f"{stage}_ms"]) == LATENCY_KEYS
    assert pipeline["total_ms"]["p50"] >= pipeline["infer_ms"]["p50"]
    assert "total_ms" in report["preprocess"]
    assert report["model_config"]["joints"] == 21


def test_torch_checkpoint_and_skips_reported(capsys, tmp_path):
    config = SRNetConfig(features=16, hourglass_level=1, stages=1)
    checkpoint = save_checkpoint(tmp_path / "b.pt", SRNet(config), config)
    report = run_json(capsys, "--model", str(checkpoint), "--backend", "torch", "--device", "cpu",
                      "--precision", "fp32", "int8", "--iters", "2", "--warmup", "0")
    assert [(r["backend"], r["precision"]) for r in report["results"]] == [("torch", "fp32")]
    assert report["skipped"][0]["precision"] == "int8" and "int8" in report["skipped"][0]["reason"]


def test_table_for_people(capsys, random_onnx_model):
    assert cli.main(["bench", "--model", str(random_onnx_model), "--device", "cpu", "--iters", "2", "--warmup", "0",
                     "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "p50 ms" in out and "frames/s" in out and "onnxruntime" in out
    assert not out.lstrip().startswith("{")


def test_random_model_when_nothing_is_shipped(monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "shipped_model", lambda: None)
    files = bench.ModelFiles(None, work_dir=tmp_path)
    assert files.random and "randomly initialised" in files.description
    assert files.config == SRNetConfig()  # the full-size default model


def test_bad_arguments(capsys):
    assert cli.main(["bench", "--iters", "0"]) == 2
    assert "--iters" in capsys.readouterr().err

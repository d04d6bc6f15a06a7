"""`hand-pose run` end to end: the nodes start as separate processes from their console
scripts with the launch file's parameter files, talk over DDS, are measured and stop
cleanly; one JSON object on stdout."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")

from hand_pose_ros.ros import launch_plan  # noqa: E402
from hand_pose_ros.ros.params import repo_root  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
HAND_POSE = Path(sys.executable).parent / "hand-pose"
REQUIRED_KEYS = ("frames_in", "frames_out", "fps", "latency_ms_p50", "latency_ms_p99", "mean_error_mm",
                 "frames_dropped", "retarget_frames", "retarget_fps", "input_fps", "nodes", "errors", "ok")
SHIPPED_MODEL = REPO / "models" / "srnet_synthetic.onnx"


def hand_pose_run(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(HAND_POSE), "run", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def one_json_object(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one JSON line on stdout, got {len(lines)}:\n{stdout[:2000]}"
    return json.loads(lines[0])


def test_run_synthetic_reports_the_pipeline_numbers(ros_env):
    # The shipped model: a random one's keypoints are no hand, and the retarget node's
    # plausibility gate (rightly) never drives the robot from them.
    proc = hand_pose_run(["--synthetic", "--duration", "8", "--json", "--model", str(SHIPPED_MODEL)], ros_env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = one_json_object(proc.stdout)
    missing = [k for k in REQUIRED_KEYS if k not in result]
    assert not missing, f"missing keys {missing}"
    assert result["ok"] and result["errors"] == []
    assert result["duration_s"] == pytest.approx(8.0, abs=0.5)
    assert result["frames_in"] > result["frames_out"] > 0
    assert result["fps"] > 0 and result["input_fps"] > result["fps"]
    assert 0 < result["latency_ms_p50"] <= result["latency_ms_p99"]
    # A random model is far off, but the figure is a real, finite distance in mm.
    assert result["error_frames"] > 0 and math.isfinite(result["mean_error_mm"]) and result["mean_error_mm"] > 0
    assert result["non_finite_outputs"] == 0
    assert result["pose_node_timings_ms"]["infer"] > 0 and "node_overhead" in result["pose_node_timings_ms"]
    expected_nodes = {"synthetic_camera", "hand_pose"}
    if launch_plan.robot_hands(repo_root()):
        expected_nodes.add("hand_retarget")
        assert result["retarget_frames"] > 0 and result["retarget_non_finite"] == 0
    assert set(result["nodes"]) == expected_nodes
    assert all(code == 0 for code in result["nodes"].values()), f"unclean stop: {result['nodes']}\n{proc.stderr[-3000:]}"


def test_run_fails_clearly_when_a_node_cannot_start(ros_env, tmp_path):
    missing = tmp_path / "missing.onnx"
    proc = hand_pose_run(["--no-retarget", "--duration", "1", "--json", "--model", str(missing),
                          "--startup-timeout", "60"], ros_env, timeout=120)
    assert proc.returncode == 1
    result = one_json_object(proc.stdout)
    assert not result["ok"] and result["nodes"]["hand_pose"] == 1
    assert any("hand_pose exited during start-up with code 1" in e for e in result["errors"]), result["errors"]
    assert str(missing) in proc.stderr  # the node's own message names the file


def test_run_rejects_an_unknown_robot_hand_before_starting_anything(ros_env):
    proc = hand_pose_run(["--robot-hand", "no_such_hand", "--json"], ros_env, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "no_such_hand" in proc.stderr


def test_accuracy_of_the_shipped_model_matches_its_offline_error(ros_env):
    """Mean error against the synthetic camera's ground truth within the model card's offline
    error on the fixed synthetic test set + 2 mm. Needs the trained model and its card."""
    from hand_pose_ros.ros.demo import model_card

    assert SHIPPED_MODEL.is_file(), f"{SHIPPED_MODEL.relative_to(REPO)} is missing: the package ships it"
    card = model_card(SHIPPED_MODEL)
    assert card and card.get("mean_error_mm") is not None, \
        f"model card {SHIPPED_MODEL.with_suffix('.json').name} with mean_error_mm is missing next to the model"
    proc = hand_pose_run(["--synthetic", "--duration", "8", "--json", "--no-retarget"], ros_env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = one_json_object(proc.stdout)
    assert result["error_frames"] > 0
    assert result["mean_error_mm"] <= card["mean_error_mm"] + 2.0, (result["mean_error_mm"], card)

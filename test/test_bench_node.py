"""`hand-pose bench --node`: the pose node's own per-frame cost, step by step, in both output
sets (a few frames of a short synthetic camera sequence; the numbers themselves are measured
by running the command, never asserted here)."""
import functools
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("onnxruntime")

from hand_pose_ros import cli  # noqa: E402
from hand_pose_ros.ros import bench_node  # noqa: E402

pytestmark = pytest.mark.ros

# The shipped model: a random one's confidence is below min_confidence, so no frame would
# count as a hand and nothing past the estimator would run.
SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "models" / "srnet_synthetic.onnx"
ALWAYS = ("receive", "decode", "localise", "crop", "recover", "filter", "checks", "joints", "other")
WHEN_SUBSCRIBED = ("tf", "markers", "debug_image")


def test_node_benchmark_times_every_step_and_skips_what_nobody_subscribes_to(capsys, monkeypatch):
    # 6 camera frames (0.2 s at 30 Hz), not cached: seconds instead of pre-rendering 6 s
    monkeypatch.setattr(bench_node, "bench_node", functools.partial(bench_node.bench_node, loop_s=0.2, cache=False))
    assert cli.main(["bench", "--node", "--node-frames", "3", "--iters", "1", "--warmup", "1", "--threads", "1",
                     "--model", str(SHIPPED_MODEL), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["node"]
    joints, everything = report["scenarios"]
    assert (joints["outputs"], everything["outputs"]) == ("joints", "all")
    assert "/hand_pose/joints" in joints["subscribed"] and "/tf" not in joints["subscribed"]
    assert {"/tf", "/hand_pose/markers", "/hand_pose/debug_image"} <= set(everything["subscribed"])
    for scenario in (joints, everything):
        assert scenario["frames"] == 3 and scenario["frames_measured"] == 3, scenario["states"]
        steps = scenario["steps"]
        for step in ALWAYS:
            assert steps[step]["frames"] == 3, step
            for kind in ("cpu_ms", "wall_ms"):
                assert math.isfinite(steps[step][kind]["p50"]), (step, kind)
        assert all(steps[s]["cpu_ms"]["mean"] >= 0 for s in ALWAYS if s != "other")
        # the total is the steps' sum per frame ("other" is what is left), so their means add up
        assert sum(row["cpu_ms_per_frame"] for row in steps.values()) == pytest.approx(
            scenario["total"]["cpu_ms"]["mean"], rel=1e-6)
        assert scenario["inference"]["cpu_ms"]["p50"] > 0
    assert not set(WHEN_SUBSCRIBED) & set(joints["steps"])  # built only while someone listens
    assert all(everything["steps"][s]["frames"] == 3 for s in WHEN_SUBSCRIBED)

    table = bench_node.format_report(report)
    assert "skipped" in table and "TOTAL" in table and "debug_image" in table


def test_bad_node_arguments(capsys):
    assert cli.main(["bench", "--node", "--node-frames", "0"]) == 2
    assert "--node-frames" in capsys.readouterr().err
    with pytest.raises(ValueError, match="node-outputs"):
        bench_node.bench_node(SHIPPED_MODEL, outputs=("rviz",))

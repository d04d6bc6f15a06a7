"""gpu_report's bookkeeping on the CPU: which measured setting counts for each H200 goal, the
ratio to the shipped model's setting in the same run, and the table (the GPU runs are on the
device; see README)."""
from hand_pose_ros.inference import gpu_report


def _row(batch, p50, fps):
    return {"batch": batch, "latency_ms": {"p50": p50, "p95": p50 * 1.1, "p99": p50 * 1.2},
            "ms_per_frame": p50 / batch, "frames_per_s": fps}


def _part(backend, **rows):
    return {"ok": True, "backend": backend, **{k: _row(*v) for k, v in rows.items()}}


def fabricated_report():
    graph = {"backend": "torch", "precision": "fp16", "cuda_graph": True, "fp16_mode": "half"}
    return {"model": "m.pt", "parts": {
        "environment": {"ok": True, "gpu": "GPU"},
        "cuda_graph_fp16": _part(graph, batch_1=(1, 2.0, 500), batch_256=(256, 60.0, 4300)),
        "cuda_graph_bf16_nhwc": _part({**graph, "precision": "bf16", "channels_last": True},
                                      batch_1=(1, 1.0, 1000), batch_256=(256, 20.0, 12800)),
        "compiled_warm": {**_part({**graph, "precision": "bf16", "compiled": True}, batch_1=(1, 0.6, 1600)),
                          "compile_and_time_s": 12.0},
        # another network: never the "best" setting of the shipped weights
        "batchnorm_cuda_graph_bf16_nhwc": _part(graph, batch_1=(1, 0.1, 9000), batch_256=(256, 5.0, 50000)),
        "pipeline": {"ok": True, "backend": graph, "total_ms": {"p50": 6.0, "p95": 7.0},
                     "infer_ms": {"p50": 2.1}, "localise_ms": {"p50": 2.7}},
        "pipeline_fast": {"ok": True, "backend": graph, "total_ms": {"p50": 2.4, "p95": 3.0},
                          "infer_ms": {"p50": 0.7}, "localise_ms": {"p50": 1.2}},
        "pipeline_compiled": {"ok": True, "backend": {**graph, "compiled": True}, "total_ms": {"p50": 1.9, "p95": 2.5},
                              "infer_ms": {"p50": 0.6}, "localise_ms": {"p50": 0.9}, "compile_and_time_s": 30.0},
        "tensorrt_fp16": {"ok": False, "error": "ImportError: no tensorrt"},
    }}


def test_best_settings_exclude_other_networks_and_goals_show_ratios():
    data = fabricated_report()
    gpu_report.best_parts(data["parts"])
    assert data["parts"]["best_batch1"]["from_part"] == "compiled_warm"
    assert data["parts"]["best_throughput"]["from_part"] == "cuda_graph_bf16_nhwc"
    text = gpu_report.markdown(data)
    assert "| batch 1 latency p50 (ms) (compiled_warm batch_1) | 0.600 | 2.000 | 0.30 | <= 0.7 | yes |" in text
    assert "| large-batch frames/s (cuda_graph_bf16_nhwc batch_256) | 12800.000 | 4300.000 | 2.98 | >= 12000 | yes |" in text
    assert data["parts"]["best_pipeline"]["from_part"] == "pipeline_compiled"
    assert "| whole pipeline p50 (ms) (pipeline_compiled) | 1.900 | 6.000 | 0.32 | <= 2.0 | yes |" in text
    assert "Whole pipeline `pipeline_fast`" in text and "compile + timing took 30.0 s" in text
    assert "tensorrt_fp16 | failed: ImportError" in text and "compile + timing took 12.0 s" in text


def test_goals_not_measured_say_so():
    data = {"model": "m.pt", "parts": {"environment": {"ok": True}}}
    gpu_report.best_parts(data["parts"])
    text = gpu_report.markdown(data)
    assert text.count("not measured") == 3


def test_a_partial_run_still_tabulates():
    """The report is rewritten after every part: with only the shipped setting measured so
    far (no best part yet, no pipeline) the table must still be written."""
    data = fabricated_report()
    parts = data["parts"]
    for name in ("cuda_graph_bf16_nhwc", "compiled_warm", "batchnorm_cuda_graph_bf16_nhwc", "pipeline", "pipeline_fast",
                 "pipeline_compiled"):
        del parts[name]
    text = gpu_report.markdown(data)
    assert text.count("not measured") == 3 and "| cuda_graph_fp16 |" in text

"""The speed side of choosing a fast SRNet: every candidate architecture exported to ONNX
(random weights: speed does not depend on them) and timed with ONNX Runtime on this CPU,
beside its MACs and parameters. What each candidate costs in accuracy comes from training
it (the fast model's card); this table is the other half of that choice.

    hand-pose bench --variants [--threads 2] [--iters 30] [--json]
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..model.config import SRNetConfig

# name -> SRNetConfig changes from the paper's full model (the shipped model's layout).
CANDIDATES: dict[str, dict] = {
    "shipped: InstanceNorm F128, 2 stages, 128 px": {},
    "BatchNorm F128, 2 stages, 128 px": {"norm": "batch"},
    "BN F64, 2 stages, 128 px": {"norm": "batch", "features": 64},
    "BN F64, 1 stage, 128 px": {"norm": "batch", "features": 64, "variant": "one_stage"},
    "BN F64, 1 stage, 128 px, strided stem": {"norm": "batch", "features": 64, "variant": "one_stage",
                                              "stem": "strided"},
    "BN F64, 1 stage, 96 px": {"norm": "batch", "features": 64, "variant": "one_stage",
                               "input_size": 96, "map_size": 48, "hourglass_level": 3},
    "BN F64, 2 stages, 64 px": {"norm": "batch", "features": 64, "input_size": 64, "map_size": 32,
                                "hourglass_level": 3},
    "BN F64, 1 stage, 64 px": {"norm": "batch", "features": 64, "variant": "one_stage",
                               "input_size": 64, "map_size": 32, "hourglass_level": 3},
    "BN F64, 1 stage, 64 px, strided stem": {"norm": "batch", "features": 64, "variant": "one_stage",
                                             "input_size": 64, "map_size": 32, "hourglass_level": 3,
                                             "stem": "strided"},
    "BN F64, 1 stage, 64 px, separable": {"norm": "batch", "features": 64, "variant": "one_stage",
                                          "input_size": 64, "map_size": 32, "hourglass_level": 3,
                                          "separable": True},
    "BN F64, 1 stage, 64 px, 1 head conv": {"norm": "batch", "features": 64, "variant": "one_stage",
                                            "input_size": 64, "map_size": 32, "hourglass_level": 3,
                                            "head_convs": 1},
    "BN F96, 1 stage, 64 px": {"norm": "batch", "features": 96, "variant": "one_stage",
                               "input_size": 64, "map_size": 32, "hourglass_level": 3},
}


def candidate_config(name: str) -> SRNetConfig:
    if name not in CANDIDATES:
        raise ValueError(f"unknown variant {name!r}; known: {list(CANDIDATES)}")
    return SRNetConfig().replace(**CANDIDATES[name])


def time_onnx(path: Path, input_size: int, threads: int, iters: int, warmup: int) -> dict:
    """ONNX Runtime, batch 1, `threads` intra-op threads: wall and process-CPU ms per frame."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    crop = np.random.default_rng(0).uniform(-1, 1, (1, 1, input_size, input_size)).astype(np.float32)
    feed = {session.get_inputs()[0].name: crop}
    for _ in range(warmup):
        session.run(None, feed)
    walls, cpus = [], []
    for _ in range(iters):
        w0, c0 = time.perf_counter(), time.process_time()
        session.run(None, feed)
        walls.append((time.perf_counter() - w0) * 1e3)
        cpus.append((time.process_time() - c0) * 1e3)
    return {"wall_ms_p50": float(np.median(walls)), "cpu_ms_mean": float(np.mean(cpus))}


def measure(names=None, threads: int = 2, iters: int = 30, warmup: int = 5, progress=None) -> list[dict]:
    """One row per candidate: GMAC, parameters, ONNX Runtime wall p50 / CPU mean ms per frame."""
    import torch

    from ..model import SRNet
    from ..model.summary import describe
    from .export import export_onnx

    rows = []
    names = list(names or CANDIDATES)
    with tempfile.TemporaryDirectory(prefix="hand_pose_variants_") as tmp:
        for name in names:
            config = candidate_config(name)
            facts = describe(config)
            torch.manual_seed(0)
            model = SRNet(config).eval()
            path = export_onnx(model, config, Path(tmp) / "candidate.onnx")
            timing = time_onnx(path, config.input_size, threads, iters, warmup)
            rows.append({"variant": name, "config": CANDIDATES[name], "gmac": facts["gmacs_per_frame"],
                         "parameters": facts["parameters"], "threads": threads, **timing})
            if progress:
                progress(rows[-1])
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'variant':44s} {'GMAC':>6s} {'params':>8s} {'wall ms':>8s} {'CPU ms':>8s}"]
    for r in rows:
        lines.append(f"{r['variant']:44s} {r['gmac']:6.2f} {r['parameters'] / 1e6:7.2f}M "
                     f"{r['wall_ms_p50']:8.1f} {r['cpu_ms_mean']:8.1f}")
    return "\n".join(lines)


def default_threads() -> int:
    return min(2, os.cpu_count() or 1)

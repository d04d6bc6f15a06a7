"""Every GPU number the README needs, in one run on a CUDA machine:

    python -m hand_pose_ros.inference.gpu_report --model models/srnet_synthetic.pt --out gpu_report/

Writes DIR/gpu_report.json (rewritten after every part, so a run cut short keeps what it
measured) and DIR/gpu_report.md (a table). Every part fails soft: its error is recorded and
the next part runs. Parts:
  environment          torch / CUDA / GPU / onnxruntime providers / tensorrt
  latency              torch eager FP32, eager FP16 (half and autocast), CUDA-graph FP32 / FP16
                       at batch 1
  throughput           CUDA-graph FP16 and eager FP16 at large batch (256, 512)
  compiled             torch.compile(mode='max-autotune') FP16 batch 1, in a child process
                       with a time limit (autotuning can take minutes)
  onnxruntime          CUDA execution provider when the installed onnxruntime has it; the
                       CPU provider at batch 1 for reference
  tensorrt             FP16 engine build + batch 1 / large batch, where tensorrt imports
  pipeline             the whole per-frame pipeline (decode + localise + crop + infer +
                       recover) on a 640 x 480 frame with the CUDA-graph FP16 backend
  accuracy             mean joint error (mm) FP32 vs FP16 on N frames of the fixed synthetic
                       test set, and the mean FP16-FP32 keypoint difference
Total runtime is kept under ~6 minutes on an H100 (the compile part has its own limit).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from .backends.base import log, setup_cli_logging


class Report:
    """Collects parts; writes the JSON after each one."""

    def __init__(self, out_dir: Path, model: str):
        self.out_dir = out_dir
        self.data = {"model": model, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "parts": {}}
        out_dir.mkdir(parents=True, exist_ok=True)

    def part(self, name: str, fn, *args, **kwargs):
        log.info("gpu_report: %s ...", name)
        start = time.perf_counter()
        try:
            result = {"ok": True, **fn(*args, **kwargs)}
        except Exception as e:  # fail soft: GPU time is scarce, keep going
            result = {"ok": False, "error": f"{type(e).__name__}: {e}",
                      "traceback": traceback.format_exc(limit=4)}
            log.warning("gpu_report: %s failed: %s", name, result["error"])
        result["seconds"] = round(time.perf_counter() - start, 2)
        self.data["parts"][name] = result
        self.save()
        return result

    def save(self) -> None:
        path = self.out_dir / "gpu_report.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True, default=str))
        tmp.replace(path)
        (self.out_dir / "gpu_report.md").write_text(markdown(self.data))


# ----------------------------------------------------------------------------- parts
def environment() -> dict:
    import torch
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 2 ** 30, 1)
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError as e:
        info["onnxruntime"] = f"not importable: {e}"
    try:
        import tensorrt
        info["tensorrt"] = tensorrt.__version__
    except ImportError as e:
        info["tensorrt"] = f"not importable: {e}"
    return info


def time_backend(files, device: str, backend: str, precision: str, batches, iters: int, warmup: int,
                 **opts) -> dict:
    from .bench import time_model
    from .sample_inputs import realistic_crops

    loaded = files.load(backend, device, precision, **opts)
    pool = realistic_crops(8, loaded.config.input_size, loaded.config.half_cube_mm)
    rows = {}
    for batch in batches:
        rows[f"batch_{batch}"] = time_model(loaded, batch, iters if batch <= 8 else max(10, iters // 10),
                                            warmup, pool)
    return {"backend": loaded.describe(), **rows}


def compiled_in_child(model: str, out_dir: Path, timeout_s: int, iters: int, device: str) -> dict:
    """torch.compile in a child process, so a slow autotune cannot eat the whole budget."""
    target = out_dir / "compiled_part.json"
    target.unlink(missing_ok=True)
    command = [sys.executable, "-m", "hand_pose_ros.inference.gpu_report", "--child-compiled",
               "--model", model, "--out", str(out_dir), "--iters", str(iters), "--device", device]
    try:
        done = subprocess.run(command, timeout=timeout_s, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"torch.compile(max-autotune) did not finish within {timeout_s} s") from None
    if done.returncode != 0 or not target.exists():
        raise RuntimeError(f"child exited {done.returncode}: {done.stderr[-1500:]}")
    return json.loads(target.read_text())


def child_compiled(model: str, out_dir: Path, iters: int, device: str) -> None:
    from .bench import ModelFiles
    start = time.perf_counter()
    result = time_backend(ModelFiles(model, work_dir=out_dir), device, "torch", "fp16", [1], iters, 20, compile=True)
    result["compile_and_time_s"] = round(time.perf_counter() - start, 1)
    (out_dir / "compiled_part.json").write_text(json.dumps(result, default=str))


def pipeline(files, device: str, iters: int) -> dict:
    from .bench import time_pipeline
    from .estimator import HandPoseEstimator
    backend = files.load("torch", device, "fp16", cuda_graph=device.startswith("cuda"))
    backend.warmup(1)
    return time_pipeline(HandPoseEstimator(backend), iters, 10)


def accuracy(files, device: str, frames: int) -> dict:
    """FP32 vs FP16 (half, autocast) on the fixed synthetic test set, through the estimator."""
    from ..data.synthetic import fixed_test_set
    from .estimator import HandPoseEstimator

    samples = list(fixed_test_set(frames))
    modes = {"fp32": dict(precision="fp32"), "fp16_half": dict(precision="fp16", fp16_mode="half"),
             "fp16_autocast": dict(precision="fp16", fp16_mode="autocast")}
    xyz, errors = {}, {}
    for mode, opts in modes.items():
        estimator = HandPoseEstimator(files.load("torch", device, **opts))
        names = estimator.keypoint_names
        index = [samples[0].keypoint_names.index(n) for n in names]  # ValueError if not in the labels
        predicted, per_frame = [], []
        for sample in samples:
            estimate = estimator.estimate(sample.depth_mm, sample.cam)
            if estimate is None or not estimate.valid:
                predicted.append(None)
                continue
            predicted.append(estimate.xyz)
            per_frame.append(np.linalg.norm(estimate.xyz - sample.xyz[index], axis=-1).mean())
        xyz[mode] = predicted
        errors[mode] = {"mean_error_mm": float(np.mean(per_frame)) if per_frame else None,
                        "frames_estimated": len(per_frame)}
    result = {"frames": len(samples), **errors}
    for mode in ("fp16_half", "fp16_autocast"):
        both = [(a, b) for a, b in zip(xyz["fp32"], xyz[mode]) if a is not None and b is not None]
        if both:
            diff = [np.linalg.norm(a - b, axis=-1) for a, b in both]
            result[f"{mode}_vs_fp32_keypoint_diff_mm"] = {"mean": float(np.mean(diff)), "max": float(np.max(diff))}
        if errors[mode]["mean_error_mm"] is not None and errors["fp32"]["mean_error_mm"] is not None:
            result[f"{mode}_minus_fp32_mean_error_mm"] = errors[mode]["mean_error_mm"] - errors["fp32"]["mean_error_mm"]
    return result


# ----------------------------------------------------------------------------- markdown
def markdown(data: dict) -> str:
    parts = data["parts"]
    env = parts.get("environment", {})
    lines = [f"# GPU report: {data['model']}", "",
             f"{env.get('gpu', '?')}, torch {env.get('torch', '?')}, CUDA {env.get('cuda', '?')}, "
             f"onnxruntime {env.get('onnxruntime', '?')}, tensorrt {env.get('tensorrt', '?')}", "",
             "| part | backend | precision | batch | p50 ms | p95 ms | p99 ms | ms/frame | frames/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, part in parts.items():
        if not part.get("ok"):
            if name != "environment":
                lines.append(f"| {name} | failed: {str(part.get('error', ''))[:120]} | | | | | | | |")
            continue
        backend = part.get("backend", {})
        for key, row in part.items():
            if not key.startswith("batch_"):
                continue
            lat = row["latency_ms"]
            what = backend.get("backend", "?") + (" graph" if backend.get("cuda_graph") else "") + \
                (" compiled" if backend.get("compiled") else "") + \
                (f" {backend.get('fp16_mode')}" if backend.get("fp16_mode") else "")
            lines.append(f"| {name} | {what} | {backend.get('precision', '?')} | {row['batch']} | {lat['p50']:.3f} | "
                         f"{lat['p95']:.3f} | {lat['p99']:.3f} | {row['ms_per_frame']:.4f} | {row['frames_per_s']:.0f} |")
    pipe = parts.get("pipeline", {})
    if pipe.get("ok"):
        lines += ["", f"Whole pipeline (640x480, torch CUDA-graph FP16): total p50 {pipe['total_ms']['p50']:.2f} ms, "
                      f"p95 {pipe['total_ms']['p95']:.2f} ms; infer p50 {pipe['infer_ms']['p50']:.2f} ms, "
                      f"localise p50 {pipe['localise_ms']['p50']:.2f} ms."]
    acc = parts.get("accuracy", {})
    if acc.get("ok"):
        lines += ["", f"Accuracy on {acc['frames']} fixed synthetic test frames"
                      + (" (RANDOM MODEL: not meaningful)" if data.get("random_model") else "") + ":", ""]
        for mode in ("fp32", "fp16_half", "fp16_autocast"):
            error = acc[mode]["mean_error_mm"]
            lines.append(f"- {mode}: mean joint error {'-' if error is None else f'{error:.2f}'} mm "
                         f"({acc[mode]['frames_estimated']} frames with a hand)")
        for mode in ("fp16_half", "fp16_autocast"):
            if f"{mode}_minus_fp32_mean_error_mm" in acc:
                diff = acc[f"{mode}_vs_fp32_keypoint_diff_mm"]
                lines.append(f"- {mode} - fp32 mean error: {acc[f'{mode}_minus_fp32_mean_error_mm']:+.3f} mm; "
                             f"keypoints differ by {diff['mean']:.3f} mm on average (max {diff['max']:.2f})")
    failed = [n for n, p in parts.items() if not p.get("ok")]
    if failed:
        lines += ["", "Failed parts (see gpu_report.json for the errors): " + ", ".join(failed)]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hand_pose_ros.inference.gpu_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint (.pt; torch parts) or ONNX file; default: "
                        "the shipped model, else a random default SRNet (timing only)")
    parser.add_argument("--out", required=True, help="directory for gpu_report.json / gpu_report.md")
    parser.add_argument("--iters", type=int, default=200, help="timed iterations at small batch")
    parser.add_argument("--frames", type=int, default=64, help="fixed synthetic test frames for the accuracy part")
    parser.add_argument("--large-batch", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--compile-timeout", type=int, default=200, help="seconds allowed for torch.compile")
    parser.add_argument("--device", default="cuda", help="cuda (default); 'cpu' only dry-runs the plumbing")
    parser.add_argument("--child-compiled", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    setup_cli_logging()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.child_compiled:
        child_compiled(args.model, out_dir, args.iters, args.device)
        return 0

    import torch

    from ..model import save_checkpoint
    from .bench import ModelFiles
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_report: torch sees no CUDA GPU; run this on the GPU machine", file=sys.stderr)
        return 2
    files = ModelFiles(args.model, work_dir=out_dir)
    random_model = files.random
    if files.random:  # save it, so every part (and the compile child) loads the same weights
        files = ModelFiles(save_checkpoint(out_dir / "random_srnet.pt", files.model, files.config), work_dir=out_dir)
    report = Report(out_dir, files.description + (" (RANDOM WEIGHTS: timing only)" if random_model else ""))
    report.data["random_model"] = random_model
    with contextlib.redirect_stdout(sys.stderr):
        report.part("environment", environment)
        n = args.iters
        large = args.large_batch
        report.part("eager_fp32", time_backend, files, device, "torch", "fp32", [1], n, 10)
        report.part("eager_fp16_half", time_backend, files, device, "torch", "fp16", [1], n, 10)
        report.part("eager_fp16_autocast", time_backend, files, device, "torch", "fp16", [1], n, 10,
                    fp16_mode="autocast")
        report.part("cuda_graph_fp32", time_backend, files, device, "torch", "fp32", [1], n, 10, cuda_graph=True)
        report.part("cuda_graph_fp16", time_backend, files, device, "torch", "fp16", [1, *large], n, 10,
                    cuda_graph=True)
        report.part("eager_fp16_large_batch", time_backend, files, device, "torch", "fp16", large, n, 3)
        report.part("pipeline", pipeline, files, device, n)
        report.part("accuracy", accuracy, files, device, args.frames)
        report.part("onnxruntime_cuda", time_backend, files, device, "onnxruntime", "fp32", [1, 64], n, 5)
        report.part("onnxruntime_cpu", time_backend, files, "cpu", "onnxruntime", "fp32", [1], 20, 3)
        report.part("tensorrt_fp16", time_backend, files, device, "tensorrt", "fp16", [1, *large], n, 10)
        report.part("compiled_fp16", compiled_in_child, str(files.checkpoint or files.onnx), out_dir,
                    args.compile_timeout, n, device)
    report.data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    report.save()
    print((out_dir / "gpu_report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

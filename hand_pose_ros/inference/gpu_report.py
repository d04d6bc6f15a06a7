"""Every GPU number the README needs, in one run on a CUDA machine:

    python -m hand_pose_ros.inference.gpu_report --model models/srnet_synthetic.pt --out gpu_report/

Writes DIR/gpu_report.json (rewritten after every part, so a run cut short keeps what it
measured) and DIR/gpu_report.md (a table). Every part fails soft: its error is recorded and
the next part runs. Parts:
  environment          torch / CUDA / GPU / onnxruntime providers / tensorrt
  latency              torch eager FP32, eager FP16 (half and autocast), CUDA-graph FP32 / FP16
                       at batch 1; then the fast settings one at a time: bf16, channels_last
  throughput           CUDA-graph FP16 / bf16 channels_last and eager FP16 at large batch
  compiled             torch.compile(mode='max-autotune') bf16 channels_last at batch 1 and at
                       large batch, each in a child process with a time limit (autotuning can
                       take minutes): first with an empty kernel cache (cold), then again
                       reusing it (warm: what a restarted node pays)
  batchnorm            the same network with BatchNorm in place of InstanceNorm (random
                       weights: timing only), CUDA-graph bf16 channels_last and compiled: what
                       a BatchNorm full model (folded norms) would gain
  onnxruntime          CUDA execution provider when the installed onnxruntime has it; the
                       CPU provider at batch 1 for reference
  tensorrt             FP16 engine build + batch 1 / large batch, where tensorrt imports
  pipeline             the whole per-frame pipeline (decode + localise + crop + infer +
                       recover) on a 640 x 480 frame with the CUDA-graph FP16 backend, the
                       bf16 channels_last graph, and the compiled model (in a child)
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
        try:
            text = markdown(self.data)
        except Exception as e:  # the JSON above is the record; never lose a run to the table
            text = f"# GPU report\n\nthe table could not be written: {type(e).__name__}: {e}\n"
        (self.out_dir / "gpu_report.md").write_text(text)


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


# reduce-overhead: inductor's fused kernels (the norm + ReLU in one) replayed as a CUDA
# graph, with no autotuning, so its compile stays bounded; max-autotune adds kernel
# autotuning (minutes cold) and is timed separately.
COMPILED_SETTINGS = {"precision": "bf16", "channels_last": True, "compile_mode": "reduce-overhead"}


def compiled_in_child(model: str, out_dir: Path, timeout_s: int, iters: int, device: str,
                      batches=(1,), cache_dir: Path | None = None, settings=None) -> dict:
    """torch.compile in a child process, so a slow autotune cannot eat the whole budget.
    cache_dir: inductor's kernel cache for the child (the same folder twice = cold, then warm)."""
    import os
    settings = settings or COMPILED_SETTINGS
    target = out_dir / "compiled_part.json"
    target.unlink(missing_ok=True)
    command = [sys.executable, "-m", "hand_pose_ros.inference.gpu_report", "--child-compiled",
               "--model", model, "--out", str(out_dir), "--iters", str(iters), "--device", device,
               "--child-settings", json.dumps({**settings, "batches": list(batches)})]
    env = dict(os.environ)
    if cache_dir is not None:
        env["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir)
    try:
        done = subprocess.run(command, timeout=timeout_s, capture_output=True, text=True, env=env)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"torch.compile(max-autotune) did not finish within {timeout_s} s") from None
    if done.returncode != 0 or not target.exists():
        raise RuntimeError(f"child exited {done.returncode}: {done.stderr[-1500:]}")
    return json.loads(target.read_text())


def child_compiled(model: str, out_dir: Path, iters: int, device: str, settings: dict) -> None:
    from .bench import ModelFiles
    settings = dict(settings)
    batches = settings.pop("batches", [1])
    precision = settings.pop("precision", "bf16")
    whole_pipeline = settings.pop("pipeline", False)
    start = time.perf_counter()
    if whole_pipeline:   # the per-frame pipeline with the compiled model as its backend
        result = pipeline(ModelFiles(model, work_dir=out_dir), device, iters, precision, compile=True, **settings)
    else:
        result = time_backend(ModelFiles(model, work_dir=out_dir), device, "torch", precision, batches, iters, 20,
                              compile=True, **settings)
    result["compile_and_time_s"] = round(time.perf_counter() - start, 1)
    (out_dir / "compiled_part.json").write_text(json.dumps(result, default=str))


def batchnorm_twin(files, out_dir: Path):
    """The model's architecture with BatchNorm in place of its norm, random weights, saved
    as a checkpoint (timing only: the shipped weights are InstanceNorm's)."""
    import torch

    from ..model import SRNet, save_checkpoint
    from ..model.checkpoint import read_checkpoint
    from ..model.config import SRNetConfig
    if files.checkpoint is None:
        raise ValueError("the BatchNorm twin needs the model as a checkpoint (.pt)")
    stored = SRNetConfig.from_stored(read_checkpoint(files.checkpoint, "cpu", False)["config"])
    config = stored.replace(norm="batch")
    torch.manual_seed(0)
    model = SRNet(config).eval()
    return save_checkpoint(out_dir / "batchnorm_twin.pt", model, config)


def pipeline(files, device: str, iters: int, precision: str = "fp16", **opts) -> dict:
    from .bench import time_pipeline
    from .estimator import HandPoseEstimator
    opts.setdefault("cuda_graph", device.startswith("cuda") and not opts.get("compile"))
    backend = files.load("torch", device, precision, **opts)
    backend.warmup(1)
    return {"backend": backend.describe(), **time_pipeline(HandPoseEstimator(backend), iters, 10)}


def accuracy(files, device: str, frames: int) -> dict:
    """FP32 vs FP16 (half, autocast) on the fixed synthetic test set, through the estimator."""
    from ..data.synthetic import fixed_test_set
    from .estimator import HandPoseEstimator

    samples = list(fixed_test_set(frames))
    modes = {"fp32": dict(precision="fp32"), "fp16_half": dict(precision="fp16", fp16_mode="half"),
             "fp16_autocast": dict(precision="fp16", fp16_mode="autocast"),
             "bf16_half_channels_last": dict(precision="bf16", fp16_mode="half", channels_last=True),
             "bf16_autocast": dict(precision="bf16", fp16_mode="autocast")}
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
    for mode in [m for m in modes if m != "fp32"]:
        both = [(a, b) for a, b in zip(xyz["fp32"], xyz[mode]) if a is not None and b is not None]
        if both:
            diff = [np.linalg.norm(a - b, axis=-1) for a, b in both]
            result[f"{mode}_vs_fp32_keypoint_diff_mm"] = {"mean": float(np.mean(diff)), "max": float(np.max(diff))}
        if errors[mode]["mean_error_mm"] is not None and errors["fp32"]["mean_error_mm"] is not None:
            result[f"{mode}_minus_fp32_mean_error_mm"] = errors[mode]["mean_error_mm"] - errors["fp32"]["mean_error_mm"]
    return result


# ----------------------------------------------------------------------------- markdown
# Goal figures (issue 12, H200, full model) and the part each is read from, beside the part
# that measures the shipped model as it ran before (CUDA-graph FP16, eager InstanceNorm).
GOALS = (
    ("batch 1 latency p50 (ms)", "best_batch1", "cuda_graph_fp16", "batch_1", "p50", 0.7, "<="),
    ("large-batch frames/s", "best_throughput", "cuda_graph_fp16", "batch_256", "frames_per_s", 12000, ">="),
    ("whole pipeline p50 (ms)", "best_pipeline", "pipeline", None, "total", 2.0, "<="),
)


def _label(part: dict) -> str:
    backend = part.get("backend", {})
    words = [backend.get("backend", "?")]
    for flag, word in (("cuda_graph", "graph"), ("compiled", "compiled"), ("channels_last", "NHWC")):
        if backend.get(flag):
            words.append(word)
    if backend.get("fp16_mode"):
        words.append(backend["fp16_mode"])
    return " ".join(words)


def _figure(parts: dict, name: str, batch_key, field: str):
    part = parts.get(name, {})
    if not part.get("ok"):
        return None, None
    if f"{field}_ms" in part:  # a pipeline part: {field}_ms = {p50, p95, ...}
        return part[f"{field}_ms"]["p50"], None
    rows = {k: v for k, v in part.items() if k.startswith("batch_")}
    if field == "frames_per_s":
        key = max(rows, key=lambda k: rows[k]["frames_per_s"]) if rows else None
        return (rows[key]["frames_per_s"], key) if key else (None, None)
    return (rows[batch_key]["latency_ms"][field], batch_key) if batch_key in rows else (None, None)


def best_parts(parts: dict) -> None:
    """Adds 'best_batch1' and 'best_throughput': the fastest measured setting of the shipped
    weights (parts named *batchnorm* are another network and are excluded)."""
    batch1, throughput, pipelines = [], [], []
    for name, part in parts.items():
        if not part.get("ok") or "batchnorm" in name or name.startswith("best_") or "onnxruntime_cpu" in name:
            continue
        if "total_ms" in part:   # a whole-pipeline part
            pipelines.append((part["total_ms"]["p50"], name))
            continue
        for key, row in part.items():
            if key == "batch_1":
                batch1.append((row["latency_ms"]["p50"], name))
            elif key.startswith("batch_"):
                throughput.append((-row["frames_per_s"], name))
    if batch1:
        parts["best_batch1"] = {**parts[min(batch1)[1]], "from_part": min(batch1)[1]}
    if throughput:
        parts["best_throughput"] = {**parts[min(throughput)[1]], "from_part": min(throughput)[1]}
    if pipelines:
        parts["best_pipeline"] = {**parts[min(pipelines)[1]], "from_part": min(pipelines)[1]}


def markdown(data: dict) -> str:
    parts = data["parts"]
    env = parts.get("environment", {})
    lines = [f"# GPU report: {data['model']}", "",
             f"{env.get('gpu', '?')}, torch {env.get('torch', '?')}, CUDA {env.get('cuda', '?')}, "
             f"onnxruntime {env.get('onnxruntime', '?')}, tensorrt {env.get('tensorrt', '?')}", "",
             "| part | backend | precision | batch | p50 ms | p95 ms | p99 ms | ms/frame | frames/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, part in parts.items():
        if name.startswith("best_"):
            continue
        if not part.get("ok"):
            if name != "environment":
                lines.append(f"| {name} | failed: {str(part.get('error', ''))[:120]} | | | | | | | |")
            continue
        for key, row in part.items():
            if not key.startswith("batch_"):
                continue
            lat = row["latency_ms"]
            lines.append(f"| {name} | {_label(part)} | {part.get('backend', {}).get('precision', '?')} | {row['batch']} | "
                         f"{lat['p50']:.3f} | {lat['p95']:.3f} | {lat['p99']:.3f} | {row['ms_per_frame']:.4f} | "
                         f"{row['frames_per_s']:.0f} |")
    for name in [n for n in parts if n.startswith("pipeline")]:
        pipe = parts[name]
        if pipe.get("ok"):
            lines += ["", f"Whole pipeline `{name}` (640x480, {_label(pipe)} {pipe.get('backend', {}).get('precision', '')}): "
                          f"total p50 {pipe['total_ms']['p50']:.2f} ms, p95 {pipe['total_ms']['p95']:.2f} ms; infer p50 "
                          f"{pipe['infer_ms']['p50']:.2f} ms, localise p50 {pipe['localise_ms']['p50']:.2f} ms."]
    for name in ("compiled_cold", "compiled_warm", "pipeline_compiled"):
        part = parts.get(name, {})
        if part.get("ok"):
            lines.append(f"\n`{name}`: compile + timing took {part['compile_and_time_s']} s in its child process.")
    lines += ["", "| goal | now | shipped model, same run | now / shipped | goal | met |", "|---|---|---|---|---|---|"]
    for what, new_part, old_part, batch_key, field, goal, sense in GOALS:
        now, now_key = _figure(parts, new_part, batch_key, field)
        old, _ = _figure(parts, old_part, batch_key, field)  # frames/s: each setting's best batch
        if now is None:
            lines.append(f"| {what} | not measured | {old if old is not None else '-'} | | {sense} {goal} | no |")
            continue
        met = now <= goal if sense == "<=" else now >= goal
        ratio = f"{now / old:.2f}" if old else "-"
        source = parts.get(new_part, {}).get("from_part", new_part) + (f" {now_key}" if now_key else "")
        lines.append(f"| {what} ({source}) | {now:.3f} | {'-' if old is None else f'{old:.3f}'} | {ratio} | "
                     f"{sense} {goal} | {'yes' if met else '**no**'} |")
    acc = parts.get("accuracy", {})
    if acc.get("ok"):
        lines += ["", f"Accuracy on {acc['frames']} fixed synthetic test frames"
                      + (" (RANDOM MODEL: not meaningful)" if data.get("random_model") else "") + ":", ""]
        modes = [k for k, v in acc.items() if isinstance(v, dict) and "mean_error_mm" in v]
        for mode in modes:
            error = acc[mode]["mean_error_mm"]
            lines.append(f"- {mode}: mean joint error {'-' if error is None else f'{error:.2f}'} mm "
                         f"({acc[mode]['frames_estimated']} frames with a hand)")
        for mode in modes:
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
    parser.add_argument("--large-batch", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--compile-timeout", type=int, default=200, help="seconds allowed for each torch.compile child")
    parser.add_argument("--skip", nargs="*", default=[], help="part names to leave out (e.g. accuracy tensorrt_fp16)")
    parser.add_argument("--device", default="cuda", help="cuda (default); 'cpu' only dry-runs the plumbing")
    parser.add_argument("--child-compiled", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-settings", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    setup_cli_logging()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.child_compiled:
        child_compiled(args.model, out_dir, args.iters, args.device, json.loads(args.child_settings))
        return 0

    import tempfile

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
    n, large = args.iters, args.large_batch
    fast = dict(channels_last=True)
    model_path = str(files.checkpoint or files.onnx)
    compile_cache = Path(tempfile.mkdtemp(prefix="inductor_cache_"))  # empty: the first child is cold
    parts = [
        ("environment", environment),
        ("eager_fp32", time_backend, files, device, "torch", "fp32", [1], n, 10),
        ("eager_fp16_half", time_backend, files, device, "torch", "fp16", [1], n, 10),
        ("eager_fp16_autocast", time_backend, files, device, "torch", "fp16", [1], n, 10, dict(fp16_mode="autocast")),
        ("cuda_graph_fp32", time_backend, files, device, "torch", "fp32", [1], n, 10, dict(cuda_graph=True)),
        ("cuda_graph_fp16", time_backend, files, device, "torch", "fp16", [1, *large], n, 10, dict(cuda_graph=True)),
        ("cuda_graph_bf16", time_backend, files, device, "torch", "bf16", [1], n, 10, dict(cuda_graph=True)),
        ("cuda_graph_fp16_nhwc", time_backend, files, device, "torch", "fp16", [1], n, 10,
         dict(cuda_graph=True, **fast)),
        ("cuda_graph_bf16_nhwc", time_backend, files, device, "torch", "bf16", [1, *large], n, 10,
         dict(cuda_graph=True, **fast)),
        ("pipeline", pipeline, files, device, n),
        ("pipeline_fast", pipeline, files, device, n, "bf16", dict(**fast)),
        ("accuracy", accuracy, files, device, args.frames),
        ("eager_fp16_large_batch", time_backend, files, device, "torch", "fp16", large[:1], n, 3),
        ("compiled_cold", compiled_in_child, model_path, out_dir, args.compile_timeout, n, device, [1],
         compile_cache),
        ("compiled_warm", compiled_in_child, model_path, out_dir, args.compile_timeout, n, device, [1, large[0]],
         compile_cache),
        ("pipeline_compiled", compiled_in_child, model_path, out_dir, args.compile_timeout, n, device, [1],
         compile_cache, {**COMPILED_SETTINGS, "pipeline": True}),
        ("compiled_max_autotune", compiled_in_child, model_path, out_dir, args.compile_timeout, n, device, [1],
         compile_cache, {**COMPILED_SETTINGS, "compile_mode": "max-autotune"}),
        ("onnxruntime_cuda", time_backend, files, device, "onnxruntime", "fp32", [1, 64], n, 5),
        ("onnxruntime_cpu", time_backend, files, "cpu", "onnxruntime", "fp32", [1], 20, 3),
        ("tensorrt_fp16", time_backend, files, device, "tensorrt", "fp16", [1, *large], n, 10),
    ]
    with contextlib.redirect_stdout(sys.stderr):
        for name, fn, *rest in parts:
            if name in args.skip:
                continue
            kwargs = rest.pop() if rest and isinstance(rest[-1], dict) and fn is not compiled_in_child else {}
            report.part(name, fn, *rest, **kwargs)
        if "batchnorm" not in args.skip and not random_model:
            twin = ModelFiles(batchnorm_twin(files, out_dir), work_dir=out_dir)
            report.part("batchnorm_cuda_graph_bf16_nhwc", time_backend, twin, device, "torch", "bf16", [1, *large],
                        n, 10, cuda_graph=True, **fast)
            report.part("batchnorm_compiled", compiled_in_child, str(twin.checkpoint), out_dir,
                        args.compile_timeout, n, device, [1], compile_cache)
        best_parts(report.data["parts"])
    report.data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    report.save()
    print((out_dir / "gpu_report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

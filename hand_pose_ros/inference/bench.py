"""`hand-pose bench`: latency and throughput of the backends, alone and in the whole pipeline.

    hand-pose bench [--backend torch|onnxruntime|tensorrt|all] [--device cpu|cuda]
                    [--precision fp32 fp16 int8] [--batch 1 64 ...] [--model PATH]
                    [--pipeline] [--preprocess] [--iters N] [--warmup N] [--threads N]
                    [--cuda-graph] [--compile] [--node [--node-frames N] [--node-outputs joints all]]
                    [--json]

Model alone: `backend.infer` on a batch of realistic crops (host array in, host arrays out,
so the copies to and from the GPU are included), warm-up excluded; latency p50/p95/p99,
frames/s = batch * iterations / total time, and the process's CPU time per call (on a
shared machine the wall clock includes other processes' time slices; CPU time does not). On CUDA every timed call is bracketed by
torch.cuda.synchronize (the backend's synchronize()).
Pipeline (--pipeline): one 640 x 480 16UC1 frame per call: decode + localise + crop + infer
+ recover, tracking the hand from the previous frame as the pose node does.
Pose node (--node, needs rclpy): the node's own cost per frame without inference, step by
step (receive, decode, localise, crop, filter, conversions, publishing of joints, TF,
markers, debug image, diagnostics), as CPU and wall time over --node-frames frames of the
synthetic camera; see hand_pose_ros/ros/bench_node.py.
The model: --model, else the shipped models/srnet_synthetic.{onnx,pt}, else a randomly
initialised default SRNet (said so in the output: its latency is real, its outputs are not).
"""
from __future__ import annotations

import contextlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .backends import backend_class
from .backends.base import log, setup_cli_logging
from .model_file import model_kind

SHIPPED_MODELS = ("models/srnet_synthetic.onnx", "models/srnet_synthetic.pt")
BACKEND_CHOICES = ("torch", "onnxruntime", "tensorrt", "all")


def percentiles(samples_ms) -> dict:
    values = np.asarray(samples_ms, dtype=np.float64)
    return {"mean": float(values.mean()), "p50": float(np.percentile(values, 50)),
            "p95": float(np.percentile(values, 95)), "p99": float(np.percentile(values, 99)),
            "min": float(values.min())}


def shipped_model() -> Path | None:
    try:
        from ..ros.params import resolve_share_path  # rclpy-free path helper
    except ImportError:
        resolve_share_path = Path
    for name in SHIPPED_MODELS:
        path = Path(resolve_share_path(name))
        if path.is_file():
            return path
    return None


class ModelFiles:
    """The model under test as whatever each backend needs: an in-memory SRNet or a
    checkpoint for torch, an ONNX file for onnxruntime / tensorrt (exported on demand)."""

    def __init__(self, model_path=None, work_dir=None):
        self.work_dir = Path(work_dir) if work_dir else None  # where an on-demand ONNX export goes
        self.checkpoint = self.onnx = None
        self.model = self.config = None
        if model_path is None:
            model_path = shipped_model()
        if model_path is None:
            import torch

            from ..model import SRNet, SRNetConfig
            torch.manual_seed(0)
            self.config = SRNetConfig()
            self.model = SRNet(self.config).eval()
            self.description = "randomly initialised default SRNet (no model file given or shipped)"
            log.warning("bench: no --model and no shipped model: timing a %s", self.description)
        elif model_kind(model_path) == "onnx":
            self.onnx = Path(model_path)
            self.description = str(model_path)
        else:
            self.checkpoint = Path(model_path)
            self.description = str(model_path)

    @property
    def random(self) -> bool:
        return self.model is not None

    def onnx_file(self) -> Path:
        if self.onnx is None:
            from .export import export_checkpoint, export_onnx
            if self.work_dir is None:
                raise RuntimeError("ModelFiles needs a work_dir to export an ONNX file into")
            target = self.work_dir / "bench_model.onnx"
            log.info("bench: exporting the model to ONNX for onnxruntime / tensorrt (%s)", target)
            if self.model is not None:
                export_onnx(self.model, self.config, target)
            else:
                export_checkpoint(self.checkpoint, target, verify=False)
            self.onnx = target
        return self.onnx

    def node_model_file(self) -> Path:
        """A file the pose node can load (it reads model_path): the model itself, or an ONNX export."""
        return self.onnx or self.checkpoint or self.onnx_file()

    def load(self, backend: str, device: str, precision: str, **opts):
        cls = backend_class(backend)
        if backend == "torch":
            if self.model is not None:
                import copy
                return cls.from_model(copy.deepcopy(self.model), self.config, device=device,
                                      precision=precision, **opts)
            if self.checkpoint is None:
                raise ValueError("the torch backend needs a checkpoint (.pt); --model is an ONNX file")
            return cls.load(self.checkpoint, device=device, precision=precision, **opts)
        return cls.load(self.onnx_file(), device=device, precision=precision, **opts)


def backend_options(backend: str, args) -> dict:
    if backend == "torch":
        return {"cuda_graph": bool(args.cuda_graph), "compile": bool(args.compile),
                "channels_last": bool(getattr(args, "channels_last", False)),
                "fp16_mode": getattr(args, "low_precision_mode", None) or "half"}
    if backend == "onnxruntime":
        return {"threads": args.threads, "cache_dir": getattr(args, "engine_cache", None)}
    return {"cache_dir": getattr(args, "engine_cache", None)}


def time_model(backend, batch: int, iters: int, warmup: int, crops_pool: np.ndarray) -> dict:
    """Latency of backend.infer on `batch` crops; warm-up calls excluded."""
    reps = -(-batch // len(crops_pool))
    crops = np.ascontiguousarray(np.concatenate([crops_pool] * reps)[:batch])
    warmup_s = backend.warmup(batch, max(1, warmup))
    samples, cpu = [], []
    start_all = time.perf_counter()
    for _ in range(iters):
        backend.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        backend.infer(crops)
        backend.synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - cpu_start) * 1e3)
    total_s = time.perf_counter() - start_all
    # cpu_ms: CPU time of this process (all its threads) per call. On a machine shared with
    # other work, wall-clock latency includes their time slices; cpu_ms / threads does not.
    return {"batch": batch, "iters": iters, "warmup_s": round(warmup_s, 3), "latency_ms": percentiles(samples),
            "cpu_ms": percentiles(cpu), "frames_per_s": batch * iters / total_s,
            "ms_per_frame": percentiles(samples)["p50"] / batch}


def time_pipeline(estimator, iters: int, warmup: int, frames: int = 8) -> dict:
    """Decode + localise + crop + infer + recover of 640 x 480 16UC1 frames, one at a time."""
    from ..data.depth import image_msg_to_depth
    from .sample_inputs import realistic_frames

    payloads = []
    for depth, cam in realistic_frames(frames):
        payloads.append(np.round(depth).astype("<u2").tobytes())
    stages = {"decode": [], "localise": [], "crop": [], "infer": [], "recover": [], "total": [], "total_cpu": []}
    seed, found = None, 0
    for i in range(warmup + iters):
        start, cpu_start = time.perf_counter(), time.process_time()
        depth = image_msg_to_depth(payloads[i % frames], cam.width, cam.height, cam.width * 2, "16UC1", False)
        decoded = time.perf_counter()
        estimate = estimator.estimate(depth, cam, seed=seed)
        end, cpu_end = time.perf_counter(), time.process_time()
        seed = estimate if estimate is not None and estimate.valid else None
        if i < warmup:
            continue
        found += estimate is not None
        stages["decode"].append((decoded - start) * 1e3)
        stages["total"].append((end - start) * 1e3)
        stages["total_cpu"].append((cpu_end - cpu_start) * 1e3)
        if estimate is not None:
            for name in ("localise", "crop", "infer", "recover"):
                stages[name].append(estimate.timings_ms[name])
    result = {"width": cam.width, "height": cam.height, "iters": iters, "hand_found_fraction": found / iters,
              "frames_per_s": 1e3 / float(np.mean(stages["total"]))}
    for name, values in stages.items():
        if values:
            result[f"{name}_ms"] = percentiles(values)
    return result


def machine_info() -> dict:
    info = {"python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor()}
    try:
        import os
        info["cpu_count"] = os.cpu_count()
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def run_bench(args) -> dict:
    """Everything `hand-pose bench` measures, as one JSON-ready dict."""
    with contextlib.ExitStack() as stack:  # removes the temporary ONNX export at the end
        return _run_bench(args, stack)


def _run_bench(args, stack) -> dict:
    from .estimator import HandPoseEstimator
    from .sample_inputs import realistic_crops

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    device = args.device or _default_device()
    backend = args.backend or ("torch" if device.startswith("cuda") else "onnxruntime")
    names = ["torch", "onnxruntime", "tensorrt"] if backend == "all" else [backend]
    report = {"device": device, "machine": machine_info(), "results": [], "pipeline": [], "skipped": []}
    work_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="hand_pose_bench_"))
    files = ModelFiles(args.model, work_dir=work_dir) if not args.preprocess_only else None
    if files is not None:
        report["model"] = files.description
        report["random_model"] = files.random
        config = files.config
        pool = None
    for name in names if files is not None else []:
        for precision in args.precision:
            label = f"{name} {device} {precision}"
            try:
                backend = files.load(name, device, precision, **backend_options(name, args))
            except (ImportError, RuntimeError, ValueError, TypeError) as e:
                reason = f"{type(e).__name__}: {e}"
                log.warning("bench: skipping %s: %s", label, reason)
                report["skipped"].append({"backend": name, "precision": precision, "reason": reason})
                continue
            config = backend.config
            if pool is None:
                pool = realistic_crops(8, config.input_size, config.half_cube_mm)
            for batch in args.batch:
                log.info("bench: %s batch %d (%d iterations)", label, batch, args.iters)
                row = {"backend": name, "device": device, "precision": precision, **backend.describe()}
                try:
                    row.update(time_model(backend, batch, args.iters, args.warmup, pool))
                except RuntimeError as e:  # e.g. out of GPU memory at a large batch
                    report["skipped"].append({"backend": name, "precision": precision, "batch": batch,
                                              "reason": f"{type(e).__name__}: {e}"})
                    continue
                report["results"].append(row)
            if args.pipeline:
                log.info("bench: %s whole pipeline (%d frames)", label, args.iters)
                estimator = HandPoseEstimator(backend)
                # the backend's own precision: an INT8 QDQ file runs as int8 whatever was asked
                actual = backend.describe().get("precision", precision)
                report["pipeline"].append({"backend": name, "device": device, "precision": actual,
                                           **time_pipeline(estimator, args.iters, args.warmup)})
    if getattr(args, "node", False) and files is not None:
        try:
            from ..ros.bench_node import bench_node
        except ImportError as e:  # no rclpy / ROS messages in this environment
            report["skipped"].append({"node": True, "reason": f"{type(e).__name__}: {e}"})
        else:
            log.info("bench: pose node's own per-frame cost (%d frames per output set)", args.node_frames)
            # One inference thread unless asked: the node's own work is one thread either way, and
            # ONNX Runtime's spinning helper threads would count in the process CPU figure.
            report["node"] = bench_node(files.node_model_file(), frames=args.node_frames,
                                        outputs=tuple(args.node_outputs), threads=args.threads or 1,
                                        warmup=args.warmup)
    if args.preprocess or args.preprocess_only:
        try:
            from ..data.bench import bench_preprocess
        except ImportError as e:
            report["skipped"].append({"preprocess": True, "reason": str(e)})
        else:
            log.info("bench: preprocessing only (data.bench.bench_preprocess)")
            report["preprocess"] = bench_preprocess(frames=max(args.iters, 20), warmup=args.warmup)
    if files is not None and config is not None:
        report["model_config"] = {"joints": config.num_joints, "features": config.features,
                                  "norm": config.norm, "input_size": config.input_size}
    return report


def _default_device() -> str:
    try:
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def format_table(report: dict) -> str:
    lines = [f"model: {report.get('model', '-')}" + ("  (RANDOM WEIGHTS: timing only)" if report.get("random_model") else "")]
    if report["results"]:
        lines.append(f"{'backend':<12} {'device':<6} {'prec':<5} {'batch':>5} {'p50 ms':>9} {'p95 ms':>9} "
                     f"{'p99 ms':>9} {'ms/frame':>9} {'frames/s':>10} {'cpu ms':>9}")
        for r in report["results"]:
            lat = r["latency_ms"]
            extra = " graph" if r.get("cuda_graph") else ""
            extra += " compiled" if r.get("compiled") else ""
            lines.append(f"{r['backend']:<12} {r['device']:<6} {r['precision']:<5} {r['batch']:>5} {lat['p50']:>9.2f} "
                         f"{lat['p95']:>9.2f} {lat['p99']:>9.2f} {r['ms_per_frame']:>9.3f} {r['frames_per_s']:>10.1f}"
                         f" {r['cpu_ms']['p50']:>9.2f}{extra}")
    for p in report["pipeline"]:
        stages = "  ".join(f"{k[:-3]} {p[k]['p50']:.2f}" for k in p
                           if k.endswith("_ms") and k not in ("total_ms", "total_cpu_ms"))
        lines.append(f"pipeline {p['backend']} {p['device']} {p['precision']} {p['width']}x{p['height']}: "
                     f"total p50 {p['total_ms']['p50']:.1f} ms, p95 {p['total_ms']['p95']:.1f} ms, "
                     f"CPU time p50 {p['total_cpu_ms']['p50']:.1f} ms "
                     f"({p['frames_per_s']:.1f} frames/s; stage p50 ms: {stages}; hand found "
                     f"{100 * p['hand_found_fraction']:.0f}%)")
    if "preprocess" in report:
        pre = report["preprocess"]
        lines.append(f"preprocess (decode+localise+crop, 1 thread): total p50 {pre['total_ms']['p50']:.2f} ms, "
                     f"p95 {pre['total_ms']['p95']:.2f} ms")
    if "node" in report:
        from ..ros.bench_node import format_report
        lines.append(format_report(report["node"]))
    for s in report["skipped"]:
        what = s.get("backend") or ("pose node" if s.get("node") else "preprocess")
        lines.append(f"skipped {what} {s.get('precision', '')}: {s['reason']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default=None,
                        help="backend to time, or all (default: torch on cuda, onnxruntime on cpu)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when present")
    parser.add_argument("--precision", nargs="+", choices=("fp32", "fp16", "bf16", "int8"), default=["fp32"],
                        help="bf16: torch only")
    parser.add_argument("--batch", nargs="+", type=int, default=[1], help="batch sizes (default 1)")
    parser.add_argument("--model", default=None, help="checkpoint or ONNX file (default: the shipped "
                        "models/srnet_synthetic.*, else a randomly initialised SRNet)")
    parser.add_argument("--pipeline", action="store_true", help="also time the whole per-frame pipeline")
    parser.add_argument("--preprocess", action="store_true",
                        help="also time preprocessing alone (decode + localise + crop)")
    parser.add_argument("--iters", type=int, default=50, help="timed iterations (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed warm-up iterations (default %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (onnxruntime intra-op, torch)")
    parser.add_argument("--cuda-graph", action="store_true", help="torch: replay a captured CUDA graph")
    parser.add_argument("--compile", action="store_true", help="torch: torch.compile(mode='max-autotune')")
    parser.add_argument("--channels-last", action="store_true", help="torch: NHWC weights and activations")
    parser.add_argument("--low-precision-mode", choices=("half", "autocast"), default="half",
                        help="torch fp16 / bf16: convert the weights (half, default) or autocast")
    parser.add_argument("--engine-cache", default=None,
                        help="tensorrt engines / onnxruntime int8 models cache directory")
    parser.add_argument("--node", action="store_true",
                        help="also time the pose node's own per-frame work without inference, by step (ROS 2)")
    parser.add_argument("--node-frames", type=int, default=300,
                        help="--node: timed frames per output set (default %(default)s)")
    parser.add_argument("--node-outputs", nargs="+", choices=("joints", "all"), default=["joints", "all"],
                        help="--node: joints = subscribers on the joints only (TF, markers, debug image "
                             "skipped); all = rviz open too (default: both)")
    parser.add_argument("--variants", action="store_true",
                        help="instead: time every candidate SRNet architecture (inference/variants.py) with "
                             "ONNX Runtime on this CPU, beside its GMAC and parameters")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run_variants(args) -> int:
    from . import variants
    threads = args.threads or variants.default_threads()
    rows = variants.measure(threads=threads, iters=args.iters, warmup=args.warmup,
                            progress=lambda r: print(f"[bench] {r['variant']}: {r['wall_ms_p50']:.1f} ms",
                                                     file=sys.stderr, flush=True))
    report = {"variants": rows, "machine": machine_info()}
    print(json.dumps(report) if args.json else variants.format_rows(rows))
    return 0


def run(args) -> int:
    setup_cli_logging()
    if args.variants:
        return run_variants(args)
    if args.iters < 1 or args.warmup < 0 or min(args.batch) < 1 or args.node_frames < 1:
        print("hand-pose bench: --iters, --batch and --node-frames must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    args.preprocess_only = False
    try:
        # Anything a library prints while we work goes to stderr: stdout carries the result.
        with contextlib.redirect_stdout(sys.stderr):
            report = run_bench(args)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"hand-pose bench: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(format_table(report))
    return 0 if report["results"] or report["pipeline"] or "preprocess" in report or "node" in report else 1

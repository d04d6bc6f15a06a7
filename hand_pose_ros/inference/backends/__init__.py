"""Inference backends behind one interface (base.Backend), chosen by name:

    create_backend("auto" | "torch" | "onnxruntime" | "tensorrt", model_path, device, precision, **opts)

'auto' picks TensorRT when a supported TensorRT (10.x) imports, a CUDA binding for its device
buffers (cuda-python or pycuda) imports and a CUDA GPU is present (a checkpoint is exported to
ONNX first, unless its own export lies next to it), else PyTorch on CUDA (for a checkpoint),
else ONNX Runtime on the CPU (for an ONNX file, or a checkpoint's own export next to it; a
checkpoint alone runs on PyTorch CPU), and logs which one and why. Each backend module is imported only when chosen, so a machine without
torch / tensorrt can still run the others.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from ..model_file import META_SOURCE_SHA256, model_kind, sha256_file
from .base import Backend, log
from .engine_cache import DEFAULT_PRECISION as TENSORRT_DEFAULT_PRECISION

BACKENDS = {
    "torch": ("hand_pose_ros.inference.backends.torch_backend", "TorchBackend"),
    "onnxruntime": ("hand_pose_ros.inference.backends.onnxruntime_backend", "OnnxRuntimeBackend"),
    "tensorrt": ("hand_pose_ros.inference.backends.tensorrt_backend", "TensorRTBackend"),
}
NAMES = tuple(BACKENDS) + ("auto",)


def backend_class(name: str):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {list(NAMES)}")
    module, cls = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)


# Availability probes: small functions so tests can monkeypatch them.
def tensorrt_problem() -> str | None:
    """Why the tensorrt backend cannot run here (None: it can, as far as imports tell):
    TensorRT missing or of an unsupported version, or no CUDA binding for the device
    buffers (JetPack ships TensorRT's Python bindings but neither pycuda nor cuda-python)."""
    try:
        import tensorrt
    except ImportError:
        return "tensorrt does not import"
    from .cuda_memory import cuda_binding_name
    from .tensorrt_backend import check_tensorrt_version
    try:
        check_tensorrt_version(getattr(tensorrt, "__version__", "?"))
    except RuntimeError as e:
        return str(e)
    if cuda_binding_name() is None:
        return "tensorrt imports but neither cuda-python nor pycuda does (needed for its device buffers)"
    return None


def tensorrt_available() -> bool:
    return tensorrt_problem() is None


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available():
        return True
    from .cuda_memory import cuda_device_count
    return cuda_device_count() > 0


def torch_cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def sibling_onnx(checkpoint) -> Path | None:
    """An ONNX file next to a checkpoint (same stem) that was exported from exactly that
    checkpoint (its metadata records the checkpoint's sha256)."""
    candidate = Path(checkpoint).with_suffix(".onnx")
    if not candidate.is_file():
        return None
    from ..model_file import read_onnx_config
    try:
        _, metadata = read_onnx_config(candidate)
    except ValueError:
        return None
    return candidate if metadata.get(META_SOURCE_SHA256) == sha256_file(checkpoint) else None


@dataclass
class Choice:
    backend: str
    device: str
    model_path: Path
    reason: str


def choose_backend(model_path, device: str | None = None) -> Choice:
    """The 'auto' rule. device None = any; 'cpu' rules out the GPU backends."""
    path = Path(model_path)
    kind = model_kind(path)
    onnx = path if kind == "onnx" else sibling_onnx(path)
    checkpoint = path if kind == "checkpoint" else None
    want_gpu = device is None or str(device).startswith("cuda")
    gpu = want_gpu and cuda_available()
    trt_problem = tensorrt_problem() if gpu else None
    if gpu and trt_problem is None:
        # A checkpoint without its ONNX export is exported into the engine cache first.
        return Choice("tensorrt", device or "cuda", onnx or path, "tensorrt imports and a CUDA GPU is present")
    if gpu and checkpoint is not None and torch_cuda_available():
        return Choice("torch", device or "cuda", checkpoint, f"{trt_problem}; PyTorch sees a CUDA GPU")
    if onnx is not None:
        why = "no CUDA GPU" if not gpu else f"{trt_problem}, and PyTorch cannot run this file on the GPU"
        return Choice("onnxruntime", "cpu", onnx, f"{why}; ONNX Runtime on the CPU")
    return Choice("torch", "cpu", path, "no CUDA GPU and only a checkpoint (no ONNX file); PyTorch on the CPU")


def create_backend(name: str, model_path, device: str | None = None, precision: str | None = None,
                   cpu_threads: int = 0, **opts) -> Backend:
    """Load `model_path` with backend `name` (or 'auto'). opts go to that backend's load():
    torch: fp16_mode, cuda_graph, compile, compile_mode, channels_last; onnxruntime: threads, tensorrt,
    graph_optimization, precise_norm, calibration_crops + cache_dir (int8); tensorrt:
    cache_dir, workspace_mb, batch_profile, calibration_crops, force_rebuild.
    All: expected_keypoints (J or names). cpu_threads > 0: CPU threads of whichever backend
    runs (onnxruntime's session threads, torch's intra-op threads; TensorRT has none), so a
    caller need not know (or import) the backend that 'auto' picks."""
    if name == "auto":
        choice = choose_backend(model_path, device)
        log.info("backend auto -> %s on %s (%s): %s", choice.backend, choice.device, choice.model_path, choice.reason)
        name, device, model_path = choice.backend, choice.device, choice.model_path
        # Options meant for a backend that was not chosen are dropped, not an error.
        opts = _options_for(name, opts)
        if precision is None and name == "tensorrt":
            precision = TENSORRT_DEFAULT_PRECISION
        if precision == "int8" and name == "torch":
            log.info("backend auto: torch runs fp32 (int8 needs TensorRT or onnxruntime on the CPU)")
            precision = "fp32"
    if cpu_threads and name in ("onnxruntime", "torch"):
        opts.setdefault("threads", int(cpu_threads))
    if name == "tensorrt" and model_kind(model_path) == "checkpoint":
        # TensorRT builds from ONNX: export the checkpoint into the engine cache first.
        from ..export import export_into
        from .engine_cache import EngineCache
        model_path = export_into(model_path, EngineCache(opts.get("cache_dir")).directory)
    # device / precision None: each backend's own default (torch: CUDA when present, fp32;
    # onnxruntime: cpu, fp32; tensorrt: cuda, fp16).
    return backend_class(name).load(model_path, device=device, precision=precision, **opts)


_OPTIONS = {
    "torch": {"fp16_mode", "cuda_graph", "compile", "compile_mode", "channels_last", "threads"},
    "onnxruntime": {"threads", "tensorrt", "graph_optimization", "precise_norm", "calibration_crops", "cache_dir"},
    "tensorrt": {"cache_dir", "workspace_mb", "batch_profile", "calibration_crops", "force_rebuild"},
}


def _options_for(name: str, opts: dict) -> dict:
    keep = _OPTIONS[name] | {"expected_keypoints"}
    return {k: v for k, v in opts.items() if k in keep}


__all__ = ["Backend", "BACKENDS", "NAMES", "Choice", "backend_class", "choose_backend", "create_backend"]

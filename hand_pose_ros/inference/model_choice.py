"""`model: auto`: which shipped model fits this machine, and why.

The full SRNet (10.6 GMAC per crop) is the accurate one, and needs a big GPU to run at the
camera's rate; the fast SRNet (model preset "fast", 0.7 GMAC) keeps up on a CPU core pair
and on a small Jetson. The rule:
- a CUDA GPU that one of our GPU backends can use (TensorRT, or PyTorch with CUDA), with at
  least BIG_GPU_MULTIPROCESSORS streaming multiprocessors: the full model;
- anything else (no GPU, a GPU no backend can use, an Orin Nano / NX): the fast model.
A shipped file that is missing is replaced by the other one, with a warning in the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

AUTO = "auto"
# Package-relative paths of the shipped models (resolved against the share dir by callers).
FULL_MODEL = "models/srnet_synthetic.onnx"
FAST_MODEL = "models/srnet_fast.onnx"
# Jetson AGX Orin has 14-16 SMs, Orin NX and Orin Nano 4-8, an H200 132: the full model's
# 10.6 GMAC at 30 frames/s is ~0.6 TFLOP/s, comfortable on the first and tight on the others.
BIG_GPU_MULTIPROCESSORS = 14


@dataclass(frozen=True)
class ModelChoice:
    model_path: str      # package-relative (FULL_MODEL / FAST_MODEL) or what was asked for
    reason: str


def gpu_multiprocessors() -> int | None:
    """Streaming multiprocessors of CUDA device 0 as PyTorch or cuda-python report them;
    None when neither can tell."""
    try:
        import torch
        if torch.cuda.is_available():
            return int(torch.cuda.get_device_properties(0).multi_processor_count)
    except ImportError:
        pass
    try:
        from cuda.bindings import runtime
        error, props = runtime.cudaGetDeviceProperties(0)
        if int(error) == 0:
            return int(props.multiProcessorCount)
    except (ImportError, AttributeError, TypeError, ValueError):
        pass
    return None


def usable_gpu(device: str | None) -> str | None:
    """Why a GPU backend can run here (None: it cannot, or device asks for the CPU)."""
    if device is not None and not str(device).startswith("cuda"):
        return None
    from .backends import cuda_available, tensorrt_problem, torch_cuda_available
    if not cuda_available():
        return None
    if tensorrt_problem() is None:
        return "TensorRT and a CUDA GPU"
    if torch_cuda_available():
        return "PyTorch with CUDA"
    return None


def choose_model(requested: str, device: str | None = None, exists=None) -> ModelChoice:
    """`requested` unless it is 'auto' (or empty); then the shipped model for this machine.
    exists(path) -> bool tells which shipped files are there (default: resolved on disk)."""
    if requested and requested != AUTO:
        return ModelChoice(requested, "asked for")
    if exists is None:
        from ..ros.params import resolve_share_path  # rclpy-free path helper
        exists = lambda p: Path(resolve_share_path(p)).is_file()  # noqa: E731
    gpu = usable_gpu(device)
    if gpu is None:
        wanted, reason = FAST_MODEL, ("device cpu asked for" if device and not str(device).startswith("cuda")
                                      else "no CUDA GPU a GPU backend can use") + ": the fast model"
    else:
        sms = gpu_multiprocessors()
        if sms is not None and sms < BIG_GPU_MULTIPROCESSORS:
            wanted, reason = FAST_MODEL, (f"{gpu}, but a small GPU ({sms} multiprocessors < "
                                          f"{BIG_GPU_MULTIPROCESSORS}): the fast model")
        else:
            size = f"{sms} multiprocessors" if sms is not None else "size unknown"
            wanted, reason = FULL_MODEL, f"{gpu} ({size}): the full model"
    if exists(wanted):
        return ModelChoice(wanted, reason)
    other = FULL_MODEL if wanted == FAST_MODEL else FAST_MODEL
    if exists(other):
        return ModelChoice(other, f"{reason}, but {wanted} is missing: using {other}")
    return ModelChoice(wanted, f"{reason} (file missing)")

"""PyTorch backend: a checkpoint on CPU or CUDA, FP32, FP16 or bf16, with optional
CUDA-graph replay for fixed batch sizes, channels_last memory and optional torch.compile.

FP16 / bf16 ('half' mode, the default) converts the weights and the input to that type; the
decoders inside SRNet.forward cast to FP32 before their reductions (model/decoders.py), so
the depth reduction's eps never underflows and an empty crop gives 0, not NaN. 'autocast'
mode keeps FP32 weights and lets torch.autocast pick per-op precision instead.

torch.compile keeps its compiled kernels in an on-disk cache (COMPILE_CACHE_SUBDIR of the
project cache unless TORCHINDUCTOR_CACHE_DIR is set), so only a process's first compile of
a model pays the full autotuning time; the next start reuses it.
"""
from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

from ..model_file import model_file_error, model_kind
from .base import Backend, check_precision, log, normalise_device

FP16_MODES = ("half", "autocast")  # how fp16 / bf16 run (the name predates bf16)
PRECISIONS = ("fp32", "fp16", "bf16")
LOW_PRECISION_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
COMPILE_CACHE_SUBDIR = "torchinductor"


def use_compile_cache() -> str:
    """Point inductor's on-disk cache at the project cache (once per process), unless the
    user chose a directory: a node restarted on the same machine compiles from cache."""
    import os
    if not os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        from .engine_cache import default_cache_dir
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(default_cache_dir() / COMPILE_CACHE_SUBDIR)
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]


class GraphOutputs(torch.nn.Module):
    """Wraps SRNet so a call returns just the deployed outputs as a tuple: (uvd [B,J,3],
    confidence [B,J]) and, for a model with a handedness head, handedness [B] = P(left):
    what export, CUDA-graph capture and torch.compile need (no list of intermediate
    stages). The order is model_file.output_names(config)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, depth):
        out = self.model(depth)
        if "handedness" in out:
            return out["uvd"], out["confidence"], out["handedness"]
        return out["uvd"], out["confidence"]


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model, config, model_path=None, device="cpu", precision=None,
                 fp16_mode="half", cuda_graph=False, compile=False, compile_mode="max-autotune",
                 channels_last=False):
        device = normalise_device(device)
        precision = check_precision(precision, PRECISIONS, self.name)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("torch backend: device 'cuda' requested but torch.cuda.is_available() is False")
        if fp16_mode not in FP16_MODES:
            raise ValueError(f"fp16_mode {fp16_mode!r} is not one of {FP16_MODES}")
        if cuda_graph and not device.startswith("cuda"):
            raise ValueError("cuda_graph=True needs device 'cuda'")
        super().__init__(config, model_path, device, precision)
        self.fp16_mode = fp16_mode
        self.low_dtype = LOW_PRECISION_DTYPES.get(precision)
        self.autocast = self.low_dtype is not None and fp16_mode == "autocast"
        self.input_dtype = self.low_dtype if self.low_dtype is not None and fp16_mode == "half" else torch.float32
        # NHWC: cuDNN's tensor-core convolutions want it; the 1-channel input is the same
        # bytes either way, so only the weights and activations change layout.
        self.channels_last = bool(channels_last)
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format

        if device.startswith("cuda"):
            # Fixed input shapes: let cuDNN time its convolution algorithms once and keep the fastest.
            torch.backends.cudnn.benchmark = True
        model = model.eval().to(device)
        if self.input_dtype != torch.float32:
            model = model.to(self.input_dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        for p in model.parameters():
            p.requires_grad_(False)
        self.module = GraphOutputs(model).eval()
        self.compiled = bool(compile)
        self.compile_mode = compile_mode
        if compile:
            # max-autotune already replays CUDA graphs itself; a second, manual capture of a
            # compiled module is not needed (and not supported).
            if cuda_graph and "no-cudagraphs" not in compile_mode:
                log.info("torch backend: compile mode %r captures CUDA graphs itself; "
                         "skipping the manual CUDA-graph capture", compile_mode)
                cuda_graph = False
            log.info("torch backend: torch.compile(mode=%r), kernel cache %s", compile_mode, use_compile_cache())
            self.runner = torch.compile(self.module, mode=compile_mode, dynamic=False)
        else:
            self.runner = self.module
        self.cuda_graph = bool(cuda_graph)
        self._graphs: dict[int, tuple] = {}  # batch size -> (graph, static in, static outputs)

    @classmethod
    def load(cls, model_path, device=None, precision=None, expected_keypoints=None, threads: int = 0,
             **opts) -> "TorchBackend":
        """opts: fp16_mode ('half' | 'autocast', for fp16 and bf16), cuda_graph (bool),
        compile (bool), compile_mode (default 'max-autotune'), channels_last (bool). threads > 0: torch's intra-op CPU threads
        (process-wide: torch has no per-model setting)."""
        from ...model import load_model
        from ..model_file import check_expected

        if threads:
            torch.set_num_threads(int(threads))

        device = normalise_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if model_kind(model_path) != "checkpoint":
            raise model_file_error(model_path, "the torch backend needs a PyTorch checkpoint (.pt); "
                                               "run an ONNX file with --backend onnxruntime or tensorrt")
        model, config, _ = load_model(model_path, map_location="cpu")
        check_expected(config, model_path, expected_keypoints)
        return cls(model, config, model_path=model_path, device=device, precision=precision, **opts)

    @classmethod
    def from_model(cls, model, config, device="cpu", precision=None, **opts) -> "TorchBackend":
        """An in-memory SRNet (e.g. randomly initialised for a benchmark). The backend takes
        the module over: it is moved to `device` (and to half precision for fp16) in place."""
        return cls(model, config, model_path=None, device=device, precision=precision, **opts)

    # ------------------------------------------------------------------ running
    def _forward(self, x):
        with torch.inference_mode():
            if self.autocast:
                device_type = "cuda" if self.device.startswith("cuda") else "cpu"
                with torch.autocast(device_type, dtype=self.low_dtype):
                    return self.runner(x)
            return self.runner(x)

    def _device_guard(self):
        """The backend's GPU as the calling thread's current device. Current devices are per
        thread: on a worker thread it is cuda:0, where CUDA graphs would be captured and
        streams made for a model on cuda:1."""
        if self.device.startswith("cuda"):
            return torch.cuda.device(self.device)
        return contextlib.nullcontext()

    def _infer(self, crops: np.ndarray):
        batch = crops.shape[0]
        x = torch.from_numpy(crops)
        with self._device_guard():
            if self.cuda_graph:
                outputs = self._replay(x)
            else:
                x = x.to(self.device, non_blocking=True).to(self.input_dtype, memory_format=self.memory_format)
                outputs = self._forward(x)
            # .float() before .cpu(): one small FP32 copy back, whatever the compute precision.
            return tuple(output[:batch].float().cpu().numpy() for output in outputs)

    def _replay(self, x):
        """Run through a captured CUDA graph of the smallest captured batch >= B (padding
        with zero crops: every op is per-image, so padding never changes real outputs)."""
        batch = x.shape[0]
        sizes = sorted(s for s in self._graphs if s >= batch)
        size = sizes[0] if sizes else batch
        if size not in self._graphs:
            self._capture(size)
        graph, static_in, static_outputs = self._graphs[size]
        static_in[:batch].copy_(x.to(self.input_dtype), non_blocking=True)
        if batch < size:
            static_in[batch:].zero_()
        graph.replay()
        return static_outputs

    def _capture(self, batch: int) -> None:
        with self._device_guard():
            self._capture_on_device(batch)

    def _capture_on_device(self, batch: int) -> None:
        start = time.perf_counter()
        m = self.config.input_size
        static_in = torch.zeros((batch, 1, m, m), device=self.device, dtype=self.input_dtype).contiguous(
            memory_format=self.memory_format)
        # Warm up on a side stream first (cuDNN algorithm choice, allocator), as the CUDA
        # graph documentation asks, then capture one forward pass.
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self._forward(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_outputs = self._forward(static_in)
        torch.cuda.synchronize(self.device)
        self._graphs[batch] = (graph, static_in, static_outputs)
        log.info("torch backend: captured a CUDA graph for batch %d in %.2f s", batch, time.perf_counter() - start)

    def warmup(self, batch_size: int = 1, iterations: int = 3) -> float:
        if self.cuda_graph and batch_size not in self._graphs:
            start = time.perf_counter()
            self._capture(batch_size)
            return time.perf_counter() - start + super().warmup(batch_size, iterations)
        return super().warmup(batch_size, iterations)

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)

    def describe(self) -> dict:
        info = super().describe()
        info.update(fp16_mode=self.fp16_mode if self.low_dtype is not None else None,
                    channels_last=self.channels_last, cuda_graph=self.cuda_graph, compiled=self.compiled,
                    compile_mode=self.compile_mode if self.compiled else None,
                    torch=torch.__version__)
        if self.device.startswith("cuda"):
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info

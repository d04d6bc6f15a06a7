"""TensorRT 10 backend: builds an engine from the exported ONNX file (FP16 by default, FP32,
or INT8 with an entropy calibrator fed by real crops), caches it (engine_cache.py: keyed by
TensorRT version, GPU, precision, batch profile and the ONNX file's sha256), and runs it with
device buffers from cuda-python or pycuda and tensor-address execution (execute_async_v3).

Everything that does not need TensorRT (cache keying and validation, precision planning,
calibration batching, the trtexec equivalent) lives in engine_cache.py and is tested
without it. The equivalent command line:

    trtexec --onnx=srnet.onnx --saveEngine=srnet.engine --fp16 \
        --minShapes=depth:1x1x128x128 --optShapes=depth:1x1x128x128 --maxShapes=depth:32x1x128x128
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..model_file import (HANDEDNESS_OUTPUT, INPUT_NAME, check_expected, model_file_error, model_kind, output_names,
                          read_onnx_config, sha256_file)
from .base import Backend, check_precision, log, normalise_device
from .cuda_memory import cuda_api
from .engine_cache import CalibrationBatches, EngineCache, EngineKey, plan_precision, trtexec_command
from .engine_cache import calibration_crops as load_calibration_crops

DEFAULT_BATCH_PROFILE = (1, 1, 32)
DEFAULT_WORKSPACE_MB = 2048
CALIBRATION_BATCH = 32


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise RuntimeError("the tensorrt backend needs the TensorRT 10 Python bindings: on a Jetson they come "
                           "with JetPack (python3-libnvinfer); on x86 install NVIDIA's tensorrt wheels from "
                           "NVIDIA's package index. Use --backend torch or onnxruntime otherwise.") from None
    if int(tensorrt.__version__.split(".")[0]) < 10:
        raise RuntimeError(f"TensorRT {tensorrt.__version__} is too old: this backend uses the TensorRT 10 API")
    return tensorrt


def _progress_monitor(trt):
    """A trt.IProgressMonitor that logs the build's top-level phases and, at most every
    15 s, how far the current phase is (the build can take minutes on a Jetson)."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class BuildProgress(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.steps = {}
            self.last_log = time.monotonic()

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.steps[phase_name] = num_steps
            if parent_phase is None:
                log.info("TensorRT build: %s (%d steps)", phase_name, num_steps)

        def step_complete(self, phase_name, step):
            if time.monotonic() - self.last_log > 15.0:
                self.last_log = time.monotonic()
                log.info("TensorRT build: %s step %d/%d", phase_name, step + 1, self.steps.get(phase_name, 0))
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            self.steps.pop(phase_name, None)

    return BuildProgress()


def _calibrator(trt, cuda, batches: CalibrationBatches, cache_file: Path):
    """An IInt8EntropyCalibrator2 that feeds `batches` through one device buffer."""

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = iter(batches)
            self.stream = cuda.stream()
            self.buffer = cuda.malloc(batches.crops[:batches.batch_size].nbytes)
            self.fed = 0

        def get_batch_size(self):
            return batches.batch_size

        def get_batch(self, names):
            batch = next(self.batches, None)
            if batch is None:
                return None  # calibration done
            cuda.copy_to_device(self.buffer, batch, self.stream)
            cuda.synchronize(self.stream)
            self.fed += 1
            log.info("INT8 calibration: batch %d/%d", self.fed, len(batches))
            return [cuda.pointer(self.buffer)]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache):
            cache_file.write_bytes(bytes(cache))

    return Calibrator()


def build_engine(trt, onnx_path: Path, key: EngineKey, input_size: int, calibrator=None) -> bytes | None:
    """Parse the ONNX file and build a serialised engine for `key` (None when TensorRT fails)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise model_file_error(onnx_path, f"TensorRT's ONNX parser rejects it: {errors}")
    plan = plan_precision(key.precision, builder.platform_has_fast_fp16, builder.platform_has_fast_int8)
    for note in plan.notes:
        log.warning("TensorRT: %s", note)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, key.workspace_mb << 20)
    for flag in plan.set_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    for flag in plan.clear_flags:
        config.clear_flag(getattr(trt.BuilderFlag, flag))
    pinned = 0
    keep = {getattr(trt.LayerType, name) for name in plan.fp32_layer_types if hasattr(trt.LayerType, name)}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in keep:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            pinned += 1
    if pinned:
        log.info("TensorRT: %d normalisation / softmax / reduction layers pinned to FP32", pinned)
    low, opt, high = key.batch_profile
    shape = lambda b: (b, 1, input_size, input_size)  # noqa: E731
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, shape(low), shape(opt), shape(high))
    config.add_optimization_profile(profile)
    if calibrator is not None:
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    monitor = _progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    serialized = builder.build_serialized_network(network, config)
    return None if serialized is None else bytes(serialized)


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, trt, engine, config, model_path, device, precision, engine_path, built, key, cuda):
        super().__init__(config, model_path, device, precision)
        self.trt, self.engine, self.cuda = trt, engine, cuda
        self.engine_path, self.built, self.key = engine_path, built, key
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.output_names = output_names(config)
        if sorted(names) != sorted((INPUT_NAME,) + self.output_names):
            raise model_file_error(engine_path, f"engine tensors {names}, expected {[INPUT_NAME, *self.output_names]}")
        self.max_batch = key.batch_profile[2]
        m, j = config.input_size, config.num_joints
        self.stream = cuda.stream()
        self.host = {INPUT_NAME: cuda.pinned((self.max_batch, 1, m, m), np.float32),
                     "uvd": cuda.pinned((self.max_batch, j, 3), np.float32),
                     "confidence": cuda.pinned((self.max_batch, j), np.float32)}
        if HANDEDNESS_OUTPUT in self.output_names:
            self.host[HANDEDNESS_OUTPUT] = cuda.pinned((self.max_batch,), np.float32)
        self.device_buffers = {name: cuda.malloc(array.nbytes) for name, array in self.host.items()}
        for name, buffer in self.device_buffers.items():
            self.context.set_tensor_address(name, cuda.pointer(buffer))

    @classmethod
    def load(cls, model_path, device=None, precision=None, expected_keypoints=None, cache_dir=None,
             workspace_mb=DEFAULT_WORKSPACE_MB, batch_profile=DEFAULT_BATCH_PROFILE, calibration_crops=None,
             force_rebuild=False) -> "TensorRTBackend":
        """model_path: an exported .onnx (a checkpoint is exported into the cache first).
        opts: cache_dir, workspace_mb, batch_profile (min, opt, max), calibration_crops
        (INT8: [N,1,m,m] array or .npy path; default: synthetic scene crops), force_rebuild."""
        device = normalise_device(device or "cuda")
        precision = check_precision(precision or "fp16", backend=cls.name)
        if not device.startswith("cuda"):
            raise ValueError("the tensorrt backend runs on device 'cuda' only")
        trt = import_tensorrt()
        cuda = cuda_api()
        device_index = int(device.split(":")[1]) if ":" in device else 0
        cuda.set_device(device_index)
        cache = EngineCache(cache_dir)
        onnx_path = cls._onnx_for(model_path, cache)
        config, _ = read_onnx_config(onnx_path)
        check_expected(config, model_path, expected_keypoints)

        calibrator, calibration_sha = None, ""
        if precision == "int8":
            batches = CalibrationBatches(load_calibration_crops(calibration_crops, config, 8 * CALIBRATION_BATCH),
                                         CALIBRATION_BATCH,
                                         config.input_size)
            calibration_sha = batches.sha256()
        key = EngineKey(onnx_sha256=sha256_file(onnx_path), precision=precision, batch_profile=tuple(batch_profile),
                        runtime_version=trt.__version__, device_name=cuda.device_name(device_index),
                        workspace_mb=int(workspace_mb), calibration_sha256=calibration_sha)
        if precision == "int8":
            calibrator = _calibrator(trt, cuda, batches, cache.directory / (key.filename() + ".calib"))
        log.info("TensorRT: equivalent command: %s", trtexec_command(
            onnx_path, cache.engine_path(key), precision, key.batch_profile, config.input_size, key.workspace_mb))
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))

        def deserialize(data: bytes):
            try:
                return runtime.deserialize_cuda_engine(data)
            except Exception:  # a foreign or damaged plan: TensorRT raises or returns None
                return None

        engine, path, built = cache.get_or_build(
            key, build=lambda: build_engine(trt, onnx_path, key, config.input_size, calibrator),
            deserialize=deserialize, force=force_rebuild)
        backend = cls(trt, engine, config, onnx_path, device, precision, path, built, key, cuda)
        backend.runtime = runtime  # the engine must not outlive its runtime
        return backend

    @staticmethod
    def _onnx_for(model_path, cache: EngineCache) -> Path:
        if model_kind(model_path) == "onnx":
            return Path(model_path)
        from ..export import export_checkpoint
        target = cache.directory / f"onnx-{sha256_file(model_path)[:16]}.onnx"
        if not target.exists():
            log.info("TensorRT: exporting checkpoint %s to ONNX (%s) first", model_path, target)
            export_checkpoint(model_path, target, verify=False)
        return target

    def _infer(self, crops: np.ndarray):
        outputs = [self._run_chunk(crops[i:i + self.max_batch]) for i in range(0, len(crops), self.max_batch)]
        return tuple(np.concatenate([o[k] for o in outputs]) for k in range(len(self.output_names)))

    def _run_chunk(self, crops: np.ndarray):
        batch = crops.shape[0]
        if batch < self.key.batch_profile[0]:  # below the profile's minimum: pad with empty crops
            crops = np.concatenate([crops, np.zeros((self.key.batch_profile[0] - batch, *crops.shape[1:]), np.float32)])
        run = crops.shape[0]
        cuda = self.cuda
        self.host[INPUT_NAME][:run] = crops
        self.context.set_input_shape(INPUT_NAME, (run, *crops.shape[1:]))
        cuda.copy_to_device(self.device_buffers[INPUT_NAME], self.host[INPUT_NAME][:run], self.stream)
        if not self.context.execute_async_v3(cuda.stream_handle(self.stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        for name in self.output_names:
            cuda.copy_to_host(self.host[name][:run], self.device_buffers[name], self.stream)
        cuda.synchronize(self.stream)
        return tuple(self.host[name][:batch].copy() for name in self.output_names)

    def synchronize(self) -> None:
        self.cuda.synchronize(self.stream)

    def close(self) -> None:
        """Free the device buffers (the backend is unusable afterwards)."""
        for buffer in self.device_buffers.values():
            self.cuda.free(buffer)
        self.device_buffers = {}

    def describe(self) -> dict:
        info = super().describe()
        info.update(engine=str(self.engine_path), built_now=self.built, tensorrt=self.key.runtime_version,
                    gpu=self.key.device_name, batch_profile=list(self.key.batch_profile), cuda_binding=self.cuda.name)
        return info

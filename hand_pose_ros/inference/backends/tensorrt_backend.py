"""TensorRT 10 backend: builds an engine from the exported ONNX file (FP16 by default, FP32,
or INT8 with an entropy calibrator fed by real crops), caches it (engine_cache.py: keyed by
TensorRT version, GPU, compute capability, Jetson L4T release, build recipe, precision, batch
profile and the ONNX file's sha256), and runs it with device buffers from cuda-python or
pycuda and tensor-address execution (execute_async_v3).

Threads: every call that touches the GPU runs inside `self.cuda.activate()`, so the backend
works from whichever thread calls it (the pose node loads on its main thread and infers on
its worker thread) and on the device it was loaded for.

TensorRT 11 is refused (check_tensorrt_version): it removed the weakly-typed precision flags,
the INT8 calibrators and platform_has_fast_* that these builds rely on.

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

from ..model_file import (HANDEDNESS_OUTPUT, INPUT_NAME, check_expected, is_quantised, model_file_error, model_kind,
                          output_names, read_onnx_model, sha256_file)
from .base import Backend, check_precision, log, normalise_device
from .cuda_memory import cuda_api
from .engine_cache import (CALIBRATION_BATCH, DEFAULT_BATCH_PROFILE, DEFAULT_PRECISION, DEFAULT_WORKSPACE_MB,
                           CalibrationBatches, EngineCache, EngineKey, build_recipe, l4t_release, plan_precision,
                           trtexec_command)
from .engine_cache import calibration_crops as load_calibration_crops

SUPPORTED_TENSORRT_MAJOR = 10


def check_tensorrt_version(version: str) -> None:
    """RuntimeError unless `version` is a TensorRT 10.x release."""
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        raise RuntimeError(f"cannot read the TensorRT version {version!r}") from None
    if major < SUPPORTED_TENSORRT_MAJOR:
        raise RuntimeError(f"TensorRT {version} is too old: this backend uses the TensorRT 10 API")
    if major > SUPPORTED_TENSORRT_MAJOR:
        raise RuntimeError(f"TensorRT {version} is not supported: TensorRT 11 removed the weakly-typed precision "
                           "flags (BuilderFlag.FP16 / INT8), the INT8 calibrators and platform_has_fast_fp16/int8 "
                           "that this backend's FP16 and INT8 builds use. Install TensorRT 10.x (JetPack 6 ships "
                           "it), or use --backend onnxruntime.")


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise RuntimeError("the tensorrt backend needs the TensorRT 10 Python bindings: on a Jetson they come "
                           "with JetPack (python3-libnvinfer); on x86 install NVIDIA's tensorrt wheels from "
                           "NVIDIA's package index. Use --backend torch or onnxruntime otherwise.") from None
    check_tensorrt_version(tensorrt.__version__)
    return tensorrt


_LOGGERS: dict[int, tuple] = {}  # id(tensorrt module) -> (module, its one trt.Logger)


def tensorrt_logger(trt):
    """The process's one trt.Logger: TensorRT keeps the logger of the first builder or
    runtime and warns when a later one is given another."""
    entry = _LOGGERS.get(id(trt))
    if entry is None or entry[0] is not trt:
        entry = _LOGGERS[id(trt)] = (trt, trt.Logger(trt.Logger.WARNING))
    return entry[1]


def tensor_shapes(config) -> dict[str, tuple[int, ...]]:
    """Each engine tensor's shape after the batch axis (the host buffers are [max_batch, *shape])."""
    m, j = config.input_size, config.num_joints
    shapes = {INPUT_NAME: (1, m, m), "uvd": (j, 3), "confidence": (j,), HANDEDNESS_OUTPUT: ()}
    return {name: shapes[name] for name in (INPUT_NAME, *output_names(config))}


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

        def release(self):
            """Free the device buffer once the build is over (the caller has the device active)."""
            if self.buffer is not None:
                cuda.free(self.buffer)
                self.buffer = None

    return Calibrator()


def build_engine(trt, onnx_path: Path, key: EngineKey, input_size: int, calibrator=None,
                 calibration_batch: int = CALIBRATION_BATCH) -> bytes | None:
    """Parse the ONNX file and build a serialised engine for `key` (None when TensorRT fails).
    With a calibrator (INT8): calibration runs on its own profile of exactly
    `calibration_batch` crops (TensorRT calibrates a dynamic-shape network at the
    calibration profile's opt shape, which must be the batch the calibrator feeds)."""
    logger = tensorrt_logger(trt)
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
    if config.add_optimization_profile(profile) < 0:
        raise RuntimeError(f"TensorRT rejects the optimisation profile {key.batch_profile} for {onnx_path}")
    if calibrator is not None:
        calibration_profile = builder.create_optimization_profile()
        batch = shape(calibration_batch)
        calibration_profile.set_shape(INPUT_NAME, batch, batch, batch)
        config.int8_calibrator = calibrator
        if not config.set_calibration_profile(calibration_profile):
            raise RuntimeError(f"TensorRT rejects the INT8 calibration profile (batch {calibration_batch})")
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
        self.output_names = output_names(config)
        self.shapes = tensor_shapes(config)
        self.max_batch = key.batch_profile[2]
        self.device_buffers = {}
        with cuda.activate():
            self.context = engine.create_execution_context()
            if self.context is None:
                raise RuntimeError(f"TensorRT cannot create an execution context for {engine_path} "
                                   f"(out of GPU memory?)")
            self._check_engine_tensors()
            self.stream = cuda.stream()
            self.host = {name: cuda.pinned((self.max_batch, *shape), np.float32) for name, shape in self.shapes.items()}
            self.device_buffers = {name: cuda.malloc(array.nbytes) for name, array in self.host.items()}
            for name, buffer in self.device_buffers.items():
                if not self.context.set_tensor_address(name, cuda.pointer(buffer)):
                    raise RuntimeError(f"TensorRT rejects the device address of tensor {name!r}")

    def _check_engine_tensors(self) -> None:
        """The engine's tensors are the host buffers' names, directions, dtypes and shapes,
        and its profile fits them: otherwise a copy would overrun a buffer or be misread."""
        trt, engine = self.trt, self.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        if sorted(names) != sorted(self.shapes):
            raise model_file_error(self.engine_path, f"engine tensors {names}, expected {list(self.shapes)}")
        for name, shape in self.shapes.items():
            mode = trt.TensorIOMode.INPUT if name == INPUT_NAME else trt.TensorIOMode.OUTPUT
            if engine.get_tensor_mode(name) != mode:
                raise model_file_error(self.engine_path, f"engine tensor {name!r} is not an {mode}")
            dtype = engine.get_tensor_dtype(name)
            if dtype != trt.DataType.FLOAT:
                raise model_file_error(self.engine_path, f"engine tensor {name!r} is {dtype}; the backend's host "
                                                         f"buffers are float32")
            dims = tuple(engine.get_tensor_shape(name))
            if len(dims) != 1 + len(shape) or dims[1:] != shape:
                raise model_file_error(self.engine_path, f"engine tensor {name!r} has shape {list(dims)}; the model "
                                                         f"config needs [B, {', '.join(map(str, shape))}]")
        low, _, high = (tuple(s) for s in engine.get_tensor_profile_shape(INPUT_NAME, 0))
        if low[0] != self.key.batch_profile[0] or high[0] != self.max_batch:
            raise model_file_error(self.engine_path, f"engine batch profile {low[0]}..{high[0]}, expected "
                                                     f"{self.key.batch_profile[0]}..{self.max_batch}")

    @classmethod
    def load(cls, model_path, device=None, precision=None, expected_keypoints=None, cache_dir=None,
             workspace_mb=DEFAULT_WORKSPACE_MB, batch_profile=DEFAULT_BATCH_PROFILE, calibration_crops=None,
             force_rebuild=False) -> "TensorRTBackend":
        """model_path: an exported .onnx (create_backend('tensorrt', checkpoint) exports a
        checkpoint into the engine cache first).
        opts: cache_dir, workspace_mb, batch_profile (min, opt, max), calibration_crops
        (INT8: [N,1,m,m] array or .npy path; default: synthetic scene crops), force_rebuild."""
        device = normalise_device(device or "cuda")
        precision = check_precision(precision or DEFAULT_PRECISION, backend=cls.name)
        if not device.startswith("cuda"):
            raise ValueError("the tensorrt backend runs on device 'cuda' only")
        if model_kind(model_path) != "onnx":
            raise ValueError(f"the tensorrt backend builds from an exported .onnx file, not {model_path}: run "
                             f"`hand-pose export` first (create_backend('tensorrt', checkpoint) does that for you)")
        trt = import_tensorrt()
        device_index = int(device.split(":")[1]) if ":" in device else 0
        cuda = cuda_api(device_index)
        cache = EngineCache(cache_dir)
        onnx_path = Path(model_path)
        proto, config, _ = read_onnx_model(onnx_path)
        check_expected(config, model_path, expected_keypoints)
        # A QDQ file (inference/quantize.py) carries its own INT8 scales: TensorRT builds it
        # as an explicitly quantised network, with no calibrator and only in INT8.
        explicitly_quantised = is_quantised(proto)
        del proto
        if explicitly_quantised and precision != "int8":
            log.warning("TensorRT: %s is INT8 QDQ-quantised: building it in int8, not %s", onnx_path, precision)
            precision = "int8"

        calibrator, calibration_sha, calibration_profile = None, "", None
        if precision == "int8" and not explicitly_quantised:
            batches = CalibrationBatches(load_calibration_crops(calibration_crops, config, 8 * CALIBRATION_BATCH),
                                         CALIBRATION_BATCH,
                                         config.input_size)
            calibration_sha = batches.sha256()
            calibration_profile = (CALIBRATION_BATCH,) * 3
        batch_profile = tuple(batch_profile)
        with cuda.activate():
            key = EngineKey(onnx_sha256=sha256_file(onnx_path), precision=precision, batch_profile=batch_profile,
                            runtime_version=trt.__version__, device_name=cuda.device_name(),
                            workspace_mb=int(workspace_mb), calibration_sha256=calibration_sha,
                            build_recipe=build_recipe(plan_precision(precision), batch_profile, calibration_profile),
                            compute_capability=cuda.compute_capability(), platform_release=l4t_release())
            if precision == "int8" and not explicitly_quantised:
                calibrator = _calibrator(trt, cuda, batches, cache.directory / (key.filename() + ".calib"))
            log.info("TensorRT: equivalent command: %s", trtexec_command(
                onnx_path, cache.engine_path(key), precision, key.batch_profile, config.input_size, key.workspace_mb))
            runtime = trt.Runtime(tensorrt_logger(trt))

            def deserialize(data: bytes):
                try:
                    return runtime.deserialize_cuda_engine(data)
                except Exception:  # a foreign or damaged plan: TensorRT raises or returns None
                    return None

            try:
                engine, path, built = cache.get_or_build(
                    key, build=lambda: build_engine(trt, onnx_path, key, config.input_size, calibrator),
                    deserialize=deserialize, force=force_rebuild)
            finally:
                if calibrator is not None:
                    calibrator.release()
            backend = cls(trt, engine, config, onnx_path, device, precision, path, built, key, cuda)
        backend.runtime = runtime  # the engine must not outlive its runtime
        return backend

    def _infer(self, crops: np.ndarray):
        with self.cuda.activate():
            outputs = [self._run_chunk(crops[i:i + self.max_batch]) for i in range(0, len(crops), self.max_batch)]
        return tuple(np.concatenate([o[k] for o in outputs]) for k in range(len(self.output_names)))

    def _run_chunk(self, crops: np.ndarray):
        """One batch of at most max_batch crops; the caller has activated the device."""
        batch = crops.shape[0]
        if batch < self.key.batch_profile[0]:  # below the profile's minimum: pad with empty crops
            crops = np.concatenate([crops, np.zeros((self.key.batch_profile[0] - batch, *crops.shape[1:]), np.float32)])
        run = crops.shape[0]
        cuda = self.cuda
        self.host[INPUT_NAME][:run] = crops
        if not self.context.set_input_shape(INPUT_NAME, (run, *crops.shape[1:])):
            raise RuntimeError(f"TensorRT rejects input shape {(run, *crops.shape[1:])} "
                               f"(engine batch profile {self.key.batch_profile})")
        for name in self.output_names:
            got = tuple(self.context.get_tensor_shape(name))
            if got != (run, *self.shapes[name]):
                raise RuntimeError(f"TensorRT output {name!r} has shape {list(got)} for a batch of {run}, "
                                   f"expected {[run, *self.shapes[name]]}")
        cuda.copy_to_device(self.device_buffers[INPUT_NAME], self.host[INPUT_NAME][:run], self.stream)
        if not self.context.execute_async_v3(cuda.stream_handle(self.stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        for name in self.output_names:
            cuda.copy_to_host(self.host[name][:run], self.device_buffers[name], self.stream)
        cuda.synchronize(self.stream)
        return tuple(self.host[name][:batch].copy() for name in self.output_names)

    def synchronize(self) -> None:
        with self.cuda.activate():
            self.cuda.synchronize(self.stream)

    def close(self) -> None:
        """Free the device buffers (the backend is unusable afterwards)."""
        with self.cuda.activate():
            for buffer in self.device_buffers.values():
                self.cuda.free(buffer)
        self.device_buffers = {}

    def describe(self) -> dict:
        info = super().describe()
        info.update(engine=str(self.engine_path), built_now=self.built, tensorrt=self.key.runtime_version,
                    gpu=self.key.device_name, compute_capability=self.key.compute_capability,
                    platform_release=self.key.platform_release, batch_profile=list(self.key.batch_profile),
                    cuda_binding=self.cuda.name, cuda_device=self.cuda.device)
        return info

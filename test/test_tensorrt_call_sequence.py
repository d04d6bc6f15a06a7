"""A contract test of OUR TensorRT code: build_engine, the INT8 calibrator,
TensorRTBackend.__init__ / load / _run_chunk execute on the CPU against recording stand-ins.

RecordingTensorRT10Fake implements the TensorRT 10 Python calls our backend makes (as
documented for TensorRT 10), records their order and arguments, and enforces the documented
rules that we depend on: a CUDA device must be current on the thread that runs the engine,
INT8 calibration happens at the calibration profile's opt shape, create_execution_context()
and set_input_shape() report failure through their return values. RecordingCudaFake stands in
for the CUDA bindings (cuda-python's runtime module and pycuda's driver) with real host memory
behind the "device" pointers and a per-thread current device / context stack like CUDA's.

They check our call sequence, not TensorRT or CUDA: that TensorRT accepts the network, builds
fast kernels or computes the right answer is only tested on a GPU
(test_backends.py::test_tensorrt_engine_matches_onnxruntime)."""
import ctypes
import json
import sys
import threading
import types

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from hand_pose_ros.inference import backends  # noqa: E402
from hand_pose_ros.inference.backends import engine_cache, tensorrt_backend  # noqa: E402
from hand_pose_ros.inference.backends.engine_cache import CALIBRATION_BATCH, DEFAULT_BATCH_PROFILE  # noqa: E402
from hand_pose_ros.inference.model_file import (INPUT_NAME, META_CONFIG, META_FORMAT, META_KEYPOINTS,  # noqa: E402
                                                onnx_format, output_names)
from hand_pose_ros.model import ModelFileError, SRNetConfig  # noqa: E402

CONFIG = SRNetConfig()
M, J = CONFIG.input_size, CONFIG.num_joints


# ----------------------------------------------------------------------------- the fake GPU
class RecordingCudaFake:
    """Stands in for the CUDA bindings to check OUR calls, not CUDA: device pointers are
    addresses of host numpy buffers; the current device (runtime API, cudaSetDevice) and the
    context stack (driver API, pycuda push/pop) are per thread, as in CUDA. Every call is
    recorded with the calling thread and the device current on it."""

    def __init__(self, devices: int = 2, name: bytes = b"Orin", capability=(8, 7)):
        self.devices, self.name, self.capability = devices, name, capability
        self.local = threading.local()
        self.allocations = {}   # pointer -> (device, numpy buffer)
        self.calls = []         # (what, thread ident, current device, details)

    # the calling thread's state
    def current_device(self):
        """The device CUDA work on this thread goes to: the top of the context stack, else
        the runtime's current device once set (or implicitly 0 on first runtime use)."""
        stack = getattr(self.local, "stack", [])
        if stack:
            return stack[-1]
        return getattr(self.local, "device", None)

    def record(self, what, **details):
        self.calls.append((what, threading.get_ident(), self.current_device(), details))

    def device_memory(self, pointer, nbytes):
        """The host buffer behind [pointer, pointer + nbytes): must lie inside one
        allocation made on the device current now."""
        for start, (device, buffer) in self.allocations.items():
            if start <= pointer and pointer + nbytes <= start + buffer.nbytes:
                if device != self.current_device():
                    raise AssertionError(f"memory of device {device} used with device {self.current_device()} current")
                return buffer
        raise AssertionError(f"{nbytes} bytes at {pointer:#x} are not inside any device allocation")

    def malloc(self, nbytes):
        if self.current_device() is None:
            raise AssertionError("cudaMalloc with no device / context current on this thread")
        buffer = np.zeros(int(nbytes), np.uint8)
        self.allocations[buffer.ctypes.data] = (self.current_device(), buffer)
        self.record("malloc", nbytes=int(nbytes))
        return buffer.ctypes.data

    def free(self, pointer):
        self.record("free")
        self.allocations.pop(int(pointer))

    def copy(self, dst, src, nbytes, to_device):
        self.device_memory(dst if to_device else src, nbytes)
        ctypes.memmove(dst, src, nbytes)
        self.record("copy_to_device" if to_device else "copy_to_host", nbytes=int(nbytes))

    # --- cuda-python's `cuda.bindings.runtime` module
    def runtime_module(self):
        fake = self
        rt = types.ModuleType("cuda.bindings.runtime")
        rt.__doc__ = "RecordingCudaFake's cuda-python runtime: checks our calls, not CUDA"
        rt.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)

        def implicit_device():
            if getattr(fake.local, "device", None) is None and not getattr(fake.local, "stack", []):
                fake.local.device = 0  # the runtime API's implicit device 0 on a fresh thread

        def cudaGetDeviceCount():
            return 0, fake.devices

        def cudaSetDevice(device):
            if not 0 <= device < fake.devices:
                return (101,)  # cudaErrorInvalidDevice
            fake.local.device = device
            fake.record("set_device", device=device)
            return (0,)

        def cudaGetDeviceProperties(device):
            return 0, types.SimpleNamespace(name=fake.name + b"\x00" * 8, major=fake.capability[0],
                                            minor=fake.capability[1])

        def cudaStreamCreate():
            implicit_device()
            fake.record("stream")
            return 0, 7000 + len(fake.calls)

        def cudaMalloc(nbytes):
            implicit_device()
            return 0, fake.malloc(nbytes)

        def cudaFree(pointer):
            fake.free(pointer)
            return (0,)

        def cudaMemcpyAsync(dst, src, nbytes, kind, stream):
            implicit_device()
            fake.copy(dst, src, nbytes, kind == rt.cudaMemcpyKind.cudaMemcpyHostToDevice)
            return (0,)

        def cudaStreamSynchronize(stream):
            implicit_device()
            fake.record("synchronize")
            return (0,)

        for function in (cudaGetDeviceCount, cudaSetDevice, cudaGetDeviceProperties, cudaStreamCreate, cudaMalloc,
                         cudaFree, cudaMemcpyAsync, cudaStreamSynchronize):
            setattr(rt, function.__name__, function)
        return rt

    # --- pycuda's `pycuda.driver` module (and an `autoinit` that pushes on the importing thread)
    def pycuda_modules(self):
        fake = self
        driver = types.ModuleType("pycuda.driver")
        driver.__doc__ = "RecordingCudaFake's pycuda.driver: checks our calls, not CUDA"

        class Context:
            def __init__(self, device):
                self.device = device

            def push(self):
                fake.local.stack = getattr(fake.local, "stack", []) + [self.device]
                fake.record("push", device=self.device)

            @staticmethod
            def pop():
                stack = getattr(fake.local, "stack", [])
                if not stack:
                    raise AssertionError("Context.pop() with no context on this thread's stack")
                fake.record("pop")
                fake.local.stack = stack[:-1]

        class Device:
            def __init__(self, index):
                self.index = index

            @staticmethod
            def count():
                return fake.devices

            def name(self):
                return fake.name.decode()

            def compute_capability(self):
                return fake.capability

            def retain_primary_context(self):
                fake.record("retain", device=self.index)
                return Context(self.index)

            def make_context(self):
                context = Context(self.index)
                context.push()
                return context

        class Stream:
            def __init__(self):
                fake.record("stream")
                self.handle = 9000 + len(fake.calls)

            def synchronize(self):
                fake.record("synchronize")

        class Allocation(int):
            def free(self):
                fake.free(int(self))

        driver.Context, driver.Device, driver.Stream = Context, Device, Stream
        driver.init = lambda: None
        driver.mem_alloc = lambda nbytes: Allocation(fake.malloc(nbytes))
        driver.memcpy_htod_async = lambda dst, host, stream: fake.copy(int(dst), host.ctypes.data, host.nbytes, True)
        driver.memcpy_dtoh_async = lambda host, src, stream: fake.copy(host.ctypes.data, int(src), host.nbytes, False)
        driver.pagelocked_empty = lambda shape, dtype: np.empty(shape, dtype)
        autoinit = types.ModuleType("pycuda.autoinit")
        autoinit.context = Device(0).make_context()  # what the real autoinit does: current on THIS thread only
        package = types.ModuleType("pycuda")
        package.driver, package.autoinit = driver, autoinit
        return {"pycuda": package, "pycuda.driver": driver, "pycuda.autoinit": autoinit}


# ----------------------------------------------------------------------------- the fake TensorRT
def expected_outputs(crops: np.ndarray, names) -> dict:
    """What the fake engine computes from a batch of crops (a function of each crop)."""
    mean = crops.reshape(len(crops), -1).mean(axis=1).astype(np.float32)
    uvd = mean[:, None, None] + np.arange(J, dtype=np.float32)[None, :, None] * 0.01 + np.arange(3, dtype=np.float32)
    out = {"uvd": uvd.astype(np.float32), "confidence": np.full((len(crops), J), 0.5, np.float32),
           "handedness": np.full(len(crops), 0.25, np.float32)}
    return {name: out[name] for name in names}


class RecordingTensorRT10Fake(types.ModuleType):
    """Stands in for the `tensorrt` module (TensorRT 10 Python API) to check OUR call
    sequence, not TensorRT: records every call in `calls`, parses only the ONNX file's
    input / output names and shapes, "calibrates" at the calibration profile's opt shape
    by reading the calibrator's device buffer, and runs an engine whose outputs are a
    fixed function of the input (expected_outputs). Knobs: fail_context, reject_shapes,
    output_dtype, output_joints."""

    def __init__(self, cuda: RecordingCudaFake, version: str = "10.3.0"):
        super().__init__("tensorrt")
        self.__version__ = version
        self.cuda = cuda
        self.calls, self.loggers, self.calibrations = [], [], []
        self.fail_context = self.reject_shapes = False
        self.output_dtype, self.output_joints = "FLOAT", J
        fake = self

        class Logger:
            WARNING = "WARNING"

            def __init__(self, severity):
                fake.loggers.append(self)

        self.Logger = Logger
        self.LayerType = types.SimpleNamespace(CONVOLUTION="CONVOLUTION", NORMALIZATION="NORMALIZATION",
                                               SOFTMAX="SOFTMAX", REDUCE="REDUCE")
        self.DataType = types.SimpleNamespace(FLOAT="FLOAT", HALF="HALF")
        self.float32 = self.DataType.FLOAT
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
        self.BuilderFlag = types.SimpleNamespace(FP16="FP16", INT8="INT8", TF32="TF32",
                                                 PREFER_PRECISION_CONSTRAINTS="PREFER_PRECISION_CONSTRAINTS")
        self.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")

        class IInt8EntropyCalibrator2:
            def __init__(self):
                pass

        class IProgressMonitor:
            def __init__(self):
                pass

        self.IInt8EntropyCalibrator2, self.IProgressMonitor = IInt8EntropyCalibrator2, IProgressMonitor
        self.Builder, self.OnnxParser, self.Runtime = self._builder_class(), self._parser_class(), self._runtime_class()

    def record(self, what, **details):
        self.calls.append((what, details))
        self.cuda.record(f"trt.{what}", **details)

    def _needs_device(self, what):
        if self.cuda.current_device() is None:
            raise AssertionError(f"TensorRT {what} with no CUDA device / context current on this thread")

    # --- build side
    def _builder_class(self):
        fake = self

        class Layer:
            def __init__(self, kind):
                self.type, self.precision, self.num_outputs, self.output_types = kind, None, 1, {}

            def set_output_type(self, index, dtype):
                self.output_types[index] = dtype

        class Network:
            def __init__(self):
                self.io, self.layers = None, [Layer(k) for k in ("CONVOLUTION", "NORMALIZATION", "SOFTMAX", "REDUCE")]
                self.num_layers = len(self.layers)

            def get_layer(self, i):
                return self.layers[i]

        class Profile:
            def __init__(self):
                self.shapes = {}

            def set_shape(self, name, low, opt, high):
                fake.record("profile.set_shape", name=name, shapes=(tuple(low), tuple(opt), tuple(high)))
                self.shapes[name] = (tuple(low), tuple(opt), tuple(high))

        class Config:
            def __init__(self):
                self.flags, self.cleared, self.profiles, self.calibration_profile = set(), set(), [], None
                self.int8_calibrator = self.progress_monitor = None

            def set_memory_pool_limit(self, pool, nbytes):
                fake.record("config.set_memory_pool_limit", pool=pool, nbytes=nbytes)

            def set_flag(self, flag):
                self.flags.add(flag)

            def clear_flag(self, flag):
                self.cleared.add(flag)

            def add_optimization_profile(self, profile):
                self.profiles.append(profile)
                return len(self.profiles) - 1

            def set_calibration_profile(self, profile):
                self.calibration_profile = profile
                return True

        class Builder:
            platform_has_fast_fp16 = platform_has_fast_int8 = True

            def __init__(self, logger):
                assert isinstance(logger, fake.Logger)
                fake.record("Builder", logger=id(logger))

            def create_network(self, flags):
                fake.record("create_network", flags=flags)
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                fake._needs_device("build_serialized_network")
                fake.record("build_serialized_network", flags=sorted(config.flags))
                fake.built_config, fake.built_network = config, network
                if config.int8_calibrator is not None:
                    fake._calibrate(config)
                profile = config.profiles[0].shapes[INPUT_NAME]
                plan = {"io": network.io, "profile": profile, "dtype": fake.output_dtype,
                        "joints": fake.output_joints}
                return json.dumps(plan).encode()

        return Builder

    def _calibrate(self, config):
        """As TensorRT documents for dynamic shapes: calibrate at the calibration profile's
        opt shape (the first optimisation profile when none is set)."""
        calibrator = config.int8_calibrator
        profile = config.calibration_profile or config.profiles[0]
        opt = profile.shapes[INPUT_NAME][1]
        self.record("calibrate", opt=opt, batch_size=calibrator.get_batch_size())
        calibrator.read_calibration_cache()
        nbytes = int(np.prod(opt)) * 4
        while True:
            pointers = calibrator.get_batch([INPUT_NAME])
            if pointers is None:
                break
            batch = np.frombuffer(self.cuda.device_memory(pointers[0], nbytes)[:nbytes].tobytes(),
                                  np.float32).reshape(opt)
            self.calibrations.append(batch)
        calibrator.write_calibration_cache(b"calibration-table")

    def _parser_class(self):
        fake = self

        class OnnxParser:
            num_errors = 0

            def __init__(self, network, logger):
                assert isinstance(logger, fake.Logger)
                self.network = network

            def parse_from_file(self, path):
                fake.record("parse_from_file", path=path)
                graph = onnx.load(path).graph
                dims = lambda v: [d.dim_value if d.HasField("dim_value") else -1  # noqa: E731
                                  for d in v.type.tensor_type.shape.dim]
                self.network.io = {"inputs": {v.name: dims(v) for v in graph.input},
                                   "outputs": {v.name: dims(v) for v in graph.output}}
                return True

        return OnnxParser

    # --- run side
    def _runtime_class(self):
        fake = self

        class Context:
            def __init__(self, engine):
                self.engine, self.addresses, self.input_shape = engine, {}, None

            def set_tensor_address(self, name, pointer):
                fake.record("set_tensor_address", name=name)
                self.addresses[name] = int(pointer)
                return True

            def set_input_shape(self, name, shape):
                fake.record("set_input_shape", name=name, shape=tuple(shape))
                low, _, high = self.engine.plan["profile"]
                if fake.reject_shapes or not low[0] <= shape[0] <= high[0]:
                    return False  # TensorRT reports a shape outside the profile with False
                self.input_shape = tuple(shape)
                return True

            def get_tensor_shape(self, name):
                shape = self.engine.get_tensor_shape(name)
                return (self.input_shape[0], *shape[1:])

            def execute_async_v3(self, stream):
                fake.record("execute_async_v3", stream=stream, device=fake.cuda.current_device())
                if fake.cuda.current_device() is None:
                    return False  # no context current: the launch fails
                batch = self.input_shape[0]
                nbytes = batch * M * M * 4
                crops = np.frombuffer(
                    fake.cuda.device_memory(self.addresses[INPUT_NAME], nbytes)[:nbytes].tobytes(), np.float32
                ).reshape(batch, 1, M, M)
                for name, value in expected_outputs(crops, self.engine.plan["io"]["outputs"]).items():
                    data = value.tobytes()
                    target = fake.cuda.device_memory(self.addresses[name], len(data))
                    ctypes.memmove(self.addresses[name], data, len(data))
                    assert target is not None
                return True

        class Engine:
            def __init__(self, plan):
                self.plan = plan
                io = plan["io"]
                self.names = list(io["inputs"]) + list(io["outputs"])
                self.num_io_tensors = len(self.names)

            def get_tensor_name(self, i):
                return self.names[i]

            def get_tensor_mode(self, name):
                return fake.TensorIOMode.INPUT if name in self.plan["io"]["inputs"] else fake.TensorIOMode.OUTPUT

            def get_tensor_dtype(self, name):
                return fake.DataType.FLOAT if name == INPUT_NAME else self.plan["dtype"]

            def get_tensor_shape(self, name):
                io = self.plan["io"]
                shape = list(io["inputs"].get(name) or io["outputs"][name])
                if name == "uvd":
                    shape[1] = self.plan["joints"]
                return tuple([-1, *shape[1:]])

            def get_tensor_profile_shape(self, name, index):
                return self.plan["profile"]

            def create_execution_context(self):
                fake._needs_device("create_execution_context")
                fake.record("create_execution_context")
                return None if fake.fail_context else Context(self)

        class Runtime:
            def __init__(self, logger):
                assert isinstance(logger, fake.Logger)
                fake.record("Runtime", logger=id(logger))

            def deserialize_cuda_engine(self, data):
                fake._needs_device("deserialize_cuda_engine")
                fake.record("deserialize_cuda_engine")
                return Engine(json.loads(bytes(data)))

        return Runtime


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """An ONNX file with our input / outputs and metadata (the fake parses no more); its
    nodes are placeholders that nothing runs."""
    from onnx import TensorProto, helper
    names = output_names(CONFIG)
    shapes = {"uvd": ["batch", J, 3], "confidence": ["batch", J], "handedness": ["batch"]}
    nodes = [helper.make_node("ReduceMean", [INPUT_NAME], [name], keepdims=0) for name in names]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                                                            ["batch", 1, M, M])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, shapes[n]) for n in names])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in {META_CONFIG: CONFIG.to_json(), META_KEYPOINTS: json.dumps(list(CONFIG.keypoint_names)),
                       META_FORMAT: onnx_format(CONFIG)}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture
def gpu(monkeypatch):
    """A fake 2-GPU Jetson seen through cuda-python, and a fake TensorRT 10.3, injected as
    the modules our backend imports."""
    cuda = RecordingCudaFake()
    runtime = cuda.runtime_module()
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = runtime
    package = types.ModuleType("cuda")
    package.bindings = bindings
    for name, module in {"cuda": package, "cuda.bindings": bindings, "cuda.bindings.runtime": runtime}.items():
        monkeypatch.setitem(sys.modules, name, module)
    trt = RecordingTensorRT10Fake(cuda)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(tensorrt_backend, "l4t_release", lambda: "L4T R36.4.3")
    return trt


def crops_batch(count, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, 1, M, M)).astype(np.float32)


def infer_on_a_worker_thread(backend, crops):
    """backend.infer_outputs(crops) on a new thread, as the pose node's worker does."""
    result = {}

    def work():
        try:
            result["outputs"] = backend.infer_outputs(crops)
        except Exception as e:  # re-raised on the test's thread
            result["error"] = e

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["outputs"], worker.ident


# ----------------------------------------------------------------------------- tests
def test_fp16_engine_runs_on_its_device_from_a_worker_thread(gpu, tiny_onnx, tmp_path):
    backend = backends.create_backend("tensorrt", tiny_onnx, device="cuda:1", cache_dir=tmp_path,
                                      batch_profile=(1, 1, 4))
    assert backend.built and backend.precision == "fp16"
    assert {"FP16", "PREFER_PRECISION_CONSTRAINTS"} <= set(gpu.built_config.flags)
    pinned = [layer.type for layer in gpu.built_network.layers if layer.precision == gpu.float32]
    assert pinned == ["NORMALIZATION", "SOFTMAX", "REDUCE"]
    crops = crops_batch(6)  # two chunks: 4 + 2
    outputs, worker = infer_on_a_worker_thread(backend, crops)
    expected = expected_outputs(crops, output_names(CONFIG))
    assert np.allclose(outputs.uvd, expected["uvd"]) and np.allclose(outputs.confidence, expected["confidence"])
    runs = [c for c in gpu.cuda.calls if c[0] == "trt.execute_async_v3"]
    assert len(runs) == 2 and all(thread == worker and device == 1 for _, thread, device, _ in runs)
    # every allocation and copy went to the device asked for, on whichever thread
    assert {device for what, _, device, _ in gpu.cuda.calls if what in ("malloc", "copy_to_device",
                                                                         "copy_to_host")} == {1}
    # the input shape is set before each launch, for the chunk's batch
    sequence = [(what, details.get("shape")) for what, details in gpu.calls
                if what in ("set_input_shape", "execute_async_v3")]
    assert sequence == [("set_input_shape", (4, 1, M, M)), ("execute_async_v3", None),
                        ("set_input_shape", (2, 1, M, M)), ("execute_async_v3", None)]
    info = backend.describe()
    assert info["cuda_device"] == 1 and info["compute_capability"] == "8.7" and info["gpu"] == "Orin"
    backend.close()
    assert not gpu.cuda.allocations


def test_pycuda_context_is_made_current_on_the_inferring_thread(tiny_onnx, tmp_path, monkeypatch):
    cuda = RecordingCudaFake()
    monkeypatch.setitem(sys.modules, "cuda", None)  # no cuda-python: pycuda it is
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    for name, module in cuda.pycuda_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    cuda.local.stack, cuda.calls = [], []  # the fake autoinit pushed on this thread when made: undo it
    trt = RecordingTensorRT10Fake(cuda)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    backend = backends.create_backend("tensorrt", tiny_onnx, device="cuda:1", cache_dir=tmp_path,
                                      batch_profile=(1, 1, 4))
    assert backend.cuda.name == "pycuda"
    crops = crops_batch(3)
    outputs, worker = infer_on_a_worker_thread(backend, crops)
    assert np.allclose(outputs.uvd, expected_outputs(crops, ["uvd"])["uvd"])
    runs = [c for c in cuda.calls if c[0] == "trt.execute_async_v3"]
    assert runs and all(thread == worker and device == 1 for _, thread, device, _ in runs)
    # pushed for the call and popped after it: no context left on the caller's stack
    assert getattr(cuda.local, "stack", []) == []
    pushes = [c for c in cuda.calls if c[0] == "push"]
    pops = [c for c in cuda.calls if c[0] == "pop"]
    assert len(pushes) == len(pops) and any(thread == worker for _, thread, _, _ in pushes)


def test_int8_calibrates_on_a_profile_of_the_calibration_batch(gpu, tiny_onnx, tmp_path):
    calibration = crops_batch(2 * CALIBRATION_BATCH + 5, seed=3)
    backend = backends.create_backend("tensorrt", tiny_onnx, device="cuda:0", precision="int8", cache_dir=tmp_path,
                                      calibration_crops=calibration)
    assert backend.precision == "int8" and {"INT8", "FP16"} <= set(gpu.built_config.flags)
    calibrations = [details for what, details in gpu.calls if what == "calibrate"]
    batch = (CALIBRATION_BATCH, 1, M, M)
    assert calibrations == [{"opt": batch, "batch_size": CALIBRATION_BATCH}]
    # a profile of its own: the runtime profile stays what was asked for
    assert gpu.built_config.calibration_profile is not gpu.built_config.profiles[0]
    assert gpu.built_config.calibration_profile.shapes[INPUT_NAME] == (batch, batch, batch)
    low, opt, high = DEFAULT_BATCH_PROFILE
    assert gpu.built_config.profiles[0].shapes[INPUT_NAME] == ((low, 1, M, M), (opt, 1, M, M), (high, 1, M, M))
    # TensorRT read exactly the calibration crops, batch by batch (the partial batch dropped)
    assert len(gpu.calibrations) == 2
    assert np.array_equal(np.concatenate(gpu.calibrations), calibration[:2 * CALIBRATION_BATCH])
    assert list(tmp_path.glob("*.calib")) and not any(
        device is None for what, _, device, _ in gpu.cuda.calls if what == "malloc")
    # the calibration buffer is freed after the build; the backend's buffers remain
    assert len(gpu.cuda.allocations) == len(backend.device_buffers)


def test_one_logger_and_the_engine_comes_from_the_cache_the_second_time(gpu, tiny_onnx, tmp_path):
    first = backends.create_backend("tensorrt", tiny_onnx, cache_dir=tmp_path)
    second = backends.create_backend("tensorrt", tiny_onnx, cache_dir=tmp_path)
    assert first.built and not second.built and second.engine_path == first.engine_path
    assert len(gpu.loggers) == 1
    users = {details["logger"] for what, details in gpu.calls if what in ("Builder", "Runtime")}
    assert users == {id(gpu.loggers[0])}
    assert [what for what, _ in gpu.calls].count("build_serialized_network") == 1


def test_engine_key_has_compute_capability_l4t_release_and_recipe(gpu, tiny_onnx, tmp_path):
    backend = backends.create_backend("tensorrt", tiny_onnx, cache_dir=tmp_path)
    key = backend.key
    assert (key.compute_capability, key.platform_release, key.device_name) == ("8.7", "L4T R36.4.3", "Orin")
    assert key.build_recipe.startswith(f"v{engine_cache.BUILD_RECIPE_VERSION}-")
    sidecar = json.loads(backend.engine_path.with_suffix(".json").read_text())
    assert sidecar["key"]["platform_release"] == "L4T R36.4.3"


def test_failed_execution_context_is_reported(gpu, tiny_onnx, tmp_path):
    gpu.fail_context = True
    with pytest.raises(RuntimeError, match="cannot create an execution context"):
        backends.create_backend("tensorrt", tiny_onnx, cache_dir=tmp_path)


def test_rejected_input_shape_is_reported(gpu, tiny_onnx, tmp_path):
    backend = backends.create_backend("tensorrt", tiny_onnx, cache_dir=tmp_path)
    gpu.reject_shapes = True
    with pytest.raises(RuntimeError, match=r"rejects input shape \(2, 1, 128, 128\)"):
        backend.infer(crops_batch(2))
    assert "execute_async_v3" not in [what for what, _ in gpu.calls]


@pytest.mark.parametrize("fault, message", [("dtype", "is HALF; the backend's host buffers are float32"),
                                            ("joints", r"'uvd' has shape \[-1, 20, 3\]")])
def test_engine_tensors_are_checked_against_the_host_buffers(gpu, tiny_onnx, tmp_path, fault, message):
    if fault == "dtype":
        gpu.output_dtype = "HALF"
    else:
        gpu.output_joints = J - 1
    with pytest.raises(ModelFileError, match=message):
        backends.create_backend("tensorrt", tiny_onnx, cache_dir=tmp_path)


def test_tensorrt_11_is_refused_and_auto_falls_back(gpu, tiny_onnx, tmp_path, monkeypatch, caplog):
    gpu.__version__ = "11.0.0"
    with pytest.raises(RuntimeError, match="TensorRT 11 removed the weakly-typed precision flags"):
        backends.create_backend("tensorrt", tiny_onnx, cache_dir=tmp_path)
    monkeypatch.setattr(backends, "cuda_available", lambda: True)
    choice = backends.choose_backend(tiny_onnx)
    assert choice.backend == "onnxruntime" and "TensorRT 11.0.0 is not supported" in choice.reason
    assert not [what for what, _ in gpu.calls]  # nothing of TensorRT was called


@pytest.fixture
def tiny_qdq_onnx(tiny_onnx, tmp_path):
    """tiny_onnx with a QuantizeLinear / DequantizeLinear pair in front: an explicitly
    quantised file as inference/quantize.py writes (its scales inside the graph)."""
    from onnx import TensorProto, helper
    import onnx
    model = onnx.load(str(tiny_onnx))
    graph = model.graph
    graph.initializer.extend([helper.make_tensor("scale", TensorProto.FLOAT, [], [0.01]),
                              helper.make_tensor("zero", TensorProto.INT8, [], [0])])
    quantise = [helper.make_node("QuantizeLinear", [INPUT_NAME, "scale", "zero"], ["q"]),
                helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"])]
    for node in graph.node:
        node.input[0] = "dq"
    nodes = quantise + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    path = tmp_path / "tiny.int8.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("asked", ["int8", "fp16"])
def test_qdq_file_builds_in_int8_without_a_calibrator(gpu, tiny_qdq_onnx, tmp_path, asked):
    backend = backends.create_backend("tensorrt", tiny_qdq_onnx, device="cuda:0", precision=asked,
                                      cache_dir=tmp_path, calibration_crops=crops_batch(2 * CALIBRATION_BATCH))
    assert backend.precision == "int8" and "INT8" in gpu.built_config.flags
    assert gpu.built_config.int8_calibrator is None and gpu.built_config.calibration_profile is None
    assert not [what for what, _ in gpu.calls if what == "calibrate"] and not list(tmp_path.glob("*.calib"))

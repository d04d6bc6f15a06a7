"""Device buffers, copies and a stream for the TensorRT backend, through whichever CUDA
binding is installed: cuda-python (`cuda.bindings.runtime`, or `cuda.cudart` before 12.6)
or pycuda (what JetPack ships). No torch needed on the robot.

    cuda = cuda_api(device)              # raises RuntimeError when neither binding imports
    with cuda.activate():                # on EVERY thread that touches the device
        buffer = cuda.malloc(nbytes); cuda.copy_to_device(buffer, host_array, stream) ...

Why activate(): which GPU (cuda-python: cudaSetDevice) and which context (pycuda: a context
stack) are per CPU thread. A backend loaded on a node's main thread and run on its worker
thread would otherwise run on device 0 (cuda-python) or with no context at all (pycuda).
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np


def _cuda_python_runtime():
    try:
        from cuda.bindings import runtime  # cuda-python >= 12.6
        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart  # older cuda-python
        return cudart
    except ImportError:
        return None


def _pycuda_driver():
    try:
        import pycuda.driver as driver
    except ImportError:
        return None
    return driver


def cuda_binding_name() -> str | None:
    """'cuda-python' or 'pycuda', whichever cuda_api() would use; None when neither imports
    (JetPack ships neither by default). Imports only: no device is touched."""
    if _cuda_python_runtime() is not None:
        return "cuda-python"
    return "pycuda" if _pycuda_driver() is not None else None


def cuda_device_count() -> int:
    """CUDA devices visible through cuda-python or pycuda (0 when neither works)."""
    runtime = _cuda_python_runtime()
    if runtime is not None:
        err, count = runtime.cudaGetDeviceCount()
        return int(count) if int(err) == 0 else 0
    driver = _pycuda_driver()
    if driver is None:
        return 0
    try:
        driver.init()
        return driver.Device.count()
    except Exception:  # no driver / device
        return 0


class CudaPython:
    """cuda-python runtime API on one device. Pointers are ints. activate() calls
    cudaSetDevice (per thread in the runtime API) each time: cheap, and right on any thread."""
    name = "cuda-python"

    def __init__(self, runtime, device: int = 0):
        self.rt = runtime
        self.device = int(device)
        count = self._check(self.rt.cudaGetDeviceCount())
        if not 0 <= self.device < int(count):
            raise RuntimeError(f"CUDA device {self.device} does not exist ({count} visible)")

    @contextlib.contextmanager
    def activate(self):
        self._check(self.rt.cudaSetDevice(self.device))
        yield

    def _check(self, result):
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise RuntimeError(f"CUDA error {err}")
        return values[0] if len(values) == 1 else values

    def device_name(self) -> str:
        """What cudaGetDeviceProperties calls the GPU: 'NVIDIA H200', 'Orin' on a Jetson Orin."""
        name = self._check(self.rt.cudaGetDeviceProperties(self.device)).name
        return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\x00").strip()

    def compute_capability(self) -> str:
        props = self._check(self.rt.cudaGetDeviceProperties(self.device))
        return f"{props.major}.{props.minor}"

    def stream(self):
        return self._check(self.rt.cudaStreamCreate())

    def stream_handle(self, stream) -> int:
        return int(stream)

    def malloc(self, nbytes: int):
        return self._check(self.rt.cudaMalloc(int(nbytes)))

    def free(self, pointer) -> None:
        self.rt.cudaFree(pointer)

    def pointer(self, buffer) -> int:
        return int(buffer)

    def copy_to_device(self, buffer, host: np.ndarray, stream) -> None:
        self._check(self.rt.cudaMemcpyAsync(buffer, host.ctypes.data, host.nbytes,
                                            self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))

    def copy_to_host(self, host: np.ndarray, buffer, stream) -> None:
        self._check(self.rt.cudaMemcpyAsync(host.ctypes.data, buffer, host.nbytes,
                                            self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))

    def synchronize(self, stream) -> None:
        self._check(self.rt.cudaStreamSynchronize(stream))

    def pinned(self, shape, dtype) -> np.ndarray:
        return np.empty(shape, dtype)  # pageable host memory: copies stay correct, a little slower


class PyCuda:
    """pycuda driver API on one device, through that device's primary context (the one
    the CUDA runtime, TensorRT and torch use too). Not pycuda.autoinit: that makes a context
    current on the importing thread only. activate() pushes the context onto the calling
    thread's stack and pops it afterwards (nested activations push once)."""
    name = "pycuda"

    def __init__(self, driver, device: int = 0):
        self.driver = driver
        self.device = int(device)
        driver.init()
        count = driver.Device.count()
        if not 0 <= self.device < count:
            raise RuntimeError(f"CUDA device {self.device} does not exist ({count} visible)")
        self._device = driver.Device(self.device)
        self.context = self._device.retain_primary_context()
        self._local = threading.local()

    @contextlib.contextmanager
    def activate(self):
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            self.context.push()
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                self.driver.Context.pop()

    def device_name(self) -> str:
        return self._device.name()

    def compute_capability(self) -> str:
        major, minor = self._device.compute_capability()
        return f"{major}.{minor}"

    def stream(self):
        return self.driver.Stream()

    def stream_handle(self, stream) -> int:
        return int(stream.handle)

    def malloc(self, nbytes: int):
        return self.driver.mem_alloc(int(nbytes))

    def free(self, pointer) -> None:
        pointer.free()

    def pointer(self, buffer) -> int:
        return int(buffer)

    def copy_to_device(self, buffer, host: np.ndarray, stream) -> None:
        self.driver.memcpy_htod_async(buffer, host, stream)

    def copy_to_host(self, host: np.ndarray, buffer, stream) -> None:
        self.driver.memcpy_dtoh_async(host, buffer, stream)

    def synchronize(self, stream) -> None:
        stream.synchronize()

    def pinned(self, shape, dtype) -> np.ndarray:
        return self.driver.pagelocked_empty(shape, dtype)


NO_BINDING = ("the TensorRT backend needs cuda-python (pip install cuda-python) or pycuda "
              "(JetPack: python3-pycuda) for device buffers")


def cuda_api(device: int = 0):
    """CudaPython on `device` when cuda-python imports, else PyCuda; RuntimeError when
    neither does."""
    runtime = _cuda_python_runtime()
    if runtime is not None:
        return CudaPython(runtime, device)
    driver = _pycuda_driver()
    if driver is None:
        raise RuntimeError(NO_BINDING)
    return PyCuda(driver, device)

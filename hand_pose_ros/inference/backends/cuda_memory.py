"""Device buffers, copies and a stream for the TensorRT backend, through whichever CUDA
binding is installed: cuda-python (`cuda.bindings.runtime`, or `cuda.cudart` before 12.6)
or pycuda (what JetPack ships). No torch needed on the robot.

    cuda = cuda_api()                    # raises RuntimeError when neither binding imports
    buffer = cuda.malloc(nbytes); cuda.copy_to_device(buffer, host_array, stream) ...
"""
from __future__ import annotations

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


def cuda_device_count() -> int:
    """CUDA devices visible through cuda-python or pycuda (0 when neither works)."""
    runtime = _cuda_python_runtime()
    if runtime is not None:
        err, count = runtime.cudaGetDeviceCount()
        return int(count) if int(err) == 0 else 0
    try:
        import pycuda.driver as driver
        driver.init()
        return driver.Device.count()
    except Exception:  # pycuda missing, or no driver / device
        return 0


class CudaPython:
    """cuda-python runtime API. Pointers are ints."""
    name = "cuda-python"

    def __init__(self, runtime):
        self.rt = runtime

    def _check(self, result):
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise RuntimeError(f"CUDA error {err}")
        return values[0] if len(values) == 1 else values

    def set_device(self, device: int) -> None:
        self._check(self.rt.cudaSetDevice(int(device)))

    def device_name(self, device: int = 0) -> str:
        props = self._check(self.rt.cudaGetDeviceProperties(device))
        name = props.name
        return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\x00").strip()

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
    """pycuda driver API with its own primary context (pycuda.autoinit)."""
    name = "pycuda"

    def __init__(self):
        import pycuda.autoinit  # noqa: F401  (creates and pushes a context on device 0)
        import pycuda.driver as driver
        self.driver = driver

    def set_device(self, device: int) -> None:
        if device != 0:
            raise RuntimeError("with pycuda the tensorrt backend runs on cuda:0 only (pycuda.autoinit); "
                               "select the GPU with CUDA_VISIBLE_DEVICES")

    def device_name(self, device: int = 0) -> str:
        return self.driver.Device(device).name()

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


def cuda_api():
    """CudaPython when cuda-python imports, else PyCuda; RuntimeError when neither does."""
    runtime = _cuda_python_runtime()
    if runtime is not None:
        return CudaPython(runtime)
    try:
        return PyCuda()
    except ImportError:
        raise RuntimeError("the TensorRT backend needs cuda-python (pip install cuda-python) "
                           "or pycuda (JetPack: python3-pycuda) for device buffers") from None

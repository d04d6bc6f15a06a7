"""ONNX Runtime backend: an exported .onnx file on the CPU execution provider (threads
configurable), or on the CUDA / TensorRT execution providers when the installed
onnxruntime build offers them.

precision='int8' (CPU): the convolutions are quantised statically (QDQ, per-channel INT8
weights, UINT8 activations calibrated on crops) with onnxruntime.quantization, once, and the
result is cached like a TensorRT engine (engine_cache.py). Normalisation, softmax and the
decoders stay FP32. About 4x faster than FP32 on a CPU with AVX-512 VNNI; check the accuracy
of a trained model with `hand-pose eval` before deploying it."""
from __future__ import annotations

import numpy as np

from ..model_file import (INPUT_NAME, check_expected, is_quantised, model_file_error, model_kind, output_names,
                          read_onnx_model)
from ..onnx_graph import precise_instance_norm
from .base import Backend, check_precision, log, normalise_device

GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


def available_providers() -> list[str]:
    import onnxruntime
    return list(onnxruntime.get_available_providers())


def providers_for(device: str, precision: str, use_tensorrt: bool, available: list[str]) -> list:
    """The execution-provider list for a device, failing clearly when the build lacks it."""
    if device == "cpu":
        if precision not in ("fp32", "int8"):
            raise ValueError(f"onnxruntime on the CPU runs fp32 or int8 (quantised), not {precision}")
        return ["CPUExecutionProvider"]
    device_id = int(device.split(":")[1]) if ":" in device else 0
    chain = []
    if use_tensorrt:
        if "TensorrtExecutionProvider" not in available:
            raise RuntimeError(f"onnxruntime has no TensorrtExecutionProvider here (available: {available})")
        chain.append(("TensorrtExecutionProvider", {"device_id": device_id,
                                                    "trt_fp16_enable": precision == "fp16",
                                                    "trt_int8_enable": precision == "int8"}))
    elif precision != "fp32":
        raise ValueError(f"onnxruntime's CUDA provider runs the exported FP32 graph; for {precision} use "
                         "the TensorRT provider (tensorrt=True) or the tensorrt backend")
    if "CUDAExecutionProvider" not in available:
        raise RuntimeError(f"onnxruntime has no CUDAExecutionProvider here (available: {available}); "
                           "install onnxruntime-gpu or use device='cpu'")
    chain.append(("CUDAExecutionProvider", {"device_id": device_id}))
    chain.append("CPUExecutionProvider")
    return chain


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, session, config, model_path, device, precision, threads, precise_norm):
        super().__init__(config, model_path, device, precision)
        self.session = session
        self.output_names = list(output_names(config))
        self.threads = threads
        self.precise_norm = precise_norm

    @classmethod
    def load(cls, model_path, device=None, precision=None, expected_keypoints=None, threads=None,
             tensorrt=False, graph_optimization="all", precise_norm=True, calibration_crops=None,
             cache_dir=None, **opts) -> "OnnxRuntimeBackend":
        """opts: threads (intra-op threads, None = onnxruntime's default: one per core),
        tensorrt (use the TensorRT execution provider on CUDA), graph_optimization
        (disable | basic | extended | all), precise_norm (rewrite InstanceNormalization
        in memory for PyTorch-level accuracy, see onnx_graph.py; not with tensorrt);
        int8 only: calibration_crops ([N,1,m,m] array or .npy path), cache_dir."""
        import onnxruntime

        if opts:
            raise TypeError(f"onnxruntime backend: unknown options {sorted(opts)}")
        device = normalise_device(device)
        precision = check_precision(precision, backend=cls.name)
        if model_kind(model_path) != "onnx":
            raise model_file_error(model_path, "the onnxruntime backend needs an ONNX file; "
                                               "make one with `hand-pose export CHECKPOINT --onnx OUT.onnx`")
        proto, config, _ = read_onnx_model(model_path)
        check_expected(config, model_path, expected_keypoints)
        if graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise ValueError(f"graph_optimization {graph_optimization!r} is not one of {GRAPH_OPTIMIZATION_LEVELS}")

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = {
            "disable": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL}[graph_optimization]
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no per-node placement chatter
        providers = providers_for(device, precision, tensorrt, available_providers())
        if (precise_norm or precision == "int8") and not tensorrt:
            proto = precise_instance_norm(proto)
        model_bytes = proto.SerializeToString()
        if is_quantised(proto):   # a QDQ file (inference/quantize.py): its own scales, as is
            precision = "int8"
        elif precision == "int8" and device == "cpu":
            model_bytes = quantised_model(model_bytes, model_path, config, calibration_crops, cache_dir)
        try:
            session = onnxruntime.InferenceSession(model_bytes, sess_options=options, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph types
            raise model_file_error(model_path, f"onnxruntime cannot load it: {e}") from None
        log.info("onnxruntime backend: %s on %s", model_path, session.get_providers())
        return cls(session, config, model_path, device, precision, threads, precise_norm and not tensorrt)

    def _infer(self, crops: np.ndarray):
        return tuple(self.session.run(self.output_names, {INPUT_NAME: crops}))

    def describe(self) -> dict:
        import onnxruntime
        info = super().describe()
        info.update(providers=self.session.get_providers(), threads=self.threads, precise_norm=self.precise_norm,
                    onnxruntime=onnxruntime.__version__)
        return info


def quantised_model(model_bytes: bytes, onnx_path, config, crops_source, cache_dir) -> bytes:
    """The INT8 (QDQ) version of a model, built once per ONNX file + calibration data +
    onnxruntime version and kept in the engine cache."""
    import tempfile
    from pathlib import Path

    import onnxruntime

    from ..model_file import sha256_file
    from ..quantize import UINT8_RECIPE, quantize_graph
    from .engine_cache import CalibrationBatches, EngineCache, EngineKey, calibration_crops

    batches = CalibrationBatches(calibration_crops(crops_source, config, 64), 8, config.input_size)
    key = EngineKey(onnx_sha256=sha256_file(onnx_path), precision="int8",
                    batch_profile=(1, 1, 1),  # unused: the quantised model keeps the dynamic batch
                    runtime_version=onnxruntime.__version__, device_name="cpu", workspace_mb=0,
                    calibration_sha256=batches.sha256(), runtime="onnxruntime", build_recipe=UINT8_RECIPE)

    def build() -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
            source.write_bytes(model_bytes)
            # Only the convolutions (95% of the MACs): norms, softmax and decoders stay FP32.
            quantize_graph(source, target, np.concatenate(list(batches)), symmetric=False)
            return target.read_bytes()

    data, _, _ = EngineCache(cache_dir).get_or_build(key, build, what="onnxruntime INT8 quantisation")
    return data

"""Static INT8 quantisation of an exported ONNX model: QDQ (QuantizeLinear/DequantizeLinear
pairs) around the convolutions, calibrated on crops from the synthetic generator.

    hand-pose export CKPT --onnx fast.onnx --int8-qdq fast.int8.onnx

Two users of the one quantisation step (quantize_graph):
- the onnxruntime backend's precision='int8' quantises in memory at load (UINT8
  activations: ONNX Runtime's fastest CPU kernels) and caches the result;
- quantize_qdq writes a file with symmetric INT8 activations and weights, which ONNX
  Runtime runs as well and TensorRT reads as an explicitly quantised network (no
  calibrator there: the scales travel in the file).
Per-channel weight scales in both.
- Only Conv is quantised. The spatial softmax, the decoders (weighted sums over the maps)
  and the handedness head stay FP32: they are cheap, and a heatmap that sums to one over
  1,024 pixels loses its small values in 8 bits.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from .model_file import INPUT_NAME, is_quantised, model_file_error, read_onnx_config

log = logging.getLogger("hand_pose_ros.inference")

DEFAULT_CALIBRATION_CROPS = 256
QUANTISED_OP_TYPES = ("Conv",)
CALIBRATION_SEED = 12345   # not the training generator's seeds: calibration frames are new
# Part of the onnxruntime backend's INT8 cache key: bump when quantize_graph changes.
# v2: UINT8 activations with reduce_range (7-bit weights); v3: percentile ranges. See quantize_graph.
UINT8_RECIPE = "ort-qdq-v3-u8-reduce-range-pct99.99"
# Activation ranges clip the top 0.01% of values: MinMax ranges, set by rare outliers, left
# most activations a few levels; on the fast model's held-out crops this cut the INT8 - FP32
# uvd difference 3x (symmetric: 0.060 -> 0.021 map cells; UINT8: 0.071 -> 0.013).
CALIBRATION_PERCENTILE = 99.99


class _CropReader:
    """onnxruntime.quantization's CalibrationDataReader protocol over an array of crops."""

    def __init__(self, crops: np.ndarray, batch: int = 16):
        self._batches = [crops[i:i + batch] for i in range(0, len(crops), batch)]
        self._next = 0

    def get_next(self):
        if self._next >= len(self._batches):
            return None
        self._next += 1
        return {INPUT_NAME: self._batches[self._next - 1]}

    def rewind(self):
        self._next = 0


def calibration_crops(config, count: int = DEFAULT_CALIBRATION_CROPS, seed: int = CALIBRATION_SEED) -> np.ndarray:
    """[count, 1, m, m] float32 crops from the synthetic generator, as at run time."""
    from .sample_inputs import realistic_crops
    return realistic_crops(count, config.input_size, config.half_cube_mm, seed)


def quantize_graph(source: Path, target: Path, crops: np.ndarray, symmetric: bool) -> None:
    """The one QDQ quantisation step: `source` ONNX file -> `target`, convolutions only,
    per-channel INT8 weights, percentile activation ranges from `crops` [N,1,m,m].
    symmetric: INT8 activations with zero points of 0 (what TensorRT reads); else UINT8
    activations (ONNX Runtime's fastest CPU kernels: u8 x s8) with reduce_range: on x86
    CPUs without VNNI the u8 x s8 kernels sum pairs of products in saturating 16 bits, and
    the fast model's full-range weights overflowed them (uvd off by 0.39 map cells on
    average, 225 mm mean error on 400 frames); 7-bit weights cannot overflow."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    extra = {"CalibPercentile": CALIBRATION_PERCENTILE}
    if symmetric:
        extra.update(ActivationSymmetric=True, WeightSymmetric=True)
    quantize_static(str(source), str(target), _CropReader(crops), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(QUANTISED_OP_TYPES), per_channel=True,
                    activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile,
                    reduce_range=not symmetric, extra_options=extra)


def quantize_qdq(onnx_path, out_path, crops: np.ndarray | None = None,
                 count: int = DEFAULT_CALIBRATION_CROPS) -> Path:
    """Write `out_path`: `onnx_path` with symmetric INT8 QDQ convolutions (for ONNX Runtime
    and TensorRT alike), calibrated on `crops` (default: `count` generator crops). The model
    config and keypoint metadata are kept."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if onnx_path.resolve() == out_path.resolve():
        raise ValueError(f"{out_path}: the INT8 model must not overwrite its FP32 source")
    config, _ = read_onnx_config(onnx_path)
    if crops is None:
        crops = calibration_crops(config, count)
    crops = np.ascontiguousarray(crops, dtype=np.float32)
    expected = (1, config.input_size, config.input_size)
    if crops.ndim != 4 or tuple(crops.shape[1:]) != expected or len(crops) == 0:
        raise ValueError(f"calibration crops must be [N,{','.join(map(str, expected))}], got {crops.shape}")
    source = onnx.load(str(onnx_path))
    if is_quantised(source):
        raise model_file_error(onnx_path, "is already quantised")
    metadata = {p.key: p.value for p in source.metadata_props}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hand_pose_qdq_") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        quantised = Path(tmp) / "quantised.onnx"
        quantize_graph(prepared, quantised, crops, symmetric=True)
        proto = onnx.load(str(quantised))
        del proto.metadata_props[:]
        for key, value in {**metadata, META_QUANTISATION: QUANTISATION_DESCRIPTION}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "hand_pose_ros"
        onnx.checker.check_model(proto)
        partial = out_path.with_name(out_path.name + ".tmp")
        onnx.save(proto, str(partial))
        partial.replace(out_path)   # never a half-written model under the real name
    log.info("wrote INT8 QDQ model %s (%d calibration crops)", out_path, len(crops))
    return out_path


META_QUANTISATION = "hand_pose_ros.quantisation"
QUANTISATION_DESCRIPTION = ("int8-qdq: symmetric per-channel Conv weights, symmetric activations, "
                            f"percentile ({CALIBRATION_PERCENTILE}) calibration")


def output_difference(fp32_path, int8_path, crops: np.ndarray) -> dict:
    """How far the INT8 model's outputs are from the FP32 model's on `crops` (ONNX Runtime)."""
    import onnxruntime as ort

    results = []
    for path in (fp32_path, int8_path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        results.append(session.run(["uvd"], {INPUT_NAME: crops})[0])
    diff = np.abs(results[0] - results[1])
    return {"uvd_max_abs": float(diff.max()), "uvd_mean_abs": float(diff.mean())}

"""`hand-pose export`: a checkpoint -> one ONNX file with the decoders inside the graph.

    hand-pose export CHECKPOINT --onnx OUT.onnx [--opset 17] [--batch dynamic|N] [--fp16-check]
                     [--tensorrt [--precision fp16|fp32|int8] [--max-batch N] [--engine-cache DIR]]

The graph: input `depth` [B,1,m,m] float32 (B a dynamic axis, or fixed with --batch N),
outputs `uvd` [B,J,3] (normalised), `confidence` [B,J] and, for a model with a handedness
head, `handedness` [B] (P(left hand)). The SRNetConfig JSON, the keypoint names and the
output layout (META_FORMAT: model_file.onnx_format) are stored as metadata_props
(model_file.META_*), so `hand-pose info` and the backends know what the file has without
being told.

Exporter choice: torch.onnx.export(dynamo=True) (torch.export + onnxscript). It writes
InstanceNorm2d as one InstanceNormalization node, the 64x64 spatial softmax as one Softmax
over a [B,J,4096] tensor, and the decoders as ReduceSum / Mul over constants; every
intermediate shape is static except the batch symbol (checked below). The TorchScript
exporter (dynamo=False) traces the same ops but loses the shapes after `view_as`/`flatten`
(unknown dims in the middle of the graph), which TensorRT then has to re-derive at build
time; the dynamo graph needs no shape hints.
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import time
from pathlib import Path

import numpy as np

from .backends.base import setup_cli_logging
from .backends.engine_cache import DEFAULT_BATCH_PROFILE, DEFAULT_PRECISION
from .model_file import (HANDEDNESS_OUTPUT, INPUT_NAME, META_CONFIG, META_FORMAT, META_KEYPOINTS,
                         META_SOURCE_SHA256, model_file_error, model_kind, onnx_format, output_names,
                         read_onnx_config, sha256_file)

log = logging.getLogger("hand_pose_ros.inference")

MIN_OPSET = 17
BATCH_SYMBOL = "batch"
PARITY_TOLERANCE = 1e-4   # max abs difference ONNX Runtime vs PyTorch, normalised units


def parse_batch(value) -> int | None:
    """'dynamic' -> None (a dynamic batch axis); 'N' / N -> a fixed batch of N."""
    if value is None or str(value).lower() == "dynamic":
        return None
    try:
        batch = int(value)
    except ValueError:
        raise ValueError(f"--batch must be 'dynamic' or a positive integer, got {value!r}") from None
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    return batch


def export_onnx(model, config, onnx_path, opset: int = MIN_OPSET, batch: int | None = None,
                source_sha256: str | None = None) -> Path:
    """Write `model` (an SRNet) to `onnx_path`; returns the path. batch None = dynamic.
    Raises when the written graph fails onnx.checker or has a data-dependent shape."""
    import onnx
    import torch

    from .backends.torch_backend import GraphOutputs

    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old: TensorRT and this graph need opset >= {MIN_OPSET}")
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    m = config.input_size
    wrapper = GraphOutputs(model.float().eval().cpu()).eval()
    # An example batch of 2: torch.export specialises a size-1 axis to a constant.
    example = torch.zeros((batch or 2, 1, m, m), dtype=torch.float32)
    dynamic_shapes = None if batch else ({0: torch.export.Dim(BATCH_SYMBOL, min=1, max=4096)},)
    start = time.perf_counter()
    with torch.no_grad():
        program = torch.onnx.export(wrapper, (example,), None, dynamo=True, opset_version=opset,
                                    input_names=[INPUT_NAME], output_names=list(output_names(config)),
                                    dynamic_shapes=dynamic_shapes, external_data=False,
                                    optimize=True, verbose=False)
    proto = program.model_proto
    got_opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if got_opset != opset:
        raise RuntimeError(f"the exporter wrote opset {got_opset}, not the requested {opset} "
                           "(its version conversion failed); try --opset 18")
    # The oldest IR version that can carry this opset: what older runtimes (JetPack's
    # onnxruntime, TensorRT 10.3's parser) accept. The exporter writes the newest.
    proto.ir_version = onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
    _rename_batch_symbol(proto, batch)
    metadata = {META_CONFIG: config.to_json(), META_KEYPOINTS: json.dumps(list(config.keypoint_names)),
                META_FORMAT: onnx_format(config)}
    if source_sha256:
        metadata[META_SOURCE_SHA256] = source_sha256
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "hand_pose_ros"
    onnx.checker.check_model(proto, full_check=True)
    problems = shape_problems(proto, batch)
    if problems:
        raise RuntimeError("exported graph has non-static shapes:\n  " + "\n  ".join(problems[:20]))
    tmp = onnx_path.with_name(onnx_path.name + ".tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(onnx_path)  # never leave a half-written model under the real name
    log.info("exported %s in %.1f s (opset %d, batch %s)", onnx_path, time.perf_counter() - start,
             opset, batch or "dynamic")
    return onnx_path


def _rename_batch_symbol(proto, batch) -> None:
    """Give the graph inputs / outputs the batch axis name 'batch' (dynamo may call it s0)."""
    if batch:
        return
    for value in list(proto.graph.input) + list(proto.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if not dim.HasField("dim_value"):
            dim.dim_param = BATCH_SYMBOL


def shape_problems(proto, batch: int | None) -> list[str]:
    """Every tensor in the graph must have a fully known shape, static except for the
    batch symbol (or an integer multiple of it, e.g. '21*batch' from a reshape).
    Returns a list of problems (empty = clean)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    graph = inferred.graph
    shapes = {}
    for value in list(graph.value_info) + list(graph.output) + list(graph.input):
        shapes[value.name] = value.type.tensor_type
    input_batch = None
    for dim in graph.input[0].type.tensor_type.shape.dim[:1]:
        input_batch = dim.dim_param or None
    allowed = {s for s in (BATCH_SYMBOL, input_batch) if s}
    token = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
    problems = []
    for node in graph.node:
        for name in node.output:
            if not name:
                continue
            tensor = shapes.get(name)
            if tensor is None or not tensor.HasField("shape"):
                problems.append(f"{name} ({node.op_type}): shape unknown")
                continue
            for axis, dim in enumerate(tensor.shape.dim):
                if dim.HasField("dim_value"):
                    continue
                symbols = set(token.findall(dim.dim_param))
                if batch is None and dim.dim_param and symbols <= allowed:
                    continue
                problems.append(f"{name} ({node.op_type}): axis {axis} is {dim.dim_param or 'unknown'!r}")
    return problems


def parity(onnx_path, model, crops: np.ndarray) -> dict:
    """Max abs difference between ONNX Runtime (CPU) and PyTorch (CPU, FP32) on `crops`,
    per output (handedness_max_abs_diff: in probability, for a model with the head)."""
    import torch

    from .backends.onnxruntime_backend import OnnxRuntimeBackend

    ort = OnnxRuntimeBackend.load(onnx_path, "cpu").infer_outputs(crops)
    with torch.no_grad():
        out = model.float().eval().cpu()(torch.from_numpy(crops))
    report = {"uvd_max_abs_diff": float(np.abs(ort.uvd - out["uvd"].numpy()).max()),
              "confidence_max_abs_diff": float(np.abs(ort.confidence - out["confidence"].numpy()).max()),
              "crops": int(crops.shape[0])}
    if (ort.left_probability is None) != ("handedness" not in out):
        raise RuntimeError(f"{onnx_path}: the ONNX file and the model disagree on having a "
                           f"{HANDEDNESS_OUTPUT!r} output")
    if ort.left_probability is not None:
        report["handedness_max_abs_diff"] = float(np.abs(ort.left_probability - out["handedness"].numpy()).max())
    return report


def fp16_check(model, config, crops: np.ndarray, device: str | None = None) -> dict:
    """Run the model in FP16 on an all-zero crop and on `crops`; the FP16 path must stay
    finite. Reports the FP16-vs-FP32 difference in normalised units and in mm (u, v scaled
    by a typical 0.5 m crop box; d by the half-cube)."""
    import copy

    import torch

    from .backends.torch_backend import TorchBackend

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    m = config.input_size
    inputs = np.concatenate([np.zeros((1, 1, m, m), np.float32), crops.astype(np.float32)])
    fp32 = TorchBackend.from_model(copy.deepcopy(model), config, device=device, precision="fp32")
    fp16 = TorchBackend.from_model(copy.deepcopy(model), config, device=device, precision="fp16")
    uvd32, conf32 = fp32.infer(inputs)
    uvd16, conf16 = fp16.infer(inputs)
    finite = bool(np.isfinite(uvd16).all() and np.isfinite(conf16).all())
    diff = np.abs(uvd16.astype(np.float64) - uvd32)
    return {"device": device, "finite": finite, "zero_crop_finite": bool(np.isfinite(uvd16[0]).all()),
            "uvd_max_abs_diff": float(diff.max()),
            "d_max_abs_diff_mm": float(diff[..., 2].max() * config.half_cube_mm),
            "confidence_max_abs_diff": float(np.abs(conf16 - conf32).max())}


def export_checkpoint(checkpoint, onnx_path, opset: int = MIN_OPSET, batch: int | None = None,
                      verify: bool = True, fp16: bool = False) -> dict:
    """Load a checkpoint, export it, and (verify) compare ONNX Runtime with PyTorch on
    realistic crops. Returns a report dict (what `hand-pose export --json` prints)."""
    from ..model import load_model
    from .sample_inputs import realistic_crops

    if model_kind(checkpoint) != "checkpoint":
        raise model_file_error(checkpoint, "export needs a PyTorch checkpoint (.pt)")
    model, config, _ = load_model(checkpoint, map_location="cpu")
    path = export_onnx(model, config, onnx_path, opset=opset, batch=batch, source_sha256=sha256_file(checkpoint))
    read_onnx_config(path)  # read back exactly as the backends will
    report = {"checkpoint": str(checkpoint), "onnx": str(path), "opset": opset,
              "batch": batch or "dynamic", "joints": config.num_joints,
              "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    if verify or fp16:
        crops = realistic_crops(8, config.input_size, config.half_cube_mm)[:batch or 4]
    if verify:
        report["parity"] = parity(path, model, crops)
        for output in ("uvd", "handedness"):
            diff = report["parity"].get(f"{output}_max_abs_diff", 0.0)
            if diff > PARITY_TOLERANCE:
                raise RuntimeError(f"{path}: ONNX Runtime and PyTorch {output} differ by {diff:.2e} "
                                   f"(> {PARITY_TOLERANCE}) on realistic crops")
    if fp16:
        report["fp16_check"] = fp16_check(model, config, crops)
        if not report["fp16_check"]["finite"]:
            raise RuntimeError(f"{checkpoint}: the FP16 path produced non-finite outputs")
    return report


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="PyTorch checkpoint (.pt) written by training")
    parser.add_argument("--onnx", required=True, metavar="OUT.onnx", help="ONNX file to write")
    parser.add_argument("--opset", type=int, default=MIN_OPSET, help=f"ONNX opset (>= {MIN_OPSET}, default %(default)s)")
    parser.add_argument("--batch", default="dynamic", help="'dynamic' (default) or a fixed batch size N")
    parser.add_argument("--fp16-check", action="store_true",
                        help="also run the model in FP16 (CUDA if present, else CPU) on an all-zero and "
                             "realistic crops: fail on NaN, report the FP16-vs-FP32 difference")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the ONNX Runtime vs PyTorch parity check")
    parser.add_argument("--tensorrt", action="store_true",
                        help="also build (or find cached) the TensorRT engine for this GPU (needs tensorrt)")
    parser.add_argument("--precision", choices=("fp16", "fp32", "int8"), default=DEFAULT_PRECISION,
                        help="TensorRT engine precision (default %(default)s)")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_BATCH_PROFILE[2],
                        help="TensorRT batch profile maximum (default %(default)s)")
    parser.add_argument("--engine-cache", default=None, help="TensorRT engine cache directory "
                        "(default ~/.cache/hand_pose_ros/engines)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def export_into(checkpoint, directory) -> Path:
    """The ONNX export of `checkpoint` inside `directory` (the engine cache), named by the
    checkpoint's sha256 and exported only when not there yet: what the TensorRT backend
    builds from when given a checkpoint."""
    target = Path(directory) / f"onnx-{sha256_file(checkpoint)[:16]}.onnx"
    if not target.exists():
        log.info("TensorRT: exporting checkpoint %s to ONNX (%s) first", checkpoint, target)
        export_checkpoint(checkpoint, target, verify=False)
    return target


def build_tensorrt_engine(onnx_path, precision: str, max_batch: int, cache_dir=None) -> dict:
    from .backends.tensorrt_backend import TensorRTBackend
    low, opt, _ = DEFAULT_BATCH_PROFILE
    backend = TensorRTBackend.load(onnx_path, device="cuda", precision=precision, cache_dir=cache_dir,
                                   batch_profile=(low, min(opt, max_batch), max_batch))
    return {"engine": str(backend.engine_path), "built_now": backend.built, "precision": precision,
            "batch_profile": list(backend.key.batch_profile), "gpu": backend.key.device_name,
            "tensorrt": backend.key.runtime_version}


def run(args) -> int:
    setup_cli_logging()
    try:
        # Anything a library prints while we work goes to stderr: stdout carries the result.
        with contextlib.redirect_stdout(sys.stderr):
            report = export_checkpoint(args.checkpoint, args.onnx, opset=args.opset, batch=parse_batch(args.batch),
                                       verify=not args.no_verify, fp16=args.fp16_check)
            if args.tensorrt:
                report["tensorrt"] = build_tensorrt_engine(report["onnx"], args.precision, args.max_batch,
                                                           args.engine_cache)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"hand-pose export: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(f"wrote {report['onnx']} ({report['bytes'] / 1e6:.1f} MB, opset {report['opset']}, "
              f"batch {report['batch']}, J={report['joints']})")
        if "parity" in report:
            print(f"ONNX Runtime vs PyTorch: max |uvd diff| {report['parity']['uvd_max_abs_diff']:.2e} "
                  f"on {report['parity']['crops']} crops")
        if "fp16_check" in report:
            c = report["fp16_check"]
            print(f"FP16 ({c['device']}): finite={c['finite']}, max |uvd diff| {c['uvd_max_abs_diff']:.2e}, "
                  f"max |d diff| {c['d_max_abs_diff_mm']:.2f} mm")
        if "tensorrt" in report:
            t = report["tensorrt"]
            print(f"TensorRT {t['tensorrt']} {t['precision']} engine for {t['gpu']}: {t['engine']} "
                  f"({'built now' if t['built_now'] else 'from the cache'})")
    return 0

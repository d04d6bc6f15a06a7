"""What a model file is and what it says about itself.

Two kinds of model file exist: a PyTorch checkpoint (.pt, written by model.save_checkpoint,
the SRNetConfig inside its payload) and an ONNX file (written by inference.export, the
SRNetConfig and the keypoint names in its metadata_props). Every reader here fails with one
ModelFileError that names the file and what is wrong with it.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from ..model.config import SRNetConfig

# ONNX metadata_props keys written by export.py and read back by info and the backends.
META_CONFIG = "hand_pose_ros.model_config"           # SRNetConfig.to_json()
META_KEYPOINTS = "hand_pose_ros.keypoint_names"      # JSON list, == config.keypoint_names
META_SOURCE_SHA256 = "hand_pose_ros.source_sha256"   # sha256 of the checkpoint it came from
META_FORMAT = "hand_pose_ros.format"                 # layout of inputs / outputs, see below
ONNX_FORMAT = "srnet-uvd-confidence-v1"              # depth [B,1,m,m] -> uvd [B,J,3], confidence [B,J]
# The same plus handedness [B] = P(left hand), for a model with config.handedness_head.
ONNX_FORMAT_HANDEDNESS = "srnet-uvd-confidence-handedness-v1"
INPUT_NAME = "depth"
OUTPUT_NAMES = ("uvd", "confidence")                 # what every model file has
HANDEDNESS_OUTPUT = "handedness"


def output_names(config: SRNetConfig) -> tuple[str, ...]:
    """The graph outputs of a model with this config, in order."""
    return OUTPUT_NAMES + ((HANDEDNESS_OUTPUT,) if config.handedness_head else ())


def onnx_format(config: SRNetConfig) -> str:
    """The META_FORMAT value of an ONNX file exported from a model with this config."""
    return ONNX_FORMAT_HANDEDNESS if config.handedness_head else ONNX_FORMAT

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
ONNX_SUFFIXES = (".onnx",)


def _model_file_error():
    from ..model.errors import ModelFileError  # torch-free, like the rest of this module
    return ModelFileError


def model_file_error(path, problem: str) -> Exception:
    """The project's one error type for bad model files, with the file named first."""
    return _model_file_error()(f"{path}: {problem}")


def sha256_file(path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def model_kind(path) -> str:
    """'checkpoint' or 'onnx', from the suffix, else from the first bytes of the file."""
    path = Path(path)
    if not path.exists():
        raise model_file_error(path, "no such file")
    if not path.is_file():
        raise model_file_error(path, "is not a file")
    suffix = path.suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if zipfile.is_zipfile(path):  # torch.save writes a zip archive
        return "checkpoint"
    with open(path, "rb") as f:
        head = f.read(64)
    if head[:1] == b"\x08":  # ModelProto starts with field 1 (ir_version), varint
        return "onnx"
    raise model_file_error(path, f"unknown model file type (suffix {suffix!r}); expected a checkpoint "
                                 f"{CHECKPOINT_SUFFIXES} or an ONNX file {ONNX_SUFFIXES}")


def load_onnx(path, check: bool = True):
    """onnx.ModelProto of `path`, checked; clear errors for missing / truncated / non-ONNX files."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise model_file_error(path, "no such ONNX file")
    if path.stat().st_size == 0:
        raise model_file_error(path, "ONNX file is empty")
    try:
        proto = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        raise model_file_error(path, f"not a readable ONNX file (truncated or another format?): {e}") from None
    if not proto.graph.node:
        raise model_file_error(path, "not a readable ONNX file: it has no graph (truncated or another format?)")
    if check:
        try:
            onnx.checker.check_model(proto)
        except onnx.checker.ValidationError as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
            raise model_file_error(path, f"ONNX file fails onnx.checker (truncated or corrupt?): {first_line}") from None
    return proto


def onnx_metadata(proto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def config_from_onnx_metadata(metadata: dict, path) -> SRNetConfig:
    """SRNetConfig stored by export.py; errors name the file and the missing / bad entry."""
    if META_CONFIG not in metadata:
        raise model_file_error(path, f"ONNX file has no '{META_CONFIG}' metadata: it was not exported by "
                                     "`hand-pose export` (re-export it from its checkpoint)")
    try:
        config = SRNetConfig.from_json(metadata[META_CONFIG])
    except (ValueError, TypeError) as e:
        raise model_file_error(path, f"bad '{META_CONFIG}' metadata: {e}") from None
    if META_KEYPOINTS in metadata:
        try:
            names = tuple(json.loads(metadata[META_KEYPOINTS]))
        except ValueError as e:
            raise model_file_error(path, f"bad '{META_KEYPOINTS}' metadata: {e}") from None
        if names != config.keypoint_names:
            raise model_file_error(path, f"'{META_KEYPOINTS}' metadata {list(names)} disagrees with the "
                                         f"model config's {list(config.keypoint_names)}")
    fmt = metadata.get(META_FORMAT, ONNX_FORMAT)
    if fmt not in (ONNX_FORMAT, ONNX_FORMAT_HANDEDNESS):
        raise model_file_error(path, f"ONNX format {fmt!r} is not one of the supported "
                                     f"{[ONNX_FORMAT, ONNX_FORMAT_HANDEDNESS]}")
    if fmt != onnx_format(config):
        raise model_file_error(path, f"ONNX format {fmt!r} disagrees with the model config's "
                                     f"handedness_head={config.handedness_head}")
    return config


def check_onnx_io(proto, config: SRNetConfig, path) -> None:
    """The graph's inputs / outputs are the ones the backends feed and read."""
    inputs = [i.name for i in proto.graph.input]
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [n for n in inputs if n not in initializers]
    outputs = [o.name for o in proto.graph.output]
    expected = list(output_names(config))
    if inputs != [INPUT_NAME] or outputs != expected:
        raise model_file_error(path, f"ONNX inputs {inputs} / outputs {outputs}; expected "
                                     f"[{INPUT_NAME!r}] / {expected}")

    def dims(value_info):
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in value_info.type.tensor_type.shape.dim]

    m, j = config.input_size, config.num_joints
    got = {"depth": dims(proto.graph.input[0]),
           **{value.name: dims(value) for value in proto.graph.output}}
    want = {"depth": [1, m, m], "uvd": [j, 3], "confidence": [j], HANDEDNESS_OUTPUT: []}
    for name, shape in got.items():
        if len(shape) != 1 + len(want[name]) or shape[1:] != want[name]:
            needed = ", ".join(["B", *map(str, want[name])])
            raise model_file_error(path, f"ONNX tensor {name!r} has shape {shape}; the stored model config "
                                         f"needs [{needed}]")


def read_onnx_model(path, check: bool = True):
    """(onnx.ModelProto, SRNetConfig, metadata dict) of an exported ONNX file, validated."""
    proto = load_onnx(path, check=check)
    metadata = onnx_metadata(proto)
    config = config_from_onnx_metadata(metadata, path)
    check_onnx_io(proto, config, path)
    return proto, config, metadata


def is_quantised(proto) -> bool:
    """True for a graph with explicit QDQ quantisation (inference/quantize.py): TensorRT
    builds it without a calibrator, in INT8."""
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node)


def read_onnx_config(path, check: bool = True) -> tuple[SRNetConfig, dict]:
    """(SRNetConfig, metadata dict) of an exported ONNX file, validated."""
    _, config, metadata = read_onnx_model(path, check=check)
    return config, metadata


def check_expected(config: SRNetConfig, path, expected_keypoints=None) -> None:
    """Raise when the file's model predicts other joints than the caller needs.

    expected_keypoints: None (anything), an int J, or a sequence of keypoint names."""
    if expected_keypoints is None:
        return
    if isinstance(expected_keypoints, int):
        if config.num_joints != expected_keypoints:
            raise model_file_error(path, f"model predicts J={config.num_joints} joints, "
                                         f"the caller expects J={expected_keypoints}")
        return
    expected = tuple(expected_keypoints)
    if config.keypoint_names != expected:
        raise model_file_error(path, f"model predicts joints {list(config.keypoint_names)}, "
                                     f"the caller expects {list(expected)}")

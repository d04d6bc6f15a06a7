"""`hand-pose info PATH [--json]`: what a model file is.

For a checkpoint (.pt) or an exported ONNX file: the stored SRNetConfig, the keypoint names,
the parameter count and MACs per frame (model.summary.describe), and for a checkpoint the
training metadata stored beside the weights (epoch, metrics, ...). A bad file gives one
clear error naming it."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .model_file import META_SOURCE_SHA256, model_kind, read_onnx_model, sha256_file

# Checkpoint payload keys that are weights or optimiser state, not metadata for people.
_BULKY_KEYS = ("state_dict", "optimizer", "optimiser", "scheduler", "scaler", "rng", "rng_state", "rng_states",
               "ema_state_dict")


def _plain(value, depth: int = 0):
    """JSON-ready version of checkpoint metadata: tensors become numbers or a shape note."""
    if hasattr(value, "detach"):  # a torch tensor
        return value.item() if value.numel() == 1 else f"<tensor {list(value.shape)}>"
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()} if depth < 4 else "<nested dict>"
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value[:50]] if depth < 4 else "<nested list>"
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return repr(value)[:200]


def model_info(path) -> dict:
    """Everything `hand-pose info` prints, as a JSON-ready dict."""
    path = Path(path)
    kind = model_kind(path)
    info = {"path": str(path), "kind": kind, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    if kind == "onnx":
        proto, config, metadata = read_onnx_model(path)
        info["onnx"] = {"opset": next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
                        "ir_version": proto.ir_version, "nodes": len(proto.graph.node),
                        "inputs": {v.name: _dims(v) for v in proto.graph.input},
                        "outputs": {v.name: _dims(v) for v in proto.graph.output},
                        "exported_from_sha256": metadata.get(META_SOURCE_SHA256)}
        info["parameters_stored"] = int(sum(_numel(t) for t in proto.graph.initializer))
    else:
        from ..model import load_model
        model, config, payload = load_model(path, map_location="cpu")
        info["parameters_stored"] = int(sum(p.numel() for p in model.parameters()))
        info["training"] = {k: _plain(v) for k, v in payload.items()
                            if k not in _BULKY_KEYS and k not in ("config", "format", "format_version")}
        info["format_version"] = payload.get("format_version")
    info["config"] = config.to_dict()
    info["keypoint_names"] = list(config.keypoint_names)
    info["num_joints"] = config.num_joints
    try:
        from ..model.summary import describe
        info["summary"] = describe(config)
    except ImportError as e:  # torch missing: the ONNX facts above still stand
        info["summary"] = {"error": f"model.summary unavailable: {e}"}
    return info


def _dims(value) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def _numel(tensor) -> int:
    count = 1
    for d in tensor.dims:
        count *= d
    return count


def format_info(info: dict) -> str:
    config, summary = info["config"], info.get("summary", {})
    lines = [f"{info['path']}: {info['kind']} ({info['bytes'] / 1e6:.1f} MB, sha256 {info['sha256'][:16]}...)",
             f"  SRNet variant {config['variant']}, {config['stages']} stage(s), F={config['features']}, "
             f"hourglass level {config['hourglass_level']}, norm {config['norm']}, heatmap {config['heatmap']}",
             f"  input 1x{config['input_size']}x{config['input_size']}, maps {config['map_size']}x{config['map_size']}, "
             f"half cube {config['half_cube_mm']} mm, decoder eps {config['decoder_eps']}",
             f"  J={info['num_joints']}: {', '.join(info['keypoint_names'])}"]
    if "parameters" in summary:
        lines.append(f"  parameters {summary['parameters']:,} ({info['parameters_stored']:,} stored), "
                     f"{summary['gmacs_per_frame']} GMAC per frame")
    else:
        lines.append(f"  parameters stored {info['parameters_stored']:,}")
    if "onnx" in info:
        onnx_info = info["onnx"]
        lines.append(f"  ONNX opset {onnx_info['opset']} (IR {onnx_info['ir_version']}), {onnx_info['nodes']} nodes, "
                     f"inputs {onnx_info['inputs']}, outputs {onnx_info['outputs']}")
        if onnx_info["exported_from_sha256"]:
            lines.append(f"  exported from checkpoint sha256 {onnx_info['exported_from_sha256'][:16]}...")
    if info.get("training"):
        lines.append("  training metadata:")
        for key, value in info["training"].items():
            lines.append(f"    {key}: {json.dumps(value, default=str)[:300]}")
    if config.get("extra"):
        lines.append(f"  provenance: {json.dumps(config['extra'], default=str)[:300]}")
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("path", help="a checkpoint (.pt) or an ONNX file exported by `hand-pose export`")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run(args) -> int:
    try:
        info = model_info(args.path)
    except (ValueError, OSError) as e:  # ModelFileError is a ValueError
        print(f"hand-pose info: {e}", file=sys.stderr)
        return 1
    print(json.dumps(info, sort_keys=True, default=str) if args.json else format_info(info))
    return 0

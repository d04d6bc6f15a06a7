"""Which ONNX op types TensorRT 10's ONNX parser builds natively (onnx-tensorrt's
docs/operators.md support matrix), restricted to what an SRNet graph can contain, and a
check of an exported graph against it, with the restrictions that matter to us:
Conv weights from initialisers (or from a DequantizeLinear of one), Q/DQ zero points of
zero, Resize in nearest mode, constant axes for Slice / Squeeze / Unsqueeze.

An op outside this set would need a plugin or a fallback layer that TensorRT may not have
on a Jetson: export must never produce one.
"""
from __future__ import annotations

# Support-matrix rows ("Y") for the ops SRNet's exporters emit, and a few close relatives
# they could emit after an exporter upgrade (Gemm, Flatten, Transpose, ...).
TENSORRT10_NATIVE_OPS = frozenset({
    "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "Conv",
    "DequantizeLinear", "Div", "Equal", "Exp", "Expand", "Flatten", "Gather", "Gemm",
    "GlobalAveragePool", "Identity", "InstanceNormalization", "MatMul", "Max", "MaxPool", "Min",
    "Mul", "Neg", "Not", "Pow", "QuantizeLinear", "ReduceMax", "ReduceMean", "ReduceSum", "Relu",
    "Reshape", "Resize", "Shape", "Sigmoid", "Slice", "Softmax", "Split", "Sqrt", "Squeeze",
    "Sub", "Tile", "Transpose", "Unsqueeze", "Where",
})
# Inputs that TensorRT needs as constants (initialisers or Constant outputs): op -> input index.
CONSTANT_INPUTS = {"Slice": (1, 2, 3, 4), "Squeeze": (1,), "Unsqueeze": (1,), "Reshape": (1,)}


def op_types(proto) -> set[str]:
    return {node.op_type for node in proto.graph.node}


def tensorrt_problems(proto) -> list[str]:
    """Every reason TensorRT 10 would not build `proto` natively (empty: it would)."""
    from onnx import numpy_helper

    graph = proto.graph
    initialisers = {t.name: t for t in graph.initializer}
    constants = set(initialisers)
    produced_by = {}
    for node in graph.node:
        for name in node.output:
            produced_by[name] = node
        if node.op_type == "Constant":
            constants.update(node.output)
    problems = [f"op {op} is not in TensorRT 10's native ONNX op set"
                for op in sorted(op_types(proto) - TENSORRT10_NATIVE_OPS)]
    for node in graph.node:
        label = f"{node.op_type} node {node.name or node.output[0]}"
        if node.op_type == "Conv":
            weight = node.input[1]
            source = produced_by.get(weight)
            from_dq = source is not None and source.op_type == "DequantizeLinear" and source.input[0] in constants
            if weight not in constants and not from_dq:
                problems.append(f"{label}: weights {weight} are computed, not an initialiser")
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zero = initialisers.get(node.input[2])
            if zero is None or numpy_helper.to_array(zero).any():
                problems.append(f"{label}: zero point must be a zero initialiser (symmetric INT8)")
        elif node.op_type == "Resize":
            mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "nearest")
            if mode not in ("nearest", "linear"):
                problems.append(f"{label}: mode {mode} (TensorRT: nearest or linear)")
        for index in CONSTANT_INPUTS.get(node.op_type, ()):
            if index < len(node.input) and node.input[index] and node.input[index] not in constants:
                problems.append(f"{label}: input {index} ({node.input[index]}) must be a constant")
    return problems

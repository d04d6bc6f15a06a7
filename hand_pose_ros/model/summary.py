"""describe(config): what a model is and what it costs, without weights (for `hand-pose info`)."""
from __future__ import annotations

import torch
from torch import nn

from .config import SRNetConfig
from .network import SRNet, stage_count


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int) -> int:
    """Multiply-accumulates of one forward pass on one frame [1,1,m,m], counted by hooks on
    the convolutions and linear layers (the decoders' few elementwise ops are left out)."""
    total = 0

    def conv_hook(module: nn.Conv2d, inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, inputs, output):
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, 1, input_size, input_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return total


def _build(config: SRNetConfig) -> SRNet:
    # On the meta device nothing is allocated or computed: shapes only, instant.
    try:
        with torch.device("meta"):
            return SRNet(config)
    except (AttributeError, TypeError, RuntimeError):  # torch < 2.0 has no device context
        return SRNet(config)


def describe(config: SRNetConfig) -> dict:
    """JSON-ready facts: variant, stages, J, keypoint names, sizes, parameters, MACs/frame."""
    model = _build(config).eval()
    macs = count_macs(model, config.input_size)
    return {
        "variant": config.variant,
        "stages": stage_count(config),
        "num_joints": config.num_joints,
        "keypoint_names": list(config.keypoint_names),
        "features": config.features,
        "norm": config.norm,
        "heatmap": config.heatmap,
        "input_size": config.input_size,
        "map_size": config.map_size,
        "half_cube_mm": config.half_cube_mm,
        "parameters": count_parameters(model),
        "macs_per_frame": macs,
        "gmacs_per_frame": round(macs / 1e9, 3),
    }

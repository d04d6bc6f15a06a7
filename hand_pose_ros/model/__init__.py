"""SRNet: network, decoders, target encoders, losses, checkpoints (srnet.md).

SRNetConfig and ModelFileError need no torch; the rest is imported on first use, so that a
robot running the ONNX Runtime or TensorRT backend without torch can read model files."""
import importlib

from .config import SRNetConfig
from .errors import ModelFileError

_NEED_TORCH = {"SRNet": ".network", "SRNetLoss": ".losses", "default_loss_weights": ".losses",
               "save_checkpoint": ".checkpoint", "load_model": ".checkpoint"}


def __getattr__(name):
    if name in _NEED_TORCH:
        return getattr(importlib.import_module(_NEED_TORCH[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SRNet", "SRNetConfig", "SRNetLoss", "default_loss_weights", "save_checkpoint",
           "load_model", "ModelFileError"]

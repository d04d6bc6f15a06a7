"""SRNet: network, decoders, target encoders, losses, checkpoints (srnet.md)."""
from .checkpoint import ModelFileError, load_model, save_checkpoint
from .config import SRNetConfig
from .losses import SRNetLoss, default_loss_weights
from .network import SRNet

__all__ = ["SRNet", "SRNetConfig", "SRNetLoss", "default_loss_weights", "save_checkpoint",
           "load_model", "ModelFileError"]

"""The one interface every inference backend implements (torch, onnxruntime, tensorrt).

    backend = SomeBackend.load(model_path, device="cpu", precision="fp32", **opts)
    backend.warmup(batch_size)
    uvd_norm, confidence = backend.infer(crops)   # [B,1,m,m] float32 -> [B,J,3], [B,J]
    outputs = backend.infer_outputs(crops)        # ModelOutputs: + left_probability [B] or None
"""
from __future__ import annotations

import logging
import sys
import time
from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from ...model.config import SRNetConfig

log = logging.getLogger("hand_pose_ros.inference")

PRECISIONS = ("fp32", "fp16", "int8")


class ModelOutputs(NamedTuple):
    """Everything a model returns for a batch of B crops."""
    uvd: np.ndarray                       # [B,J,3] float32, normalised
    confidence: np.ndarray                # [B,J] float32 in [0, 1]
    left_probability: np.ndarray | None   # [B] float32 P(left hand); None: the model has no handedness head


def setup_cli_logging() -> None:
    """For the `hand-pose` subcommands: our progress at INFO on stderr, other libraries'
    (the ONNX exporter's optimiser passes are chatty) at WARNING."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    logging.getLogger("hand_pose_ros").setLevel(logging.INFO)
DEVICES = ("cpu", "cuda")


def normalise_device(device: str | None) -> str:
    """'cpu', 'cuda' or 'cuda:N' (None -> 'cpu')."""
    device = (device or "cpu").lower()
    if device == "gpu":
        device = "cuda"
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device {device!r} is not one of cpu, cuda, cuda:N")
    return device


def check_precision(precision: str | None, allowed=PRECISIONS, backend: str = "") -> str:
    precision = (precision or "fp32").lower()
    if precision not in allowed:
        where = f" for the {backend} backend" if backend else ""
        raise ValueError(f"precision {precision!r} is not supported{where}; choose one of {list(allowed)}")
    return precision


class Backend(ABC):
    """A loaded model that turns normalised depth crops into normalised uvd + confidence."""

    name = "backend"

    def __init__(self, config: SRNetConfig, model_path=None, device: str = "cpu", precision: str = "fp32"):
        self.config = config
        self.model_path = model_path
        self.device = device
        self.precision = precision

    @classmethod
    @abstractmethod
    def load(cls, model_path, device: str | None = None, precision: str | None = None, **opts) -> "Backend":
        """Read a model file and make it ready to run (None: the backend's default device /
        precision). Bad files raise model.ModelFileError naming the file."""

    @property
    def has_handedness(self) -> bool:
        """Whether the model reports which hand it sees (config.handedness_head)."""
        return self.config.handedness_head

    @abstractmethod
    def _infer(self, crops: np.ndarray) -> tuple:
        """crops [B,1,m,m] float32 contiguous -> (uvd_norm [B,J,3], confidence [B,J]) numpy,
        plus left_probability [B] as a third item when the model has a handedness head."""

    def infer(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """crops [B,1,m,m] float32 ([B,m,m] and a single [m,m] crop are accepted too)
        -> (uvd_norm [B,J,3] float32, confidence [B,J] float32)."""
        outputs = self.infer_outputs(crops)
        return outputs.uvd, outputs.confidence

    def infer_outputs(self, crops: np.ndarray) -> ModelOutputs:
        """Like infer, with the handedness: ModelOutputs(uvd, confidence, left_probability),
        left_probability None when the model has no handedness head."""
        crops = self._check_crops(crops)
        uvd, confidence, *rest = self._infer(crops)
        uvd = np.asarray(uvd, dtype=np.float32)
        confidence = np.asarray(confidence, dtype=np.float32)
        batch, joints = crops.shape[0], self.config.num_joints
        if uvd.shape != (batch, joints, 3) or confidence.shape != (batch, joints):
            raise RuntimeError(f"{self.name} backend returned uvd {uvd.shape} / confidence {confidence.shape}, "
                               f"expected {(batch, joints, 3)} / {(batch, joints)}")
        left = rest[0] if rest else None
        if self.has_handedness != (left is not None):
            raise RuntimeError(f"{self.name} backend returned {'a' if left is not None else 'no'} handedness "
                               f"for a model with handedness_head={self.has_handedness}")
        if left is not None:
            left = np.asarray(left, dtype=np.float32).reshape(-1)
            if left.shape != (batch,):
                raise RuntimeError(f"{self.name} backend returned handedness {left.shape}, expected {(batch,)}")
        return ModelOutputs(uvd, confidence, left)

    def warmup(self, batch_size: int = 1, iterations: int = 3) -> float:
        """Run a few zero batches (first-call allocations, autotuning, graph capture);
        returns the seconds it took."""
        start = time.perf_counter()
        m = self.config.input_size
        zeros = np.zeros((batch_size, 1, m, m), dtype=np.float32)
        for _ in range(max(1, iterations)):
            self.infer(zeros)
        return time.perf_counter() - start

    def synchronize(self) -> None:
        """Wait for queued device work (for timing); infer() already returns host arrays."""

    def describe(self) -> dict:
        """What runs: for logs, `hand-pose bench` and diagnostics."""
        return {"backend": self.name, "device": self.device, "precision": self.precision,
                "model": str(self.model_path) if self.model_path else None,
                "joints": self.config.num_joints, "input_size": self.config.input_size,
                "handedness": self.has_handedness}

    def _check_crops(self, crops) -> np.ndarray:
        crops = np.asarray(crops)
        m = self.config.input_size
        if crops.ndim == 2:
            crops = crops[None, None]
        elif crops.ndim == 3:
            crops = crops[:, None]  # [B,m,m] -> [B,1,m,m]
        if crops.ndim != 4 or crops.shape[1:] != (1, m, m) or crops.shape[0] < 1:
            raise ValueError(f"crops must be [B,1,{m},{m}] (B >= 1), got shape {tuple(crops.shape)}")
        return np.ascontiguousarray(crops, dtype=np.float32)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

"""Checkpoints: one file holding the model config, the weights and whatever the trainer adds
(optimiser, scheduler, epoch, rng states, metrics). A model file says what it needs.

Layout (a dict saved with torch.save):
    {'format': 'hand_pose_ros.srnet', 'format_version': 1, 'config': SRNetConfig.to_dict(),
     'state_dict': model.state_dict(), **extra}
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from .config import SRNetConfig
from .errors import ModelFileError
from .network import SRNet

FORMAT = "hand_pose_ros.srnet"
FORMAT_VERSION = 1
_RESERVED = ("format", "format_version", "config", "state_dict")


def save_checkpoint(path, model: nn.Module, config: SRNetConfig, **extra) -> Path:
    """Write atomically (temp file in the same folder + os.replace): a crash mid-write never
    leaves a truncated checkpoint under `path`. Extras should be tensors, numbers, strings,
    lists and dicts (what torch.load(weights_only=True) reads back); state_dicts of torch
    optimisers and schedulers are. Returns the path."""
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise ValueError(f"extra keys {clash} are reserved by the checkpoint format")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unwrap torch.compile / DataParallel wrappers so the keys match a bare SRNet.
    model = getattr(model, "_orig_mod", model)
    model = getattr(model, "module", model)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION,
               "config": config.to_dict(), "state_dict": model.state_dict(), **extra}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path, map_location="cpu", trusted: bool = False) -> dict:
    """The raw payload, checked to be a hand_pose_ros checkpoint. trusted=True allows
    arbitrary pickled objects in the extras (only for files you made yourself)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        # torch.save has written zip archives since torch 1.6; anything else would go to the
        # legacy unpickler, which fails on garbage with arbitrary errors (IndexError, KeyError...)
        raise ModelFileError(f"{path}: truncated, corrupt or not a torch file (not a zip archive)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # a valid pickle naming classes outside the safe set
            raise ModelFileError(f"{path}: holds objects outside torch's safe set; load it "
                                 "with trusted=True only if you made it") from e
        raise ModelFileError(f"{path}: truncated, corrupt or not a torch file ({_first_line(e)})") from e
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, TypeError,
            zipfile.BadZipFile) as e:
        raise ModelFileError(f"{path}: truncated, corrupt or not a torch file ({_first_line(e)})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a hand_pose_ros checkpoint (no format={FORMAT!r} "
                             "marker; a bare state_dict or another project's file?)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: checkpoint format_version {payload.get('format_version')!r}"
                             f" is not the supported {FORMAT_VERSION}")
    for key in ("config", "state_dict"):
        if not isinstance(payload.get(key), dict):
            raise ModelFileError(f"{path}: checkpoint has no {key!r} dict")
    return payload


def _first_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


def load_model(path, map_location="cpu", trusted: bool = False):
    """-> (model in eval mode, SRNetConfig, payload dict with everything saved).
    Raises ModelFileError for a missing, truncated or corrupt file, a file that is not a
    hand_pose_ros checkpoint, and a config that does not match the stored weights."""
    payload = read_checkpoint(path, map_location, trusted)
    try:
        config = SRNetConfig.from_stored(payload["config"])
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: invalid model config ({e})") from e
    model = SRNet(config)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:400]
        raise ModelFileError(f"{path}: stored weights do not match its model config "
                             f"(J={config.num_joints}, F={config.features}, variant="
                             f"{config.variant}): {detail}") from e
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    model.eval()
    return model, config, payload

"""Dataset readers and their registry.

    reader = open_dataset("nyu", "/data/nyu/dataset", split="test")
    sample = reader[0]          # a Sample: depth_mm, cam, keypoint_names, uvd, half_cube_mm

Other modules add readers with `register_reader(name, factory)`; a factory is called as
factory(root, split, **kwargs) and returns an indexable sequence of Samples.
"""
from __future__ import annotations

import functools
import importlib

from .base import DatasetLayoutError, DatasetReader
from .frames import FrameFolderReader, read_depth_file
from .hands2017 import HANDS2017Reader
from .icvl import ICVLReader
from .msra import MSRAReader, read_msra_bin
from .nyu import NYUReader
from .png_folder import PNGFolderReader

READERS: dict = {
    "nyu": NYUReader,
    "icvl": ICVLReader,
    "msra": MSRAReader,
    "hands2017": HANDS2017Reader,
    "hands17": HANDS2017Reader,
    "frames": FrameFolderReader,                                    # camera=... picks intrinsics
    "nyu-frames": functools.partial(FrameFolderReader, camera="nyu"),
    "png": PNGFolderReader,        # real 16-bit / NYU-RGB PNG folders, any depth unit and intrinsics
}

# Modules that register readers when imported (looked up on a miss, so that
# open_dataset('synthetic', ...) works without importing the generator first).
_PLUGINS = ("hand_pose_ros.data.synthetic",)


def register_reader(name: str, factory, overwrite: bool = False) -> None:
    """Make `open_dataset(name, root, split, **kw)` call factory(root, split, **kw)."""
    key = name.lower()
    if key in READERS and READERS[key] is not factory and not overwrite:
        raise ValueError(f"a dataset reader named {name!r} is already registered ({READERS[key]!r})")
    READERS[key] = factory


def available() -> list[str]:
    _load_plugins()
    return sorted(READERS)


def open_dataset(name: str, root=None, split: str = "test", **kwargs):
    """The reader of dataset `name` over `root` for `split` (extra keyword arguments go to
    the reader, e.g. test_subject=3 for MSRA)."""
    key = name.lower()
    if key not in READERS:
        _load_plugins()
    if key not in READERS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(READERS)}")
    return READERS[key](root, split, **kwargs)


def _load_plugins() -> None:
    for module in _PLUGINS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if not (e.name and module.startswith(e.name)):
                raise        # the plugin exists but is broken: say so


__all__ = ["READERS", "register_reader", "open_dataset", "available", "DatasetLayoutError", "DatasetReader",
           "NYUReader", "ICVLReader", "MSRAReader", "HANDS2017Reader", "FrameFolderReader", "PNGFolderReader",
           "read_msra_bin", "read_depth_file"]

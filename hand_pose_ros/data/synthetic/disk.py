"""Synthetic datasets on disk, their reader, and the fixed synthetic test set.

Layout written by `hand-pose synth --out DIR` (`write_dataset`):

    DIR/
      depth/000000.png ...  16-bit greyscale PNG (Pillow mode I;16), depth in mm, 0 = invalid
      labels.txt            one line per frame, in frame order:
                              <png path relative to DIR> <left|right> u v d (x 21) x y z (x 21)
                            u, v in pixels, d and x, y, z in mm (camera optical frame),
                            21 keypoints in keypoints.CANONICAL order, %.4f
      intrinsics.json       camera.Intrinsics fields: fx, fy, cx, cy, width, height
      config.json           {"format": "hand_pose_ros/synthetic", "version", "seed", "count",
                             "split", "keypoint_names", "frames_per_batch", "config"
                             (SyntheticConfig.to_dict())}: written LAST, atomically; a
                             directory without it is an interrupted (incomplete) write.

Frames are rendered on the CPU in batches of FRAMES_PER_BATCH; batch k draws from a torch
generator seeded with SeedSequence([seed, k]), so the first N frames of a dataset do not
depend on its total count, and `fixed_test_set(count)` yields exactly the frames that
`hand-pose synth --preset test` writes.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from ...camera import HALF_CUBE_MM, Intrinsics
from ...keypoints import CANONICAL
from ..sample import Sample
from .scene import GENERATOR_VERSION, SyntheticConfig, render_batch

FORMAT = "hand_pose_ros/synthetic"
FRAMES_PER_BATCH = 8

# The one synthetic test set every accuracy number of the project is measured on:
# D435-like 640x480 frames with the default (noise + clutter on) generator settings.
FIXED_TEST_SET = dict(seed=20_250_611, count=2000, width=640, height=480, noise=True, clutter=True)


def fixed_test_config() -> SyntheticConfig:
    """The generator settings of FIXED_TEST_SET (noise and clutter are the defaults)."""
    return SyntheticConfig(width=FIXED_TEST_SET["width"], height=FIXED_TEST_SET["height"])


def batch_generator(seed: int, batch_index: int) -> torch.Generator:
    """The CPU generator of batch `batch_index` of a dataset with this seed."""
    state = np.random.SeedSequence([int(seed), int(batch_index)]).generate_state(2, dtype=np.uint32)
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(state[0]) << 32 | int(state[1]))
    return generator


def generate_frames(seed: int, count: int, config: SyntheticConfig, progress: bool = False, device="cpu"):
    """Yield (depth_mm uint16 [H, W], uvd [21, 3], xyz [21, 3], handedness) for frames
    0 .. count-1 of the dataset with this seed. Random numbers always come from CPU
    generators, so rendering on a GPU (`device`) gives the same frames as on the CPU up to
    float rounding (a depth rounded to the other side of a 1 mm step), much faster."""
    from tqdm import tqdm

    bar = tqdm(total=count, unit="frame", desc="synth", disable=not progress)
    for batch_index in range(-(-count // FRAMES_PER_BATCH)):
        out = render_batch(FRAMES_PER_BATCH, batch_generator(seed, batch_index), config, device)
        depth = out["depth_mm"].round().clamp(0, 65535).to(torch.int32).cpu().numpy().astype(np.uint16)
        uvd = out["uvd"].double().cpu().numpy()
        xyz = out["xyz"].double().cpu().numpy()
        for i in range(min(FRAMES_PER_BATCH, count - batch_index * FRAMES_PER_BATCH)):
            yield depth[i], uvd[i], xyz[i], out["handedness"][i]
            bar.update(1)
    bar.close()


def fixed_test_set(count: int | None = None):
    """Yield the fixed synthetic test set's Samples (the first `count` of its 2000 frames),
    deterministically, in memory."""
    total = FIXED_TEST_SET["count"] if count is None else int(count)
    if not 0 <= total <= FIXED_TEST_SET["count"]:
        raise ValueError(f"count must be within [0, {FIXED_TEST_SET['count']}], got {count}")
    config = fixed_test_config()
    cam = config.intrinsics()
    frames = generate_frames(FIXED_TEST_SET["seed"], total, config)
    for index, (depth, uvd, _, handedness) in enumerate(frames):
        yield _sample(depth, cam, uvd, f"depth/{index:06d}.png", index, handedness)


def _sample(depth_u16, cam, uvd, name, index, handedness) -> Sample:
    return Sample(depth_mm=depth_u16.astype(np.float32), cam=cam, keypoint_names=CANONICAL,
                  uvd=np.asarray(uvd, dtype=np.float64), name=name, half_cube_mm=HALF_CUBE_MM["synthetic"],
                  meta={"index": index, "handedness": handedness, "dataset": "synthetic"})


# ----------------------------------------------------------------------------- writing

def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_dataset(out: str | os.PathLike, count: int, seed: int, config: SyntheticConfig | None = None,
                  force: bool = False, split: str = "all", progress: bool = True, device="cpu") -> Path:
    """Render `count` frames (on `device`; see generate_frames) and write them to `out` in
    the layout of the module docstring. Refuses a non-empty directory unless force (which
    replaces our files there)."""
    from PIL import Image

    config = config or SyntheticConfig()
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()):
        if not force:
            raise FileExistsError(f"{root} is not empty: choose an empty directory or pass --force")
        # Invalidate first, so an interrupted overwrite is detectable, then clear our files.
        (root / "config.json").unlink(missing_ok=True)
        for name in ("labels.txt", "intrinsics.json"):
            (root / name).unlink(missing_ok=True)
        shutil.rmtree(root / "depth", ignore_errors=True)
    (root / "depth").mkdir(parents=True, exist_ok=True)

    cam = config.intrinsics()
    lines = []
    for index, (depth, uvd, xyz, handedness) in enumerate(generate_frames(seed, count, config, progress, device)):
        name = f"depth/{index:06d}.png"
        Image.fromarray(depth).save(root / name, compress_level=1)   # uint16 -> mode I;16; fast zlib
        values = " ".join(f"{v:.4f}" for v in np.concatenate([uvd.ravel(), xyz.ravel()]))
        lines.append(f"{name} {handedness} {values}")
    _atomic_write(root / "labels.txt", "\n".join(lines) + "\n")
    _atomic_write(root / "intrinsics.json", json.dumps(cam.to_dict(), indent=2) + "\n")
    meta = {"format": FORMAT, "version": GENERATOR_VERSION, "seed": int(seed), "count": int(count),
            "split": split, "keypoint_names": list(CANONICAL), "frames_per_batch": FRAMES_PER_BATCH,
            "config": config.to_dict()}
    _atomic_write(root / "config.json", json.dumps(meta, indent=2) + "\n")   # last: marks complete
    return root


# ----------------------------------------------------------------------------- reading

class SyntheticDiskReader:
    """Samples of a dataset written by `write_dataset` / `hand-pose synth`.

    root: the dataset directory (see the module docstring). split: None or 'all' for every
    frame; otherwise `root/<split>` is read when that directory exists, else the split must
    be the one recorded in config.json (e.g. 'test' for `--preset test`); a dataset written
    without a split ('all') serves every split name with all its frames.
    """

    def __init__(self, root, split: str | None = None):
        root = Path(root)
        if split not in (None, "all") and (root / split / "config.json").exists():
            root = root / split
        self.root = root
        config_path = root / "config.json"
        if not root.is_dir():
            raise FileNotFoundError(f"synthetic dataset directory {root} does not exist")
        if not config_path.exists():
            hint = " (labels.txt is there: an interrupted write?)" if (root / "labels.txt").exists() else ""
            raise FileNotFoundError(f"{config_path} is missing: not a complete synthetic dataset{hint}")
        self.meta = json.loads(config_path.read_text())
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{config_path}: format is {self.meta.get('format')!r}, expected {FORMAT!r}")
        if split not in (None, "all", self.meta.get("split")) and self.meta.get("split") != "all":
            raise ValueError(f"{root} holds split {self.meta.get('split')!r}, not {split!r} "
                             f"(and there is no {root / split} directory)")
        self.cam = Intrinsics(**json.loads((root / "intrinsics.json").read_text()))
        self.config = SyntheticConfig.from_dict(self.meta["config"])
        self.names, self.handedness, self.uvd, self.xyz = _read_labels(root / "labels.txt")
        if len(self.names) != self.meta["count"]:
            raise ValueError(f"{root / 'labels.txt'} has {len(self.names)} frames, config.json says "
                             f"{self.meta['count']}")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Sample:
        from PIL import Image

        if not -len(self) <= index < len(self):
            raise IndexError(f"frame {index} out of range for {len(self)} frames")
        index %= len(self)
        path = self.root / self.names[index]
        with Image.open(path) as image:
            depth = np.asarray(image)
        if depth.dtype != np.uint16 or depth.shape != (self.cam.height, self.cam.width):
            raise ValueError(f"{path}: expected a {self.cam.width}x{self.cam.height} 16-bit depth PNG, "
                             f"got {depth.dtype} {depth.shape}")
        return _sample(depth, self.cam, self.uvd[index], self.names[index], index, self.handedness[index])

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]


def _read_labels(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing")
    names, hands, rows = [], [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 + 2 * 63 or parts[1] not in ("left", "right"):
            raise ValueError(f"{path}:{number}: expected '<png> <left|right>' and 126 numbers, "
                             f"got {len(parts)} fields")
        try:
            rows.append([float(v) for v in parts[2:]])
        except ValueError:
            raise ValueError(f"{path}:{number}: non-numeric label value") from None
        names.append(parts[0])
        hands.append(parts[1])
    values = np.array(rows, dtype=np.float64).reshape(-1, 2, len(CANONICAL), 3)
    return names, hands, values[:, 0], values[:, 1]


def register() -> bool:
    """Register 'synthetic' in the data engineer's reader registry, when it exists."""
    try:
        from ..readers import register_reader
    except ImportError:
        return False
    register_reader("synthetic", SyntheticDiskReader)
    return True

"""What every dataset reader shares: indexing, iteration, errors, image loading."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..depth import decode_nyu_rgb
from ..sample import Sample


class DatasetLayoutError(FileNotFoundError):
    """A dataset root is missing or not laid out the way its reader expects."""


class DatasetReader:
    """A read-only, indexable sequence of Samples (frames are loaded on access).

    Subclasses set `dataset`, `split`, `root` and implement `__len__` and `_load(i)`.
    """
    dataset = ""
    labelled = True      # False for test splits without public ground truth

    def __init__(self, root, split: str):
        self.root = Path(root).expanduser()
        self.split = split

    def __len__(self) -> int:
        raise NotImplementedError

    def _load(self, index: int) -> Sample:
        raise NotImplementedError

    def __getitem__(self, index) -> Sample:
        count = len(self)
        index = int(index)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(f"{self.dataset} {self.split}: index {index} out of range (0..{count - 1})")
        return self._load(index)

    def __iter__(self):
        for i in range(len(self)):
            yield self._load(i)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, frames={len(self)})"

    # ------------------------------------------------------------ helpers for subclasses

    def _require(self, path: Path, what: str, layout: str) -> Path:
        """`path` must exist, else one error saying what was expected where."""
        if not path.exists():
            raise DatasetLayoutError(
                f"{self.dataset} reader: expected {what} at {path} (root {self.root}), not found.\n"
                f"Expected layout:\n{layout}")
        return path


def check_split(dataset: str, split: str, allowed) -> str:
    if split not in allowed:
        raise ValueError(f"{dataset}: unknown split {split!r}; choose one of {list(allowed)}")
    return split


def read_depth_png(path: Path, dataset: str) -> np.ndarray:
    """A 16-bit single-channel depth PNG -> [H, W] float32 mm (Pillow: 'I;16' or 'I')."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
                raise ValueError(f"{dataset}: {path} should be a 16-bit single-channel depth PNG, "
                                 f"got Pillow mode {image.mode!r}")
            depth = np.asarray(image)
    except FileNotFoundError:
        raise DatasetLayoutError(f"{dataset}: depth image {path} not found") from None
    return depth.astype(np.float32)


def read_nyu_png(path: Path) -> np.ndarray:
    """An NYU RGB-encoded depth PNG -> [H, W] float32 mm."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            if image.mode != "RGB":
                raise ValueError(f"nyu: {path} should be an RGB-encoded depth PNG, got Pillow mode {image.mode!r}")
            rgb = np.asarray(image)
    except FileNotFoundError:
        raise DatasetLayoutError(f"nyu: depth image {path} not found") from None
    return decode_nyu_rgb(rgb)


def parse_float_rows(lines, expected: int, source: Path, first_is_name: bool):
    """Whitespace-separated rows -> (names or None, [N, expected] float64). Blank lines are
    skipped. Parses in one numpy call (a million-line label file takes seconds, not
    minutes); on any problem re-reads line by line to name the file and line at fault."""
    lines = [line for line in lines if line.strip()]
    names = None
    numbers = lines
    if first_is_name:
        split = [line.split(None, 1) for line in lines]
        names = [parts[0] for parts in split]
        numbers = [parts[1] if len(parts) > 1 else "" for parts in split]
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("error")     # numpy 1.x only warns on unparsable text
            values = np.fromstring(" ".join(numbers), sep=" ") if numbers else np.zeros(0)
        if values.size == len(numbers) * expected:
            return names, values.reshape(len(numbers), expected)
    except (ValueError, DeprecationWarning):
        pass
    for number, text in enumerate(numbers, start=1):
        parts = text.split()
        if len(parts) != expected:
            raise ValueError(f"{source}: row {number}: expected {expected} numbers"
                             f"{' after the image name' if first_is_name else ''}, got {len(parts)}")
        try:
            [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"{source}: row {number}: not a number in {text.strip()[:80]!r}") from None
    raise ValueError(f"{source}: could not parse the numbers")   # not reached for well-formed rows

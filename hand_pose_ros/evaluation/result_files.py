"""The community result-file format: plain text, one line per test frame (in the official
test order), J x 3 whitespace-separated values "u v d" (pixels, depth in mm), no header.

Reading is strict: a file that does not match what is expected is rejected with a message
naming the file, the line and what was expected; nothing is silently truncated or padded.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np


class ResultFileError(ValueError):
    """A result file that does not have the expected shape or holds something other than numbers."""


def read_result_file(path, num_joints: int | None = None, num_frames: int | None = None,
                     expected_from: str = "") -> np.ndarray:
    """Read a result file -> uvd [N, J, 3] float64.

    num_joints / num_frames: what the file must hold (None = take it from the file; then
    every line must still have the same number of values, a multiple of 3).
    expected_from: where the expectation comes from (e.g. the ground-truth path), for messages.
    """
    path = Path(path)
    if not path.is_file():
        raise ResultFileError(f"{path}: no such result file")
    why = f" ({expected_from})" if expected_from else ""
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    # Blank lines at the very end (a trailing newline or two) carry no frame; a blank line
    # anywhere else would shift every frame after it, so it is an error below.
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ResultFileError(f"{path}: the file is empty; expected one line of 'u v d' values per frame")

    expected_values = None if num_joints is None else 3 * int(num_joints)
    rows = []
    for line_no, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            raise ResultFileError(f"{path}: line {line_no} is empty; expected one line of 'u v d' values per frame")
        if expected_values is None:
            if len(tokens) % 3:
                raise ResultFileError(f"{path}: line {line_no} has {len(tokens)} values, which is not a "
                                      f"multiple of 3 (each joint is 'u v d')")
            expected_values = len(tokens)
        if len(tokens) != expected_values:
            raise ResultFileError(f"{path}: line {line_no} has {len(tokens)} values; expected {expected_values} "
                                  f"({expected_values // 3} joints x 3 'u v d'){why}")
        rows.append(_parse_numbers(tokens, path, line_no))

    if num_frames is not None and len(rows) != num_frames:
        raise ResultFileError(f"{path}: {len(rows)} lines (frames); expected {num_frames}, one per test frame{why}")
    uvd = np.asarray(rows, dtype=np.float64)  # [N, 3J]
    return uvd.reshape(len(rows), -1, 3)     # [N, J, 3]


def _parse_numbers(tokens, path: Path, line_no: int) -> list[float]:
    values = []
    for column, token in enumerate(tokens, start=1):
        try:
            value = float(token)
        except ValueError:
            raise ResultFileError(f"{path}: line {line_no}, value {column} is {token!r}, not a number") from None
        if not math.isfinite(value):
            raise ResultFileError(f"{path}: line {line_no}, value {column} is {token!r}; "
                                  f"every value must be a finite number")
        values.append(value)
    return values


def write_result_file(path, uvd, decimals: int = 4) -> Path:
    """Write uvd [N, J, 3] (or [N, 3J]) as a result file, atomically (temp file + rename)."""
    uvd = np.asarray(uvd, dtype=np.float64)
    if uvd.ndim == 3:
        if uvd.shape[2] != 3:
            raise ValueError(f"result for {path}: expected uvd of shape [N, J, 3], got {uvd.shape}")
        uvd = uvd.reshape(len(uvd), -1)  # [N, 3J]
    if uvd.ndim != 2 or uvd.shape[1] % 3 or uvd.shape[0] == 0 or uvd.shape[1] == 0:
        raise ValueError(f"result for {path}: expected uvd of shape [N, J, 3] or [N, 3J] with N, J > 0, "
                         f"got {uvd.shape}")
    bad = ~np.isfinite(uvd)
    if bad.any():
        frame, column = np.argwhere(bad)[0]
        raise ValueError(f"result for {path}: frame {frame + 1} value {column + 1} is {uvd[frame, column]}; "
                         f"the result format holds finite numbers only")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target so the final rename is atomic (same file system).
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            np.savetxt(f, uvd, fmt=f"%.{int(decimals)}f", delimiter=" ")
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return path

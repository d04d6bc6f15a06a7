"""Training scalars: TensorBoard event files (torch.utils.tensorboard) when the tensorboard
package is installed, and always OUT/scalars.jsonl (one {"step", "tag", "value"} per line),
which needs nothing to read and survives a machine without TensorBoard."""
from __future__ import annotations

import json
from pathlib import Path


class ScalarLog:
    def __init__(self, out: Path, start_step: int = 0):
        out = Path(out)
        self.tensorboard = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: the JSONL file still has everything
            SummaryWriter = None
        if SummaryWriter is not None:
            # purge_step: after a resume, drop events newer than the checkpoint
            self.tensorboard = SummaryWriter(str(out / "tensorboard"), purge_step=start_step)
        path = out / "scalars.jsonl"
        kept = []
        if path.is_file():  # same rule as purge_step for the JSONL file
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] < start_step]
        path.write_text("".join(line + "\n" for line in kept))
        self.file = open(path, "a")

    def add(self, tag: str, value: float, step: int) -> None:
        if self.tensorboard is not None:
            self.tensorboard.add_scalar(tag, value, step)
        self.file.write(json.dumps({"step": step, "tag": tag, "value": value}) + "\n")

    def flush(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.flush()
        self.file.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        self.file.close()

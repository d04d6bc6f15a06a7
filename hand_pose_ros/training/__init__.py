"""Training SRNet: `hand-pose train` (cli.py).

- config.py: TrainConfig (YAML + flags + --set, validated), load_config
- data.py: synthetic batches on the device, disk datasets through a DataLoader, validation
- trainer.py: Trainer(config, resume=, init=).fit() -> summary dict (exact resume, DDP,
  AMP, time budget, last.pt / best.pt, TensorBoard + scalars.jsonl)
- folds.py: MSRA leave-one-subject-out (--fold all); ablation.py: the five variants;
  throughput.py: --benchmark-steps; distributed.py: torchrun / DDP set-up
"""
from .config import TrainConfig, load_config

__all__ = ["TrainConfig", "load_config"]

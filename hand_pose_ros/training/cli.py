"""`hand-pose train`: train SRNet on synthetic hands or a public dataset.

Config resolution: defaults <- --config YAML (or, with --resume and no --config, the
config saved in the checkpoint) <- the common flags <- --set key=value. The resolved
config is written to OUT/config.yaml and stored in every checkpoint.

Modes: a training run (default); --fold all (MSRA, nine leave-one-subject-out runs);
--ablation (the five variants on one schedule, with a table and curves);
--benchmark-steps N (images/s and the data-generation share of a step, no files).
Multi-GPU: `torchrun --nproc_per_node N $(which hand-pose) train ...`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..model.checkpoint import ModelFileError
from ..model.config import VARIANTS
from .config import AMP_MODES, DATASETS, TrainConfig, load_config

# flag dest -> config key path
_FLAG_KEYS = {
    "dataset": ("dataset",), "root": ("root",), "fold": ("fold",), "epochs": ("epochs",),
    "batch_size": ("batch_size",), "lr": ("optim", "lr"), "variant": ("model", "variant"),
    "out": ("out",), "device": ("device",), "amp": ("amp",), "seed": ("seed",),
    "steps_per_epoch": ("steps_per_epoch",), "val_frames": ("val_frames",),
    "workers": ("num_workers",), "time_budget_min": ("time_budget_min",),
    "compile": ("compile",),
}


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="training YAML (e.g. config/train/synthetic.yaml)")
    parser.add_argument("--dataset", choices=DATASETS)
    parser.add_argument("--root", help="dataset folder (not needed for synthetic)")
    parser.add_argument("--fold", help="msra: test subject 0..8, or 'all' for the nine folds")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="per process (global = x world size)")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--out", help="run folder (config.yaml, last.pt, best.pt, summary.json)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--amp", nargs="?", const="bf16", choices=AMP_MODES,
                        help="autocast on CUDA (bare --amp = bf16)")
    parser.add_argument("--resume", metavar="DIR_OR_CKPT", help="continue a run exactly (its last.pt)")
    parser.add_argument("--init", metavar="CKPT", help="start from these weights (fresh optimiser)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--steps-per-epoch", type=int, help="synthetic: batches per epoch")
    parser.add_argument("--val-frames", type=int, help="validation frames (held out / generated)")
    parser.add_argument("--workers", type=int, help="DataLoader workers (disk datasets)")
    parser.add_argument("--time-budget-min", type=float,
                        help="stop cleanly (validate, save, summarise) within this wall time")
    parser.add_argument("--compile", action="store_const", const=True, help="torch.compile the model")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any config key, dotted (optim.lr_step_epochs=6, loss.alpha=0.5)")
    parser.add_argument("--benchmark-steps", type=int, metavar="N",
                        help="measure training images/s and the data-generation share over N "
                             "steps (synthetic), then exit; writes nothing")
    parser.add_argument("--ablation", action="store_true",
                        help="train each variant with the same schedule; OUT/ablation.{md,json,png}")
    parser.add_argument("--variants", help="comma-separated variants for --ablation (default: all five)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary on stdout")


def resolve_config(args) -> TrainConfig:
    """Defaults <- YAML (or the resumed checkpoint's config) <- flags <- --set."""
    if args.config:
        config = load_config(args.config)
    elif args.resume:
        config = _config_from_checkpoint(args.resume)
    else:
        config = TrainConfig()
    changes: dict = {}
    for dest, keys in _FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        node = changes
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    if args.resume and not args.out:
        changes["out"] = str(_run_folder(args.resume))
    if changes:
        config = config.updated(changes, "command line")
    return config.with_set(args.set) if args.set else config


def run(args) -> int:
    from .distributed import cleanup, setup

    ctx = None
    try:
        config = resolve_config(args)
        if args.benchmark_steps is not None:
            from .throughput import measure_throughput
            ctx = setup(config.device)
            result = measure_throughput(config, args.benchmark_steps, ctx=ctx)
        elif args.ablation:
            from .ablation import run_ablation
            variants = args.variants.split(",") if args.variants else None
            ctx = setup(config.device)
            result = run_ablation(config, variants, ctx=ctx)
        elif config.fold == "all":
            from .folds import train_all_folds
            ctx = setup(config.device)
            result = train_all_folds(config, ctx=ctx)
        else:
            from .trainer import Trainer
            ctx = setup(config.device)
            result = Trainer(config, resume=args.resume, init=args.init, ctx=ctx).fit()
    except (ValueError, FileNotFoundError, FloatingPointError) as e:  # ModelFileError is a ValueError
        print(f"hand-pose train: error: {e}", file=sys.stderr)
        cleanup()
        return 2
    cleanup()
    if args.json and (ctx is None or ctx.is_main):
        print(json.dumps(result, default=_json_default))
    return 0


def _run_folder(resume) -> Path:
    path = Path(resume)
    return path if path.is_dir() else path.parent


def _config_from_checkpoint(resume) -> TrainConfig:
    from ..model.checkpoint import read_checkpoint
    from .trainer import resume_path

    file = resume_path(resume)
    payload = read_checkpoint(file)
    if "train_config" not in payload:
        raise ModelFileError(f"{file}: no training config inside (not written by hand-pose train); "
                             "pass --config with the run's settings")
    return TrainConfig.from_dict(payload["train_config"], str(file))


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

"""`hand-pose train --ablation`: the paper's five variants, one after another, on the same
data and schedule (srnet.md "Ablation variants"); writes OUT/ablation.md (table),
OUT/ablation.json and OUT/ablation_curves.png (validation error vs step per variant).

Each variant trains in OUT/<variant>/ with the base config, except the variant itself and
its loss weights: the variants that have no map supervision (representation_unsupervised,
direct_regression: alpha = 1) or no coordinate supervision (coordinate_unsupervised:
alpha = 0) always use their defining alpha; the full and one-stage models use the config's
alpha (or the model's default, 0.5). A --time-budget-min is split equally between variants.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..model.config import VARIANTS
from .config import TrainConfig
from .distributed import DistContext
from .trainer import Trainer, log

VARIANTS_WITH_FREE_ALPHA = ("two_stage", "one_stage")


def variant_config(base: TrainConfig, variant: str, out: Path, budget_min) -> TrainConfig:
    alpha = base.loss.alpha if variant in VARIANTS_WITH_FREE_ALPHA else None
    return base.updated({"model": {**base.model, "variant": variant}, "out": str(out / variant),
                         "loss": {"alpha": alpha}, "time_budget_min": budget_min}, "ablation")


def run_ablation(base: TrainConfig, variants=None, ctx: DistContext | None = None) -> dict:
    variants = list(variants or VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    out = Path(base.out)
    budget = base.time_budget_min / len(variants) if base.time_budget_min else None
    rows = []
    for variant in variants:
        log(f"ablation: training {variant} ({len(rows) + 1}/{len(variants)})")
        summary = Trainer(variant_config(base, variant, out, budget), ctx=ctx).fit()
        rows.append(summary)
    result = {
        "out": str(out),
        "schedule": {"dataset": base.dataset, "epochs": base.epochs,
                     "steps_per_epoch": base.steps_per_epoch, "batch_size": base.batch_size,
                     "lr": base.optim.lr, "time_budget_min_per_variant": budget},
        "variants": [_row(s) for s in rows],
        "curves": {s["variant"]: s["val_curve"] for s in rows},
    }
    if ctx is None or ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "ablation.json").write_text(json.dumps(result, indent=2))
        result["table"] = str(out / "ablation.md")
        (out / "ablation.md").write_text(markdown_table(result))
        try:
            plot_curves(result["curves"], out / "ablation_curves.png")
            result["plot"] = str(out / "ablation_curves.png")
        except ImportError:  # a training machine without matplotlib: plot later, elsewhere
            log(f"matplotlib is not installed: draw the curves with "
                f"`python -m hand_pose_ros.training.ablation {out / 'ablation.json'}`")
    return result


def redraw(json_path) -> None:
    """Table and curves again from an ablation.json (e.g. on a machine with matplotlib)."""
    json_path = Path(json_path)
    result = json.loads(json_path.read_text())
    (json_path.parent / "ablation.md").write_text(markdown_table(result))
    plot_curves(result["curves"], json_path.parent / "ablation_curves.png")


def _row(summary: dict) -> dict:
    keys = ("variant", "loss_weights", "parameters", "steps", "epochs_completed",
            "best_val_error_mm", "final_val_error_mm", "images_per_s", "train_seconds",
            "stopped_by_time_budget")
    return {k: summary[k] for k in keys}


def markdown_table(result: dict) -> str:
    schedule = result["schedule"]
    lines = [f"# SRNet ablation ({schedule['dataset']}, {schedule['epochs']} epochs x "
             f"{schedule['steps_per_epoch']} steps, batch {schedule['batch_size']}, "
             f"lr {schedule['lr']:g})", "",
             "| variant | alpha | params (M) | steps | best val (mm) | final val (mm) | images/s "
             "| stopped early |",
             "|---|---|---|---|---|---|---|---|"]
    for row in result["variants"]:
        lines.append(f"| {row['variant']} | {row['loss_weights']['alpha']:g} | "
                     f"{row['parameters'] / 1e6:.2f} | {row['steps']} | "
                     f"{_mm(row['best_val_error_mm'])} | {_mm(row['final_val_error_mm'])} | "
                     f"{row['images_per_s'] or 0:.0f} | {'yes' if row['stopped_by_time_budget'] else 'no'} |")
    return "\n".join(lines) + "\n"


def _mm(value) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}"


def plot_curves(curves: dict, path: Path) -> None:
    import matplotlib  # imported here: training itself does not need it
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for variant, curve in curves.items():
        points = [(c["step"], c["val_error_mm"]) for c in curve if math.isfinite(c["val_error_mm"])]
        if points:
            steps, errors = zip(*points)
            ax.plot(steps, errors, marker="o", markersize=3, label=variant)
    ax.set_xlabel("training step")
    ax.set_ylabel("validation mean 3D error (mm)")
    ax.set_title("SRNet ablation")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m hand_pose_ros.training.ablation OUT/ablation.json")
    redraw(sys.argv[1])

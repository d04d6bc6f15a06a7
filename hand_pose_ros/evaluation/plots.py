"""Plots of scored result files (matplotlib, Agg: no display needed).

Each `results` entry is the dict returned by metrics.score(); labels name the curves.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

CURVES = (  # (key in a score dict, what the curve counts, x-axis label)
    ("max_error_success", "frames with max joint error <= threshold", "maximum joint error threshold (mm)"),
    ("mean_error_success", "frames with mean joint error <= threshold", "mean joint error threshold (mm)"),
    ("joint_success", "joints with error <= threshold", "joint error threshold (mm)"),
)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    return plt


def _check(results: Sequence[dict], labels: Sequence[str]) -> None:
    if not results:
        raise ValueError("nothing to plot: no scored result files")
    if len(labels) != len(results):
        raise ValueError(f"{len(labels)} labels for {len(results)} result files; give one label per file")


def _legend_label(label: str, result: dict) -> str:
    return f"{label} ({result['mean_error_mm']:.2f} mm mean)"


def _draw_curve(ax, key: str, results, labels) -> None:
    for label, result in zip(labels, results):
        curve = result[key]
        thresholds = np.array([float(t) for t in curve])
        fractions = np.array(list(curve.values())) * 100.0
        ax.plot(thresholds, fractions, linewidth=2, label=_legend_label(label, result))
    ax.set_ylim(0, 100)
    ax.set_xlim(0, max(float(t) for t in results[0][key]))
    ax.set_ylabel("fraction (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")


def plot_success_curves(results: Sequence[dict], labels: Sequence[str], path, dataset: str) -> Path:
    """The headline curve: % of frames whose maximum joint error is within each threshold."""
    _check(results, labels)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    _draw_curve(ax, "max_error_success", results, labels)
    ax.set_xlabel("maximum joint error threshold (mm)")
    ax.set_ylabel("frames with max joint error <= threshold (%)")
    ax.set_title(f"{dataset.upper()}: success rate (worst joint per frame)")
    return _save(fig, path)


def plot_all_success_curves(results: Sequence[dict], labels: Sequence[str], path, dataset: str) -> Path:
    """The three success curves side by side."""
    _check(results, labels)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(CURVES), figsize=(6 * len(CURVES), 5), dpi=100)
    for ax, (key, counted, xlabel) in zip(axes, CURVES):
        _draw_curve(ax, key, results, labels)
        ax.set_xlabel(xlabel)
        ax.set_title(counted)
    fig.suptitle(f"{dataset.upper()}: success rate curves")
    return _save(fig, path)


def plot_per_joint_errors(results: Sequence[dict], labels: Sequence[str], path, dataset: str) -> Path:
    """Grouped bars: mean error of each joint, one bar per result file."""
    _check(results, labels)
    names = list(results[0]["per_joint_mm"])
    for label, result in zip(labels, results):
        if list(result["per_joint_mm"]) != names:
            raise ValueError(f"{label}: its joints {list(result['per_joint_mm'])} differ from {names}; "
                             f"per-joint bars need the same joints in every file")
    plt = _pyplot()
    # Joints plus a last "mean" group.
    groups = names + ["mean"]
    x = np.arange(len(groups))
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(max(8.0, len(groups) * (0.3 + 0.25 * len(results)) + 2), 5), dpi=120)
    for i, (label, result) in enumerate(zip(labels, results)):
        heights = [result["per_joint_mm"][n] for n in names] + [result["mean_error_mm"]]
        ax.bar(x - 0.4 + width * (i + 0.5), heights, width, label=_legend_label(label, result))
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=60, ha="right")
    ax.set_xlabel("joint")
    ax.set_ylabel("mean 3D error (mm)")
    ax.set_title(f"{dataset.upper()}: mean error per joint")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def write_plots(results: Sequence[dict], labels: Sequence[str], out_dir, dataset: str) -> list[Path]:
    """All plots into out_dir, named after the dataset; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = dataset.lower().replace(" ", "_")
    return [
        plot_success_curves(results, labels, out_dir / f"{prefix}_success.png", dataset),
        plot_all_success_curves(results, labels, out_dir / f"{prefix}_success_all.png", dataset),
        plot_per_joint_errors(results, labels, out_dir / f"{prefix}_per_joint.png", dataset),
    ]


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path

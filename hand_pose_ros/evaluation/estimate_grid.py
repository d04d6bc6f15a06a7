"""`hand-pose show --model M`: one PNG grid of depth frames with the model's estimated skeleton.

Each frame goes through the pose node's pipeline (inference.estimator: localise -> crop ->
infer -> recover). A tile shows the depth around the localised hand (the crop cube's depth
range, near = bright) with the estimate in the finger colours, the localiser's crop box
dashed, the labels (when the frame has any) as thin white lines, and beside it the whole
frame with the crop box. Frames without a hand say "no hand" and show the whole frame.

    hand-pose show --dataset png --root ../shared/realdata/sr305_ladaondris --depth-unit-mm 0.125 \\
        --fx 476.0068 --fy 476.0068 --cx 313.683 --cy 242.755 --model models/srnet_synthetic.onnx \\
        -o real_sr305.png --json
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..data.skeleton_plot import draw_skeleton

TILE_INCHES = (4.0, 3.2)        # width, height of one tile
HEADER_INCHES = 1.0             # the figure title (two lines) and the first row's tile titles
DPI = 100
CROP_MARGIN = 0.12              # of the crop box's size, on each side of the tile's window
DEFAULT_COLUMNS = 5
BATCH = 16                      # frames per backend call


def grid_size_px(count: int, columns: int | None = None) -> tuple[int, int]:
    """(width, height) in pixels of the PNG that render_estimate_grid writes for `count` frames."""
    columns = min(columns or DEFAULT_COLUMNS, count)
    rows = math.ceil(count / columns)
    return (round(TILE_INCHES[0] * columns * DPI), round((TILE_INCHES[1] * rows + HEADER_INCHES) * DPI))


def render_estimate_grid(samples, estimator, output, columns: int | None = None, title: str = "") -> dict:
    """Run `estimator` on every Sample, draw the grid into `output` (PNG) and return a
    JSON-friendly summary: frames, localised (frames with a hand), per-frame results."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    samples = list(samples)
    if not samples:
        raise ValueError("no frames to show")
    if columns is not None and columns < 1:
        raise ValueError(f"--columns must be >= 1, got {columns}")
    estimates = []
    for start in range(0, len(samples), BATCH):
        estimates += estimator.estimate_batch([(s.depth_mm, s.cam) for s in samples[start:start + BATCH]])
    localised = sum(e is not None for e in estimates)

    width, height = grid_size_px(len(samples), columns)
    columns = min(columns or DEFAULT_COLUMNS, len(samples))
    rows = math.ceil(len(samples) / columns)
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    header = HEADER_INCHES * DPI / height
    grid = figure.add_gridspec(rows, columns, left=0.01, right=0.99, bottom=0.01, top=1 - header,
                               wspace=0.06, hspace=0.28)
    lines = (f"{title + ': ' if title else ''}the localiser found a hand in {localised} of {len(samples)} frames",
             "estimate in finger colours, labels white, crop box dashed; right: the whole frame")
    # Font size that fits the longer line into the figure's width (~0.6 em per character).
    fontsize = min(13.0, 0.95 * width / DPI * 72 / (0.6 * max(len(line) for line in lines)))
    figure.suptitle("\n".join(lines), y=1 - 0.08 * DPI / height, va="top", fontsize=fontsize)
    frames = []
    for i, (sample, estimate) in enumerate(zip(samples, estimates)):
        tile = grid[i // columns, i % columns].subgridspec(2, 2, width_ratios=(3, 1.3), height_ratios=(1, 1.6),
                                                           wspace=0.04, hspace=0.08)
        main = figure.add_subplot(tile[:, 0])
        thumb = figure.add_subplot(tile[0, 1])
        note = figure.add_subplot(tile[1, 1])
        frames.append(_draw_tile(main, thumb, note, sample, estimate))
    figure.savefig(output, format="png", dpi=DPI)
    return {"output": str(output), "frames": len(samples), "localised": localised,
            "size_px": [width, height], "per_frame": frames}


def _draw_tile(main, thumb, note, sample, estimate) -> dict:
    depth = sample.depth_mm
    height, width = depth.shape
    name = sample.name or "frame"
    for axes in (main, thumb, note):
        axes.set_xticks([])
        axes.set_yticks([])
    note.set_axis_off()
    _draw_full_frame(thumb, depth, None if estimate is None else estimate.crop_box)
    result = {"name": name, "localised": estimate is not None}
    if estimate is None:
        _draw_full_frame(main, depth, None)
        main.set_title(f"{_short(name)}\nno hand", fontsize=9, color="firebrick")
        note.text(0, 0.9, "no hand found\nin the depth range", fontsize=8, va="top", color="firebrick")
        return result

    com_u, com_v, com_d = (float(x) for x in estimate.com_uvd)
    left, top, right, bottom = estimate.crop_box
    margin = CROP_MARGIN * max(right - left, bottom - top)
    window = (max(0, int(left - margin)), max(0, int(top - margin)),
              min(width, int(math.ceil(right + margin))), min(height, int(math.ceil(bottom + margin))))
    x0, y0, x1, y1 = window
    near, far = com_d - estimate.half_cube_mm, com_d + estimate.half_cube_mm
    patch = depth[y0:y1, x0:x1]
    main.imshow(np.ma.masked_where((patch <= max(near, 0)) | (patch >= far), patch), cmap="gray_r",
                vmin=near, vmax=far, interpolation="nearest", extent=(x0 - 0.5, x1 - 0.5, y1 - 0.5, y0 - 0.5))
    main.set_facecolor("black")
    main.add_patch(_box(estimate.crop_box, "white", linestyle="--", linewidth=0.8))
    if sample.uvd is not None:
        draw_skeleton(main, np.asarray(sample.uvd)[:, :2], sample.keypoint_names, linewidth=0.8, point_size=5,
                      colour="white")
    result.update(valid=bool(estimate.valid), com_uvd=[round(com_u, 1), round(com_v, 1), round(com_d, 1)],
                  crop_box=[int(x) for x in estimate.crop_box])
    if estimate.valid:
        draw_skeleton(main, estimate.uvd[:, :2], estimate.keypoint_names, linewidth=2.0, point_size=14,
                      outline=True)
        result["mean_confidence"] = round(estimate.mean_confidence, 4)
        main.set_title(f"{_short(name)}\nconfidence {estimate.mean_confidence:.2f}", fontsize=9)
    else:
        result["reason"] = estimate.reason
        main.set_title(f"{_short(name)}\ninvalid output", fontsize=9, color="firebrick")
    main.set_xlim(x0 - 0.5, x1 - 0.5)
    main.set_ylim(y1 - 0.5, y0 - 0.5)
    note.text(0, 0.95, f"hand at\n{com_d:.0f} mm\ncrop {right - left} px", fontsize=8, va="top")
    return result


def _draw_full_frame(axes, depth, box) -> None:
    valid = depth[depth > 0]
    near, far = (np.percentile(valid, [1, 99]) if valid.size else (0.0, 1.0))
    axes.imshow(np.ma.masked_equal(depth, 0), cmap="gray_r", vmin=float(near), vmax=float(far) + 1,
                interpolation="nearest")
    axes.set_facecolor("black")
    if box is not None:
        axes.add_patch(_box(box, "red", linewidth=1.2))


def _box(box, colour, linestyle="-", linewidth=1.0):
    from matplotlib.patches import Rectangle
    left, top, right, bottom = box
    return Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, edgecolor=colour,
                     linestyle=linestyle, linewidth=linewidth)


def _short(name: str, limit: int = 34) -> str:
    return name if len(name) <= limit else "..." + name[-(limit - 3):]


def show_estimates(samples, model: Path, output, backend: str = "auto", columns: int | None = None) -> dict:
    """Load `model` the way `eval run` does and render the grid (see render_estimate_grid)."""
    from ..inference.estimator import HandPoseEstimator

    estimator = HandPoseEstimator.from_model_file(model, backend=backend)
    summary = render_estimate_grid(samples, estimator, output, columns=columns, title=Path(model).name)
    summary["model"] = str(model)
    summary["backend"] = estimator.describe().get("backend", backend)
    return summary

"""`hand-pose show`: a PNG grid of dataset samples with keypoints and skeleton.

    hand-pose show --dataset icvl --root /data/icvl --split test --count 16 -o grid.png
    hand-pose show --dataset msra --root /data/msra --split test --test-subject 3 -o msra.png
    hand-pose show --images ../shared/data/real/nyu --camera nyu -o nyu.png
    hand-pose show --images a.png b.png --camera nyu --view crop -o crops.png

--images takes depth files or folders of them (NYU RGB-encoded PNG, 16-bit PNG in mm, or
.npy in mm; labels from NAME_uvd.txt beside a frame when present, in --camera's dataset
joint order). The same folder also opens as `--dataset nyu-frames --root DIR`.

Real PNG folders (any depth unit, intrinsics, labels if present; data/readers/png_folder.py)
open as --dataset png with --depth-unit-mm, --encoding, --fx --fy --cx --cy or --camera.
With --model M every chosen frame (all of them by default) goes through the pose node's
pipeline and the grid shows the estimated skeleton instead (evaluation/estimate_grid.py):

    hand-pose show --dataset png --root ../shared/realdata/sr305_ladaondris --depth-unit-mm 0.125 \
        --fx 476.0068 --fy 476.0068 --cx 313.683 --cy 242.755 --model models/srnet_synthetic.onnx -o sr305.png

Views: 'frame' (default) shows the depth frame zoomed onto the hand (around the labels, or
the localiser's detection for unlabelled frames); 'crop' shows the normalised 128 x 128
network input made by the shared preprocessing (localiser centre, srnet.md crop) with the
labels mapped into it, i.e. exactly what the model is trained and run on.
"""
from __future__ import annotations

import json
import math
import sys

import numpy as np

from .crop import crop_hand, label_to_crop_pixels, normalise_uvd
from .localise import HandLocaliser
from .readers import DatasetLayoutError, FrameFolderReader, open_dataset
from .skeleton_plot import draw_skeleton

# Options of the 'png' reader (--dataset png), by their reader keyword.
PNG_OPTIONS = ("encoding", "depth_unit_mm", "fx", "fy", "cx", "cy", "joint_order")

VIEWS = ("frame", "crop")


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", help="dataset name (nyu, icvl, msra, hands2017, nyu-frames, synthetic, ...)")
    parser.add_argument("--root", help="dataset root folder, in the dataset's own layout")
    parser.add_argument("--split", default="test", help="split to show (default: test)")
    parser.add_argument("--test-subject", type=int, default=None, help="MSRA fold: the held-out subject 0..8")
    parser.add_argument("--images", nargs="+", help="depth files or folders instead of a dataset")
    parser.add_argument("--camera", default=None,
                        help="intrinsics/joint order for --images (default: nyu) or a preset for --dataset png")
    parser.add_argument("--count", type=int, default=None,
                        help="number of samples (default: 16; with --model every frame)")
    parser.add_argument("--seed", type=int, default=0, help="which samples: a random choice with this seed")
    parser.add_argument("--view", choices=VIEWS, default="frame", help="frame (zoomed on the hand) or crop")
    parser.add_argument("--columns", type=int, default=None, help="tiles per row (default: about square)")
    parser.add_argument("-o", "--output", required=True, help="PNG file to write")
    png = parser.add_argument_group("--dataset png (real depth PNG folders)")
    png.add_argument("--encoding", default=None, choices=("gray16", "nyu_rgb"),
                     help="16-bit grey PNGs (default) or NYU's RGB-encoded depth")
    png.add_argument("--depth-unit-mm", type=float, default=None,
                     help="mm per PNG count (default 1; SR305 0.125, D405 0.1)")
    for name in ("fx", "fy", "cx", "cy"):
        png.add_argument(f"--{name}", type=float, default=None, help=f"camera {name} in pixels")
    png.add_argument("--joint-order", default=None, help="dataset joint order of the label files (e.g. nyu)")
    estimates = parser.add_argument_group("estimated skeletons")
    estimates.add_argument("--model", default=None,
                           help="run this model (.onnx / .pt) on each frame and draw its estimate")
    estimates.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime", "tensorrt"))
    estimates.add_argument("--json", action="store_true",
                           help="with --model: print one JSON object (frames, localised, per frame) on stdout")


def run(args) -> int:
    model = getattr(args, "model", None)
    try:
        reader = _open(args)
        count = args.count if args.count is not None else (len(reader) if model else 16)
        if count < 1:
            raise ValueError(f"--count must be >= 1, got {count}")
        indices = pick_indices(len(reader), count, args.seed)
        samples = [reader[i] for i in indices]
        if model:
            from ..evaluation.estimate_grid import show_estimates
            summary = show_estimates(samples, model, args.output, backend=args.backend, columns=args.columns)
        else:
            render_grid(samples, args.output, view=args.view, columns=args.columns)
    except (DatasetLayoutError, ValueError, OSError) as e:
        print(f"hand-pose show: error: {e}", file=sys.stderr)
        return 2
    if model:
        print(f"hand-pose show: wrote {args.output} ({len(samples)} of {len(reader)} frames; the localiser "
              f"found a hand in {summary['localised']} of {summary['frames']})", file=sys.stderr)
        if args.json:
            print(json.dumps(summary))
        return 0
    print(f"hand-pose show: wrote {args.output} ({len(samples)} of {len(reader)} samples, view {args.view})",
          file=sys.stderr)
    return 0


def _open(args):
    png_options = {k: getattr(args, k, None) for k in PNG_OPTIONS}
    png_options = {k: v for k, v in png_options.items() if v is not None}
    if (args.dataset or "").lower() == "png":
        if args.camera is not None:
            png_options["camera"] = args.camera
        return open_dataset("png", args.root, args.split, **png_options)
    if png_options:
        raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in png_options)}: only for --dataset png")
    camera = args.camera or "nyu"
    if args.images:
        files = []
        from pathlib import Path
        for item in args.images:
            path = Path(item).expanduser()
            if path.is_dir():
                files += list(FrameFolderReader(path, camera=camera)._files)
            elif path.is_file():
                files.append(path)
            else:
                raise DatasetLayoutError(f"--images: {path} does not exist")
        return FrameFolderReader(files, camera=camera)
    if not args.dataset:
        raise ValueError("give --dataset NAME (with --root) or --images FILES")
    extra = {} if args.test_subject is None else {"test_subject": args.test_subject}
    return open_dataset(args.dataset, args.root, args.split, **extra)


def pick_indices(total: int, count: int, seed: int) -> list[int]:
    """`count` distinct sample indices (all of them when there are fewer), ascending."""
    if total == 0:
        raise ValueError("the dataset has no samples")
    if count >= total:
        return list(range(total))
    return sorted(np.random.default_rng(seed).choice(total, size=count, replace=False).tolist())


def render_grid(samples, output, view: str = "frame", columns: int | None = None,
                localiser: HandLocaliser | None = None) -> None:
    """Draw one tile per Sample and save the grid as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    localiser = localiser or HandLocaliser()
    columns = columns or max(1, math.ceil(math.sqrt(len(samples))))
    rows = math.ceil(len(samples) / columns)
    figure = Figure(figsize=(3.0 * columns, 3.2 * rows), dpi=100)
    FigureCanvasAgg(figure)
    for i, sample in enumerate(samples):
        axes = figure.add_subplot(rows, columns, i + 1)
        draw_sample(axes, sample, view, localiser)
    figure.tight_layout()
    figure.savefig(output, format="png")


def draw_sample(axes, sample, view: str, localiser: HandLocaliser) -> None:
    detection = localiser.locate(sample.depth_mm, sample.cam)
    title = _short(sample.name)
    if view == "crop":
        centre = detection.com_uvd if detection is not None else _label_centre(sample)
        if centre is None:
            axes.set_title(f"{title}\nno hand found", fontsize=8)
            axes.imshow(np.zeros((2, 2)), cmap="gray")
            axes.set_axis_off()
            return
        crop = crop_hand(sample.depth_mm, centre, sample.cam, sample.half_cube_mm)
        image = np.ma.masked_equal(crop.image, 0)
        axes.imshow(image, cmap="viridis_r", vmin=-1, vmax=1, interpolation="nearest")
        axes.set_facecolor("black")
        if sample.uvd is not None:
            px = label_to_crop_pixels(normalise_uvd(sample.uvd, crop), crop.box, crop.out_size)
            _draw_hand(axes, px, sample.keypoint_names)
        source = "localiser" if detection is not None else "label centre"
        axes.set_title(f"{title}\n{source} d={centre[2]:.0f} mm, box {crop.box}px", fontsize=8)
    else:
        left, top, right, bottom, near, far = _frame_window(sample, detection)
        depth = sample.depth_mm[top:bottom, left:right]
        image = np.ma.masked_where((depth <= near) | (depth >= far), depth)
        axes.imshow(image, cmap="viridis_r", vmin=near, vmax=far, interpolation="nearest",
                    extent=(left - 0.5, right - 0.5, bottom - 0.5, top - 0.5))
        axes.set_facecolor("black")
        if sample.uvd is not None:
            _draw_hand(axes, np.asarray(sample.uvd)[:, :2], sample.keypoint_names)
        note = "no hand found" if detection is None else f"com d={detection.com_uvd[2]:.0f} mm"
        axes.set_title(f"{title}\n{note}", fontsize=8)
    axes.set_xticks([])
    axes.set_yticks([])


def _draw_hand(axes, points_uv: np.ndarray, names) -> None:
    """Skeleton bones coloured by finger, then the keypoints on top."""
    draw_skeleton(axes, points_uv, names, linewidth=1.5, point_size=12)


def _label_centre(sample):
    if sample.uvd is None:
        return None
    return np.asarray(sample.uvd, dtype=np.float64).mean(axis=0)


def _frame_window(sample, detection):
    """Pixel window (left, top, right, bottom) around the hand and a depth range for the
    colour map: from the labels when there are any, else from the detection, else all."""
    height, width = sample.depth_mm.shape
    if sample.uvd is not None:
        uvd = np.asarray(sample.uvd, dtype=np.float64)
        u0, v0 = uvd[:, :2].min(axis=0)
        u1, v1 = uvd[:, :2].max(axis=0)
        d = float(np.median(uvd[:, 2]))
    elif detection is not None:
        u0, v0, u1, v1 = detection.bbox
        d = float(detection.com_uvd[2])
    else:
        valid = sample.depth_mm[sample.depth_mm > 0]
        near, far = (np.percentile(valid, [1, 99]) if valid.size else (0.0, 1.0))
        return 0, 0, width, height, float(near) - 1, float(far) + 1
    # a square window a bit larger than the hand's cube
    margin = sample.half_cube_mm * abs(sample.cam.fx) / max(d, 1.0)
    cu, cv = (u0 + u1) / 2, (v0 + v1) / 2
    half = max((u1 - u0) / 2, (v1 - v0) / 2, margin) + 10
    left, right = int(max(0, cu - half)), int(min(width, cu + half))
    top, bottom = int(max(0, cv - half)), int(min(height, cv + half))
    if left >= right or top >= bottom:
        left, top, right, bottom = 0, 0, width, height
    return left, top, right, bottom, d - sample.half_cube_mm, d + sample.half_cube_mm


def _short(name: str, limit: int = 36) -> str:
    return name if len(name) <= limit else "..." + name[-(limit - 3):]

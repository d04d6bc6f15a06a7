"""`hand-pose synth`: write a synthetic depth-hand dataset to disk (format: disk.py).

    hand-pose synth --out DIR --count N --seed S [--width 640 --height 480] [--clean]
    hand-pose synth --preset test --out DIR      # the fixed synthetic test set (2000 frames)
    hand-pose synth --bench [--device cuda] [--batch 256] [--frames 4096] [--threads 1] --json
                                                 # generator throughput (crops/s, frames/s)

Prints one JSON summary on stdout with --json; the progress bar goes to stderr.
"""
from __future__ import annotations

import json
import sys
import time


def add_arguments(parser) -> None:
    parser.add_argument("--out", help="output directory (must be empty unless --force)")
    parser.add_argument("--count", type=int, help="number of frames (default 1000; the preset's own for --preset)")
    parser.add_argument("--seed", type=int, help="random seed (default 0; the preset's own for --preset)")
    parser.add_argument("--width", type=int, default=None, help="image width (default 640)")
    parser.add_argument("--height", type=int, default=None, help="image height (default 480)")
    parser.add_argument("--preset", choices=["test"], help="'test': the fixed synthetic test set (FIXED_TEST_SET)")
    parser.add_argument("--clean", action="store_true", help="no sensor noise, table or distractors")
    parser.add_argument("--camera", default="synthetic",
                        help="camera preset from camera.DATASET_INTRINSICS (default synthetic: D435-like)")
    parser.add_argument("--force", action="store_true", help="overwrite a non-empty output directory")
    parser.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    bench = parser.add_argument_group("benchmark (--bench: measure, write nothing)")
    bench.add_argument("--bench", action="store_true", help="measure training crops/s and full frames/s")
    parser.add_argument("--device", default="cpu",
                        help="torch device that renders (cpu, cuda, cuda:1); the frames are the same either way "
                             "(random numbers come from CPU generators), a GPU is much faster")
    bench.add_argument("--batch", type=int, default=64, help="batch size for --bench")
    bench.add_argument("--frames", type=int, default=512, help="frames per measurement for --bench")
    bench.add_argument("--threads", type=int, default=None, help="torch CPU threads for --bench")
    bench.add_argument("--no-full-frames", action="store_true", help="--bench: skip the full-frame measurement")


def run(args) -> int:
    from .disk import FIXED_TEST_SET, fixed_test_config, write_dataset
    from .scene import SyntheticConfig, bench_generator

    if args.bench:
        config = SyntheticConfig(width=args.width or 0, height=args.height or 0)
        result = bench_generator(args.device, batch=args.batch, frames=args.frames, config=config,
                                 threads=args.threads, full_frames=not args.no_full_frames)
        print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
        return 0
    if not args.out:
        print("hand-pose synth: --out DIR is required (or --bench)", file=sys.stderr)
        return 2

    if args.preset == "test":
        clashes = [flag for flag, value in (("--count", args.count), ("--seed", args.seed),
                                            ("--width", args.width), ("--height", args.height))
                   if value is not None] + (["--clean"] if args.clean else [])
        if clashes:
            print(f"hand-pose synth: --preset test fixes its own settings; drop {', '.join(clashes)}",
                  file=sys.stderr)
            return 2
        config, count, seed, split = fixed_test_config(), FIXED_TEST_SET["count"], FIXED_TEST_SET["seed"], "test"
    else:
        if (args.width is None) != (args.height is None):
            print("hand-pose synth: give both --width and --height", file=sys.stderr)
            return 2
        try:
            config = SyntheticConfig(camera=args.camera, width=args.width or 0, height=args.height or 0)
        except ValueError as e:
            print(f"hand-pose synth: {e}", file=sys.stderr)
            return 2
        if args.clean:
            config = SyntheticConfig.clean(**{k: getattr(config, k) for k in ("camera", "width", "height")})
        count = 1000 if args.count is None else args.count
        seed = 0 if args.seed is None else args.seed
        split = "all"
    start = time.perf_counter()
    try:
        root = write_dataset(args.out, count, seed, config, force=args.force, split=split, device=args.device)
    except (FileExistsError, ValueError) as e:
        print(f"hand-pose synth: {e}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    cam = config.intrinsics()
    summary = {"out": str(root), "count": count, "seed": seed, "split": split, "width": cam.width,
               "height": cam.height, "seconds": round(seconds, 2), "frames_per_s": round(count / seconds, 2)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {count} frames ({cam.width}x{cam.height}) to {root} in {seconds:.1f} s", file=sys.stderr)
    return 0

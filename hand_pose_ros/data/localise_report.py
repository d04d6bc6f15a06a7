"""How well the run-time hand localiser centres crops on a labelled dataset.

    python -m hand_pose_ros.data.localise_report --root /tmp/synth_test_preset --count 400 --json

For each of the first `count` frames: run HandLocaliser().locate (no tracking seed), cut the
crop around its centre (data.crop.crop_hand) and report
- no_hand_rate: frames where the localiser found nothing;
- all_joints_in_crop_rate: frames (over all frames, no-hand counts as a miss) whose every
  joint has |u_n|, |v_n| <= 0.5 and |d_n| < 1 in the crop's normalised coordinates;
- centre_to_mcp_mm: mean / median metric distance from the crop centre to the mean of the
  four finger MCP joints (the middle of the palm), over frames with a detection;
- localise_ms: mean time of one locate call.
Prints one JSON object on stdout with --json, a short table otherwise; progress on stderr.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time

import numpy as np
from tqdm import tqdm

from ..camera import uvd_to_xyz
from .crop import crop_hand
from .localise import HandLocaliser

_MCP_NAMES = ("index_mcp", "middle_mcp", "ring_mcp", "pinky_mcp")


def measure(samples, localiser: HandLocaliser | None = None) -> dict:
    """The report's numbers over an iterable of labelled Samples."""
    localiser = localiser or HandLocaliser()
    frames = no_hand = complete = 0
    distances, seconds = [], 0.0
    for sample in samples:
        if sample.uvd is None:
            raise ValueError(f"frame {sample.name!r} has no labels; the report needs labelled frames")
        frames += 1
        start = time.perf_counter()
        detection = localiser.locate(sample.depth_mm, sample.cam)
        seconds += time.perf_counter() - start
        if detection is None:
            no_hand += 1
            continue
        crop = crop_hand(sample.depth_mm, detection.com_uvd, sample.cam, sample.half_cube_mm)
        norm = crop.normalise_uvd(sample.uvd)                                  # [J, 3]
        inside = (np.abs(norm[:, :2]) <= 0.5).all() and (np.abs(norm[:, 2]) < 1).all()
        complete += bool(inside)
        mcp = [sample.keypoint_names.index(name) for name in _MCP_NAMES]
        palm = uvd_to_xyz(np.asarray(sample.uvd, dtype=np.float64)[mcp], sample.cam).mean(axis=0)
        centre = uvd_to_xyz(np.asarray(detection.com_uvd, dtype=np.float64)[None], sample.cam)[0]
        distances.append(float(np.linalg.norm(centre - palm)))
    if frames == 0:
        raise ValueError("no frames to measure")
    return {
        "frames": frames,
        "no_hand_rate": no_hand / frames,
        "all_joints_in_crop_rate": complete / frames,
        "centre_to_mcp_mm_mean": float(np.mean(distances)) if distances else None,
        "centre_to_mcp_mm_median": float(np.median(distances)) if distances else None,
        "localise_ms": 1000.0 * seconds / frames,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="dataset folder (e.g. /tmp/synth_test_preset)")
    parser.add_argument("--dataset", default="synthetic", help="reader name (default: synthetic)")
    parser.add_argument("--split", default=None, help="split to read (default: the reader's whole folder)")
    parser.add_argument("--count", type=int, default=400, help="first N frames (default 400)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.count <= 0:
        parser.error(f"--count must be > 0, got {args.count}")
    from .readers import open_dataset

    reader = open_dataset(args.dataset, args.root, split=args.split)
    samples = tqdm(itertools.islice(iter(reader), args.count), total=args.count, file=sys.stderr,
                   desc="localise", disable=None)
    report = measure(samples)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:26s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

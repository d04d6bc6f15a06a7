"""How well the run-time hand localiser centres crops on a labelled dataset.

    python -m hand_pose_ros.data.localise_report --root /tmp/synth_test_preset --count 400 --json
    python -m hand_pose_ros.data.localise_report --body-in-view --count 200 --json

For each of the first `count` frames: run HandLocaliser().locate (no tracking seed), cut the
crop around its centre (data.crop.crop_hand) and report
- no_hand_rate: frames where the localiser found nothing;
- all_joints_in_crop_rate: frames (over all frames, no-hand counts as a miss) whose every
  joint has |u_n|, |v_n| <= 0.5 and |d_n| < 1 in the crop's normalised coordinates;
- centre_to_mcp_mm: mean / median metric distance from the crop centre to the mean of the
  four finger MCP joints (the middle of the palm), over frames with a detection;
- localise_ms: mean time of one locate call.
Prints one JSON object on stdout with --json, a short table otherwise; progress on stderr.

--body-in-view measures on synthetic "operator in view" frames instead of a dataset
(body_in_view_samples): the operator's torso beside the raised hand, its front at about the
hand's depth, running out of the image at the side, joined to the hand by the upper arm.
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


def body_in_view_samples(count: int, seed: int = 0, width: int = 320, height: int = 240, batch: int = 8):
    """Yield `count` labelled synthetic Samples with the operator's body in view: the
    generator's scene (SyntheticConfig with the torso always on) with the torso ellipsoid
    moved beside the hand, on a random side: its inner edge 0-80 mm beside the hand's
    keypoints, its centre 0-250 mm below the hand's, its front surface from 30 mm nearer
    than the hand's nearest point to 80 mm behind it, and pushed outward until it runs out
    of the image at that side; the upper arm runs from the elbow to the torso's shoulder.
    Deterministic in (count, seed, width, height, batch)."""
    import torch

    from ..camera import HALF_CUBE_MM, xyz_to_uvd
    from ..keypoints import CANONICAL
    from .sample import Sample
    from .synthetic.render import Window
    from .synthetic.scene import SyntheticConfig, render_scene, sample_scenes

    config = SyntheticConfig(width=width, height=height, torso_prob=1.0, other_hand_prob=0.0)
    cam = config.intrinsics()
    made = 0
    for batch_index in itertools.count():
        if made >= count:
            return
        generator = torch.Generator().manual_seed(int(seed) * 100_003 + batch_index)
        scene = sample_scenes(batch, generator, config)
        torso = scene.background["ellipsoid"]
        semi = 1.0 / torch.diagonal(torso["m"][:, 0], dim1=-2, dim2=-1)            # [B, 3] half sizes
        u = torch.rand(batch, 4, generator=generator)
        side = torch.where(u[:, 0] < 0.5, -1.0, 1.0)
        hand_x = scene.xyz[..., 0]
        edge = torch.where(side > 0, hand_x.amax(dim=1), hand_x.amin(dim=1))
        near = scene.vertices[..., 2].amin(dim=1)
        z = near - 30.0 + 110.0 * u[:, 1] + semi[:, 2]
        x = edge + side * (80.0 * u[:, 2] + semi[:, 0])
        # out of the image at that side: the outer edge beyond the border at the centre's depth
        border_x = torch.where(side > 0, (cam.width - cam.cx) * z / cam.fx, -cam.cx * z / cam.fx)
        x = torch.where(side > 0, torch.maximum(x, border_x - semi[:, 0] + 20.0),
                        torch.minimum(x, border_x + semi[:, 0] - 20.0))
        y = scene.xyz[..., 1].mean(dim=1) + 250.0 * u[:, 3]
        centre = torch.stack([x, y, z], -1)
        torso["c"] = centre[:, None]
        shoulder = centre + torch.stack([-side * 0.75 * semi[:, 0], -0.6 * semi[:, 1], -0.2 * semi[:, 2]], -1)
        upper_arm = scene.props["capsule"]
        upper_arm["b"] = torch.stack([upper_arm["b"][:, 0], shoulder], 1)
        upper_arm["enabled"] = torch.stack([upper_arm["enabled"][:, 0], torch.ones_like(side, dtype=torch.bool)], 1)
        out = render_scene(scene, cam, Window.full(cam, batch, "cpu"), config, generator)
        depth = out["depth_mm"].round().clamp(0, 65535).numpy().astype(np.float32)
        uvd = xyz_to_uvd(scene.xyz, cam).double().numpy()
        for i in range(min(batch, count - made)):
            yield Sample(depth_mm=depth[i], cam=cam, keypoint_names=CANONICAL, uvd=uvd[i],
                         name=f"body_in_view/{seed}/{made:06d}", half_cube_mm=HALF_CUBE_MM["synthetic"],
                         meta={"handedness": scene.handedness[i]})
            made += 1


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
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", help="dataset folder (e.g. /tmp/synth_test_preset)")
    source.add_argument("--body-in-view", action="store_true",
                        help="synthetic frames with the operator's torso in view (body_in_view_samples)")
    parser.add_argument("--seed", type=int, default=0, help="--body-in-view: seed (default 0)")
    parser.add_argument("--size", default="320x240", help="--body-in-view: image size WxH (default 320x240)")
    parser.add_argument("--dataset", default="synthetic", help="reader name (default: synthetic)")
    parser.add_argument("--split", default=None, help="split to read (default: the reader's whole folder)")
    parser.add_argument("--count", type=int, default=400, help="first N frames (default 400)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.count <= 0:
        parser.error(f"--count must be > 0, got {args.count}")
    if args.body_in_view:
        try:
            width, height = (int(x) for x in args.size.lower().split("x"))
        except ValueError:
            parser.error(f"--size must be WxH (e.g. 320x240), got {args.size!r}")
        frames = body_in_view_samples(args.count, args.seed, width, height)
    else:
        from .readers import open_dataset

        frames = itertools.islice(iter(open_dataset(args.dataset, args.root, split=args.split)), args.count)
    samples = tqdm(frames, total=args.count, file=sys.stderr,
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

"""Localise and crop with numpy on the host vs torch on a device, and the whole pipeline
both ways (the estimator's frame_device):

    python -m hand_pose_ros.inference.frame_device_bench --frames 200 --device cuda \
        [--pipeline models/srnet_synthetic.pt --precision fp16 --iters 300] [--json]

Frames: `--frames` synthetic 640 x 480 scenes (hand, forearm, clutter, sensor noise),
rendered on --device, rounded to uint16 millimetres as a camera sends them. Each frame is
localised twice per path: without a seed (the first frame, or a lost hand) and seeded
with its own hand (tracking, the pose node's usual case). Torch times include the upload
of the frame (the estimator's cost of moving to the device). Wall and this thread's CPU
time, p50 / p95 in ms; `mismatches` counts detections that differ between the paths.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def percentiles(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def render_frames(count: int, device: str, seed: int = 5):
    """[(depth uint16 [480, 640], cam)] * count, rendered in batches of 50 on `device`."""
    import torch

    from ..data.synthetic import render_batch

    frames = []
    for start in range(0, count, 50):
        out = render_batch(min(50, count - start), torch.Generator().manual_seed(seed + start), device=device)
        depth = torch.round(out["depth_mm"]).clamp(0, 65535).to(torch.int32).cpu().numpy().astype(np.uint16)
        frames += [(d, out["cam"]) for d in depth]
    return frames


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (a.bbox, a.pixel_count, a.near_mm) == (b.bbox, b.pixel_count, b.near_mm) and \
        bool(np.allclose(a.com_uvd, b.com_uvd, rtol=0, atol=1e-9))


def time_localise(frames, device: str, half_cube_mm: float = 150.0, out_size: int = 128) -> dict:
    """Per-call times of locate (unseeded, tracked) and crop, numpy vs torch on `device`."""
    import torch

    from ..data.crop import crop_hand, crop_hand_torch
    from ..data.localise import HandLocaliser
    from ..data.localise_torch import FrameUploader, locate_tensor

    loc, upload = HandLocaliser(), FrameUploader(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = {key: [] for key in ("numpy_unseeded", "numpy_tracked", "device_unseeded", "device_tracked",
                                 "upload", "numpy_crop", "device_crop")}
    cpu = {key: [] for key in times}
    mismatches, found = 0, 0

    def timed(key, fn):
        sync()
        start, start_cpu = time.perf_counter(), time.thread_time()
        result = fn()
        sync()
        times[key].append((time.perf_counter() - start) * 1e3)
        cpu[key].append((time.thread_time() - start_cpu) * 1e3)
        return result

    for warm in (True, False):
        for depth, cam in (frames[:5] if warm else frames):
            first = timed("numpy_unseeded", lambda: loc.locate(depth, cam))
            seed = None if first is None else first.com_uvd
            tracked = timed("numpy_tracked", lambda: loc.locate(depth, cam, seed_uvd=seed))
            frame = timed("upload", lambda: upload(depth))
            got_first = timed("device_unseeded", lambda: locate_tensor(loc, upload(depth), cam))
            got_tracked = timed("device_tracked", lambda: locate_tensor(loc, upload(depth), cam, seed_uvd=seed))
            if tracked is not None:
                timed("numpy_crop", lambda: crop_hand(depth, tracked.com_uvd, cam, half_cube_mm, out_size))
                timed("device_crop", lambda: crop_hand_torch(frame, tracked.com_uvd, cam, half_cube_mm, out_size))
            if warm:
                for key in times:
                    times[key].clear()
                    cpu[key].clear()
                continue
            mismatches += (not _same(first, got_first)) + (not _same(tracked, got_tracked))
            found += tracked is not None
    return {"device": device, "frames": len(frames), "hands_found": found, "mismatches": mismatches,
            "wall_ms": {k: percentiles(v) for k, v in times.items() if v},
            "cpu_ms": {k: percentiles(v) for k, v in cpu.items() if v}}


def time_pipelines(model: str, device: str, precision: str, iters: int, warmup: int = 20) -> dict:
    """bench.time_pipeline with localise + crop in numpy and on `device`, one backend."""
    from .backends import create_backend
    from .bench import time_pipeline
    from .estimator import HandPoseEstimator

    opts = {"cuda_graph": True} if device.startswith("cuda") else {}
    backend = create_backend("torch", model, device=device, precision=precision, **opts)
    backend.warmup(1)
    out = {"model": model, "precision": precision, "backend": backend.describe()}
    for frame_device in ("numpy", device):
        result = time_pipeline(HandPoseEstimator(backend, frame_device=frame_device), iters, warmup)
        out[f"frame_device={frame_device}"] = {k: v for k, v in result.items()
                                                if k.endswith("_ms") or k in ("hand_found_fraction", "frames_per_s")}
    return out


def format_report(report: dict) -> str:
    lines = []
    loc = report["localise"]
    lines.append(f"localise + crop, {loc['frames']} frames on {loc['device']} (uint16 640x480), "
                 f"hands found {loc['hands_found']}, detections differing numpy vs torch: {loc['mismatches']}")
    for key, wall in loc["wall_ms"].items():
        c = loc["cpu_ms"][key]
        lines.append(f"  {key:16s} wall p50 {wall['p50']:.3f} p95 {wall['p95']:.3f} ms | "
                     f"cpu p50 {c['p50']:.3f} p95 {c['p95']:.3f} ms")
    if "pipeline" in report:
        p = report["pipeline"]
        lines.append(f"pipeline {p['model']} torch {p['precision']} cuda_graph={p['backend'].get('cuda_graph')}:")
        for key, result in p.items():
            if not key.startswith("frame_device="):
                continue
            stages = " ".join(f"{name[:-3]} {result[name]['p50']:.3f}" for name in
                              ("decode_ms", "localise_ms", "crop_ms", "infer_ms", "recover_ms") if name in result)
            lines.append(f"  {key:20s} total p50 {result['total_ms']['p50']:.3f} p95 {result['total_ms']['p95']:.3f} ms, "
                         f"cpu p50 {result['total_cpu_ms']['p50']:.3f} ms; stage p50s: {stages}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--pipeline", default=None, metavar="MODEL", help="also the whole pipeline with this model")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = {"localise": time_localise(render_frames(args.frames, args.device), args.device)}
    if args.pipeline:
        report["pipeline"] = time_pipelines(args.pipeline, args.device, args.precision, args.iters)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

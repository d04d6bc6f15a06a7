"""The whole per-frame pipeline, shared by the pose node, the evaluator and `hand-pose bench`:

    depth_mm [H,W] -> localise hand (centre of mass) -> crop + normalise [1,m,m]
      -> backend.infer_outputs -> recover (u px, v px, d mm) -> xyz (mm, camera optical frame)
                               -> handedness ("left" / "right", None without a handedness head)

    estimator = HandPoseEstimator.from_model_file("models/srnet.onnx")
    estimate = estimator.estimate(depth_mm, cam)          # Estimate, or None (no hand)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..camera import Intrinsics
from ..data.crop import crop_hand, crop_hand_torch, recover_uvd
from ..data.localise import HandLocaliser
from .backends.base import Backend

STAGES = ("localise", "crop", "infer", "recover")


def handedness_from_probability(left_probability: float | None) -> str | None:
    """P(left hand) -> "left" (> 0.5) / "right"; None (no handedness head, or not finite) -> None."""
    if left_probability is None or not np.isfinite(left_probability):
        return None
    return "left" if left_probability > 0.5 else "right"


@dataclass
class Estimate:
    """One hand in one frame. All arrays are finite: when the network's output is not
    (NaN / inf), `valid` is False, `reason` says why and the arrays are zeros."""
    keypoint_names: tuple[str, ...]
    uvd: np.ndarray            # [J, 3] (u px, v px, d mm) in the input frame
    xyz: np.ndarray            # [J, 3] mm, camera optical frame (x right, y down, z forward)
    confidence: np.ndarray     # [J] in [0, 1]
    uvd_norm: np.ndarray       # [J, 3] the network's normalised output
    com_uvd: np.ndarray        # [3] crop centre (u px, v px, d mm)
    crop_box: tuple[int, int, int, int]   # (left, top, right, bottom) px of the crop square (for drawing)
    half_cube_mm: float
    timings_ms: dict = field(default_factory=dict)   # stage -> ms (localise, crop, infer, recover, total)
    cpu_ms: dict = field(default_factory=dict)       # the same stages as the calling thread's CPU time
    valid: bool = True
    reason: str = ""
    left_probability: float | None = None  # P(left hand) from the network; None: the model has no head

    @property
    def handedness(self) -> str | None:
        """"left" / "right" as the network sees it; None when the model cannot tell."""
        return handedness_from_probability(self.left_probability)

    @property
    def mean_confidence(self) -> float:
        return float(self.confidence.mean()) if self.confidence.size else 0.0

    def seed_uvd(self) -> np.ndarray:
        """Where to look for the hand in the next frame: this frame's crop centre (the
        localiser's own centre of mass, independent of how well the network did)."""
        return self.com_uvd


def _invalid(estimate: Estimate, reason: str) -> Estimate:
    joints = len(estimate.keypoint_names)
    estimate.uvd = np.zeros((joints, 3))
    estimate.xyz = np.zeros((joints, 3))
    estimate.confidence = np.zeros(joints, np.float32)
    estimate.uvd_norm = np.zeros((joints, 3), np.float32)
    estimate.valid, estimate.reason = False, reason
    return estimate


class HandPoseEstimator:
    """Localise + crop + infer + recover for single frames or batches of frames."""

    def __init__(self, backend: Backend, localiser: HandLocaliser | None = None,
                 half_cube_mm: float | None = None, frame_device: str | None = None):
        """frame_device: where localisation and cropping read the frame's pixels. None or
        "numpy": numpy on the host; a torch device ("cuda", "cuda:1", "cpu"): torch there
        (the frame goes up once per call, the crop comes back for the backend). The results
        are the same (test/test_localise_torch.py); only where the time goes differs.
        Numpy is the default even beside a CUDA backend because it measured faster there:
        on the H200, whole pipeline p50 4.1 ms numpy vs 6.3 ms with the frame on the GPU
        (the localiser's decisions run on a 160 x 120 grid on the host, and each GPU refine
        step waits for its sums): `python -m hand_pose_ros.inference.frame_device_bench
        --frames 200 --device cuda --pipeline models/srnet_synthetic.pt --precision fp16`."""
        self.backend = backend
        self.frame_device = str(frame_device or "numpy")
        self._upload = None
        if self.frame_device != "numpy":
            from ..data.localise_torch import FrameUploader
            self._upload = FrameUploader(self.frame_device)
        self.config = backend.config
        self.localiser = localiser or HandLocaliser()
        self.half_cube_mm = float(half_cube_mm if half_cube_mm is not None else self.config.half_cube_mm)
        if not self.half_cube_mm > 0:
            raise ValueError(f"half_cube_mm must be > 0, got {half_cube_mm!r}")
        self.keypoint_names = tuple(self.config.keypoint_names)

    @classmethod
    def from_model_file(cls, path, backend: str = "auto", device: str | None = None,
                        precision: str | None = None, localiser: HandLocaliser | None = None,
                        half_cube_mm: float | None = None, **opts) -> "HandPoseEstimator":
        """Load `path` (.pt checkpoint or .onnx) with the named backend ('auto', 'torch',
        'onnxruntime', 'tensorrt'); opts go to the backend (see backends.create_backend)."""
        from .backends import create_backend
        return cls(create_backend(backend, path, device=device, precision=precision, **opts),
                   localiser=localiser, half_cube_mm=half_cube_mm)

    # ------------------------------------------------------------------ per frame
    def estimate(self, depth_mm: np.ndarray, cam: Intrinsics, seed=None) -> Estimate | None:
        """depth_mm [H, W] float32 (or uint16) mm (0 = invalid) -> Estimate, or None when no hand is found.

        seed: last frame's hand position, (u, v, d) or an Estimate, to keep tracking it."""
        return self.estimate_batch([(depth_mm, cam, seed)])[0]

    def estimate_batch(self, frames) -> list:
        """frames: a list of (depth_mm, cam) or (depth_mm, cam, seed). One backend call for
        all frames with a hand. Returns one Estimate or None per frame, in order."""
        start, start_cpu = time.perf_counter(), time.thread_time()
        results: list = [None] * len(frames)
        pending = []                                               # (index, cam, crop)
        wall = dict.fromkeys(STAGES, 0.0)                          # stage -> s, summed over frames
        cpu = dict.fromkeys(STAGES, 0.0)
        for index, frame in enumerate(frames):
            depth_mm, cam, seed = (tuple(frame) + (None,))[:3]
            depth_mm = self._check_depth(depth_mm)
            if isinstance(seed, Estimate):
                seed = seed.seed_uvd()
            t0, c0 = time.perf_counter(), time.thread_time()
            if self._upload is None:
                frame, found = depth_mm, self.localiser.locate(depth_mm, cam, seed_uvd=seed)
            else:   # the frame goes up once; localise and crop read it there
                from ..data.localise_torch import locate_tensor
                frame = self._upload(depth_mm)
                found = locate_tensor(self.localiser, frame, cam, seed_uvd=seed)
            t1, c1 = time.perf_counter(), time.thread_time()
            wall["localise"] += t1 - t0
            cpu["localise"] += c1 - c0
            if found is None:
                continue
            cut = crop_hand if frame is depth_mm else crop_hand_torch
            crop = cut(frame, found.com_uvd, cam, self.half_cube_mm, self.config.input_size)
            wall["crop"] += time.perf_counter() - t1
            cpu["crop"] += time.thread_time() - c1
            pending.append((index, cam, crop))
        if not pending:
            return results

        t0, c0 = time.perf_counter(), time.thread_time()
        batch = np.stack([crop.image for _, _, crop in pending])[:, None]  # [B,1,m,m]
        outputs = self.backend.infer_outputs(batch)                # [B,J,3], [B,J], [B] or None
        t1, c1 = time.perf_counter(), time.thread_time()
        wall["infer"], cpu["infer"] = t1 - t0, c1 - c0

        left = outputs.left_probability
        for k, (index, cam, crop) in enumerate(pending):
            results[index] = self._recover(outputs.uvd[k], outputs.confidence[k], crop, cam)
            if left is not None and np.isfinite(left[k]):
                results[index].left_probability = float(left[k])
        wall["recover"], cpu["recover"] = time.perf_counter() - t1, time.thread_time() - c1

        # Per-frame timing: the shared stages split evenly over the frames that used them.
        count = len(pending)
        shares = {"localise": len(frames), "crop": count, "infer": count, "recover": count}
        timings = {stage: wall[stage] * 1e3 / shares[stage] for stage in STAGES}
        timings["total"] = (time.perf_counter() - start) * 1e3 / len(frames)
        cpu_ms = {stage: cpu[stage] * 1e3 / shares[stage] for stage in STAGES}
        cpu_ms["total"] = (time.thread_time() - start_cpu) * 1e3 / len(frames)
        for index, _, _ in pending:
            results[index].timings_ms = dict(timings)
            results[index].cpu_ms = dict(cpu_ms)
        return results

    # ------------------------------------------------------------------ helpers
    def _recover(self, uvd_norm: np.ndarray, confidence: np.ndarray, crop, cam: Intrinsics) -> Estimate:
        size = crop.size
        estimate = Estimate(keypoint_names=self.keypoint_names, uvd=np.zeros(0), xyz=np.zeros(0),
                            confidence=confidence.astype(np.float32), uvd_norm=uvd_norm.astype(np.float32),
                            com_uvd=np.asarray(crop.com_uvd, np.float64),
                            crop_box=(crop.left, crop.top, crop.left + size, crop.top + size),
                            half_cube_mm=float(crop.half_cube_mm))
        if not (np.isfinite(uvd_norm).all() and np.isfinite(confidence).all()):
            return _invalid(estimate, "non-finite network output")
        uvd = recover_uvd(uvd_norm.astype(np.float64), crop)       # [J,3] px, px, mm
        if not (uvd[:, 2] > 0).all():
            return _invalid(estimate, "a joint's recovered depth is not in front of the camera")
        estimate.uvd = uvd
        estimate.xyz = cam.uvd_to_xyz(uvd)                          # [J,3] mm
        if not np.isfinite(estimate.xyz).all():
            return _invalid(estimate, "non-finite xyz")
        return estimate

    @staticmethod
    def _check_depth(depth_mm) -> np.ndarray:
        depth_mm = np.asarray(depth_mm)
        if depth_mm.ndim != 2:
            raise ValueError(f"depth_mm must be a 2-D [H, W] image in mm, got shape {depth_mm.shape}")
        # uint16 millimetres (a camera's 16UC1) are used as they are: localise and crop read
        # only parts of the frame and give the same results as on its float32 copy
        if depth_mm.dtype not in (np.float32, np.uint16):
            depth_mm = depth_mm.astype(np.float32)
        return depth_mm

    def describe(self) -> dict:
        return {**self.backend.describe(), "half_cube_mm": self.half_cube_mm, "frame_device": self.frame_device,
                "keypoint_names": list(self.keypoint_names)}

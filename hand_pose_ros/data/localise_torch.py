"""HandLocaliser on a depth frame that lives on a torch device (a CUDA GPU, or the CPU).

    detection = locate_tensor(HandLocaliser(), depth_tensor, cam, seed_uvd)   # [H, W]

The search itself is data/localise.py's, unchanged: locate_tensor hands the localiser the
frame wrapped in DevicePixels,
which does the work that reads the frame's pixels where the frame is (cutting the coarse
grid, and each refinement step's depth test and sums); the coarse grid (~160 x 120) comes
to the host once, and everything that decides (objects, surfaces, windows, the ball's shape,
convergence, area limits) runs there in numpy on that grid and on the few sums each
refinement step returns. Results equal the numpy path's: every sum is of whole numbers
(indices, and the depths of a millimetre frame) or of float32 depths in float64 (equal to
rounding; test/test_localise_torch.py).
"""
from __future__ import annotations

import numpy as np
import torch

from ..camera import Intrinsics
from .localise import BallSums, HandDetection, HandLocaliser


def locate_tensor(localiser: HandLocaliser, depth, cam: Intrinsics, seed_uvd=None) -> HandDetection | None:
    """localiser.locate for a torch frame [H, W] (mm, 0 invalid), its pixels read on its device."""
    return localiser.locate_pixels(DevicePixels(depth), cam, seed_uvd)


class DevicePixels:
    """localise.HostPixels' interface for a torch frame [H, W] (mm, 0 invalid; any real
    dtype, e.g. uint16 millimetres or float32) on any device. The frame is read as float32
    on its device (a uint16 frame compares exactly as its float32 copy)."""

    def __init__(self, depth):
        if depth.dim() != 2:
            raise ValueError(f"depth_mm must be a 2-D [H, W] image, got shape {tuple(depth.shape)}")
        self.depth = depth if depth.dtype == torch.float32 else depth.to(torch.float32)
        self.device = depth.device
        self.shape = tuple(depth.shape)

    def coarse(self, stride: int) -> np.ndarray:
        """Every stride-th pixel, float32 [ceil(H/s), ceil(W/s)] on the host (one copy down)."""
        return self.depth[::stride, ::stride].contiguous().cpu().numpy()

    def ball_sums(self, window, low, high, shape, rows, cols) -> BallSums:
        """HostPixels.ball_sums: the ball's shape [R, C] (host geometry) goes up, four
        sums come down."""
        device = self.device
        roi = self.depth[window]                                            # [R, C] view
        mask = (roi > float(low)) & (roi < float(high))
        mask &= torch.from_numpy(np.ascontiguousarray(shape)).to(device, non_blocking=True)
        depth_in = torch.where(mask, roi, torch.zeros((), device=device, dtype=roi.dtype))
        col_count = mask.sum(dim=0, dtype=torch.float64)                    # [C] whole numbers
        row_count = mask.sum(dim=1, dtype=torch.float64)                    # [R]
        col_index = torch.arange(window[1].start, window[1].stop, window[1].step, device=device, dtype=torch.float64)
        row_index = torch.arange(window[0].start, window[0].stop, window[0].step, device=device, dtype=torch.float64)
        sums = torch.stack([col_count.sum(), col_count @ col_index, row_count @ row_index,
                            depth_in.sum(dtype=torch.float64)]).cpu().tolist()   # one copy down
        count = int(sums[0])
        if count == 0:
            return BallSums(0, 0.0, 0.0, 0.0, None)
        return BallSums(count, sums[1], sums[2], sums[3], (roi, mask, depth_in, col_count, row_count))

    def ball_extent(self, sums: BallSums):
        """HostPixels.ball_extent, from one copy down."""
        _, _, depth_in, col_count, row_count = sums.state
        square = depth_in.to(torch.float64).square().sum()
        out = torch.cat([square[None], row_count, col_count]).cpu().numpy()
        rows = row_count.shape[0]
        return float(out[0]), out[1:1 + rows] > 0, out[1 + rows:] > 0

    def ball_arrays(self, sums: BallSums):
        """(roi, mask) of that step on the host (only for a large region's plane fit)."""
        roi, mask = sums.state[:2]
        return roi.cpu().numpy(), mask.cpu().numpy()


class FrameUploader:
    """numpy frames [H, W] (uint16 or float32 mm) -> float32 tensors on `device`, one copy
    up each: through a reused pinned buffer on a GPU (no pageable staging copy), converted
    to float32 there."""

    def __init__(self, device):
        self.device = torch.device(device)
        self._staging = None

    def __call__(self, depth_mm: np.ndarray):
        if self.device.type == "cpu":
            return torch.from_numpy(np.array(depth_mm, dtype=np.float32))
        raw = np.asarray(depth_mm)
        if raw.dtype == np.uint16 and not hasattr(torch, "uint16"):
            raw = raw.view(np.int16)                   # an older torch has no uint16: fixed up below
        staging = self._staging
        if staging is None or staging.shape != raw.shape or staging.numpy().dtype != raw.dtype:
            staging = self._staging = torch.from_numpy(np.empty_like(raw)).pin_memory()
        # Reusing the buffer is safe: the last frame copied from it was read since (its coarse
        # grid came back to the host, after the copy in stream order).
        np.copyto(staging.numpy(), raw)
        frame = staging.to(self.device, non_blocking=True)
        if frame.dtype == torch.int16:
            return (frame.to(torch.int32) & 0xFFFF).to(torch.float32)
        return frame.to(torch.float32)

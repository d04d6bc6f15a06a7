"""Find the hand in a full depth scene: nearest-object segmentation plus centre of mass.

The hand is taken to be the nearest object within `depth_range_mm`:
1. Coarse search on a subsampled copy (every `stride`-th pixel, ~160 px wide): the nearest
   depth is a low order statistic (the `near_pixels`-th nearest valid pixel), so a few
   flying pixels do not count as an object.
2. Keep coarse pixels within `depth_window_mm` behind it, split them into 8-connected
   objects, and take the object of plausible size that holds the nearest pixels (the hand,
   not a table elsewhere at the same depth).
3. Refinement inside a small window at twice the coarse resolution: the centre of mass of the valid pixels
   within a ball-like region (`hand_radius_mm` around the current centre: a disc in the
   image of that metric radius, and the same range in depth) that stays within the depth
   window behind the nearest point; repeated `refine_steps` times so the centre slides from
   the middle of the object's front (its pixels within `front_slab_mm` of the nearest depth,
   often fingertips) to the middle of the hand, and the forearm or body
   behind it are cut off (stops early once the centre moves less than half a pixel).
4. The result is "no hand" (None) when nothing valid is in range, or when the region's
   metric area (sum over pixels of d^2 / (fx*fy)) is too small for a hand, or too large
   and flat (RMS depth off its best-fit plane under `min_relief_mm`: a wall or a table; a
   hand lying on a table fills the ball as well, but rises off it). Such a flat object is
   dropped and the search looks behind it (a table corner nearer than the hand).
   Objects in the depth slab too small for a hand (specks, flying pixels) are skipped
   before refining; a region that turns out too small is removed and the search repeats
   behind it (up to `max_tries` times).

Before step 2, the scene is split at depth jumps (a 4-neighbour more than
max(jump_mm, jump_fraction*d) nearer) and pieces larger than surface_area_mm2 (a table or
wall close behind the hand) are removed; then the region is the foreground within
`reach_mm` of the nearest point (so the refinement cannot walk down the forearm). If no
foreground is left (a hand resting on a surface), the plain search above runs instead.

A hand can also be part of such a large piece: a forearm reaching back to a tilted table
joins hand, arm and table without a depth jump. So the scene's nearest "interior front" is
tried as well: the nearest thin depth slab (60 mm) whose objects do not meet the image
border over more than max_border_contact_mm (a table nearest at the image edge does; a hand
or forearm cut by the border meets it over its width at most); slabs that do are dropped and
the search looks behind them. That front wins when it is more than prefer_nearer_mm in front
of the foreground's pick (or when there is no such pick).

With `seed_uvd` (last frame's centre) the search first looks only near the seed, so a
tracked hand is kept even when something else comes nearer elsewhere in the image.

The frame's pixels are read only through a "pixels" object (HostPixels here, numpy;
localise_torch.DevicePixels for a frame on a torch device): the coarse grid, and each
refinement step's depth test and sums. Everything else, every decision included, is this
module's numpy code on the coarse grid, whichever holds the frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from ..camera import Intrinsics

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


@dataclass
class HandDetection:
    com_uvd: np.ndarray                  # [3] centre of mass (u px, v px, d mm)
    pixel_count: int                     # pixels in the hand region (estimated from the samples)
    bbox: tuple[int, int, int, int]      # (left, top, right, bottom) px, right/bottom exclusive
    area_mm2: float                      # metric area of the region seen from the camera
    near_mm: float                       # the nearest depth the search started from


class HandLocaliser:
    def __init__(self, depth_range_mm=(150.0, 1200.0), depth_window_mm: float = 200.0,
                 hand_radius_mm: float = 130.0, min_area_mm2: float = 1500.0,
                 max_area_mm2: float = 42000.0, near_pixels: int = 8, coarse_width: int = 160,
                 refine_steps: int = 4, seed_radius_mm: float = 150.0, max_tries: int = 4,
                 jump_mm: float = 20.0, jump_fraction: float = 0.04, surface_area_mm2: float = 90000.0,
                 reach_mm: float = 150.0, prefer_nearer_mm: float = 40.0,
                 max_border_contact_mm: float = 100.0, min_relief_mm: float = 20.0,
                 body_width_mm: float = 130.0, front_slab_mm: float = 8.0):
        near, far = (float(x) for x in depth_range_mm)
        if not 0 <= near < far:
            raise ValueError(f"depth_range_mm must be (near, far) with 0 <= near < far, got {depth_range_mm}")
        if min(depth_window_mm, hand_radius_mm, seed_radius_mm) <= 0:
            raise ValueError("depth_window_mm, hand_radius_mm and seed_radius_mm must be > 0")
        if not 0 <= min_area_mm2 < max_area_mm2:
            raise ValueError(f"need 0 <= min_area_mm2 < max_area_mm2, got {min_area_mm2}, {max_area_mm2}")
        self.depth_range_mm = (near, far)
        self.depth_window_mm = float(depth_window_mm)
        self.hand_radius_mm = float(hand_radius_mm)
        self.min_area_mm2 = float(min_area_mm2)
        self.max_area_mm2 = float(max_area_mm2)
        self.near_pixels = max(1, int(near_pixels))
        self.coarse_width = max(16, int(coarse_width))
        self.refine_steps = max(1, int(refine_steps))
        self.seed_radius_mm = float(seed_radius_mm)
        self.max_tries = max(1, int(max_tries))
        self.jump_mm = float(jump_mm)
        self.jump_fraction = float(jump_fraction)
        self.surface_area_mm2 = float(surface_area_mm2)
        self.reach_mm = float(reach_mm)
        self.prefer_nearer_mm = float(prefer_nearer_mm)
        self.max_border_contact_mm = float(max_border_contact_mm)
        self.min_relief_mm = float(min_relief_mm)
        self.body_width_mm = float(body_width_mm)
        self.front_slab_mm = float(front_slab_mm)

    def locate(self, depth_mm: np.ndarray, cam: Intrinsics, seed_uvd=None) -> HandDetection | None:
        """depth_mm [H, W] (mm, 0 invalid) -> the hand's HandDetection, or None (no hand).
        (localise_torch.locate_tensor: the same for a frame on a torch device.)"""
        return self.locate_pixels(HostPixels(depth_mm), cam, seed_uvd)

    def locate_pixels(self, pixels, cam: Intrinsics, seed_uvd=None) -> HandDetection | None:
        """locate() on a frame wrapped in HostPixels or localise_torch.DevicePixels. Every
        decision is made here on the host, from the coarse grid and the refinement's sums."""
        stride = max(1, pixels.shape[1] // self.coarse_width)
        coarse = pixels.coarse(stride)                             # [H/s, W/s] float32, numpy
        near, far = self.depth_range_mm
        in_range = (coarse > near) & (coarse < far)
        if seed_uvd is not None:
            found = self._search(pixels, cam, coarse, stride, in_range & self._seed_mask(coarse, stride, cam, seed_uvd))
            if found is not None:
                return found
        return self._search(pixels, cam, coarse, stride, in_range)

    # ------------------------------------------------------------------ steps

    def _seed_mask(self, coarse, stride, cam, seed_uvd):
        """Coarse pixels within seed_radius_mm of the seed (image disc x depth range)."""
        u, v, d = (float(x) for x in np.asarray(seed_uvd, dtype=np.float64).reshape(3))
        if not (math.isfinite(u) and math.isfinite(v) and math.isfinite(d) and d > 0):
            return np.zeros(coarse.shape, dtype=bool)
        radius_px = self.seed_radius_mm * abs(cam.fx) / d / stride
        # only the disc's bounding box (a row beyond it on each side) can be inside
        box, disc = _disc(v / stride, u / stride, radius_px, coarse.shape)
        mask = np.zeros(coarse.shape, dtype=bool)
        mask[box] = disc & (np.abs(coarse[box] - d) < self.seed_radius_mm)
        return mask

    def _search(self, pixels, cam, coarse, stride, candidates):
        # Split the scene at depth jumps and drop the pieces too large to be a hand and arm
        # (the table, wall or floor behind the hand): the hand then stays apart from a
        # surface close behind it. If nothing is left (e.g. a hand resting on the table),
        # search the whole scene.
        foreground = candidates & ~self._surfaces(coarse, candidates, stride, cam)
        found = None
        if foreground.any():
            found = self._search_objects(pixels, cam, coarse, stride, foreground, ball=True)
        # The hand can also lie on a "surface" piece: a forearm reaching back to the table
        # joins hand, arm and table without a depth jump. The scene's nearest front that does
        # not run out of the image (as a tilted table does) is then the hand, when it is well
        # in front of the foreground's pick.
        interior, interior_near = self._interior_front(coarse, candidates, stride, cam)
        if interior is not None and (found is None or interior_near < found.near_mm - self.prefer_nearer_mm):
            whole = self._search_objects(pixels, cam, coarse, stride, interior, ball=True)
            if whole is not None and (found is None or whole.near_mm < found.near_mm - self.prefer_nearer_mm):
                return whole
        if found is not None:
            return found
        return self._search_objects(pixels, cam, coarse, stride, candidates, ball=False)

    def _interior_front(self, coarse, candidates, stride, cam, slab_mm=60.0, tries=3):
        """(candidates from the nearest depth slab that is not a surface running out of the
        image [H/s, W/s] bool, that slab's near depth), or (None, inf). A tilted table comes
        nearest along a long stretch of the image border; a hand's front is inside the image
        or meets the border over a hand's or forearm's width at most."""
        box = _box_around(candidates)
        if box is None:
            return None, math.inf
        # Only the candidates' box matters (the same answer, faster near a tracked hand); the
        # ring is the image's border seen in it.
        ring = _border(coarse.shape, width=1)[box]
        full_shape, coarse, candidates = candidates.shape, coarse[box], candidates[box].copy()
        for _ in range(tries):
            flat = np.flatnonzero(candidates)
            if flat.size == 0:
                return None, math.inf
            values = coarse.ravel()[flat]
            k = min(self.near_pixels, values.size) - 1
            near_d = float(np.partition(values, k)[k])
            slab = candidates & (coarse < near_d + slab_mm)
            on_ring = ring & slab
            border_mm = float(coarse[on_ring].sum(dtype=np.float64)) * (stride / abs(cam.fx))
            if _surely_below(border_mm, self.max_border_contact_mm):
                # not even all of the slab together meets the border that long (the usual
                # case, a hand inside the image): no object runs out, no need to label them
                found = np.zeros(full_shape, dtype=bool)
                found[box] = candidates
                return found, near_d
            labels, count = _label(slab, _EIGHT_CONNECTED)
            # metric length of each slab object along the image border
            contact_mm = np.bincount(labels[on_ring], weights=coarse[on_ring], minlength=count + 1) * (stride / abs(cam.fx))
            running_out = contact_mm > self.max_border_contact_mm
            running_out[0] = False
            if not running_out.any():
                found = np.zeros(full_shape, dtype=bool)
                found[box] = candidates
                return found, near_d
            # drop the surfaces' fronts and look behind them
            candidates &= ~running_out[labels]
        return None, math.inf

    def _surfaces(self, coarse, candidates, stride, cam):
        """Coarse pixels of the large smooth surfaces ([H/s, W/s] bool). A depth jump (a
        4-neighbour more than the gap nearer) separates pieces; pieces larger than
        surface_area_mm2 are surfaces, not a hand and arm."""
        surface = np.zeros(coarse.shape, dtype=bool)
        box = _box_around(candidates, margin=1)
        if box is not None:
            # Every step looks one pixel beyond a candidate at most: the candidates' box with
            # a one-pixel margin gives the same answer as the whole image, several times
            # faster near a tracked hand.
            surface[box] = self._surfaces_in_box(coarse[box], candidates[box], stride, cam, box, coarse.shape)
        return surface

    def _surfaces_in_box(self, coarse, candidates, stride, cam, box, full_shape):
        sample_area = stride * stride / abs(cam.fx * cam.fy)
        if _surely_below(float(np.sum(coarse[candidates] ** 2, dtype=np.float64)) * sample_area, self.surface_area_mm2):
            # all candidates together are smaller than a surface (the usual case near a
            # tracked hand): no piece of them can be one
            return np.zeros(coarse.shape, dtype=bool)
        gap = np.maximum(self.jump_mm, self.jump_fraction * coarse)         # [H/s, W/s]
        depth = np.where(candidates, coarse, np.float32(1e6))     # nothing: never nearer
        far_side = np.zeros(coarse.shape, dtype=bool)
        far_side[1:] |= depth[1:] - depth[:-1] > gap[1:]
        far_side[:-1] |= depth[:-1] - depth[1:] > gap[:-1]
        far_side[:, 1:] |= depth[:, 1:] - depth[:, :-1] > gap[:, 1:]
        far_side[:, :-1] |= depth[:, :-1] - depth[:, 1:] > gap[:, :-1]
        pieces = candidates & ~far_side
        # 4-connected: a diagonal step would leak from the hand's outline onto the surface
        labels, count = _label(pieces, _FOUR_CONNECTED)
        inside = np.flatnonzero(pieces)
        piece_of = labels.ravel()[inside]
        areas = np.bincount(piece_of, weights=coarse.ravel()[inside] ** 2, minlength=count + 1) * (stride * stride / abs(cam.fx * cam.fy))
        large = areas > self.surface_area_mm2
        large[0] = False
        surface = large[labels] & pieces
        if surface.any() and self.body_width_mm > 0:
            # A hand and arm joined to the operator's body (or a table) without a depth
            # jump make one large piece: only its thick part, where a square of
            # body_width_mm fits (an opening), is surface; the thin parts sticking out of it
            # (hand, forearm) stay foreground. Sized at the nearest depth, where a square
            # covers the fewest pixels, so nothing nearer counts as thick.
            near_d = float(np.min(coarse[candidates]))
            half = int(0.5 * self.body_width_mm * abs(cam.fx) / near_d / stride)
            if half >= 1:  # the opening counts the image's own border as inside: on the whole image
                whole = np.zeros(full_shape, dtype=bool)
                whole[box] = surface
                surface = _box_open(whole, half)[box]
        # the far side of a jump belongs to the surface it touches (the outline of the table
        # around the hand); inside the hand it is a palm pixel behind a finger, kept
        return surface | (far_side & candidates & _dilate(surface))

    def _search_objects(self, pixels, cam, coarse, stride, candidates, ball):
        candidates = candidates.copy()
        coarse_flat = coarse.ravel()
        # metric area of one coarse sample at depth z is z^2 * this
        sample_area = stride * stride / abs(cam.fx * cam.fy)
        for _ in range(self.max_tries):
            flat = np.flatnonzero(candidates)
            if flat.size == 0:
                return None
            values = coarse_flat[flat]
            k = min(self.near_pixels, values.size) - 1
            near_d = float(np.partition(values, k)[k])                 # the k-th nearest depth
            window = candidates & (coarse < near_d + self.depth_window_mm)
            labels, _ = _label(window, _EIGHT_CONNECTED)
            # metric area of every connected object in this depth slab
            inside = np.flatnonzero(window)
            object_of = labels.ravel()[inside]
            areas = np.bincount(object_of, weights=coarse_flat[inside] ** 2) * sample_area
            solid = areas >= 0.5 * self.min_area_mm2     # coarse estimate: some slack
            solid[0] = False                              # label 0 is the background
            if not solid.any():
                candidates &= ~window   # only specks and flying pixels here: look behind them
                continue
            # the nearest object of a plausible size
            keep = inside[solid[object_of]]
            values = coarse_flat[keep]
            k = min(self.near_pixels, values.size) - 1
            nearest_at = np.argpartition(values, k)[k]
            nearest, near_d = int(keep[nearest_at]), float(values[nearest_at])
            start_v, start_u = divmod(nearest, coarse.shape[1])
            if ball:
                # the foreground near the start, whichever piece it is on (a finger in front
                # of the palm is cut off it by its depth jump): the forearm beyond reach_mm
                # cannot pull the centre down the arm
                reach_px = self.reach_mm * abs(cam.fx) / near_d / stride
                if self.front_slab_mm > 0:
                    # Start from the middle of the object's front (its pixels within
                    # front_slab_mm of the nearest depth), not from one pixel: several
                    # fingertips are often equally near, and 1 mm of sensor noise moved the
                    # nearest one, and with it the region and the centre, by up to 90 px
                    # (test_localise_stability.py; the README gives the measurement).
                    box, disc = _disc(start_v, start_u, reach_px, coarse.shape)
                    front = disc & (labels[box] == labels.ravel()[nearest]) & (coarse[box] < near_d + self.front_slab_mm)
                    front_rows, front_cols = np.nonzero(front)
                    start_v = box[0].start + float(front_rows.mean())
                    start_u = box[1].start + float(front_cols.mean())
                # only the disc's box can hold the region: the rest stays False
                box, disc = _disc(start_v, start_u, reach_px, coarse.shape)
                region = np.zeros(coarse.shape, dtype=bool)
                region[box] = window[box] & disc
            else:
                region = labels == labels.ravel()[nearest]             # [H/s, W/s]
            start = (start_u * stride, start_v * stride, near_d)
            detection, relief_mm = self._refine(pixels, cam, region, stride, start, near_d)
            if detection is not None and detection.area_mm2 > self.max_area_mm2 and relief_mm < self.min_relief_mm:
                # a wall or a table nearest to the camera, not a hand: drop its whole
                # object and look behind it
                candidates &= labels != labels.ravel()[nearest]
                continue
            if detection is not None and detection.area_mm2 >= self.min_area_mm2:
                return detection
            candidates &= ~region  # too small after all: drop it, try the next object
        return None

    def _refine(self, pixels, cam, region, stride, start, near_d):
        """Centre of mass around `start`, restricted to the coarse region's neighbourhood
        and the depth window behind near_d. Runs on every `step`-th pixel (half the coarse
        stride: 2 at 640 x 480), plenty for a centre of mass and 4x cheaper than every pixel.
        Returns (HandDetection or None, relief_mm): relief_mm is the RMS depth off the
        region's best-fit plane, measured only for regions larger than max_area_mm2 (else 0).
        The window and the ball's shape (pure geometry) are computed here; `pixels` only
        tests the frame's depths against them and sums (on the host or on a device)."""
        height, width = pixels.shape
        step = max(1, stride // 2)
        near, far = self.depth_range_mm
        lo, hi = near, min(far, near_d + self.depth_window_mm)
        u, v, d = start
        fx, fy = abs(cam.fx), abs(cam.fy)
        # the coarse region grown by one cell, so pixels between samples at its edge count
        grown = region if stride == 1 else _dilate(region)
        # No pixel outside the rows and columns of grown's cells is ever in the mask: each
        # window is cut to them (about a third of it around a hand; the same pixels count)
        cells = _box_around(grown)
        if cells is None:
            return None, 0.0
        row_span = _pixel_span(cells[0], stride, grown.shape[0], height)
        col_span = _pixel_span(cells[1], stride, grown.shape[1], width)
        for _ in range(self.refine_steps):
            # window of the ball's radius (in px at the current depth) around the centre,
            # aligned to the step grid
            radius_u = self.hand_radius_mm * fx / d
            radius_v = self.hand_radius_mm * fy / d
            left = max(0, int(u - radius_u)) // step * step
            top = max(0, int(v - radius_v)) // step * step
            right, bottom = min(width, int(u + radius_u) + 1), min(height, int(v + radius_v) + 1)
            if left >= right or top >= bottom:
                return None, 0.0
            top, bottom = _on_grid(top, bottom, step, *row_span)
            left, right = _on_grid(left, right, step, *col_span)
            if left >= right or top >= bottom:
                return None, 0.0
            cols = np.arange(left, right, step)
            rows = np.arange(top, bottom, step)
            # the ball's disc, on the coarse region's object (pixels whose coarse cell is in it)
            shape = (((rows - v) / radius_v) ** 2)[:, None] + (((cols - u) / radius_u) ** 2)[None, :] < 1.0
            shape &= _upsample_mask(grown, stride, rows, cols)
            # the depth window and the ball's depth range in one interval; float32 bounds, so
            # a uint16 frame compares exactly as its float32 copy would
            low = np.float32(max(lo, d - self.hand_radius_mm))
            high = np.float32(min(hi, d + self.hand_radius_mm))
            sums = pixels.ball_sums((slice(top, bottom, step), slice(left, right, step)), low, high, shape, rows, cols)
            if sums.count == 0:
                return None, 0.0
            new_u = sums.col_sum / sums.count
            new_v = sums.row_sum / sums.count
            new_d = sums.depth_sum / sums.count
            moved = abs(new_u - u) + abs(new_v - v) + abs(new_d - d) * fx / new_d
            u, v, d = new_u, new_v, new_d
            if moved < 0.5:      # converged to within half a pixel
                break
        # each sample stands for step x step pixels
        square_sum, row_used, col_used = pixels.ball_extent(sums)
        area = square_sum * step * step / (fx * fy)
        used_cols, used_rows = cols[col_used], rows[row_used]
        bbox = (int(used_cols[0]), int(used_rows[0]), int(used_cols[-1]) + step, int(used_rows[-1]) + step)
        relief = _plane_rms(*pixels.ball_arrays(sums), rows, cols) if area > self.max_area_mm2 else 0.0
        return HandDetection(com_uvd=np.array([u, v, d]), pixel_count=sums.count * step * step, bbox=bbox,
                             area_mm2=area, near_mm=near_d), relief


class BallSums(NamedTuple):
    """One refinement step's sums over its masked pixels: the count, the sums of their
    column and row indices (whole numbers, as float) and of their depths (float64);
    `state` is what the pixels' owner keeps for ball_extent / ball_arrays of that step."""
    count: int
    col_sum: float
    row_sum: float
    depth_sum: float
    state: object


class HostPixels:
    """A numpy frame's pixel work for HandLocaliser: the coarse grid and the sums of one
    refinement step (localise_torch.DevicePixels does the same on a torch device)."""

    def __init__(self, depth_mm):
        depth_mm = np.asarray(depth_mm)
        if depth_mm.ndim != 2:
            raise ValueError(f"depth_mm must be a 2-D [H, W] image, got shape {depth_mm.shape}")
        self.depth = depth_mm
        self.shape = depth_mm.shape

    def coarse(self, stride: int) -> np.ndarray:
        """Every stride-th pixel, float32 [ceil(H/s), ceil(W/s)]."""
        return np.ascontiguousarray(self.depth[::stride, ::stride], dtype=np.float32)

    def ball_sums(self, window, low, high, shape, rows, cols) -> BallSums:
        """Sums over the window's pixels (a (row slice, column slice) of the frame, R x C)
        with low < depth < high where `shape` [R, C] bool is True; rows [R], cols [C] are
        their frame indices."""
        roi = self.depth[window]                                          # view
        mask = (roi > low) & (roi < high)
        mask &= shape
        count = int(np.count_nonzero(mask))
        if count == 0:
            return BallSums(0, 0.0, 0.0, 0.0, None)
        depth_in, depth_sum = _masked_depth(roi, mask)
        counts = mask.view(np.uint8)            # a bool is one byte: per-column / per-row counts
        return BallSums(count, float(counts.sum(axis=0, dtype=np.int64) @ cols),
                        float(counts.sum(axis=1, dtype=np.int64) @ rows), depth_sum, (roi, mask, depth_in))

    def ball_extent(self, sums: BallSums):
        """(sum of the squared depths (float64), rows used [R] bool, columns used [C] bool)
        of the step that gave `sums`."""
        _, mask, depth_in = sums.state
        return float(np.sum(np.square(depth_in, dtype=np.float64))), mask.any(axis=1), mask.any(axis=0)

    def ball_arrays(self, sums: BallSums):
        """(roi [R, C], mask [R, C] bool) of that step, numpy."""
        roi, mask, _ = sums.state
        return roi, mask


def _surely_below(total: float, limit: float) -> bool:
    """total < limit with room for rounding: then no part of what `total` sums (non-negative
    terms, summed in another order) can exceed limit."""
    return total < limit * (1.0 - 1e-9)


def _box_around(mask, margin: int = 0):
    """(row slice, column slice) of mask's True pixels grown by `margin` (clipped to the
    image), or None when there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return (slice(max(0, rows[0] - margin), min(height, rows[-1] + 1 + margin)),
            slice(max(0, cols[0] - margin), min(width, cols[-1] + 1 + margin)))


def _pixel_span(cell_slice: slice, stride: int, cells: int, pixels: int) -> tuple[int, int]:
    """[start, stop) of the frame pixels whose nearest coarse cell (_upsample_mask's rule,
    the last cell taking everything beyond it) lies in cell_slice."""
    half = stride // 2
    start = max(0, cell_slice.start * stride - half)
    stop = pixels if cell_slice.stop >= cells else min(pixels, cell_slice.stop * stride - half)
    return start, stop


def _on_grid(start: int, stop: int, step: int, low: int, high: int) -> tuple[int, int]:
    """[start, stop) on the grid start + k*step, cut to [low, high)."""
    if low > start:
        start += -(-(low - start) // step) * step
    return start, min(stop, high)


def _disc(centre_row: float, centre_col: float, radius: float, shape):
    """(box, disc): the (row slice, column slice) around a disc of `radius` cells and the
    disc within it ([rows, cols] bool: squared distance to the centre < radius^2)."""
    top, bottom = _span(centre_row, radius, shape[0])
    left, right = _span(centre_col, radius, shape[1])
    rows = (np.arange(top, bottom) - centre_row) ** 2
    cols = (np.arange(left, right) - centre_col) ** 2
    return (slice(top, bottom), slice(left, right)), rows[:, None] + cols[None, :] < radius ** 2


def _span(centre: float, radius: float, size: int) -> tuple[int, int]:
    """[start, stop) of the indices 0..size-1 within `radius` of `centre`, one more each side."""
    return max(0, min(size, math.floor(centre - radius) - 1)), max(0, min(size, math.floor(centre + radius) + 2))


def _label(mask, structure):
    """ndimage.label(mask, structure) run on the bounding box of mask's pixels only: the same
    labels (numbered in raster order, which a box keeps), several times faster for the small
    masks of a tracked hand (the search near last frame's hand)."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    box = _box_around(mask)
    if box is None:
        return labels, 0
    count = ndimage.label(mask[box], structure=structure, output=labels[box])
    return labels, count


def _masked_depth(roi, mask):
    """(float32 roi where mask else 0, its float64 sum). Multiplying by the mask is several
    times faster than np.where; a masked-out NaN or inf (0 * inf is NaN) shows in the sum,
    and then np.where gives the exact answer."""
    with np.errstate(invalid="ignore"):
        depth_in = (roi * mask).astype(np.float32, copy=False)
        total = float(depth_in.sum(dtype=np.float64))
    if not math.isfinite(total):
        depth_in = np.where(mask, roi, np.float32(0)).astype(np.float32, copy=False)
        total = float(depth_in.sum(dtype=np.float64))
    return depth_in, total


def _plane_rms(roi, mask, rows, cols):
    """RMS distance in depth (mm) of the masked roi pixels from their least-squares plane
    d = a*u + b*v + c: about the sensor noise on a wall or table, larger where a hand rises
    off the surface."""
    r, c = np.nonzero(mask)
    if r.size < 4:
        return 0.0
    depth = roi[r, c].astype(np.float64)
    design = np.stack([cols[c].astype(np.float64), rows[r].astype(np.float64), np.ones(r.size)], axis=1)   # [N, 3]
    coeffs = np.linalg.lstsq(design, depth, rcond=None)[0]
    return float(np.sqrt(np.mean((depth - design @ coeffs) ** 2)))


def _border(shape, width=2):
    """[H, W] bool: the outer `width` rows and columns of an image."""
    mask = np.ones(shape, dtype=bool)
    mask[width:-width, width:-width] = False
    return mask


def _box_open(mask, half):
    """Morphological opening of `mask` [H, W] bool by a (2*half+1)^2 square: the pixels
    covered by a square that fits inside the mask (up to one-pixel holes). Outside the image counts as inside the
    mask for the fit (a body running out of the image stays thick at the border)."""
    side = 2 * half + 1
    # fit on the mask with its one-pixel holes filled (sensor dropouts on a noisy body or
    # table); the result stays inside the mask itself
    core = _window_all(np.pad(_dilate(mask), half, constant_values=True), side, axis=0)
    core = _window_all(core, side, axis=1)                             # [H, W]: the square fits
    grown = _window_any(np.pad(core, half, constant_values=False), side, axis=0)
    return _window_any(grown, side, axis=1) & mask


def _window_all(mask, length, axis):
    """AND over every run of `length` along `axis` (the result is length-1 shorter there),
    by doubling: O(log length) shifted ANDs."""
    out, span = mask, 1
    while span < length:
        step = min(span, length - span)
        if axis == 0:
            out = out[:-step] & out[step:]
        else:
            out = out[:, :-step] & out[:, step:]
        span += step
    return out


def _window_any(mask, length, axis):
    """OR over every run of `length` along `axis` (the counterpart of _window_all)."""
    return ~_window_all(~mask, length, axis)


def _dilate(mask):
    """3x3 binary dilation by shifted ORs (separable; far cheaper than scipy's generic one)."""
    rows = mask.copy()
    rows[1:] |= mask[:-1]
    rows[:-1] |= mask[1:]
    grown = rows.copy()
    grown[:, 1:] |= rows[:, :-1]
    grown[:, :-1] |= rows[:, 1:]
    return grown


def _upsample_mask(coarse_mask, stride, rows, cols):
    """The coarse mask at the given full-resolution rows x cols: each pixel takes the value
    of its nearest coarse sample."""
    r = np.minimum((rows + stride // 2) // stride, coarse_mask.shape[0] - 1)
    c = np.minimum((cols + stride // 2) // stride, coarse_mask.shape[1] - 1)
    return coarse_mask.take(r, axis=0).take(c, axis=1)  # rows then columns: 4x faster than one 2-D gather

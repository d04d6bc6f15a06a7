"""Exact depth rendering of simple primitives by per-pixel ray intersection, batched.

Rays: pixel (col, row) of a frame looks along d = ((u - cx)/fx, (v - cy)/fy, 1) with
u = col, v = row (pixel centres at integer coordinates, as the dataset labels use). With
d_z = 1 the ray parameter t of a hit IS its depth z in mm. A pixel's depth is the minimum
over all primitives it hits; 0 where it hits nothing.

Primitive kinds (each a dict of [B, N, ...] tensors plus an `enabled` [B, N] mask):
- capsule:   a, b [B, N, 3], r [B, N]          (segment a-b swept by a sphere)
- sphere:    c [B, N, 3], r [B, N]
- ellipsoid: c [B, N, 3], m [B, N, 3, 3] (camera -> unit-sphere coordinates),
             r [B, N] (its largest semi-axis: for culling)
- box:       c [B, N, 3], rot [B, N, 3, 3] (box -> camera), half [B, N, 3]
- cylinder:  a, b [B, N, 3], r [B, N]          (flat caps)
- plane:     normal [B, 3], offset [B] (points p with normal . p = offset), enabled [B]

Cost is kept near the number of pixels each primitive actually covers: every primitive's
conservative screen rectangle (from bounding spheres) is enumerated pixel by pixel, the
(pixel, primitive) pairs are intersected in chunks of `chunk_rays`, and the nearest hit per
pixel is kept with scatter_reduce('amin'). Numerically, each ray is intersected in
coordinates centred on the primitive (origin moved along the ray to the primitive's depth),
so float32 stays accurate to ~1e-3 mm at metres.

A sub-window renders the same rays as the full frame (see `Window`): pass per-frame
top-left corners, or an `Intrinsics.cropped(...)` camera for one window shared by all.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...camera import Intrinsics

INF = float("inf")
NEAR_MM = 1.0      # hits closer than this are ignored


@dataclass
class Window:
    """The pixels to render: frame b covers columns left[b] .. left[b]+width-1 and rows
    top[b] .. top[b]+height-1 of the camera image; pixels outside the camera's
    width x height (when those are known) stay 0, like a crop's zero padding."""
    left: torch.Tensor      # [B] int64
    top: torch.Tensor       # [B] int64
    width: int
    height: int

    @classmethod
    def full(cls, cam: Intrinsics, batch: int, device) -> "Window":
        if cam.width <= 0 or cam.height <= 0:
            raise ValueError(f"camera {cam} has no image size: give width and height")
        zeros = torch.zeros(batch, dtype=torch.int64, device=device)
        return cls(zeros, zeros.clone(), int(cam.width), int(cam.height))


# ----------------------------------------------------------------------------- culling

def _sphere_pixel_bounds(c: torch.Tensor, r: torch.Tensor, cam: Intrinsics):
    """Conservative image rectangle of spheres c [..., 3], r [...]: (u0, u1, v0, v1)
    floats [...]; infinite where the sphere reaches the near plane, u1 < u0 where it is
    entirely behind the camera."""
    x, y, z = c.unbind(-1)
    z_near = z - r
    z_far = z + r

    def extent(coord, focal, centre):
        # x/z over the cube [c-r, c+r]^3 is extremal at a corner: pick the right depth.
        high = torch.where(coord + r > 0, (coord + r) / z_near, (coord + r) / z_far)
        low = torch.where(coord - r < 0, (coord - r) / z_near, (coord - r) / z_far)
        return low * focal + centre, high * focal + centre

    u0, u1 = extent(x, cam.fx, cam.cx)
    v0, v1 = extent(y, cam.fy, cam.cy)
    crosses = z_near <= NEAR_MM
    behind = z_far <= NEAR_MM
    u0 = torch.where(crosses, -INF, u0)
    v0 = torch.where(crosses, -INF, v0)
    u1 = torch.where(crosses, INF, u1)
    v1 = torch.where(crosses, INF, v1)
    u1 = torch.where(behind, -INF, u1)
    return u0, u1, v0, v1


def _bounds(kind: str, p: dict, cam: Intrinsics):
    """Image rectangle (u0, u1, v0, v1) [B, N] of each primitive of one kind."""
    if kind in ("capsule", "cylinder"):
        a = _sphere_pixel_bounds(p["a"], p["r"], cam)
        b = _sphere_pixel_bounds(p["b"], p["r"], cam)
        return (torch.minimum(a[0], b[0]), torch.maximum(a[1], b[1]),
                torch.minimum(a[2], b[2]), torch.maximum(a[3], b[3]))
    if kind in ("sphere", "ellipsoid"):
        return _sphere_pixel_bounds(p["c"], p["r"], cam)
    if kind == "box":
        return _sphere_pixel_bounds(p["c"], p["half"].norm(dim=-1), cam)
    raise ValueError(f"unknown primitive kind {kind!r}")


# ----------------------------------------------------------------------------- intersections
# Each takes ray directions d [3, K] and per-ray primitive parameters (vectors [3, K],
# matrices [3, 3, K], scalars [K]: components first, so every elementwise op runs on
# contiguous rows) and returns the depth t [K] of the nearest hit (inf when missed).

def _dot(a, b):
    return (a * b).sum(0)


def _matvec(m, x):
    """[3, 3, K] @ [3, K] -> [3, K]."""
    return (m * x[None]).sum(1)


def _sphere_hit(o, d, dd, r):
    """Ray o + s d (o relative to the sphere centre) against radius r: s of entry or inf."""
    half_b = _dot(o, d)
    disc = half_b * half_b - dd * (_dot(o, o) - r * r)
    s = (-half_b - torch.sqrt(disc.clamp(min=0))) / dd
    return torch.where(disc >= 0, s, INF)


def _tube_hit(oa, d, w, length, r):
    """Open cylinder a + [0, L] w of radius r; oa = origin - a. Entry s or inf."""
    dw, ow = _dot(d, w), _dot(oa, w)
    d_perp = d - dw * w
    o_perp = oa - ow * w
    a2 = _dot(d_perp, d_perp)
    half_b = _dot(o_perp, d_perp)
    disc = half_b * half_b - a2 * (_dot(o_perp, o_perp) - r * r)
    s = (-half_b - torch.sqrt(disc.clamp(min=0))) / a2.clamp(min=1e-12)
    axial = ow + s * dw
    ok = (disc >= 0) & (a2 > 1e-12) & (axial >= 0) & (axial <= length)
    return torch.where(ok, s, INF)


def _prepare(kind: str, p: dict) -> dict:
    """Per-primitive quantities the intersection needs, computed once per primitive
    ([B, N, ...] in, [B, N, ...] out) rather than once per ray."""
    if kind in ("capsule", "cylinder"):
        axis = p["b"] - p["a"]
        length = axis.norm(dim=-1)
        return {"a": p["a"], "axis": axis, "w": axis / length.clamp(min=1e-9)[..., None],
                "length": length, "r": p["r"], "depth0": 0.5 * (p["a"][..., 2] + p["b"][..., 2])}
    if kind == "box":
        return {"c": p["c"], "rt": p["rot"].transpose(-1, -2), "half": p["half"]}
    return {k: v for k, v in p.items() if k != "enabled"}


def _capsule_or_cylinder(kind, d, p):
    a, axis, w, length, r, depth0 = p["a"], p["axis"], p["w"], p["length"], p["r"], p["depth0"]
    oa = depth0 * d - a                     # the origin moved along the ray to the primitive's depth
    dd = _dot(d, d)
    s = _tube_hit(oa, d, w, length, r)
    if kind == "capsule":
        s = torch.minimum(s, _sphere_hit(oa, d, dd, r))
        s = torch.minimum(s, _sphere_hit(oa - axis, d, dd, r))
    else:   # flat caps: discs at a and b
        dw = _dot(d, w)
        dw = torch.where(dw.abs() < 1e-12, torch.full_like(dw, 1e-12), dw)
        for o in (oa, oa - axis):
            s_cap = -_dot(o, w) / dw
            q = o + s_cap * d
            radial2 = _dot(q, q) - _dot(q, w) ** 2
            s = torch.minimum(s, torch.where(radial2 <= r * r, s_cap, INF))
    return depth0 + s


def _sphere(d, p):
    c = p["c"]
    o = c[2] * d - c
    return c[2] + _sphere_hit(o, d, _dot(d, d), p["r"])


def _ellipsoid(d, p):
    c, m = p["c"], p["m"]
    o_unit = _matvec(m, c[2] * d - c)
    d_unit = _matvec(m, d)
    return c[2] + _sphere_hit(o_unit, d_unit, _dot(d_unit, d_unit), torch.ones_like(c[0]))


def _box(d, p):
    c, rt, half = p["c"], p["rt"], p["half"]
    o_box = _matvec(rt, c[2] * d - c)
    d_box = _matvec(rt, d)
    d_box = torch.where(d_box.abs() < 1e-12, torch.full_like(d_box, 1e-12), d_box)
    t1 = (-half - o_box) / d_box
    t2 = (half - o_box) / d_box
    s_in = torch.minimum(t1, t2).amax(dim=0)
    s_out = torch.maximum(t1, t2).amin(dim=0)
    return c[2] + torch.where(s_out >= s_in, s_in, INF)


def _intersect(kind, d, p):
    if kind in ("capsule", "cylinder"):
        return _capsule_or_cylinder(kind, d, p)
    return {"sphere": _sphere, "ellipsoid": _ellipsoid, "box": _box}[kind](d, p)


def _components_first(x: torch.Tensor, batch: int, count: int) -> torch.Tensor:
    """[B, N, *C] -> [*C, B*N] (contiguous), so gathers give component rows."""
    flat = x.reshape(batch * count, *x.shape[2:])
    return flat.permute(*range(1, flat.dim()), 0).contiguous()


# ----------------------------------------------------------------------------- tracing

def _trace_kind(kind: str, prims: dict, cam: Intrinsics, window: Window, out: torch.Tensor,
                chunk_rays: int):
    """Min-reduce the depth of every pixel hit by a primitive of this kind into `out`
    ([B * height * width], inf where nothing was hit yet)."""
    enabled = prims["enabled"]
    batch, count = enabled.shape
    if count == 0 or not bool(enabled.any()):
        return
    device = out.device
    h, w = window.height, window.width
    u0, u1, v0, v1 = _bounds(kind, prims, cam)
    left = window.left.to(u0.dtype)[:, None]
    top = window.top.to(u0.dtype)[:, None]
    # Rectangle in window pixels, clipped to the window (and to the image, if known).
    col_lo, col_hi = torch.floor(u0 - left), torch.ceil(u1 - left)
    row_lo, row_hi = torch.floor(v0 - top), torch.ceil(v1 - top)
    col_min = torch.zeros_like(left)
    row_min = torch.zeros_like(top)
    col_max = torch.full_like(left, w - 1)
    row_max = torch.full_like(top, h - 1)
    if cam.width > 0 and cam.height > 0:
        col_min = torch.maximum(col_min, -left)
        row_min = torch.maximum(row_min, -top)
        col_max = torch.minimum(col_max, cam.width - 1 - left)
        row_max = torch.minimum(row_max, cam.height - 1 - top)
    col_lo = torch.maximum(col_lo, col_min)
    col_hi = torch.minimum(col_hi, col_max)
    row_lo = torch.maximum(row_lo, row_min)
    row_hi = torch.minimum(row_hi, row_max)
    visible = enabled & (col_hi >= col_lo) & (row_hi >= row_lo)
    ncols = torch.where(visible, col_hi - col_lo + 1, 0).to(torch.int64).reshape(-1)   # [B*N]
    nrows = torch.where(visible, row_hi - row_lo + 1, 0).to(torch.int64).reshape(-1)
    col_lo = col_lo.to(torch.int64).reshape(-1)
    row_lo = row_lo.to(torch.int64).reshape(-1)
    pixels = ncols * nrows                                                            # [B*N]

    flat = {k: _components_first(v, batch, count) for k, v in _prepare(kind, prims).items()}
    # Per primitive: its rectangle's width, its top-left as an index into `out`, and the
    # image pixel (u, v) of that corner: one gather per ray instead of several.
    frame = torch.arange(batch, device=device).repeat_interleave(count)              # [B*N]
    corner = torch.stack([ncols,
                          (frame * h + row_lo) * w + col_lo,
                          window.left[frame] + col_lo,
                          window.top[frame] + row_lo])                                # [4, B*N]
    # Split the primitive list into chunks of about chunk_rays (pixel, primitive) pairs.
    host_pixels = pixels.cpu().numpy()
    ends = np.cumsum(host_pixels)
    start, total = 0, int(ends[-1]) if len(ends) else 0
    done = 0
    while start < len(host_pixels) and done < total:
        stop = int(np.searchsorted(ends, done + chunk_rays, side="right"))
        stop = max(stop, start + 1)
        n_rays = int(ends[stop - 1] - done)
        done = int(ends[stop - 1])
        if n_rays > 0:
            ids = torch.arange(start, stop, device=device)
            per = pixels[start:stop]
            pair = torch.repeat_interleave(ids, per, output_size=n_rays)             # [K]
            first = torch.cumsum(per, 0) - per                                        # [n]
            offset = torch.arange(n_rays, device=device) - first[pair - start]       # [K]
            width_k, index_k, u_k, v_k = corner.index_select(1, pair)                 # 4 x [K]
            row = torch.div(offset, width_k, rounding_mode="floor")
            col = offset - row * width_k
            u = (u_k + col).to(out.dtype)
            v = (v_k + row).to(out.dtype)
            d = torch.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, torch.ones_like(u)])  # [3, K]
            t = _intersect(kind, d, {k: x.index_select(-1, pair) for k, x in flat.items()})
            t = torch.where(t > NEAR_MM, t, INF)
            out.scatter_reduce_(0, index_k + row * w + col, t, reduce="amin")
        start = stop


def _plane_depth(plane: dict, cam: Intrinsics, window: Window, dtype) -> torch.Tensor:
    """[B, h, w] depth of the plane (inf where missed, disabled or behind)."""
    device = plane["normal"].device
    cols = torch.arange(window.width, device=device, dtype=dtype)
    rows = torch.arange(window.height, device=device, dtype=dtype)
    u = window.left.to(dtype)[:, None] + cols[None, :]                  # [B, w]
    v = window.top.to(dtype)[:, None] + rows[None, :]                   # [B, h]
    n = plane["normal"].to(dtype)
    denom = (n[:, 0:1, None] * ((u[:, None, :] - cam.cx) / cam.fx)
             + n[:, 1:2, None] * ((v[:, :, None] - cam.cy) / cam.fy) + n[:, 2:3, None])  # [B, h, w]
    t = plane["offset"].to(dtype)[:, None, None] / denom
    ok = plane["enabled"][:, None, None] & (t > NEAR_MM) & torch.isfinite(t)
    return torch.where(ok, t, INF)


def render_depth(groups: dict[str, dict], cam: Intrinsics, window: Window,
                 chunk_rays: int = 1_000_000, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Render groups of primitives, e.g. {'hand': {...kinds...}, 'background': {...}}.

    Each group maps kind -> primitive dict (module docstring); 'plane' may appear in any
    group. Returns {group: depth [B, h, w] (inf = no hit)} for every group, plus
    'depth' [B, h, w] (min over groups, 0 = no hit, 0 outside the camera image).
    """
    some = next(p for g in groups.values() for p in g.values())
    device = some["enabled"].device
    batch = window.left.shape[0]
    h, w = window.height, window.width
    result = {}
    for name, kinds in groups.items():
        out = torch.full((batch * h * w,), INF, device=device, dtype=dtype)
        for kind, prims in kinds.items():
            if kind != "plane":
                _trace_kind(kind, {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in prims.items()},
                            cam, window, out, chunk_rays)
        out = out.reshape(batch, h, w)
        if "plane" in kinds:
            out = torch.minimum(out, _plane_depth(kinds["plane"], cam, window, dtype))
        result[name] = out
    depth = torch.stack(list(result.values())).amin(dim=0)
    if cam.width > 0 and cam.height > 0:    # pixels outside the image (a window over its edge)
        cols = window.left[:, None] + torch.arange(w, device=device)
        rows = window.top[:, None] + torch.arange(h, device=device)
        inside = (((rows >= 0) & (rows < cam.height))[:, :, None]
                  & ((cols >= 0) & (cols < cam.width))[:, None, :])
        depth = torch.where(inside, depth, INF)
    result["depth"] = torch.where(torch.isfinite(depth), depth, torch.zeros((), device=device, dtype=dtype))
    return result

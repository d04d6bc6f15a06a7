"""Batched z-buffer rasterisation of triangle meshes into depth, in torch (CPU or GPU).

Conventions are render.py's: camera frame x right, y down, z forward, mm; pixel (col, row)
of the camera image has its centre at u = col, v = row; depth = z; the returned buffers hold
inf where no triangle covers a pixel, so they combine with render.py's per-group buffers by
an elementwise minimum (`compose_depth` turns such buffers into a 0-means-empty depth image).

What is drawn. A triangle covers a pixel when the pixel centre lies inside its projection
(exact edge-function test). Ties, pixel centres exactly on an edge, follow one rule for the
whole image: the pixel centre is treated as moved by an infinitesimal (eps, eps^2), which
is the usual top-left rule. Each edge function is computed from the edge's lower-indexed
vertex, so the two triangles that share an edge get the same number with opposite signs.
So a shared edge leaves no crack and covers no pixel twice, and a pixel centre on a shared
vertex is covered by exactly one triangle of the fan around it. Depth is perspective-correct:
1/z is interpolated linearly in screen space, and depth = 1 / (interpolated 1/z). Back faces
are drawn: winding is not used for culling, so a mirrored (left-hand) mesh with reversed
winding renders the mirrored image. A triangle is dropped if any of its vertices has
z <= NEAR_MM; near-plane clipping is not needed for hands in front of a camera. Where two
faces have exactly the same depth at a pixel, the lower face index wins, so the result is
deterministic.

How. Vertices are projected once per frame into window pixels. Each enabled (frame, face)
has an integer pixel rectangle: the pixel centres inside its projected bounding box,
clipped to the window and to the camera image. Faces whose rectangle is empty are dropped.
Then exactly the (face, pixel) pairs of those rectangles are enumerated, with cumsum
offsets and repeat_interleave, in chunks of at most `chunk_pairs` pairs; a large face may
be split across chunks. Each pair gets the edge test and its depth, is packed into one
int64 key (float32 depth bits << 32 | face index), and the keys are min-reduced per pixel
with scatter_reduce('amin'). That keeps the nearest depth and its face in one exact pass.
There is no Python loop over frames or faces.

Rendering at crop resolution. To draw a crop at s times the camera's resolution, pass
scaled intrinsics and a Window in the scaled image:
    cam_s = Intrinsics(fx * s, fy * s, (cx + 0.5) * s - 0.5, (cy + 0.5) * s - 0.5,
                       round(width * s), round(height * s))
(pixel centres stay at integer coordinates: original u maps to (u + 0.5) * s - 0.5),
and Window(left, top, size, size) with left/top the crop's top-left pixel in the scaled
image. Give width = height = 0 to render pixels outside the camera image as well. By
default (a known image size) those pixels stay empty, like a crop's zero padding.
"""
from __future__ import annotations

import math
import sys
import time

import torch

from ...camera import DATASET_INTRINSICS, Intrinsics
from .render import INF, NEAR_MM, Window

_FACE_BITS = 32                            # low bits of a key: the face index
# No face at this pixel: high half = the bits of float32 +inf, low half = -1 as int32. Every
# key of a drawn pixel (finite depth) is smaller.
EMPTY_KEY = (0x7F800000 << _FACE_BITS) | 0xFFFFFFFF


# ----------------------------------------------------------------------------- input checks

def _check_inputs(vertices, faces, window, vertex_valid, face_valid, face_labels, chunk_pairs):
    if not isinstance(vertices, torch.Tensor) or not vertices.is_floating_point():
        raise ValueError("vertices must be a floating-point torch tensor [B, V, 3]")
    if vertices.dim() != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape [B, V, 3], got {list(vertices.shape)}")
    if not isinstance(faces, torch.Tensor) or faces.is_floating_point() or faces.dtype == torch.bool:
        raise ValueError("faces must be an integer torch tensor [F, 3]")
    if faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape [F, 3], got {list(faces.shape)}")
    batch, n_vert = vertices.shape[:2]
    n_face = faces.shape[0]
    if n_face >= 1 << 31:
        raise ValueError(f"{n_face} faces: at most 2**31 - 1 (a face index is packed in 32 bits)")
    if n_face:
        low, high = int(faces.min()), int(faces.max())
        if low < 0 or high >= n_vert:
            raise ValueError(f"faces index vertices {low}..{high}, but there are {n_vert} vertices")
    if window.left.shape != (batch,) or window.top.shape != (batch,):
        raise ValueError(f"window.left/top must have shape [{batch}] (one per frame), got "
                         f"{list(window.left.shape)} and {list(window.top.shape)}")
    if window.width < 0 or window.height < 0:
        raise ValueError(f"window size {window.width}x{window.height} is negative")
    for name, mask, shape in (("vertex_valid", vertex_valid, (batch, n_vert)),
                              ("face_valid", face_valid, (batch, n_face))):
        if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool
                                 or tuple(mask.shape) != shape):
            got = list(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"{name} must be a bool tensor of shape {list(shape)}, got {got}")
    if face_labels is not None:
        if (not isinstance(face_labels, torch.Tensor) or face_labels.is_floating_point()
                or tuple(face_labels.shape) != (n_face,)):
            got = list(face_labels.shape) if isinstance(face_labels, torch.Tensor) else type(face_labels).__name__
            raise ValueError(f"face_labels must be an integer tensor of shape [{n_face}], got {got}")
    if int(chunk_pairs) < 1:
        raise ValueError(f"chunk_pairs must be >= 1, got {chunk_pairs}")
    used = vertices if vertex_valid is None else vertices[vertex_valid]
    if not bool(torch.isfinite(used).all()):
        raise ValueError("vertices contain NaN or inf (mark such vertices invalid with vertex_valid)")
    return batch, n_vert, n_face


# ----------------------------------------------------------------------------- rasterisation

def _window_limits(cam: Intrinsics, window: Window, device):
    """Per frame [B, 1] the first and last window column/row that may be drawn: the window,
    and within it the camera image when its size is known."""
    left = window.left.to(device)[:, None]
    top = window.top.to(device)[:, None]
    col_min, row_min = torch.zeros_like(left), torch.zeros_like(top)
    col_max, row_max = torch.full_like(left, window.width - 1), torch.full_like(top, window.height - 1)
    if cam.width > 0 and cam.height > 0:
        col_min = torch.maximum(col_min, -left)
        row_min = torch.maximum(row_min, -top)
        col_max = torch.minimum(col_max, cam.width - 1 - left)
        row_max = torch.minimum(row_max, cam.height - 1 - top)
    return col_min, col_max, row_min, row_max


def _face_table(vertices, faces, cam, window, vertex_valid, face_valid):
    """The faces to draw, compacted: (floats [18, n], ints [3, n], pixel counts [n]).

    Float rows: for each edge k (the one opposite vertex k) the coefficients A, B, C of its
    edge function E(u, v) = A u + B v + C, positive inside the face (rows 3k .. 3k+2); each
    edge's tie bit (rows 9 .. 11: 1 = pixel centres on this edge belong to this face); 1/z
    of the three vertices (12 .. 14); the image column and row of the rectangle's first
    pixel and the rectangle's width (15 .. 17). Int rows: the flat buffer index of the
    rectangle's first pixel, the buffer's row stride minus the rectangle's width, and the
    face index.
    """
    device = vertices.device
    batch = vertices.shape[0]
    h, w = window.height, window.width
    verts = vertices.to(torch.float32)
    x, y, z = verts.unbind(-1)                                           # [B, V]
    # Image pixel coordinates, the same whatever the window, so a sub-window draws exactly
    # the full frame's pixels. Each vertex is projected once, so faces that share it see
    # bit-identical coordinates.
    u = x / z * cam.fx + cam.cx
    v = y / z * cam.fy + cam.cy

    fi = faces.to(device, torch.int64)                                   # [F, 3]
    u_f, v_f, z_f = u[:, fi], v[:, fi], z[:, fi]                         # [B, F, 3]
    keep = z_f.amin(-1) > NEAR_MM
    if face_valid is not None:
        keep &= face_valid.to(device)
    if vertex_valid is not None:
        keep &= vertex_valid.to(device)[:, fi].all(-1)
    col_min, col_max, row_min, row_max = _window_limits(cam, window, device)
    # Window pixels whose centres lie in the bounding box; the image coordinates are clamped
    # to just around the window first, so that huge projections stay finite integers.
    left = window.left.to(device)[:, None]
    top = window.top.to(device)[:, None]
    lf, tf = left.to(torch.float32), top.to(torch.float32)
    col_lo = torch.ceil(torch.clamp(u_f.amin(-1), lf - 1, lf + w + 1)).to(torch.int64) - left
    col_hi = torch.floor(torch.clamp(u_f.amax(-1), lf - 1, lf + w + 1)).to(torch.int64) - left
    row_lo = torch.ceil(torch.clamp(v_f.amin(-1), tf - 1, tf + h + 1)).to(torch.int64) - top
    row_hi = torch.floor(torch.clamp(v_f.amax(-1), tf - 1, tf + h + 1)).to(torch.int64) - top
    col_lo, col_hi = torch.maximum(col_lo, col_min), torch.minimum(col_hi, col_max)
    row_lo, row_hi = torch.maximum(row_lo, row_min), torch.minimum(row_hi, row_max)
    keep &= (col_hi >= col_lo) & (row_hi >= row_lo)

    frame, face = keep.nonzero(as_tuple=True)                            # [n]
    flat = frame * fi.shape[0] + face
    us = u_f.reshape(-1, 3)[flat]                                        # [n, 3]
    vs = v_f.reshape(-1, 3)[flat]
    inv_z = 1.0 / z_f.reshape(-1, 3)[flat]
    ids = fi[face]                                                       # [n, 3] vertex indices
    col_lo, col_hi = col_lo.reshape(-1)[flat], col_hi.reshape(-1)[flat]
    row_lo, row_hi = row_lo.reshape(-1)[flat], row_hi.reshape(-1)[flat]

    area2 = ((us[:, 1] - us[:, 0]) * (vs[:, 2] - vs[:, 0])
             - (vs[:, 1] - vs[:, 0]) * (us[:, 2] - us[:, 0]))            # twice the signed area
    winding = torch.sign(area2)
    coefficients, ties = [], []
    for p, q in ((1, 2), (2, 0), (0, 1)):                                # edge opposite vertex k
        # Each edge function is built from the edge's lower-indexed vertex and its vector to
        # the other one, so both faces of an edge get the same numbers, up to a sign flip that
        # is exact. Going p -> q keeps the interior on the side of sign(area2); the canonical
        # direction flips that when swapped.
        swap = ids[:, p] > ids[:, q]
        base_u = torch.where(swap, us[:, q], us[:, p])
        base_v = torch.where(swap, vs[:, q], vs[:, p])
        orient = torch.where(swap, -winding, winding)
        edge_u = orient * (torch.where(swap, us[:, p], us[:, q]) - base_u)
        edge_v = orient * (torch.where(swap, vs[:, p], vs[:, q]) - base_v)
        # E(u, v) = edge_u (v - base_v) - edge_v (u - base_u)
        coefficients += [-edge_v, edge_u, edge_v * base_u - edge_u * base_v]
        # Top-left rule: a centre on the edge moved by (eps, eps^2) is inside iff
        # -edge_v * eps + edge_u * eps^2 > 0.
        ties.append(((edge_v < 0) | ((edge_v == 0) & (edge_u > 0))).to(torch.float32))
    widths = col_hi - col_lo + 1
    image_col = (window.left.to(device)[frame] + col_lo).to(torch.float32)    # exact integers
    image_row = (window.top.to(device)[frame] + row_lo).to(torch.float32)
    floats = torch.stack(coefficients + ties + [inv_z[:, 0], inv_z[:, 1], inv_z[:, 2],
                                                image_col, image_row, widths.to(torch.float32)])

    pixels = torch.where(area2 != 0, widths * (row_hi - row_lo + 1), 0)  # degenerate: nothing
    corner = (frame * h + row_lo) * w + col_lo
    ints = torch.stack([corner, w - widths, face])
    return floats, ints, pixels


# Rectangles up to this many pixels split a pixel number into (row, column) in float32
# (exact: the quotient's rounding error stays below half a step); larger ones in int64.
_FLOAT_DIVISION_MAX_PIXELS = 1 << 22


def _draw_pairs(keys, floats, ints, pair, offset, max_pixels: int):
    """Edge-test the pairs (face row `pair`, pixel number `offset` in its rectangle) and
    min their keys into `keys` (flat [B * h * w])."""
    f = floats.index_select(1, pair)
    corner, gap, face = ints.index_select(1, pair)
    width = f[17]
    if max_pixels <= _FLOAT_DIVISION_MAX_PIXELS:
        offset_f = offset.to(torch.float32)
        row = torch.floor((offset_f + 0.5) / width)
        col = offset_f - row * width
        row_i = row.to(torch.int64)
    else:
        row_i = torch.div(offset, width.to(torch.int64), rounding_mode="floor")
        row = row_i.to(torch.float32)
        col = (offset - row_i * width.to(torch.int64)).to(torch.float32)
    pu = f[15] + col                                                     # pixel centre, image px
    pv = f[16] + row
    # Inside test on the float bits: for e = +0 or more, bits(e) >= 0; adding the tie bit
    # makes "bits + tie > 0" mean e > 0, or e == 0 on an edge this face owns. (+ 0.0 turns a
    # -0 into +0.) One comparison in all, at the end.
    worst = None
    weight_sum = inv_depth_sum = None
    for k in range(3):
        e = f[3 * k] * pu + f[3 * k + 1] * pv + f[3 * k + 2]             # ∝ barycentric of vertex k
        score = (e + 0.0).view(torch.int32) + f[9 + k].to(torch.int32)
        weighted = e * f[12 + k]
        if k == 0:
            worst, weight_sum, inv_depth_sum = score, e, weighted
        else:
            worst = torch.minimum(worst, score)
            weight_sum, inv_depth_sum = weight_sum + e, inv_depth_sum + weighted
    depth = weight_sum / inv_depth_sum      # 1 / sum_k(b_k / z_k) with barycentrics b = e / sum(e)
    bits = depth.view(torch.int32)
    worst = torch.minimum(worst, bits)      # and a positive depth
    outside = (worst <= 0).to(torch.int64)
    key = (bits.to(torch.int64) << _FACE_BITS) | face
    key = torch.maximum(key, outside * EMPTY_KEY)
    keys.scatter_reduce_(0, corner + offset + row_i * gap, key, reduce="amin", include_self=True)


def rasterise_depth(vertices: torch.Tensor, faces: torch.Tensor, cam: Intrinsics, window: Window, *,
                    chunk_pairs: int = 8_000_000, vertex_valid: torch.Tensor | None = None,
                    face_labels: torch.Tensor | None = None,
                    face_valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Rasterise a batch of meshes with one shared topology (module docstring).

    vertices [B, V, 3] float, camera frame, mm; faces [F, 3] integer vertex indices;
    window: which pixels of each frame to draw; chunk_pairs: the most (face, pixel) pairs
    processed at once (bounds memory: about 200 bytes a pair); vertex_valid [B, V] bool:
    a face is drawn only where all three of its vertices are valid (their coordinates are
    not used otherwise); face_valid [B, F] bool: faces to draw per frame (e.g. an object
    that is absent); face_labels [F] integer: a label per face (e.g. 0 hand, 1 forearm).

    Returns {'depth': [B, h, w] float32 (inf = no face), 'face': [B, h, w] int64 (index of
    the nearest face, -1 = none)} and, with face_labels, 'label' [B, h, w] int64 (the
    nearest face's label, -1 = none).
    """
    batch, _, n_face = _check_inputs(vertices, faces, window, vertex_valid, face_valid, face_labels,
                                     chunk_pairs)
    device = vertices.device
    h, w = int(window.height), int(window.width)
    keys = torch.full((batch * h * w,), EMPTY_KEY, dtype=torch.int64, device=device)
    if batch and n_face and h and w:
        floats, ints, pixels = _face_table(vertices, faces, cam, window, vertex_valid, face_valid)
        if pixels.numel():
            ends = torch.cumsum(pixels, 0)
            starts = ends - pixels
            total = int(ends[-1])
            chunk = int(chunk_pairs)
            for start in range(0, total, chunk):
                stop = min(start + chunk, total)
                # Faces whose pairs overlap [start, stop), and how many of theirs fall inside.
                lo, hi = torch.searchsorted(
                    ends, torch.tensor([start, stop - 1], device=device), right=True).tolist()
                rows = torch.arange(lo, hi + 1, device=device)
                count = (torch.clamp_max(ends[lo:hi + 1], stop) - torch.clamp_min(starts[lo:hi + 1], start))
                pair = torch.repeat_interleave(rows, count, output_size=stop - start)
                offset = torch.arange(start, stop, device=device) - starts.index_select(0, pair)
                _draw_pairs(keys, floats, ints, pair, offset, h * w)
    # Decode without a pass over empties: EMPTY_KEY's high half is +inf's bits, its low half -1.
    halves = keys.view(torch.int32).reshape(batch, h, w, 2)
    low, high = (0, 1) if sys.byteorder == "little" else (1, 0)
    out = {"depth": halves[..., high].view(torch.float32).contiguous(), "face": halves[..., low].to(torch.int64)}
    if face_labels is not None:
        # index -1 (no face) picks the appended -1
        labels = torch.cat([face_labels.to(device, torch.int64), torch.full((1,), -1, device=device)])
        out["label"] = labels[out["face"]]
    return out


def compose_depth(*buffers: torch.Tensor) -> torch.Tensor:
    """Nearest surface of several inf-means-empty depth buffers (this module's 'depth',
    render.py's per-group buffers), as a depth image with 0 where nothing was hit."""
    if not buffers:
        raise ValueError("compose_depth needs at least one buffer")
    nearest = buffers[0]
    for other in buffers[1:]:
        if other.shape != nearest.shape:
            raise ValueError(f"depth buffers differ in shape: {list(nearest.shape)} vs {list(other.shape)}")
        nearest = torch.minimum(nearest, other)
    return torch.where(torch.isfinite(nearest), nearest, torch.zeros((), dtype=nearest.dtype,
                                                                      device=nearest.device))


# ----------------------------------------------------------------------------- benchmark

def ellipsoid_parts_mesh(device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """A benchmark mesh, not a hand: 17 closed ellipsoids (a forearm, a palm, three
    segments per finger), 1,700 vertices and 3,332 triangles in mm, centred near the origin.
    Its vertex and face counts and its size on screen are those of the hand + forearm mesh,
    so rasterisation costs about the same."""
    stacks, slices = 8, 14
    theta = torch.arange(1, stacks, dtype=torch.float64) * math.pi / stacks      # polar angle
    phi = torch.arange(slices, dtype=torch.float64) * 2 * math.pi / slices
    ring = torch.stack([torch.sin(theta)[:, None] * torch.cos(phi), torch.cos(theta)[:, None].expand(-1, slices),
                        torch.sin(theta)[:, None] * torch.sin(phi)], -1).reshape(-1, 3)
    unit = torch.cat([torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64), ring,
                      torch.tensor([[0.0, -1.0, 0.0]], dtype=torch.float64)])
    tris = []
    last = 1 + (stacks - 2) * slices                     # first vertex of the last ring
    for j in range(slices):
        j2 = (j + 1) % slices
        tris.append((0, 1 + j2, 1 + j))
        tris.append((len(unit) - 1, last + j, last + j2))
        for i in range(stacks - 2):
            a, b = 1 + i * slices + j, 1 + i * slices + j2
            tris += [(a, b, b + slices), (a, b + slices, a + slices)]
    unit_faces = torch.tensor(tris, dtype=torch.int64)
    # (centre, semi-axes) in mm: y toward the fingertips, z away from the camera.
    parts = [((0.0, -150.0, 10.0), (32.0, 120.0, 28.0)), ((0.0, 10.0, 0.0), (42.0, 48.0, 14.0))]
    for finger, x in enumerate((-30.0, -11.0, 8.0, 26.0)):
        length = (13.0, 15.0, 14.0, 11.0)[finger]
        for segment in range(3):
            parts.append(((x, 62.0 + (2 * segment + 1) * length, 0.0), (8.5, length, 8.0)))
    parts += [((-44.0 - 12.0 * s, 30.0 + 20.0 * s, -2.0), (9.0, 14.0, 9.0)) for s in range(3)]   # thumb
    vertices, faces = [], []
    for index, (centre, axes) in enumerate(parts):
        vertices.append(unit * torch.tensor(axes, dtype=torch.float64) + torch.tensor(centre, dtype=torch.float64))
        faces.append(unit_faces + index * len(unit))
    return (torch.cat(vertices).to(device, torch.float32), torch.cat(faces).to(device))


def _random_rotations(count: int, generator: torch.Generator) -> torch.Tensor:
    """[count, 3, 3] rotations, uniform (QR of Gaussian matrices with the sign fixed)."""
    q, r = torch.linalg.qr(torch.randn(count, 3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    return q * torch.sign(torch.linalg.det(q))[:, None, None]


def bench_rasterise(device="cpu", batch: int = 1, size: int | None = None, repeats: int = 5,
                    mesh: tuple[torch.Tensor, torch.Tensor] | None = None, distance_mm: float = 500.0) -> dict:
    """Time `rasterise_depth` on `batch` randomly rotated copies of a hand-sized mesh
    (`ellipsoid_parts_mesh`, or mesh=(vertices [V, 3], faces [F, 3])) at distance_mm.

    size None: full frames of the 'synthetic' camera (640x480). size > 0: size x size crops
    that show a 300 mm cube around the mesh, as the training crops do.
    Returns the median time per batch and per frame, and the number of pairs enumerated."""
    device = torch.device(device)
    vertices, faces = mesh if mesh is not None else ellipsoid_parts_mesh()
    generator = torch.Generator().manual_seed(0)
    rotations = _random_rotations(batch, generator).to(torch.float32)
    centred = vertices.to(torch.float32).cpu() - vertices.to(torch.float32).cpu().mean(0)
    posed = torch.einsum("bij,vj->bvi", rotations, centred) + torch.tensor([0.0, 0.0, distance_mm])
    posed, faces = posed.to(device), faces.to(device)
    if size is None:
        cam = DATASET_INTRINSICS["synthetic"]
        window = Window.full(cam, batch, device)
    else:
        focal = size * distance_mm / 300.0
        cam = Intrinsics(focal, focal, (size - 1) / 2, (size - 1) / 2, 0, 0)
        zeros = torch.zeros(batch, dtype=torch.int64, device=device)
        window = Window(zeros, zeros.clone(), int(size), int(size))

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    out = rasterise_depth(posed, faces, cam, window)                     # warm-up
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        rasterise_depth(posed, faces, cam, window)
        sync()
        times.append(time.perf_counter() - start)
    pairs = int(_face_table(posed, faces, cam, window, None, None)[2].sum())
    median = sorted(times)[len(times) // 2]
    return {"device": str(device), "batch": batch, "width": window.width, "height": window.height,
            "vertices": int(vertices.shape[0]), "faces": int(faces.shape[0]), "pairs_per_frame": pairs / batch,
            "covered_fraction": float(torch.isfinite(out["depth"]).float().mean()),
            "ms_per_batch": 1e3 * median, "ms_per_frame": 1e3 * median / batch}

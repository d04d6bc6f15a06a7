"""The triangle rasteriser (hand_pose_ros/data/synthetic/rasterise.py): known meshes give known
depth, the tie rule leaves no cracks and no double cover, and the batching knobs (windows,
masks, chunks, devices) do not change the image."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hand_pose_ros.camera import Intrinsics
from hand_pose_ros.data.synthetic.rasterise import (bench_rasterise, compose_depth, ellipsoid_parts_mesh,
                                                    rasterise_depth)
from hand_pose_ros.data.synthetic.render import Window, render_depth

CAM = Intrinsics(100.0, 100.0, 0.0, 0.0, 20, 20)      # u = x / 5 + 0 at z = 500


def full(cam, batch=1):
    return Window.full(cam, batch, "cpu")


def covered(out):
    return torch.isfinite(out["depth"])


def icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere: vertices [V, 3] float64 on the unit sphere, faces [F, 3] outward-wound."""
    t = (1 + 5 ** 0.5) / 2
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
             (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
             (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
             (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(p, dtype=np.float64) / np.linalg.norm(p) for p in verts]
    for _ in range(subdivisions):
        midpoint, new_faces = {}, []

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in midpoint:
                p = verts[a] + verts[b]
                verts.append(p / np.linalg.norm(p))
                midpoint[key] = len(verts) - 1
            return midpoint[key]

        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new_faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new_faces
    return np.array(verts), np.array(faces, dtype=np.int64)


def rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q * np.sign(np.linalg.det(q))


def tensor(x, dtype=torch.float32):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def ray(u, v, cam):
    """Ray directions [..., 3] with d_z = 1 through pixel centres (float64)."""
    return np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u, dtype=np.float64)], -1)


# ----------------------------------------------------------------------------- known depth

def test_fronto_parallel_square_covers_exactly_the_pixel_centres_inside_it():
    # projection: u in [3.3, 17.6], v in [2.2, 15.4]  ->  columns 4..17, rows 3..15
    u0, u1, v0, v1 = 3.3, 17.6, 2.2, 15.4
    corners = [[u0 * 5, v0 * 5, 500.0], [u1 * 5, v0 * 5, 500.0], [u1 * 5, v1 * 5, 500.0], [u0 * 5, v1 * 5, 500.0]]
    out = rasterise_depth(tensor([corners]), torch.tensor([[0, 1, 2], [0, 2, 3]]), CAM, full(CAM))
    expected = torch.zeros(20, 20, dtype=torch.bool)
    expected[3:16, 4:18] = True
    assert torch.equal(covered(out)[0], expected)
    assert torch.allclose(out["depth"][0][expected], torch.tensor(500.0), atol=1e-3)
    assert out["depth"].dtype == torch.float32 and out["face"].dtype == torch.int64
    assert set(out["face"][0][expected].tolist()) == {0, 1}
    assert (out["face"][0][~expected] == -1).all() and "label" not in out
    # back faces are drawn: the reversed winding covers the same pixels
    flipped = rasterise_depth(tensor([corners]), torch.tensor([[0, 2, 1], [0, 3, 2]]), CAM, full(CAM))
    assert torch.equal(covered(flipped), covered(out))
    assert torch.allclose(flipped["depth"][0][expected], torch.tensor(500.0), atol=1e-3)


def test_tilted_quad_depth_is_the_exact_ray_plane_intersection():
    """A plane tilted 60 degrees: linear interpolation of z in screen space would be off by
    millimetres here; 1/z interpolation is exact."""
    cam = Intrinsics(60.0, 60.0, 31.7, 23.2, 64, 48)
    normal = np.array([math.sin(math.radians(60)), 0.1, math.cos(math.radians(60))])
    normal /= np.linalg.norm(normal)
    centre = np.array([12.0, -7.0, 400.0])
    a = np.cross(normal, [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(normal, a)
    quad = np.array([centre + 260 * (sa * a + sb * b) for sa, sb in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    assert quad[:, 2].min() > 100                     # the whole quad is in front of the camera
    out = rasterise_depth(tensor(quad[None]), torch.tensor([[0, 1, 2], [0, 2, 3]]), cam, full(cam))
    rows, cols = np.nonzero(covered(out)[0].numpy())
    assert len(rows) > 1000
    d = ray(cols.astype(np.float64), rows.astype(np.float64), cam)
    exact = (normal @ centre) / (d @ normal)
    got = out["depth"][0].numpy()[rows, cols]
    assert np.abs(got - exact).max() < 1e-2
    assert np.ptp(exact) > 100                       # the test spans a real depth range


def test_icosphere_matches_the_analytic_sphere():
    """The icosphere's vertices lie on the sphere and its faces inside it, outside the
    sphere through its face centres (radius r_in). So a ray that hits the r_in sphere must hit
    the mesh, between the sphere's depth and the r_in sphere's depth. A ray that misses the
    sphere must miss the mesh."""
    cam = Intrinsics(150.0, 150.0, 40.3, 30.6, 80, 60)
    unit, faces = icosphere(3)
    centre, radius = np.array([4.0, -3.0, 320.0]), 50.0
    verts = unit @ rotation(1).T * radius + centre
    tri = unit[faces]
    r_in = radius * min(abs(np.dot(np.cross(t[1] - t[0], t[2] - t[0]), t[0]))
                        / np.linalg.norm(np.cross(t[1] - t[0], t[2] - t[0])) for t in tri)
    assert 0.99 * radius < r_in < radius
    mesh = rasterise_depth(tensor(verts[None]), torch.from_numpy(faces), cam, full(cam))["depth"][0].numpy()
    sphere = {"c": tensor([[centre]]), "r": tensor([[radius]]), "enabled": torch.ones(1, 1, dtype=torch.bool)}
    analytic = render_depth({"s": {"sphere": sphere}}, cam, full(cam))["s"][0].numpy()

    v, u = np.mgrid[0:cam.height, 0:cam.width].astype(np.float64)
    d = ray(u, v, cam)
    dd = (d * d).sum(-1)
    along = (d @ centre) / dd
    miss2 = (centre @ centre) - along ** 2 * dd          # squared distance of the ray from the centre
    t_inner = along - np.sqrt(np.clip(r_in ** 2 - miss2, 0, None) / dd)
    hits_inner = miss2 < r_in ** 2
    misses_outer = miss2 > radius ** 2
    assert hits_inner.sum() > 1500 and (~hits_inner & ~misses_outer).sum() > 0
    assert np.isfinite(mesh[hits_inner]).all()
    assert not np.isfinite(mesh[misses_outer]).any()
    assert (mesh[hits_inner] >= analytic[hits_inner] - 1e-2).all()
    assert (mesh[hits_inner] <= t_inner[hits_inner] + 1e-2).all()


def test_cube_matches_the_analytic_box():
    """A cube's faces are exactly the box's planes: same depth, and the silhouettes can differ
    only at pixels on the border of the analytic silhouette (rounding at the edge)."""
    cam = Intrinsics(120.0, 110.0, 36.4, 27.1, 72, 56)
    rot, centre, half = rotation(2), np.array([-6.0, 5.0, 350.0]), np.array([40.0, 25.0, 30.0])
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    verts = (signs * half) @ rot.T + centre
    # two triangles per side: corners index = 4 * (x > 0) + 2 * (y > 0) + (z > 0)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = torch.tensor([tri for a, b, c, d in quads for tri in ((a, b, c), (a, c, d))])
    mesh = rasterise_depth(tensor(verts[None]), faces, cam, full(cam))["depth"][0]
    box = {"c": tensor([[centre]]), "rot": tensor([[rot]]), "half": tensor([[half]]),
           "enabled": torch.ones(1, 1, dtype=torch.bool)}
    analytic = render_depth({"b": {"box": box}}, cam, full(cam))["b"][0]
    both = torch.isfinite(mesh) & torch.isfinite(analytic)
    assert both.sum() > 500
    assert (mesh[both] - analytic[both]).abs().max() < 1e-2
    hit = torch.isfinite(analytic)
    border = torch.zeros_like(hit)
    border[1:, :] |= hit[1:, :] != hit[:-1, :]
    border[:-1, :] |= hit[1:, :] != hit[:-1, :]
    border[:, 1:] |= hit[:, 1:] != hit[:, :-1]
    border[:, :-1] |= hit[:, 1:] != hit[:, :-1]
    assert not ((torch.isfinite(mesh) != hit) & ~border).any()


# ----------------------------------------------------------------------------- tie rule

def _coverage_per_triangle(verts_uv, faces, cam, z=500.0):
    """Render each triangle alone; [T, h, w] bool coverage."""
    verts = tensor([[[u * z / cam.fx, v * z / cam.fy, z] for u, v in verts_uv]])
    return torch.stack([covered(rasterise_depth(verts, torch.tensor([tri]), cam, full(cam)))[0]
                        for tri in faces])


def test_shared_edge_leaves_no_crack_and_no_double_cover():
    # square with corners on pixel centres: its diagonals and sides pass through pixel centres
    square = [(2, 2), (12, 2), (12, 12), (2, 12)]
    splits = {"main diagonal": [(0, 1, 2), (0, 2, 3)], "other diagonal": [(1, 2, 3), (1, 3, 0)]}
    unions = {}
    for name, faces in splits.items():
        per = _coverage_per_triangle(square, faces, CAM)
        assert not (per[0] & per[1]).any(), f"{name}: a pixel is covered by both triangles"
        unions[name] = per[0] | per[1]
        # with one call, the pixels are those of the two separate renders
        together = rasterise_depth(tensor([[[u * 5, v * 5, 500.0] for u, v in square]]),
                                   torch.tensor(faces), CAM, full(CAM))
        assert torch.equal(covered(together)[0], unions[name])
    # which side pixels count depends only on the square, not on how it was split
    assert torch.equal(unions["main diagonal"], unions["other diagonal"])
    union = unions["main diagonal"]
    assert union[3:12, 3:12].all()                     # interior, including both diagonals
    assert union.sum() == 10 * 10                      # the top-left rule: two of four sides


def test_fan_around_a_vertex_on_a_pixel_centre_covers_it_once():
    # eight triangles around (10, 10), edges horizontal, vertical and diagonal through centres
    ring = [(14, 10), (14, 14), (10, 14), (6, 14), (6, 10), (6, 6), (10, 6), (14, 6)]
    points = [(10, 10)] + ring
    faces = [(0, 1 + i, 1 + (i + 1) % 8) for i in range(8)]
    count = _coverage_per_triangle(points, faces, CAM).sum(0)
    assert count.max() == 1
    assert count[10, 10] == 1
    assert count[7:14, 7:14].min() == 1                # all of the fan's interior


def _coverage_count(verts, faces, cam):
    """How many faces cover each pixel: frame i of a batch draws only face i."""
    n = len(faces)
    out = rasterise_depth(verts.expand(n, -1, -1), faces, cam, full(cam, n),
                          face_valid=torch.eye(n, dtype=torch.bool))
    return covered(out).sum(0)


def test_edges_through_pixel_centres_at_inexact_coordinates_cover_each_pixel_once():
    """A grid whose diagonals (slope 1/3) pass exactly through pixel centres, from vertices at
    coordinates that float32 cannot hold exactly (x.3, y.1): only edge functions that are
    bit-identical (up to sign) in the two faces of an edge keep every centre covered once."""
    cam = Intrinsics(100.0, 100.0, 0.0, 0.0, 40, 24)
    cols, rows = 11, 18
    grid = [(3 * i + 0.3, j + 0.1) for j in range(rows + 1) for i in range(cols + 1)]
    index = lambda i, j: j * (cols + 1) + i
    faces = torch.tensor([tri for j in range(rows) for i in range(cols)
                          for tri in ((index(i, j), index(i + 1, j), index(i + 1, j + 1)),
                                      (index(i, j), index(i + 1, j + 1), index(i, j + 1)))])
    z = 437.0
    verts = tensor([[[u * z / cam.fx, v * z / cam.fy, z] for u, v in grid]])
    count = _coverage_count(verts, faces, cam)
    assert count.max() == 1
    assert count[1:19, 1:34].min() == 1                # the grid spans u 0.3..33.3, v 0.1..18.1


def test_closed_mesh_covers_each_silhouette_pixel_exactly_twice():
    """A convex closed mesh: every ray through its silhouette enters once and leaves once."""
    cam = Intrinsics(95.0, 95.0, 20.3, 15.8, 40, 32)
    unit, faces = icosphere(2)
    verts = tensor((unit @ rotation(7).T * 60.0 + np.array([3.0, -2.0, 330.0]))[None])
    count = _coverage_count(verts, torch.from_numpy(faces), cam)
    assert set(count.unique().tolist()) == {0, 2}
    assert (count == 2).sum() > 300


# ----------------------------------------------------------------------------- visibility

@pytest.mark.parametrize("near_first", [True, False])
def test_nearest_surface_wins_and_labels_follow_it(near_first):
    near = [[10.0, 10.0, 400.0], [60.0, 10.0, 400.0], [60.0, 60.0, 400.0], [10.0, 60.0, 400.0]]   # u, v in [2.5, 15]
    far = [[40.0, 40.0, 600.0], [108.0, 40.0, 600.0], [108.0, 108.0, 600.0], [40.0, 108.0, 600.0]]  # [6.67, 18]
    quads = [near, far] if near_first else [far, near]
    verts = tensor([quads[0] + quads[1]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    labels = torch.tensor([0, 0, 1, 1]) if near_first else torch.tensor([1, 1, 0, 0])   # 0 = near quad
    out = rasterise_depth(verts, faces, CAM, full(CAM), face_labels=labels)
    depth, label = out["depth"][0], out["label"][0]
    assert torch.allclose(depth[10, 10], torch.tensor(400.0)) and label[10, 10] == 0   # both overlap here
    assert torch.allclose(depth[16, 16], torch.tensor(600.0)) and label[16, 16] == 1   # far only
    assert torch.allclose(depth[4, 4], torch.tensor(400.0)) and label[4, 4] == 0       # near only
    assert label[0, 0] == -1 and out["face"][0, 0, 0] == -1
    near_pixels = depth < 500
    assert (label[near_pixels] == 0).all() and (label[torch.isfinite(depth) & ~near_pixels] == 1).all()
    assert torch.equal(labels[out["face"][0][torch.isfinite(depth)]], label[torch.isfinite(depth)])


def _sphere_batch(batch=3, subdivisions=2):
    unit, faces = icosphere(subdivisions)
    centres = [(-20.0, 10.0, 300.0), (30.0, -25.0, 450.0), (0.0, 0.0, 200.0), (50.0, 40.0, 380.0)]
    verts = np.stack([unit @ rotation(10 + b).T * 45.0 + np.array(centres[b % 4]) for b in range(batch)])
    return tensor(verts), torch.from_numpy(faces)


def test_sub_window_equals_the_full_frame_and_is_empty_outside_the_image():
    cam = Intrinsics(110.0, 110.0, 31.6, 24.2, 64, 48)
    verts, faces = _sphere_batch(3)
    whole = rasterise_depth(verts, faces, cam, full(cam, 3))
    window = Window(torch.tensor([10, -8, 40]), torch.tensor([5, 30, -6]), 36, 28)
    part = rasterise_depth(verts, faces, cam, window)
    for b in range(3):
        left, top = int(window.left[b]), int(window.top[b])
        for row in range(window.height):
            for col in range(window.width):
                r, c = top + row, left + col
                if 0 <= r < cam.height and 0 <= c < cam.width:
                    assert part["depth"][b, row, col] == whole["depth"][b, r, c]
                    assert part["face"][b, row, col] == whole["face"][b, r, c]
                else:
                    assert part["depth"][b, row, col] == float("inf") and part["face"][b, row, col] == -1
    assert covered(part).sum() > 500


def test_window_without_image_size_renders_beyond_the_image():
    cam = Intrinsics(110.0, 110.0, 31.6, 24.2, 64, 48)
    unit, faces = icosphere(2)
    verts = tensor((unit * 45.0 + np.array([-100.0, 0.0, 300.0]))[None])   # u from about -21 to 12
    window = Window(torch.tensor([-24]), torch.tensor([0]), 40, 48)
    known = rasterise_depth(verts, torch.from_numpy(faces), cam, window)
    unbounded = rasterise_depth(verts, torch.from_numpy(faces), Intrinsics(cam.fx, cam.fy, cam.cx, cam.cy, 0, 0),
                                window)
    left_of_image = torch.zeros(1, 48, 40, dtype=torch.bool)
    left_of_image[..., :24] = True
    assert not covered(known)[left_of_image].any() and covered(known)[~left_of_image].any()
    assert covered(unbounded)[left_of_image].any()
    assert torch.equal(known["depth"][~left_of_image], unbounded["depth"][~left_of_image])


def test_mirrored_mesh_renders_the_mirrored_image():
    cam = Intrinsics(90.0, 90.0, 31.5, 23.7, 64, 48)          # cx = (64 - 1) / 2: u -> 63 - u
    vertices, faces = ellipsoid_parts_mesh()
    verts = vertices.double().numpy() @ rotation(4).T * 0.5 + np.array([8.0, 3.0, 420.0])
    mirrored = verts * np.array([-1.0, 1.0, 1.0])
    right = rasterise_depth(tensor(verts[None]), faces, cam, full(cam))
    left = rasterise_depth(tensor(mirrored[None]), faces[:, [0, 2, 1]], cam, full(cam))
    flipped = left["depth"][0].flip(-1)
    assert covered(right).sum() > 200
    assert torch.equal(torch.isfinite(flipped), covered(right)[0])
    hit = covered(right)[0]
    assert (flipped[hit] - right["depth"][0][hit]).abs().max() < 1e-3
    assert torch.equal(left["face"][0].flip(-1), right["face"][0])


def test_faces_at_or_behind_the_camera_are_dropped():
    square = [[-40.0, -40.0], [40.0, -40.0], [40.0, 40.0], [-40.0, 40.0]]
    cam = Intrinsics(100.0, 100.0, 9.5, 9.5, 20, 20)
    cases = {"behind": [-300.0] * 4, "one vertex behind": [500.0, 500.0, -50.0, 500.0],
             "one vertex at z = 1": [500.0, 1.0, 500.0, 500.0], "one vertex at z = 0.5": [0.5, 500.0, 500.0, 500.0]}
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    for name, zs in cases.items():
        verts = tensor([[[x, y, z] for (x, y), z in zip(square, zs)]])
        out = rasterise_depth(verts, faces, cam, full(cam))
        dropped = [i for i, tri in enumerate(faces.tolist()) if min(zs[j] for j in tri) <= 1.0]
        assert not any(f in dropped for f in out["face"].unique().tolist()), name
    # the same square wholly in front covers u, v in [1.5, 17.5]
    verts = tensor([[[x, y, 500.0] for x, y in square]])
    assert torch.equal(covered(rasterise_depth(verts, faces, cam, full(cam)))[0, 2:18, 2:18], torch.ones(16, 16, dtype=torch.bool))


def test_masks_disable_faces_per_frame():
    verts, faces = _sphere_batch(2)
    cam = Intrinsics(110.0, 110.0, 31.6, 24.2, 64, 48)
    face_valid = torch.ones(2, len(faces), dtype=torch.bool)
    face_valid[1] = False
    out = rasterise_depth(verts, faces, cam, full(cam, 2), face_valid=face_valid)
    assert covered(out)[0].any() and not covered(out)[1].any()
    vertex_valid = torch.ones(2, verts.shape[1], dtype=torch.bool)
    vertex_valid[0, int(faces[0, 0])] = False
    broken = verts.clone()
    broken[0, int(faces[0, 0])] = float("nan")          # an invalid vertex's coordinates are not used
    out = rasterise_depth(broken, faces, cam, full(cam, 2), vertex_valid=vertex_valid)
    uses = (faces == faces[0, 0]).any(1)
    assert not torch.isin(out["face"][0], torch.nonzero(uses).flatten()).any()
    assert torch.equal(out["face"][1], rasterise_depth(verts, faces, cam, full(cam, 2))["face"][1])


def test_empty_inputs_render_nothing():
    cam = Intrinsics(100.0, 100.0, 9.5, 9.5, 20, 20)
    for verts, faces in ((torch.zeros(2, 0, 3), torch.zeros(0, 3, dtype=torch.long)),
                         (torch.ones(2, 3, 3), torch.zeros(0, 3, dtype=torch.long))):
        out = rasterise_depth(verts, faces, cam, full(cam, 2), face_labels=torch.zeros(0, dtype=torch.long))
        assert out["depth"].shape == (2, 20, 20) and torch.isinf(out["depth"]).all()
        assert (out["label"] == -1).all() and (out["face"] == -1).all()
    out = rasterise_depth(torch.zeros(0, 3, 3), torch.tensor([[0, 1, 2]]), cam, full(cam, 0))
    assert out["depth"].shape == (0, 20, 20)


def test_bad_inputs_raise_clear_errors():
    cam = Intrinsics(100.0, 100.0, 9.5, 9.5, 20, 20)
    verts = torch.rand(2, 4, 3) + torch.tensor([0.0, 0.0, 500.0])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    window = full(cam, 2)
    cases = [
        (dict(faces=torch.tensor([[0, 1, 4]])), "0..4, but there are 4 vertices"),
        (dict(faces=torch.tensor([[0, -1, 2]])), "-1..2"),
        (dict(faces=faces.float()), "integer"),
        (dict(faces=torch.tensor([[0, 1, 2, 3]])), r"\[F, 3\]"),
        (dict(vertices=verts[0]), r"\[B, V, 3\]"),
        (dict(vertices=verts[..., :2]), r"\[B, V, 3\]"),
        (dict(vertices=verts.long()), "floating-point"),
        (dict(window=full(cam, 3)), "one per frame"),
        (dict(vertex_valid=torch.ones(2, 3, dtype=torch.bool)), "vertex_valid"),
        (dict(face_valid=torch.ones(2, 2)), "face_valid"),
        (dict(face_labels=torch.zeros(3, dtype=torch.long)), "face_labels"),
        (dict(chunk_pairs=0), "chunk_pairs"),
        (dict(vertices=torch.where(torch.arange(4)[None, :, None] == 1, float("nan"), verts)), "NaN"),
    ]
    for change, message in cases:
        args = dict(vertices=verts, faces=faces, cam=cam, window=window)
        args.update(change)
        kwargs = {k: args.pop(k) for k in ("vertex_valid", "face_valid", "face_labels", "chunk_pairs") if k in args}
        with pytest.raises(ValueError, match=message):
            rasterise_depth(args["vertices"], args["faces"], args["cam"], args["window"], **kwargs)


# ----------------------------------------------------------------------------- batching

def test_tiny_chunks_give_the_identical_image():
    cam = Intrinsics(110.0, 110.0, 31.6, 24.2, 64, 48)
    verts, faces = _sphere_batch(3)
    window = Window(torch.tensor([0, 5, -3]), torch.tensor([0, -2, 7]), 60, 44)
    labels = torch.arange(len(faces)) % 3
    reference = rasterise_depth(verts, faces, cam, window, face_labels=labels)
    for chunk in (7, 1000):
        tiny = rasterise_depth(verts, faces, cam, window, chunk_pairs=chunk, face_labels=labels)
        for key in ("depth", "face", "label"):
            assert torch.equal(tiny[key], reference[key]), (chunk, key)


def test_integer_division_path_for_huge_windows_gives_the_identical_image(monkeypatch):
    """Rectangles too large for the float32 (row, column) split use int64 division instead."""
    import hand_pose_ros.data.synthetic.rasterise as rasterise

    cam = Intrinsics(110.0, 110.0, 31.6, 24.2, 64, 48)
    verts, faces = _sphere_batch(2)
    reference = rasterise_depth(verts, faces, cam, full(cam, 2))
    monkeypatch.setattr(rasterise, "_FLOAT_DIVISION_MAX_PIXELS", 0)
    integer = rasterise_depth(verts, faces, cam, full(cam, 2))
    assert torch.equal(integer["depth"], reference["depth"]) and torch.equal(integer["face"], reference["face"])


def test_compose_depth_combines_with_the_ray_caster():
    cam = Intrinsics(110.0, 110.0, 31.6, 24.2, 64, 48)
    verts, faces = _sphere_batch(1)
    mesh = rasterise_depth(verts, faces, cam, full(cam))["depth"]
    wall = {"normal": tensor([[0.0, 0.0, 1.0]]), "offset": tensor([350.0]), "enabled": torch.ones(1, dtype=torch.bool)}
    analytic = render_depth({"bg": {"plane": wall}}, cam, full(cam))["bg"]
    depth = compose_depth(mesh, analytic)
    assert torch.equal(depth, torch.minimum(mesh, analytic))           # the wall is everywhere
    assert (depth[covered({"depth": mesh})] < 350).any() and (depth == 350).any()
    empty = compose_depth(torch.full((1, 4, 4), float("inf")))
    assert torch.equal(empty, torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="shape"):
        compose_depth(mesh, analytic[:, :3])


def test_benchmark_mesh_is_closed_and_the_benchmark_runs():
    vertices, faces = ellipsoid_parts_mesh()
    edges = torch.sort(torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), dim=1).values
    _, counts = torch.unique(edges, dim=0, return_counts=True)
    assert (counts == 2).all()                                          # every edge has two faces
    result = bench_rasterise("cpu", batch=2, size=32, repeats=1)
    assert result["faces"] == len(faces) and 0 < result["covered_fraction"] < 1
    assert result["ms_per_batch"] > 0 and result["pairs_per_frame"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    cam = Intrinsics(110.0, 110.0, 31.6, 24.2, 64, 48)
    verts, faces = _sphere_batch(4, subdivisions=3)
    window = Window(torch.tensor([0, 5, -3, 20]), torch.tensor([0, -2, 7, 10]), 60, 44)
    labels = torch.arange(len(faces)) % 3
    cpu = rasterise_depth(verts, faces, cam, window, face_labels=labels)
    gpu_window = Window(window.left.cuda(), window.top.cuda(), window.width, window.height)
    gpu = rasterise_depth(verts.cuda(), faces.cuda(), cam, gpu_window, face_labels=labels.cuda(), chunk_pairs=5000)
    assert torch.equal(torch.isfinite(gpu["depth"]).cpu(), torch.isfinite(cpu["depth"]))
    hit = torch.isfinite(cpu["depth"])
    assert (gpu["depth"].cpu()[hit] - cpu["depth"][hit]).abs().max() < 1e-3
    assert torch.equal(gpu["face"].cpu(), cpu["face"]) and torch.equal(gpu["label"].cpu(), cpu["label"])

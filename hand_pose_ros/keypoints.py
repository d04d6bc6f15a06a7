"""Keypoint names, dataset joint orders, skeleton edges and finger colours.

The single source of truth for every joint-order fact in the project. Everything
downstream of a dataset reader speaks keypoint *names*; index orders only exist here.
"""
from __future__ import annotations

import numpy as np

FINGERS = ("thumb", "index", "middle", "ring", "pinky")

# The 21-keypoint convention (MediaPipe order, what dex-retargeting consumes).
CANONICAL = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)

# Points some datasets label that the 21-point convention lacks (NYU's palm and the two
# sides of the wrist). Radial = thumb side, ulnar = little-finger side.
EXTRA = ("palm_center", "wrist_radial", "wrist_ulnar")

ALL_NAMES = CANONICAL + EXTRA

# Each dataset's label order, as keypoint names (see shared/docs/datasets.md).
DATASET_ORDERS: dict[str, tuple[str, ...]] = {
    # wrist, index (MCP, PIP, DIP, TIP), middle, ring, little, thumb (4 joints, root first)
    "msra": ("wrist",
             "index_mcp", "index_pip", "index_dip", "index_tip",
             "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
             "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
             "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
             "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip"),
    # wrist, the five MCPs (thumb first), then PIP, DIP, TIP of thumb, index, ... pinky.
    # The thumb's 'MCP' in this order is its root joint (our CMC).
    "hands2017": ("wrist",
                  "thumb_cmc", "index_mcp", "middle_mcp", "ring_mcp", "pinky_mcp",
                  "thumb_mcp", "thumb_ip", "thumb_tip",
                  "index_pip", "index_dip", "index_tip",
                  "middle_pip", "middle_dip", "middle_tip",
                  "ring_pip", "ring_dip", "ring_tip",
                  "pinky_pip", "pinky_dip", "pinky_tip"),
    # palm (at the base of the palm), then root, mid, tip for thumb, index, middle, ring, pinky.
    "icvl": ("wrist",
             "thumb_mcp", "thumb_ip", "thumb_tip",
             "index_mcp", "index_pip", "index_tip",
             "middle_mcp", "middle_pip", "middle_tip",
             "ring_mcp", "ring_pip", "ring_tip",
             "pinky_mcp", "pinky_pip", "pinky_tip"),
    # The 14 evaluation joints (ids 0,3,6,...,32 of NYU's 36): tip and mid joint of pinky,
    # ring, middle, index; thumb tip, IP, MCP; the two wrist sides; the palm centre.
    "nyu": ("pinky_tip", "pinky_pip", "ring_tip", "ring_pip",
            "middle_tip", "middle_pip", "index_tip", "index_pip",
            "thumb_tip", "thumb_ip", "thumb_mcp",
            "wrist_ulnar", "wrist_radial", "palm_center"),
    "canonical": CANONICAL,
}
DATASET_ORDERS["synthetic"] = CANONICAL

# Which of NYU's 36 labelled joints the 14 evaluation joints are.
NYU_JOINT_IDS = (0, 3, 6, 9, 12, 15, 18, 21, 24, 25, 27, 30, 31, 32)

FINGER_COLOURS = {  # RGB in [0, 1]
    "palm": (0.85, 0.85, 0.85),
    "thumb": (0.95, 0.30, 0.25),
    "index": (0.98, 0.70, 0.15),
    "middle": (0.30, 0.80, 0.30),
    "ring": (0.20, 0.55, 0.95),
    "pinky": (0.70, 0.35, 0.90),
}

# Bones of the canonical hand, as (parent, child) name pairs.
_CANONICAL_EDGES = [("wrist", "thumb_cmc"), ("thumb_cmc", "thumb_mcp"),
                    ("thumb_mcp", "thumb_ip"), ("thumb_ip", "thumb_tip")]
for _f in FINGERS[1:]:
    _CANONICAL_EDGES += [("wrist", f"{_f}_mcp"), (f"{_f}_mcp", f"{_f}_pip"),
                         (f"{_f}_pip", f"{_f}_dip"), (f"{_f}_dip", f"{_f}_tip")]
_CANONICAL_EDGES += [("index_mcp", "middle_mcp"), ("middle_mcp", "ring_mcp"),
                     ("ring_mcp", "pinky_mcp")]
# Bones for the extra points, and shortcuts for subsets that lack a joint (ICVL has no
# DIP or thumb CMC, NYU no MCP for the long fingers): (a, b, the joint it stands in for).
_SHORTCUTS = [("wrist_radial", "wrist_ulnar", None), ("wrist_radial", "palm_center", None),
              ("wrist_ulnar", "palm_center", None), ("wrist", "thumb_mcp", "thumb_cmc"),
              ("palm_center", "thumb_mcp", "thumb_cmc")]
for _f in FINGERS[1:]:
    _SHORTCUTS += [(f"{_f}_pip", f"{_f}_tip", f"{_f}_dip"), ("palm_center", f"{_f}_pip", f"{_f}_mcp")]
CANONICAL_EDGES = tuple(_CANONICAL_EDGES)


def finger_of(name: str) -> str:
    """'index_pip' -> 'index'; wrist and palm points -> 'palm'."""
    head = name.split("_")[0]
    return head if head in FINGERS else "palm"


def colour_of(name: str) -> tuple[float, float, float]:
    return FINGER_COLOURS[finger_of(name)]


def order(dataset: str) -> tuple[str, ...]:
    try:
        return DATASET_ORDERS[dataset.lower()]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(DATASET_ORDERS)}") from None


def indices(names, of=CANONICAL) -> np.ndarray:
    """Positions of `names` inside the order `of` (ValueError naming what is missing)."""
    missing = [n for n in names if n not in of]
    if missing:
        raise ValueError(f"keypoints {missing} are not in this order")
    return np.array([of.index(n) for n in names], dtype=np.int64)


def edges(names) -> list[tuple[int, int]]:
    """Skeleton edges between the given keypoints, as index pairs into `names`.

    Canonical bones where both ends exist; a shortcut bone where a subset lacks the joint
    between (e.g. PIP -> TIP without a DIP).
    """
    names = tuple(names)
    present = set(names)
    pairs = [(a, b) for a, b in CANONICAL_EDGES if a in present and b in present]
    pairs += [(a, b) for a, b, skipped in _SHORTCUTS
              if a in present and b in present and skipped not in present]
    return [(names.index(a), names.index(b)) for a, b in pairs]


def reorder(joints: np.ndarray, src, dst) -> np.ndarray:
    """Pick the joints of order `dst` out of an array [..., len(src), C] in order `src`."""
    return np.asarray(joints)[..., indices(dst, of=tuple(src)), :]

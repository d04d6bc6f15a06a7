"""Could these 21 keypoints be a human hand? A gate against a hand-sized object (a ball, a
cup, a forearm) that the model turned into a skeleton no hand can make: the palm size and
bone lengths (`implausibility`: the whole hand) and the joint bends of each finger
(`implausible_fingers`: a finger bent where no finger bends is dropped, like a lost one,
because a noisy model bends single fingers backwards far more often than whole hands).

The ranges are anatomical values widened by an allowance for keypoint estimation error
(tens of mm on a real sensor): the gate rejects what no hand can do, not noise. All
ranges are in the one table below with their sources. Keypoints in millimetres, CANONICAL
order; unusable keypoints (NaN) skip the checks they take part in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_pose_ros.keypoints import CANONICAL
from hand_pose_ros.retarget.hand_frame import to_hand_frame

_I = {name: i for i, name in enumerate(CANONICAL)}
ESTIMATION_ALLOWANCE_DEG = 30.0  # a 10 mm error on a 20 mm bone turns it by about 27 deg


@dataclass(frozen=True)
class Limit:
    low: float
    high: float
    source: str


# The palm: wrist keypoint -> middle MCP, mm. Adult average 92 mm (data/synthetic/hand.py,
# from anthropometric tables); children's hands from about 6 years are ~0.6 of an adult's.
PALM_LENGTH_MM = Limit(50.0, 140.0, "adult average 92 mm (anthropometric tables, as data/synthetic/hand.py) "
                                    "x 0.55 .. 1.5: children to large adults")

# Bone length / palm length. Nominal adult values are data/synthetic/hand.py's BONE_MM over
# its 92 mm palm (e.g. middle proximal 0.50, pinky distal 0.21). The lower bounds are far
# below them because a model with ~15 mm keypoint error often puts a fingertip almost on
# its DIP (measured: shipped model, fixed synthetic test set); the upper ones are ~2-3x.
_BONE_SOURCE = ("adult proportions (anthropometric averages, data/synthetic/hand.py), widened for the "
                "shipped model's keypoint error")
BONE_RATIO: dict[tuple[str, str], Limit] = {}
for _finger in ("index", "middle", "ring", "pinky"):
    BONE_RATIO[("wrist", f"{_finger}_mcp")] = Limit(0.6, 1.4, "palm geometry: the MCPs lie 0.85-1.0 palm lengths "
                                                              "from the wrist; widened for estimation error")
    BONE_RATIO[(f"{_finger}_mcp", f"{_finger}_pip")] = Limit(0.1, 0.9, _BONE_SOURCE)
    BONE_RATIO[(f"{_finger}_pip", f"{_finger}_dip")] = Limit(0.02, 0.7, _BONE_SOURCE)
    BONE_RATIO[(f"{_finger}_dip", f"{_finger}_tip")] = Limit(0.02, 0.7, _BONE_SOURCE)
BONE_RATIO[("wrist", "thumb_cmc")] = Limit(0.05, 0.8, "thumb base near the wrist; widened for estimation error")
BONE_RATIO[("thumb_cmc", "thumb_mcp")] = Limit(0.1, 0.95, _BONE_SOURCE)
BONE_RATIO[("thumb_mcp", "thumb_ip")] = Limit(0.05, 0.8, _BONE_SOURCE)
BONE_RATIO[("thumb_ip", "thumb_tip")] = Limit(0.02, 0.7, _BONE_SOURCE)

# Signed bend at a finger joint (deg, + = flexion toward the palm), between the bone into
# the joint and the bone out of it. Normal active range of motion (AAOS / hand-surgery
# reference values: MCP 45 hyperextension / 90 flexion, PIP 0 / 100-110, DIP 0-10 / 80-90,
# thumb MCP 10 / 55, thumb IP 15-20 / 80), plus ESTIMATION_ALLOWANCE_DEG on both sides.
# The finger MCP also gets 20 deg more, since the wrist->MCP line is not the metacarpal axis.
_ROM_SOURCE = "normal range of motion (AAOS / hand-surgery reference values) +- estimation allowance"
_A = ESTIMATION_ALLOWANCE_DEG
BEND_DEG: dict[str, Limit] = {}
for _finger in ("index", "middle", "ring", "pinky"):
    BEND_DEG[f"{_finger}_mcp"] = Limit(-45.0 - _A - 20.0, 90.0 + _A + 20.0, _ROM_SOURCE)
    BEND_DEG[f"{_finger}_pip"] = Limit(-10.0 - _A, 110.0 + _A, _ROM_SOURCE)
    BEND_DEG[f"{_finger}_dip"] = Limit(-20.0 - _A, 90.0 + _A, _ROM_SOURCE)
# The thumb flexes in its own plane, so only the size of its bend is checked.
THUMB_BEND_DEG = {"thumb_mcp": Limit(0.0, 55.0 + _A, _ROM_SOURCE), "thumb_ip": Limit(0.0, 80.0 + _A, _ROM_SOURCE)}

_PARENT = {"thumb_mcp": "thumb_cmc", "thumb_ip": "thumb_mcp"}
for _finger in ("index", "middle", "ring", "pinky"):
    _PARENT.update({f"{_finger}_mcp": "wrist", f"{_finger}_pip": f"{_finger}_mcp",
                    f"{_finger}_dip": f"{_finger}_pip"})
_CHILD = {"thumb_mcp": "thumb_ip", "thumb_ip": "thumb_tip"}
for _finger in ("index", "middle", "ring", "pinky"):
    _CHILD.update({f"{_finger}_mcp": f"{_finger}_pip", f"{_finger}_pip": f"{_finger}_dip",
                   f"{_finger}_dip": f"{_finger}_tip"})


def _bend_deg(local: np.ndarray, joint: str, signed: bool) -> float:
    """Bend at `joint` in the hand frame (x distal, y radial, z dorsal): positive when the
    outgoing bone turns toward the palm (a rotation about +y)."""
    b1 = local[_I[joint]] - local[_I[_PARENT[joint]]]
    b2 = local[_I[_CHILD[joint]]] - local[_I[joint]]
    cross = np.cross(b1, b2)
    dot = float(np.dot(b1, b2))
    if signed:
        return float(np.degrees(np.arctan2(cross[1], dot)))
    return float(np.degrees(np.arctan2(np.linalg.norm(cross), dot)))


def implausibility(xyz_mm) -> str | None:
    """Why these keypoints [21, 3] (mm) cannot be a human hand (palm size, bone lengths),
    or None when they can."""
    kp = np.asarray(xyz_mm, dtype=np.float64)
    if kp.shape != (len(CANONICAL), 3):
        raise ValueError(f"keypoints must have shape ({len(CANONICAL)}, 3), got {kp.shape}")
    palm = float(np.linalg.norm(kp[_I["middle_mcp"]] - kp[_I["wrist"]]))
    if not np.isfinite(palm):
        return None  # nothing to measure against: the caller's keypoint checks decide
    if not PALM_LENGTH_MM.low <= palm <= PALM_LENGTH_MM.high:
        return (f"palm length (wrist to middle MCP) {palm:.0f} mm is outside the human "
                f"{PALM_LENGTH_MM.low:.0f}-{PALM_LENGTH_MM.high:.0f} mm")
    for (a, b), limit in BONE_RATIO.items():
        ratio = float(np.linalg.norm(kp[_I[b]] - kp[_I[a]])) / palm
        if np.isfinite(ratio) and not limit.low <= ratio <= limit.high:
            return (f"bone {a}-{b} is {ratio:.2f} palm lengths, outside the human "
                    f"{limit.low:.2f}-{limit.high:.2f}")
    return None


def implausible_fingers(xyz_mm, handedness: str | None = None) -> dict[str, str]:
    """{finger: why} for the fingers bent outside human ranges. handedness None: read as
    whichever hand fits better (a hand tracked with the wrong `handedness` setting is not
    refused for it)."""
    kp = np.asarray(xyz_mm, dtype=np.float64)
    results = [_bend_problems(kp, side) for side in ((handedness,) if handedness else ("right", "left"))]
    return min(results, key=len)


def _bend_problems(kp: np.ndarray, handedness: str) -> dict[str, str]:
    with np.errstate(invalid="ignore"):
        local = to_hand_frame(kp, handedness)  # mirrored into a right hand: flexion is about +y
    if not np.isfinite(local[[_I["wrist"], _I["middle_mcp"]]]).all():
        return {}
    problems: dict[str, str] = {}
    for joints, signed in ((BEND_DEG, True), (THUMB_BEND_DEG, False)):
        for joint, limit in joints.items():
            finger = joint.split("_")[0]
            angle = _bend_deg(local, joint, signed)
            if finger not in problems and np.isfinite(angle) and not limit.low <= angle <= limit.high:
                problems[finger] = (f"{joint} bent {angle:.0f} deg, outside the human {limit.low:.0f} to "
                                    f"{limit.high:.0f} deg (as a {handedness} hand)")
    return problems

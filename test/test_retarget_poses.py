"""Canonical poses give sensible robot commands, for every robot hand and both retargeters;
left and right hands give the same commands for mirrored poses; the camera placement does
not matter."""
import numpy as np
import pytest
from conftest import SHARED

from hand_pose_ros.retarget import available_hands, load_hand_spec, make_retargeter
from hand_pose_ros.retarget.human_hand import named_pose, place_in_camera, random_rotation

LONG_FINGERS = ("index", "middle", "ring", "pinky")
CASES = [(hand, "analytic", {}) for hand in ("leap", "allegro", "shadow")] + [
    (hand, "optimisation", {"method": method}) for hand in ("leap", "allegro", "shadow")
    for method in ("vector", "dexpilot")]
IDS = [f"{h}-{k}{'-' + o['method'] if o else ''}" for h, k, o in CASES]
# Shadow has no URDF of ours: its optimisation cases run on dex-urdf's (../shared, read only).
SHADOW_URDF = SHARED / "urdf_ref" / "shadow_hand" / "shadow_hand_right.urdf"


def load_case_spec(hand, kind):
    if hand == "shadow" and kind == "optimisation":
        if not SHADOW_URDF.is_file():
            pytest.skip(f"{SHADOW_URDF} not available")
        return load_hand_spec(hand, urdf=SHADOW_URDF)
    return load_hand_spec(hand)


def flexion_joints(spec) -> dict:
    """finger -> indices of its MCP, PIP, DIP flexion joints (table rows copying one angle)."""
    out = {}
    for i, joint in enumerate(spec.joints):
        row = spec.analytic[joint.name]
        for f in LONG_FINGERS:
            if row in ({f"{f}_mcp": 1.0}, {f"{f}_pip": 1.0}, {f"{f}_dip": 1.0}):
                out.setdefault(f, []).append(i)
    return out


def command(retargeter, spec, keypoints, handedness="right", frames=5):
    """Settled, limit-clipped command for a held pose (the optimiser warm-starts frame to frame)."""
    retargeter.reset()
    for _ in range(frames):
        q = retargeter.retarget(keypoints, handedness)
    assert np.isfinite(q).all()
    return np.clip(q, spec.lower, spec.upper)


@pytest.fixture(scope="module")
def retargeters():
    made = {}
    for hand, kind, options in CASES:
        if hand == "shadow" and kind == "optimisation" and not SHADOW_URDF.is_file():
            continue
        spec = load_case_spec(hand, kind)
        made[(hand, kind, options.get("method"))] = (spec, make_retargeter(spec, kind, **options))
    return made


def case(retargeters, hand, kind, options):
    key = (hand, kind, options.get("method"))
    if key not in retargeters:
        pytest.skip(f"{SHADOW_URDF} not available")
    return retargeters[key]


@pytest.mark.parametrize("hand, kind, options", CASES, ids=IDS)
def test_open_fist_point_pinch(retargeters, hand, kind, options):
    if (hand, kind) == ("shadow", "optimisation"):
        pytest.xfail("Shadow's little finger is about 20% longer than a scaled human's: both optimisers "
                     "curl it in the open hand (LFJ1 0.87 vector, 1.57 DexPilot); needs per-finger scaling")
    spec, r = case(retargeters, hand, kind, options)
    fingers = flexion_joints(spec)
    assert set(fingers) >= {"index", "middle", "ring"}
    q = {name: command(r, spec, named_pose(name)) for name in ("open", "fist", "point", "pinch")}
    # The optimisers trade a little shape for tip position; DexPilot, which matches fingertips
    # only, more: a robot finger longer than the scaled human's bends a little when open.
    loose = {"analytic": 0.1, "vector": 0.4, "dexpilot": 0.6}[options.get("method", kind)]

    for f, idx in fingers.items():
        # open: every finger joint near zero
        assert np.all(np.abs(q["open"][idx]) < loose), (f, q["open"][idx])
        # fist: near the flexion limits
        fraction = q["fist"][idx] / spec.upper[idx]
        assert fraction.mean() > 0.6 and fraction.max() > 0.8, (f, fraction)
        # point: index straight, the others curled
        flex = q["point"][idx].sum()
        assert (flex < 3 * loose) if f == "index" else (flex > 2.5), (f, q["point"][idx])

    # pinch: the index closes (more than the relaxed middle finger) and the thumb moves
    index_flex = q["pinch"][fingers["index"]].sum()
    assert index_flex > q["open"][fingers["index"]].sum() + 1.0
    assert index_flex > q["pinch"][fingers["middle"]].sum() + 0.5
    thumb = [i for i, g in enumerate(spec.groups) if g == "thumb"]
    assert np.abs(q["pinch"][thumb] - q["open"][thumb]).sum() > 0.5

    if spec.urdf is not None:  # the robot's thumb and index tips actually close
        from hand_pose_ros.retarget.kinematics import HandKinematics
        kin = HandKinematics(spec)
        links = [spec.optimization.fingertip_links[f] for f in ("thumb", "index")]
        gap = {name: np.linalg.norm(np.subtract(*kin.link_positions(q[name], links))) for name in ("open", "pinch")}
        assert gap["pinch"] < 0.4 * gap["open"], gap
        if options.get("method") == "dexpilot":
            assert gap["pinch"] < 0.01, gap  # DexPilot snaps a pinch shut


@pytest.mark.parametrize("hand, kind, options", CASES, ids=IDS)
def test_mirrored_hands_and_any_camera_placement_give_the_same_command(retargeters, hand, kind, options):
    spec, r = case(retargeters, hand, kind, options)
    rng = np.random.default_rng(7)
    tol = 1e-9 if kind == "analytic" else 2e-3
    for name in ("open", "pinch", "fist"):
        reference = command(r, spec, named_pose(name, "right"))
        for _ in range(2):
            for handedness in ("right", "left"):
                rotation, translation = random_rotation(rng), rng.uniform(-0.5, 0.5, 3) + [0, 0, 0.8]
                camera = place_in_camera(named_pose(name, handedness), rotation, translation)
                np.testing.assert_allclose(command(r, spec, camera, handedness), reference, atol=tol)


@pytest.mark.parametrize("hand, kind, options", CASES, ids=IDS)
def test_open_hand_pins_no_finger_joint_and_keeps_the_wrist_still(retargeters, hand, kind, options):
    """Allegro's open hand used to drive joints 0.0 and 8.0 to +-0.47 (both optimisers) and
    the optimiser moved Shadow's wrist; the shipped Shadow RFJ4 sign put ring and middle tips
    6 mm apart."""
    from hand_pose_ros.retarget.check_hand import _pinned

    spec, r = case(retargeters, hand, kind, options)
    q = {name: command(r, spec, named_pose(name)) for name in ("open", "spread", "fist", "pinch")}
    pinned = _pinned(spec, q["open"])
    if options.get("method") == "dexpilot":  # fingertips only: see check_hand; the twists must stay free
        pinned = [p for p in pinned if p.split("=")[0] in ("joint_0.0", "joint_4.0", "joint_8.0")]
    assert pinned == [], pinned
    wrist = [i for i, g in enumerate(spec.groups) if g == "wrist"]
    for value in q.values():
        np.testing.assert_array_equal(value[wrist], spec.safe_pose[wrist])
    if spec.robot is not None:
        from hand_pose_ros.retarget.kinematics import HandKinematics
        tips = HandKinematics(spec).link_positions(q["open"], list(spec.optimization.fingertip_links.values()))
        gaps = np.linalg.norm(tips[:, None] - tips[None], axis=-1)[np.triu_indices(len(tips), 1)]
        assert gaps.min() > 0.010, gaps.min()


def test_shadow_analytic_open_hand_keeps_ring_and_middle_apart():
    if not SHADOW_URDF.is_file():
        pytest.skip(f"{SHADOW_URDF} not available")
    spec = load_hand_spec("shadow", urdf=SHADOW_URDF)
    from hand_pose_ros.retarget.kinematics import HandKinematics
    kin = HandKinematics(spec)
    for pose in ("open", "spread"):
        q = command(make_retargeter(spec, "analytic"), spec, named_pose(pose))
        middle, ring = kin.link_positions(q, ["rh_mftip", "rh_rftip"])
        assert np.linalg.norm(middle - ring) > 0.015, (pose, middle, ring)


def test_unknown_retargeter_and_missing_urdf_are_refused():
    with pytest.raises(ValueError, match="unknown retargeter"):
        make_retargeter(load_hand_spec("leap"), "magic")
    with pytest.raises(ValueError, match="no URDF"):
        make_retargeter(load_hand_spec("shadow"), "optimisation")  # analytic only, for now
    with pytest.raises(ValueError, match="method"):
        make_retargeter(load_hand_spec("leap"), "optimisation", method="position")
    with pytest.raises(ValueError, match="handedness"):
        make_retargeter(load_hand_spec("leap"), "analytic").retarget(named_pose("open"), "up")


def test_available_hands_all_have_node_parameter_files():
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    for hand in available_hands():
        assert (root / "config" / f"retarget_{hand}.yaml").is_file(), hand

"""Canonical poses give sensible robot commands, for every robot hand and both retargeters;
left and right hands give the same commands for mirrored poses; the camera placement does
not matter."""
import numpy as np
import pytest

from hand_pose_ros.retarget import available_hands, load_hand_spec, make_retargeter
from hand_pose_ros.retarget.human_hand import named_pose, place_in_camera, random_rotation

LONG_FINGERS = ("index", "middle", "ring", "pinky")
CASES = [(hand, "analytic", {}) for hand in ("leap", "allegro", "shadow")] + [
    ("leap", "optimisation", {"method": "vector"}), ("leap", "optimisation", {"method": "dexpilot"}),
    ("allegro", "optimisation", {"method": "vector"})]
IDS = [f"{h}-{k}{'-' + o['method'] if o else ''}" for h, k, o in CASES]


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
        spec = load_hand_spec(hand)
        made[(hand, kind, options.get("method"))] = (spec, make_retargeter(spec, kind, **options))
    return made


@pytest.mark.parametrize("hand, kind, options", CASES, ids=IDS)
def test_open_fist_point_pinch(retargeters, hand, kind, options):
    spec, r = retargeters[(hand, kind, options.get("method"))]
    fingers = flexion_joints(spec)
    assert set(fingers) >= {"index", "middle", "ring"}
    q = {name: command(r, spec, named_pose(name)) for name in ("open", "fist", "point", "pinch")}
    loose = 0.1 if kind == "analytic" else 0.4  # the optimiser trades a little shape for tip position

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
    spec, r = retargeters[(hand, kind, options.get("method"))]
    rng = np.random.default_rng(7)
    tol = 1e-9 if kind == "analytic" else 2e-3
    for name in ("open", "pinch", "fist"):
        reference = command(r, spec, named_pose(name, "right"))
        for _ in range(2):
            for handedness in ("right", "left"):
                rotation, translation = random_rotation(rng), rng.uniform(-0.5, 0.5, 3) + [0, 0, 0.8]
                camera = place_in_camera(named_pose(name, handedness), rotation, translation)
                np.testing.assert_allclose(command(r, spec, camera, handedness), reference, atol=tol)


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

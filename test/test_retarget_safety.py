"""Safety: limits, velocity clamp and no NaN on 100,000 random and adversarial frames;
hold then ramp exactly as configured on tracking loss (simulated clock); partial input."""
import numpy as np
import pytest

from hand_pose_ros.keypoints import CANONICAL
from hand_pose_ros.retarget import (PipelineConfig, RetargetPipeline, SafetyConfig, SafetyLimiter,
                                    load_hand_spec, make_retargeter)
from hand_pose_ros.retarget.analytic import AnalyticRetargeter
from hand_pose_ros.retarget.hand_frame import INDEX_MCP, MIDDLE_MCP, PINKY_MCP, WRIST
from hand_pose_ros.retarget.human_hand import motion_sequence, named_pose, place_in_camera, random_rotation
from hand_pose_ros.retarget.pipeline import sanitize_keypoints
from hand_pose_ros.retarget.safety import AT_SAFE_POSE, HOLDING, RAMPING, TRACKING, WAITING

PALM = [WRIST, INDEX_MCP, MIDDLE_MCP, PINKY_MCP]


def adversarial_stream(n: int, seed: int):
    """n frames of keypoints [n, 21, 3] (camera frame, metres), times [n] and a 'no message'
    mask: smooth motion interrupted by jumps, NaN / inf / huge / missing keypoints, garbage,
    collapsed hands, and a clock that stalls, jitters backwards and skips."""
    rng = np.random.default_rng(seed)
    base = motion_sequence(600, seed=seed)
    frames = base[np.arange(n) % len(base)].copy()
    # the hand moves around the camera, teleporting every ~300 frames
    segment = np.arange(n) // 300
    rotations = np.stack([random_rotation(rng) for _ in range(segment.max() + 1)])
    translations = rng.uniform(-0.4, 0.4, (segment.max() + 1, 3)) + [0, 0, 0.7]
    frames = np.einsum("nij,nkj->nki", rotations[segment], frames) + translations[segment][:, None]
    kind = rng.choice(9, size=n, p=[0.55, 0.06, 0.08, 0.05, 0.05, 0.05, 0.06, 0.05, 0.05])
    rows = rng.random((n, 21)) < 0.3
    frames[kind == 1] = rng.uniform(-1, 1, (np.sum(kind == 1), 21, 3))               # garbage
    frames[(kind == 2)[:, None] & rows] = np.nan                                       # missing keypoints
    frames[(kind == 3)[:, None] & rows] = np.inf                                       # inf
    frames[kind == 4] *= 10.0 ** rng.uniform(3, 300, (np.sum(kind == 4), 1, 1))        # huge
    frames[kind == 5] = frames[kind == 5][:, :1]                                       # collapsed to a point
    finger = rng.integers(1, 21, n)                                                    # one finger lost
    lost = (kind == 6)
    frames[lost, finger[lost]] = np.nan
    frames[kind == 7] = np.nan                                                         # all NaN
    no_message = kind == 8
    dt = np.full(n, 1 / 30)
    jitter = rng.random(n)
    dt[jitter < 0.03] = 0.0                                                            # repeated stamps
    dt[(jitter >= 0.03) & (jitter < 0.05)] = -0.02                                     # clock jitters back
    dt[(jitter >= 0.05) & (jitter < 0.06)] = 1.5                                       # long gaps
    return frames, np.cumsum(dt), no_message


def check_commands(commands, times, spec, max_velocity):
    commands = np.asarray(commands)
    assert np.isfinite(commands).all(), "a NaN or inf command was emitted"
    assert np.all(commands >= spec.lower - 1e-12) and np.all(commands <= spec.upper + 1e-12), \
        "a joint limit was violated"
    clock = np.maximum.accumulate(times)  # the limiter never runs its clock backwards
    step = np.abs(np.diff(commands, axis=0))
    allowed = np.minimum(max_velocity, spec.max_velocity) * np.diff(clock)[:, None] + 1e-9
    worst = np.max(step - allowed)
    assert worst <= 0, f"velocity bound exceeded by {worst} rad"


@pytest.mark.parametrize("hand, n", [("leap", 100_000), ("shadow", 30_000)])
def test_100k_random_and_adversarial_frames_never_break_limits_velocity_or_emit_nan(hand, n):
    spec = load_hand_spec(hand)
    frames, times, no_message = adversarial_stream(n, seed=3)
    # The pipeline's own per-frame checks, vectorised: usable keypoints, palm present, enough of them.
    clean = sanitize_keypoints(frames, max_range=5.0)
    usable = np.isfinite(clean[..., 0])
    tracked = usable[:, PALM].all(axis=1) & (usable.sum(axis=1) >= 15) & ~no_message
    targets = AnalyticRetargeter(spec).retarget_batch(clean, "right")  # [n, N]
    assert np.isnan(targets[~tracked]).any()  # the adversarial part really is adversarial

    config = SafetyConfig(max_velocity=3.0, hold_timeout=0.1, ramp_time=1.0)
    safety = SafetyLimiter(spec.lower, spec.upper, spec.safe_pose, config, spec.max_velocity)
    commands = np.empty_like(targets)
    states = set()
    for k in range(n):
        commands[k] = safety.step(targets[k] if tracked[k] else None, times[k])
        states.add(safety.state)
    assert {TRACKING, HOLDING, RAMPING, AT_SAFE_POSE} <= states  # every path was exercised
    check_commands(commands, times, spec, config.max_velocity)


@pytest.mark.parametrize("kind, options, frames", [
    ("analytic", {}, 1500), ("optimisation", {"method": "vector"}, 300),
    ("optimisation", {"method": "dexpilot"}, 300)])
@pytest.mark.parametrize("filter_target", ["joints", "keypoints"])
def test_the_full_pipeline_stays_safe_on_adversarial_frames(kind, options, frames, filter_target):
    spec = load_hand_spec("leap")
    pipeline = RetargetPipeline(spec, make_retargeter(spec, kind, **options), PipelineConfig(
        filter_target=filter_target, filter_beta=0.5 if filter_target == "joints" else 20.0,
        safety=SafetyConfig(max_velocity=4.0, hold_timeout=0.2, ramp_time=0.5)))
    keypoints, times, no_message = adversarial_stream(frames, seed=11)
    commands = [pipeline.update(None if skip else kp, t) for kp, t, skip in zip(keypoints, times, no_message)]
    check_commands(commands, times, spec, 4.0)


def test_tracking_loss_holds_then_ramps_exactly_as_configured():
    spec = load_hand_spec("leap")
    config = SafetyConfig(max_velocity=100.0, hold_timeout=0.5, ramp_time=2.0)
    pipeline = RetargetPipeline(spec, make_retargeter(spec, "analytic"),
                                PipelineConfig(filter_target="none", safety=config))
    fist = place_in_camera(named_pose("fist"), np.eye(3), [0, 0, 0.6])
    assert pipeline.state == WAITING
    t = 0.0
    for _ in range(30):  # 1 s of fist at 30 Hz
        last = pipeline.update(fist, t)
        t += 1 / 30
    assert pipeline.state == TRACKING
    lost_at = t - 1 / 30                 # time of the last good frame
    np.testing.assert_allclose(last, np.clip(make_retargeter(spec, "analytic").retarget(fist, "right"),
                                             spec.lower, spec.upper))
    # The hand disappears: empty messages at 100 Hz, then a silent input (timer ticks only).
    for k in range(600):
        now = lost_at + (k + 0.5) / 100  # never exactly on a boundary
        out = pipeline.update(None, now) if k < 100 else pipeline.tick(now, stale_after=0.0)
        elapsed = now - lost_at
        if elapsed < config.hold_timeout - 1e-9:
            assert pipeline.state == HOLDING
            np.testing.assert_array_equal(out, last)
        elif elapsed < config.hold_timeout + config.ramp_time - 1e-9:
            assert pipeline.state == RAMPING
            fraction = (elapsed - config.hold_timeout) / config.ramp_time
            np.testing.assert_allclose(out, last + fraction * (spec.safe_pose - last), atol=1e-9)
        else:
            assert pipeline.state == AT_SAFE_POSE
            np.testing.assert_array_equal(out, spec.safe_pose)
    # The hand comes back: tracking resumes from the safe pose under the velocity limit.
    assert pipeline.tick(now + 0.01, stale_after=0.05) is not None
    pipeline.update(fist, now + 0.02)
    assert pipeline.state == TRACKING
    assert pipeline.tick(now + 0.03, stale_after=0.05) is None  # input is live: the timer stays quiet


def test_ramp_at_a_configured_speed_and_never_faster_than_the_velocity_limit():
    lower, upper, safe = np.full(2, -3.0), np.full(2, 3.0), np.zeros(2)
    safety = SafetyLimiter(lower, upper, safe, SafetyConfig(max_velocity=10.0, hold_timeout=0.1, ramp_speed=0.5))
    safety.step(np.array([2.0, -1.0]), 0.0)  # first command is velocity limited from the safe pose (dt = 0)
    np.testing.assert_array_equal(safety.command, safe)
    safety.step(np.array([2.0, -1.0]), 1.0)
    np.testing.assert_array_equal(safety.command, [2.0, -1.0])
    out = [safety.step(None, 1.0 + k * 0.1) for k in range(1, 60)]
    # held until 1.1 s, then 0.5 rad/s toward zero: joint 0 needs 4 s, joint 1 needs 2 s
    np.testing.assert_allclose(out[0], [2.0, -1.0])
    np.testing.assert_allclose(out[10], [2.0 - 0.5, -1.0 + 0.5])   # t = 2.1
    np.testing.assert_allclose(out[30], [2.0 - 1.5, 0.0])          # t = 4.1
    np.testing.assert_allclose(out[50], [0.0, 0.0])
    assert safety.state == AT_SAFE_POSE

    # A duration shorter than the velocity limit allows is stretched, never exceeded.
    slow = SafetyLimiter(lower, upper, safe, SafetyConfig(max_velocity=1.0, hold_timeout=0.0, ramp_time=0.1))
    slow.step(np.array([0.0, 0.0]), 0.0)
    for k in range(1, 31):
        slow.step(np.array([3.0, -3.0]), k * 0.1)
    np.testing.assert_allclose(slow.command, [3.0, -3.0])
    after = [slow.step(None, 3.0 + k * 0.1).copy() for k in range(1, 40)]
    assert np.max(np.abs(np.diff(after, axis=0))) <= 0.1 + 1e-12
    np.testing.assert_allclose(after[-1], [0.0, 0.0])


def test_a_lost_finger_holds_that_finger_only_and_too_few_keypoints_is_a_loss():
    spec = load_hand_spec("leap")
    pipeline = RetargetPipeline(spec, make_retargeter(spec, "analytic"), PipelineConfig(
        filter_target="none", min_valid_keypoints=15,
        safety=SafetyConfig(max_velocity=100.0, hold_timeout=0.5)))
    open_hand = named_pose("open") + [0, 0, 0.5]
    fist = named_pose("fist") + [0, 0, 0.5]
    for t in (0.0, 1.0, 2.0):  # a second per frame: far below every velocity limit
        held = pipeline.update(open_hand, t)
    partial = fist.copy()
    partial[[CANONICAL.index(n) for n in ("index_pip", "index_dip", "index_tip")]] = np.nan
    out = pipeline.update(partial, 3.0)
    index = [i for i, g in enumerate(spec.groups) if g == "index"]
    others = [i for i, g in enumerate(spec.groups) if g in ("middle", "ring")]
    np.testing.assert_array_equal(out[index], held[index])      # the lost finger holds
    assert np.abs(out[others] - held[others]).max() > 1.0         # the others follow the fist
    assert pipeline.state == TRACKING

    sparse = fist.copy()
    sparse[[CANONICAL.index(n) for n in ("thumb_tip", "index_tip", "middle_tip", "ring_tip",
                                         "pinky_tip", "index_dip", "middle_dip")]] = np.nan  # 14 left
    before = out
    out = pipeline.update(sparse, 3.1)
    assert pipeline.state == HOLDING and np.array_equal(out, before)
    palmless = fist.copy()
    palmless[WRIST] = np.nan
    pipeline.update(palmless, 3.2)
    assert pipeline.state == HOLDING
    with pytest.raises(ValueError, match="shape"):
        pipeline.update(fist[:20], 3.3)


def test_bad_safety_settings_are_refused():
    for kwargs in ({"max_velocity": 0.0}, {"hold_timeout": -1.0}, {"ramp_time": float("nan")},
                   {"ramp_speed": -0.1}):
        with pytest.raises(ValueError):
            SafetyConfig(**kwargs)
    with pytest.raises(ValueError, match="safe pose"):
        SafetyLimiter([0.0], [1.0], [2.0])
    with pytest.raises(ValueError, match="limits"):
        SafetyLimiter([1.0], [0.0], [0.5])
    with pytest.raises(ValueError, match="filter_target"):
        PipelineConfig(filter_target="both")


def test_the_pipeline_times_safety_on_the_monotonic_clock_by_default():
    import time

    spec = load_hand_spec("leap")
    pipeline = RetargetPipeline(spec, make_retargeter(spec, "analytic"))
    assert pipeline.clock is time.monotonic
    before = time.monotonic()
    pipeline.update(None)
    assert before <= pipeline.last_update <= time.monotonic()


def test_the_automatic_input_timeout_follows_the_message_rate():
    spec = load_hand_spec("leap")
    pipeline = RetargetPipeline(spec, make_retargeter(spec, "analytic"), PipelineConfig(filter_target="none"))
    open_hand = named_pose("open") + [0, 0, 0.5]
    for k in range(20):  # a slow model: a pose message every 0.3 s
        pipeline.update(open_hand, 0.3 * k)
    assert pipeline.input_timeout() == pytest.approx(0.9)
    assert pipeline.tick(0.3 * 19 + 0.29) is None  # just before the next message: still tracking
    assert pipeline.state == TRACKING
    assert pipeline.tick(0.3 * 19 + 0.95) is not None  # silent for longer than 3 intervals: the timer takes over
    fast = RetargetPipeline(spec, make_retargeter(spec, "analytic"))
    for k in range(20):
        fast.update(open_hand, k / 100)
    assert fast.input_timeout() == pytest.approx(0.1)  # the lower bound
    with pytest.raises(ValueError, match="input_timeout"):
        PipelineConfig(input_timeout=-1.0)


def test_the_first_command_starts_from_a_seed_and_moves_under_the_velocity_limit():
    spec = load_hand_spec("leap")
    config = PipelineConfig(filter_target="none", safety=SafetyConfig(max_velocity=2.0))
    pipeline = RetargetPipeline(spec, make_retargeter(spec, "analytic"), config)
    measured = np.clip(spec.safe_pose + 0.5, spec.lower, spec.upper)
    assert pipeline.seed({n: v for n, v in zip(spec.joint_names, measured)}) is None
    fist = place_in_camera(named_pose("fist"), np.eye(3), [0, 0, 0.5])
    first = pipeline.update(fist, 10.0)
    np.testing.assert_allclose(first, measured)
    second = pipeline.update(fist, 10.1)
    assert np.abs(second - first).max() <= 0.2 + 1e-12 and np.abs(second - first).max() > 0
    assert pipeline.seed({n: 0.0 for n in spec.joint_names}) == "commands were already sent"
    assert "no position for joints" in RetargetPipeline(spec, make_retargeter(spec, "analytic")).seed({})


def test_a_skeleton_no_human_hand_can_make_is_not_retargeted():
    from hand_pose_ros.retarget.plausibility import (BEND_DEG, BONE_RATIO, PALM_LENGTH_MM, implausibility,
                                                     implausible_fingers)

    spec = load_hand_spec("leap")
    pipeline = RetargetPipeline(spec, make_retargeter(spec, "analytic"), PipelineConfig(filter_target="none"))
    for name in ("open", "spread", "fist", "point", "pinch", "grasp", "relaxed"):
        for handedness in ("right", "left"):
            pose = named_pose(name, handedness) * 1000
            assert implausibility(pose) is None, (name, handedness)
            assert implausible_fingers(pose, handedness) == {} and implausible_fingers(pose) == {}, name
    motion = motion_sequence(300, seed=5) * 1000
    assert all(implausibility(k) is None and not implausible_fingers(k) for k in motion)
    hand = named_pose("open") * 1000
    assert "palm length" in implausibility(hand * 3.0)            # a 280 mm palm
    long_finger = hand.copy()
    long_finger[CANONICAL.index("index_tip")] += [80.0, 0, 0]    # a distal phalanx of ~100 mm
    assert "index_dip-index_tip" in implausibility(long_finger)
    bent_back = hand.copy()
    pip, dip, tip = (CANONICAL.index(f"middle_{j}") for j in ("pip", "dip", "tip"))
    bone = np.linalg.norm(hand[dip] - hand[pip])
    bent_back[dip] = hand[pip] + bone * np.array([np.cos(np.radians(80)), 0, np.sin(np.radians(80))])  # 80 deg dorsal
    bent_back[tip] = bent_back[dip] + (bent_back[dip] - hand[pip]) * 0.8
    assert implausibility(bent_back) is None  # a hand, with one finger no hand can make:
    bad = implausible_fingers(bent_back, "right")
    assert list(bad) == ["middle"] and "middle_pip bent -80" in bad["middle"]
    assert implausible_fingers(bent_back) == {}  # as a left hand that finger is merely flexed
    # Every range says where it comes from.
    assert PALM_LENGTH_MM.source and all(r.source for r in list(BONE_RATIO.values()) + list(BEND_DEG.values()))
    # In the pipeline: no target, so the command holds, and the reason is kept for diagnostics.
    held = pipeline.update(named_pose("open") + [0, 0, 0.5], 0.0)
    out = pipeline.update(long_finger / 1000 + [0, 0, 0.5], 0.1)
    assert pipeline.state == HOLDING and np.array_equal(out, held)
    assert "index_dip-index_tip" in pipeline.last_rejection
    # A finger bent backwards is dropped like a lost finger: its joints hold, the others follow.
    fist = named_pose("fist") * 1000
    fist[[pip, dip, tip]] = bent_back[[pip, dip, tip]]
    out = pipeline.update(fist / 1000 + [0, 0, 0.5], 10.0)
    middle = [i for i, g in enumerate(spec.groups) if g == "middle"]
    others = [i for i, g in enumerate(spec.groups) if g in ("index", "ring")]
    assert pipeline.state == TRACKING and list(pipeline.last_dropped_fingers) == ["middle"]
    np.testing.assert_array_equal(out[middle], held[middle])
    assert np.abs(out[others] - held[others]).max() > 1.0

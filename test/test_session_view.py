"""The animated session view (evaluation/session_view.py): frame count and size of the GIF,
three distinct panels, a robot panel that follows the joint commands (and agrees with the
spec's own forward kinematics), frames with missing or broken data, and bad input."""
import math
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from hand_pose_ros import keypoints
from hand_pose_ros.camera import Intrinsics
from hand_pose_ros.evaluation import session_view as sv
from hand_pose_ros.evaluation.session_view import ViewFrame, render_frames, write_animation
from hand_pose_ros.retarget.factory import make_retargeter
from hand_pose_ros.retarget.human_hand import named_pose, place_in_camera
from hand_pose_ros.retarget.spec import load_hand_spec

CAM = Intrinsics(193.0, 193.0, 160.0, 120.0, 320, 240)
# Camera looks at the palm: hand frame x (distal) -> image up (-y), y (radial) -> image left, z (dorsal) -> away.
FACING_CAMERA = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).T
WRIST_MM = np.array([0.0, 60.0, 450.0])


def hand_mm(pose: str) -> np.ndarray:
    """[21, 3] camera-frame keypoints (mm) of a named pose, palm toward the camera."""
    return place_in_camera(named_pose(pose) * 1000.0, FACING_CAMERA, WRIST_MM)


def splat_depth(points_mm: np.ndarray, radius_px: int = 6) -> np.ndarray:
    """A simple depth render: a disc of each keypoint's depth around its pixel, over a wall at 900 mm."""
    depth = np.full((CAM.height, CAM.width), 900.0, dtype=np.float32)
    rows, cols = np.mgrid[0:CAM.height, 0:CAM.width]
    for u, v, d in CAM.xyz_to_uvd(points_mm):
        disc = (cols - u) ** 2 + (rows - v) ** 2 <= radius_px ** 2
        depth[disc] = np.minimum(depth[disc], d)
    return depth


def commands(pose: str, spec) -> np.ndarray:
    return make_retargeter(spec, "analytic").retarget(named_pose(pose), "right")


def make_frames(poses=("open", "fist", "pinch", "point"), hand="leap", noise_mm=5.0) -> list:
    spec = load_hand_spec(hand)
    rng = np.random.default_rng(0)
    frames = []
    for i, pose in enumerate(poses):
        truth = hand_mm(pose)
        estimate = truth + rng.normal(0.0, noise_mm, truth.shape)
        frames.append(ViewFrame(splat_depth(truth), CAM, estimate, truth, list(spec.joint_names),
                                commands(pose, spec), 5.0 + 0.1 * i))
    return frames


def panels(image: np.ndarray) -> list:
    size = sv.PANEL_PX
    return [image[sv.TITLE_PX:, k * size:(k + 1) * size].astype(np.int32) for k in range(3)]


def test_gif_has_every_frame_at_the_panel_size(tmp_path):
    frames = make_frames()
    path = write_animation(frames, tmp_path / "view.gif", fps=5.0, title="test", progress=False)
    assert path == tmp_path / "view.gif"
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == len(frames)
        assert gif.size == (3 * sv.PANEL_PX, sv.TITLE_PX + sv.PANEL_PX)
        assert gif.info["duration"] == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["view.gif"]   # no temporary file left


def test_the_three_panels_show_different_things():
    images = render_frames(make_frames(), progress=False)
    assert len(images) == 4 and images[0].shape == (sv.TITLE_PX + sv.PANEL_PX, 3 * sv.PANEL_PX, 3)
    for image in images:
        parts = panels(image)
        for part in parts:
            assert part.std() > 5.0          # something is drawn in each
        for a in range(3):
            for b in range(a + 1, 3):
                assert np.abs(parts[a] - parts[b]).mean() > 5.0
    # The hand moves between frames: every panel changes with it.
    for k in range(3):
        assert np.abs(panels(images[0])[k] - panels(images[1])[k]).mean() > 0.5


def test_depth_panel_draws_the_estimate_where_it_projects():
    frame = make_frames(("open",))[0]
    centre = frame.truth_mm.mean(axis=0)
    with_hand = np.asarray(sv.depth_panel(frame, centre)).astype(np.int32)
    bare = ViewFrame(frame.depth_mm, CAM, None, None, None, None, 0.0)
    without = np.asarray(sv.depth_panel(bare, centre)).astype(np.int32)
    changed = np.abs(with_hand - without).sum(axis=2) > 60
    # The middle fingertip lands in the crop where its pixel is (crop centred on the hand).
    u, v = CAM.xyz_to_uvd(frame.keypoints_mm[keypoints.CANONICAL.index("middle_tip")][None])[0, :2]
    cu, cv = CAM.xyz_to_uvd(centre[None])[0, :2]
    zoom = sv.PANEL_PX / round(2 * CAM.fx * sv.CROP_HALF_MM / centre[2])
    pu, pv = (int(round(sv.PANEL_PX / 2 + (u - cu) * zoom)), int(round(sv.PANEL_PX / 2 + (v - cv) * zoom)))
    assert changed[pv - 4:pv + 5, pu - 4:pu + 5].any()
    assert not changed[:20, -40:].any()   # a corner far from the hand is untouched


@pytest.mark.parametrize("hand", ["leap", "allegro"])
def test_robot_panel_follows_the_joint_commands(hand):
    view = sv.robot_hand_view(hand)
    spec = view.spec
    names = list(spec.joint_names)
    open_q, fist_q = commands("open", spec), commands("fist", spec)
    open_img = np.asarray(view.panel(names, open_q)).astype(np.int32)
    fist_img = np.asarray(view.panel(names, fist_q)).astype(np.int32)
    assert np.abs(open_img - fist_img).mean() > 2.0
    # Forward kinematics agrees with the spec's own (UrdfBinding.link_positions) ...
    tips = list(spec.optimization.fingertip_links.values())
    for q in (open_q, fist_q):
        np.testing.assert_allclose(view.positions(q)["tips"], spec.robot.link_positions(q, tips), atol=1e-9)
    # ... and a fist brings the fingertips toward the wrist.
    reach = [np.linalg.norm(view.positions(q)["tips"], axis=1).mean() for q in (open_q, fist_q)]
    assert reach[1] < reach[0] - 0.02
    # Commands named by URDF joint names or in spec order without names mean the same.
    urdf_names = [spec.robot.joint_names[n] for n in names]
    np.testing.assert_array_equal(view.command_values(urdf_names, fist_q)[0], fist_q)
    np.testing.assert_array_equal(view.command_values(None, fist_q)[0], fist_q)


def test_robot_panel_changes_inside_an_animation_when_only_the_command_changes():
    frame = make_frames(("open",))[0]
    spec = load_hand_spec("leap")
    curled = ViewFrame(frame.depth_mm, CAM, frame.keypoints_mm, frame.truth_mm, frame.joint_names,
                       commands("fist", spec), frame.stamp_s)
    a, b = render_frames([frame, curled], progress=False)
    pa, pb = panels(a), panels(b)
    assert np.abs(pa[2] - pb[2]).mean() > 2.0
    for k in (0, 1):   # the same frame otherwise (the title bar's frame counter aside)
        np.testing.assert_array_equal(pa[k], pb[k])


def test_missing_and_broken_data_still_render():
    good = make_frames(("open",))[0]
    partial = good.keypoints_mm.copy()
    partial[5:9] = np.nan
    spec = load_hand_spec("leap")
    nan_command = commands("fist", spec)
    nan_command[::3] = np.nan
    frames = [
        ViewFrame(good.depth_mm, CAM, None, good.truth_mm, None, None, 0.0),            # no hand, no command
        ViewFrame(good.depth_mm, CAM, partial, None, good.joint_names, nan_command, 0.1),
        ViewFrame(good.depth_mm, CAM, np.full((21, 3), np.nan), None, ["nonsense"], np.array([1.0]), 0.2),
        ViewFrame(np.zeros_like(good.depth_mm), CAM, good.keypoints_mm * 1e30, None, None, None, math.nan),
        ViewFrame(None, CAM, good.keypoints_mm, good.truth_mm, None, np.ones(3), 0.4),    # no depth image
        ViewFrame(np.full_like(good.depth_mm, np.nan), CAM, -good.keypoints_mm, None, None, None, 0.5),
    ]
    images = render_frames(frames, progress=False)
    assert len(images) == len(frames)
    assert all(image.shape == images[0].shape for image in images)
    # "no command" shows the safe pose, partly commanded joints keep theirs.
    view = sv.robot_hand_view("leap")
    q, notes, given = view.command_values(good.joint_names, nan_command)
    np.testing.assert_array_equal(q[::3], spec.safe_pose[::3])
    np.testing.assert_array_equal(q[1::3], nan_command[1::3])
    assert given == np.isfinite(nan_command).sum() and any("not commanded" in n for n in notes)
    assert view.command_values(None, None)[1:] == (["no command"], 0)
    assert view.command_values(["nonsense"], np.array([1.0]))[2] == 0


def test_a_hand_without_urdf_renders_a_note(tmp_path):
    spec = load_hand_spec("shadow")
    if spec.robot is not None:
        pytest.skip("the shadow spec has a URDF now")
    path = write_animation(make_frames(("open", "fist")), tmp_path / "shadow.gif", robot_hand="shadow",
                           progress=False)
    with Image.open(path) as gif:
        assert gif.n_frames == 2


def test_long_inputs_are_subsampled_evenly(tmp_path):
    frames = make_frames(("open",)) * 3
    frames = [ViewFrame(f.depth_mm, CAM, f.keypoints_mm, f.truth_mm, f.joint_names, f.joint_positions, i * 0.01)
              for i, f in enumerate(frames * 20)]                  # 60 frames
    picked = sv.subsample(frames, fps=2.0, max_seconds=10.0)     # at most 20
    assert len(picked) == 20 and picked[0] is frames[0] and picked[-1] is frames[-1]
    steps = np.diff([f.stamp_s for f in picked])
    assert steps.min() > 0 and steps.max() - steps.min() < 0.011
    path = write_animation(frames, tmp_path / "long.gif", fps=2.0, progress=False)
    with Image.open(path) as gif:
        assert gif.n_frames == 20


def test_bad_input_raises_clear_errors_and_writes_nothing(tmp_path, monkeypatch):
    frames = make_frames(("open",))
    with pytest.raises(ValueError, match="empty"):
        write_animation([], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="unknown robot hand 'no_such_hand'"):
        write_animation(frames, tmp_path / "a.gif", robot_hand="no_such_hand", progress=False)
    with pytest.raises(ValueError, match=r"unsupported file type '\.avi'"):
        write_animation(frames, tmp_path / "a.avi")
    with pytest.raises(ValueError, match="fps"):
        write_animation(frames, tmp_path / "a.gif", fps=0)
    bad = ViewFrame(frames[0].depth_mm, CAM, np.zeros((14, 3)), None, None, None, 0.0)
    with pytest.raises(ValueError, match=r"frame 1: keypoints_mm must be \[21, 3\]"):
        write_animation([frames[0], bad], tmp_path / "a.gif", progress=False)
    with pytest.raises(ValueError, match="frame 0: 2 joint names but 3"):
        write_animation([ViewFrame(None, CAM, None, None, ["a", "b"], np.zeros(3), 0.0)], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="frame 0: intrinsics"):
        write_animation([ViewFrame(None, None, None, None, None, None, 0.0)], tmp_path / "a.gif")
    monkeypatch.setattr(sv.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"ffmpeg.*\.gif"):
        write_animation(frames, tmp_path / "a.mp4")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    def fail(images, path, fps):
        path.write_bytes(b"GIF89a half")
        raise KeyboardInterrupt

    monkeypatch.setattr(sv, "_write_gif", fail)
    with pytest.raises(KeyboardInterrupt):
        write_animation(make_frames(("open",)), tmp_path / "view.gif", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_mp4_frames_are_piped_to_ffmpeg(tmp_path, monkeypatch):
    # A stand-in ffmpeg that stores what it is given: the raw frames on stdin, to the last argument.
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "ffmpeg").write_text('#!/bin/sh\nfor last; do :; done\ncat > "$last"\n')
    (tools / "ffmpeg").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ.get('PATH', '')}")
    out = tmp_path / "out"
    path = write_animation(make_frames(), out / "view.mp4", progress=False)
    height, width = sv.TITLE_PX + sv.PANEL_PX, 3 * sv.PANEL_PX
    assert path.stat().st_size == 4 * (height - height % 2) * (width - width % 2) * 3
    assert [p.name for p in out.iterdir()] == ["view.mp4"]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg executable on PATH (MP4 needs it)")
def test_mp4_with_ffmpeg(tmp_path):
    path = write_animation(make_frames(), tmp_path / "view.mp4", progress=False)
    assert path.stat().st_size > 1000 and path.read_bytes()[4:8] == b"ftyp"


def test_frames_from_streams_matches_by_stamp():
    truth = hand_mm("open")
    depth = splat_depth(truth)
    ns = 1_000_000_000
    command_a, command_b = (["0"], np.array([0.1])), (["0"], np.array([0.2]))
    frames = sv.frames_from_streams(
        depth_mm={3 * ns: depth, 1 * ns: depth, 2 * ns: depth},
        intrinsics=CAM,
        keypoints_mm={1 * ns: truth, 3 * ns: truth + 1.0},
        truth_mm={3 * ns: truth},
        commands={1 * ns + 3: command_a, 2 * ns + 5_000_000: command_b})
    assert [f.stamp_s for f in frames] == [1.0, 2.0, 3.0]
    assert frames[0].joint_positions.tolist() == [0.1]       # a few ns after its frame: still its answer
    assert frames[1].joint_positions.tolist() == [0.1]       # the 2 s command came 5 ms later: not yet
    assert frames[2].joint_positions.tolist() == [0.2]
    assert frames[1].keypoints_mm is None and frames[0].truth_mm is None
    np.testing.assert_array_equal(frames[2].keypoints_mm, truth + 1.0)
    assert sv.frames_from_streams({ns: depth}, CAM, {})[0].joint_positions is None
    converted = sv.frames_from_streams({ns: "message"}, CAM, {}, depth_of=lambda message: depth)
    np.testing.assert_array_equal(converted[0].depth_mm, depth)

"""Forward kinematics of a robot hand's URDF (pinocchio) and the fingertip-error measure.

`robot_model(spec)` builds the pinocchio model of the spec's bound URDF with one extra frame
per spec link (named `spec_frame(name)`: the URDF link the spec's description maps it to,
plus its offset) and one for the hand frame, so the optimiser and the error measure use the
spec's names on any URDF of the hand.

Fingertip error: for each frame and finger, the distance between the robot fingertip (forward
kinematics of the command, in the hand frame) and the human fingertip relative to the wrist
in the hand frame, scaled by the spec's optimization.scaling_factor.
"""
from __future__ import annotations

import numpy as np

from hand_pose_ros.keypoints import indices
from hand_pose_ros.retarget.hand_frame import to_hand_frame
from hand_pose_ros.retarget.spec import RobotHandSpec

HAND_FRAME = "hand_frame"


def spec_frame(name: str) -> str:
    """Name of the pinocchio frame of spec link `name` (its own namespace: no clash with URDF links)."""
    return f"spec:{name}"


def robot_model(spec: RobotHandSpec):
    """pinocchio Model of the spec's URDF with the spec's link frames and the hand frame added
    (BODY frames, which is what dex-retargeting looks links up as)."""
    import pinocchio as pin

    if spec.robot is None:
        raise ValueError(f"robot hand {spec.name!r} ({spec.source}) has no URDF")
    robot = spec.robot
    model = pin.buildModelFromXML(robot.urdf.text)

    def add(name: str, link: str, placement: np.ndarray) -> None:
        parent = model.getFrameId(link, pin.BODY)
        frame = model.frames[parent]
        local = pin.SE3(placement[:3, :3].copy(), placement[:3, 3].copy())
        model.addFrame(pin.Frame(name, frame.parentJoint, parent, frame.placement * local, pin.FrameType.BODY))

    add(spec_frame(HAND_FRAME), robot.frame_link, robot.frame)
    for name, (link, offset) in robot.links.items():
        placement = np.eye(4)
        placement[:3, 3] = offset
        add(spec_frame(name), link, placement)
    return model


class HandKinematics:
    """Link positions [L, 3] (metres, hand frame) for joint angles in spec order."""

    def __init__(self, spec: RobotHandSpec):
        import pinocchio as pin

        self._pin = pin
        self.spec = spec
        self.model = robot_model(spec)
        self.data = self.model.createData()
        self._qpos = np.zeros(self.model.nq)
        for name, value in spec.robot.held.items():
            self._qpos[self.model.joints[self.model.getJointId(name)].idx_q] = value
        self._q_index = np.array([self.model.joints[self.model.getJointId(spec.robot.joint_names[n])].idx_q
                                  for n in spec.joint_names])
        self._hand = self.model.getFrameId(spec_frame(HAND_FRAME))

    def link_positions(self, q, links) -> np.ndarray:
        """links: spec link names (those of its optimization section)."""
        qpos = self._qpos.copy()
        qpos[self._q_index] = np.asarray(q, dtype=np.float64)
        self._pin.framesForwardKinematics(self.model, self.data, qpos)
        to_hand = self.data.oMf[self._hand].inverse()
        return np.array([(to_hand * self.data.oMf[self.model.getFrameId(spec_frame(link))]).translation
                         for link in links])


def fingertip_errors(spec: RobotHandSpec, keypoints_seq, commands, handedness: str = "right") -> np.ndarray:
    """[T, F] metres: per frame and per finger of spec.optimization.fingertip_links.

    keypoints_seq: [T, 21, 3] human keypoints (any frame); commands: [T, N] robot angles.
    """
    if spec.optimization is None:
        raise ValueError(f"robot hand {spec.name!r} has no optimization section (fingertip links)")
    fingers = list(spec.optimization.fingertip_links)
    links = [spec.optimization.fingertip_links[f] for f in fingers]
    tips = indices([f"{f}_tip" for f in fingers])
    human = to_hand_frame(keypoints_seq, handedness)[:, tips] * spec.optimization.scaling_factor  # [T, F, 3]
    kinematics = HandKinematics(spec)
    robot = np.stack([kinematics.link_positions(q, links) for q in commands])                  # [T, F, 3]
    return np.linalg.norm(robot - human, axis=-1)

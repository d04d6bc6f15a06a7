"""Forward kinematics of a robot hand URDF (pinocchio) and the fingertip-error measure.

Fingertip error: for each frame and finger, the distance between the robot fingertip (forward
kinematics of the command, in the URDF base = hand frame) and the human fingertip relative to
the wrist in the hand frame, scaled by the spec's optimization.scaling_factor.
"""
from __future__ import annotations

import numpy as np

from hand_pose_ros.keypoints import indices
from hand_pose_ros.retarget.hand_frame import to_hand_frame
from hand_pose_ros.retarget.spec import RobotHandSpec


class HandKinematics:
    """Link positions [L, 3] (metres, URDF base frame) for joint angles in spec order."""

    def __init__(self, spec: RobotHandSpec):
        import pinocchio as pin

        if spec.urdf is None:
            raise ValueError(f"robot hand {spec.name!r} ({spec.source}) has no URDF")
        self._pin = pin
        self.model = pin.buildModelFromUrdf(str(spec.urdf))
        self.data = self.model.createData()
        self._q_index = np.array([self.model.joints[self.model.getJointId(n)].idx_q
                                  for n in spec.joint_names])

    def link_positions(self, q, links) -> np.ndarray:
        qpos = np.zeros(self.model.nq)
        qpos[self._q_index] = np.asarray(q, dtype=np.float64)
        self._pin.framesForwardKinematics(self.model, self.data, qpos)
        return np.array([self.data.oMf[self.model.getFrameId(link)].translation for link in links])


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

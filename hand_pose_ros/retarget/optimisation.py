"""Optimisation retargeting with dex-retargeting's vector and DexPilot optimisers on our URDF.

The optimiser is assembled in code from the robot spec, on the pinocchio model of whatever
URDF the spec is bound to (kinematics.robot_model: the spec's link names as extra frames).
Human keypoints in the hand frame (hand_frame.py, relative to the wrist) are rotated into
the URDF's root frame by the spec's fixed hand-frame pose (the identity for our own URDFs,
whose base link is the hand frame). Joints the spec holds (the wrist: the target is
palm-relative and says nothing about it) and URDF joints outside the spec are fixed at their
held values, never optimised. dex-retargeting's SeqRetargeting
warm-starts each solve from the previous answer and applies the joint limits; its own
low-pass filter is off by default (the pipeline's One Euro filter smooths instead: two
strong filters in a row only add lag).

Speed: dex-retargeting evaluates its objective with torch autograd, about 0.6 ms per
evaluation here (6-10 ms a frame). The two optimiser subclasses below compute the same
objectives (Huber loss on robot-vs-scaled-human vectors; DexPilot's projected
finger-to-finger distances and weights) and their exact gradients in numpy from pinocchio's
world-aligned frame Jacobians, which is several times faster. The one deliberate difference:
the value also includes the warm-start regulariser norm_delta * |q - q_last|^2, whose
gradient dex-retargeting already adds but whose value it leaves out. One addition, off
unless a spec asks for it: optimization.rest_weights adds w * (q - rest)^2 per named joint
(rest = its safe pose), the rest-pose regulariser of the DexPilot paper, for joints whose
only use to the optimiser would be a trick (Allegro's finger-base twists: see allegro.yaml).

Missing fingers: a target vector whose keypoints are not finite is replaced by its last good
value (so the solve stays well posed) and that finger's joints are returned as NaN, which the
safety layer holds.
"""
from __future__ import annotations

import contextlib
import sys

import numpy as np

from hand_pose_ros.keypoints import CANONICAL, FINGERS, indices
from hand_pose_ros.retarget.base import Retargeter
from hand_pose_ros.retarget.hand_frame import check_handedness, to_hand_frame
from hand_pose_ros.retarget.kinematics import HAND_FRAME, robot_model, spec_frame
from hand_pose_ros.retarget.spec import RobotHandSpec

METHODS = ("vector", "dexpilot")


def _huber(d: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """torch's SmoothL1 with beta=delta on distances d >= 0: values and derivatives."""
    small = d < delta
    value = np.where(small, 0.5 * d * d / delta, d - 0.5 * delta)
    slope = np.where(small, d / delta, 1.0)
    return value, slope


class _LinkKinematics:
    """Positions and world-aligned linear Jacobians of a few links, from pinocchio."""

    def __init__(self, robot, frame_ids):
        import pinocchio as pin
        self._pin = pin
        self._model, self._data = robot.model, robot.data
        self._frames = list(frame_ids)

    def __call__(self, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pin = self._pin
        pin.computeJointJacobians(self._model, self._data, qpos)  # also runs forward kinematics
        pin.updateFramePlacements(self._model, self._data)
        positions = np.array([self._data.oMf[f].translation for f in self._frames])        # [L, 3]
        jacobians = np.array([pin.getFrameJacobian(self._model, self._data, f,
                                                   pin.ReferenceFrame.LOCAL_WORLD_ALIGNED)[:3]
                              for f in self._frames])                                        # [L, 3, nq]
        return positions, jacobians


def _objective(opt, reference: np.ndarray, weight, fixed_qpos, last_qpos):
    """nlopt objective for optimiser opt: weighted Huber loss on robot link vectors
    (task - origin) against reference [V, 3], plus the warm-start regulariser, with its
    exact gradient. weight: a scalar or one per vector [V]."""
    kinematics = _LinkKinematics(opt.robot, opt.computed_link_indices)
    origin = np.asarray(opt.origin_link_indices)
    task = np.asarray(opt.task_link_indices)
    qpos = np.zeros(opt.num_joints)
    qpos[opt.idx_pin2fixed] = fixed_qpos
    last = np.asarray(last_qpos, dtype=np.float64)
    delta, n = opt.huber_loss.beta, len(reference)
    rest_weight, rest = getattr(opt, "rest_weight", None), getattr(opt, "rest", None)  # [target]

    def objective(x, grad):
        qpos[opt.idx_pin2target] = x
        pos, jac = kinematics(qpos)
        residual = pos[task] - pos[origin] - reference                         # [V, 3]
        dist = np.linalg.norm(residual, axis=1)
        value, slope = _huber(dist, delta)
        reg = x - last
        if grad.size > 0:
            d_vec = (weight * slope / np.maximum(dist, 1e-12))[:, None] * residual / n  # dL/d(robot vec)
            d_pos = np.zeros_like(pos)
            np.add.at(d_pos, task, d_vec)
            np.add.at(d_pos, origin, -d_vec)
            full = np.einsum("lk,lkq->q", d_pos, jac)
            grad[:] = full[opt.idx_pin2target] + 2 * opt.norm_delta * reg
        total = float((value * weight).sum() / n + opt.norm_delta * reg @ reg)
        if rest_weight is not None:
            off = x - rest
            total += float(rest_weight @ (off * off))
            if grad.size > 0:
                grad[:] += 2 * rest_weight * off
        return total

    return objective


def _numpy_optimizers():
    """The two optimiser subclasses (built lazily: dex_retargeting imports torch)."""
    from dex_retargeting.optimizer import DexPilotOptimizer, VectorOptimizer

    class NumpyVectorOptimizer(VectorOptimizer):
        def get_objective_function(self, target_vector, fixed_qpos, last_qpos):
            reference = np.asarray(target_vector, dtype=np.float64) * self.scaling   # [V, 3]
            return _objective(self, reference, 1.0, fixed_qpos, last_qpos)

    class NumpyDexPilotOptimizer(DexPilotOptimizer):
        def get_objective_function(self, target_vector, fixed_qpos, last_qpos):
            target = np.asarray(target_vector, dtype=np.float64)                    # [V, 3]
            n_pairs = len(self.projected)                   # finger-to-finger vectors come first
            n_thumb = n_pairs - len(self.s2_project_index_task)  # of which thumb-to-finger

            # DexPilot's hysteresis: a thumb-finger pair closer than project_dist is "pinching"
            # until it opens past escape_dist; finger-finger pairs pinch when both of their
            # thumb pairs do and they are within 3 cm. Pinching pairs are pulled to a small
            # fixed distance with a high weight.
            pair_dist = np.linalg.norm(target[:n_pairs], axis=1)
            thumb = self.projected[:n_thumb]
            thumb[pair_dist[:n_thumb] < self.project_dist] = True
            thumb[pair_dist[:n_thumb] > self.escape_dist] = False
            self.projected[n_thumb:] = (thumb[self.s2_project_index_origin]
                                        & thumb[self.s2_project_index_task]
                                        & (pair_dist[n_thumb:] <= 0.03))
            high = np.array([200.0] * n_thumb + [400.0] * (n_pairs - n_thumb))
            weight = np.concatenate([np.where(self.projected, high, 1.0),
                                     np.full(self.num_fingers, float(n_pairs + self.num_fingers))])
            reference = target * self.scaling
            direction = target[:n_pairs] / (pair_dist[:, None] + 1e-6)
            reference[:n_pairs] = np.where(self.projected[:, None],
                                           direction * self.projected_dist[:, None], reference[:n_pairs])

            return _objective(self, reference, weight, fixed_qpos, last_qpos)

    return NumpyVectorOptimizer, NumpyDexPilotOptimizer


def _finger_keypoints() -> dict:
    """Canonical keypoint indices of each finger's chain (thumb: CMC, MCP, IP, TIP)."""
    return {f: indices([n for n in CANONICAL if n.startswith(f + "_")]) for f in FINGERS}


def _refuse_mimic_joints(urdf) -> None:
    """None of the supported hands' URDFs has any; dex-retargeting would need its mimic-joint
    adaptor for them (holding one still would bend the hand wrongly)."""
    mimic = [j.name for j in urdf.joints.values() if j.mimic is not None]
    if mimic:
        raise ValueError(f"{urdf.path}: mimic joints {mimic} are not supported by the optimisation retargeter")


def _robot_wrapper(spec: RobotHandSpec):
    """dex-retargeting's RobotWrapper on our model (its own constructor only reads a URDF
    file, which would have neither the spec's frames nor files that start with a comment)."""
    import pinocchio as pin
    from dex_retargeting.robot_wrapper import RobotWrapper

    class SpecRobotWrapper(RobotWrapper):
        def __init__(self, model):  # noqa: super().__init__ would load a file
            self.model = model
            self.data = model.createData()
            self.q0 = pin.neutral(model)
            if model.nv != model.nq:
                raise ValueError(f"{spec.urdf}: continuous or floating joints are not supported")

    return SpecRobotWrapper(robot_model(spec))


class OptimisationRetargeter(Retargeter):
    """method 'vector': match wrist->keypoint vectors (fingertips plus the spec's extra
    vector_targets); 'dexpilot': fingertip vectors plus DexPilot's pinch-aware finger pairs."""

    def __init__(self, spec: RobotHandSpec, method: str = "vector", low_pass_alpha: float | None = None,
                 objective: str = "numpy"):
        """objective 'numpy' (ours, fast) or 'torch' (dex-retargeting's own, for comparison)."""
        method = str(method).lower()
        if method not in METHODS:
            raise ValueError(f"optimisation method must be one of {METHODS}, got {method!r}")
        if objective not in ("numpy", "torch"):
            raise ValueError(f"objective must be 'numpy' or 'torch', got {objective!r}")
        if spec.optimization is None or spec.robot is None:
            raise ValueError(f"robot hand {spec.name!r} ({spec.source}) has no URDF/optimization "
                             "section: use the analytic retargeter")
        # dex-retargeting's RetargetingConfig.build() goes through its bundled yourdfpy, which
        # needs packages dex-retargeting does not declare (six, trimesh); the optimisers only
        # need pinocchio, so we assemble the same pieces directly.
        from dex_retargeting.optimizer_utils import LPFilter
        from dex_retargeting.seq_retarget import SeqRetargeting
        if objective == "numpy":
            VectorOpt, DexPilotOpt = _numpy_optimizers()
        else:
            from dex_retargeting.optimizer import DexPilotOptimizer as DexPilotOpt
            from dex_retargeting.optimizer import VectorOptimizer as VectorOpt

        _refuse_mimic_joints(spec.robot.urdf)
        opt = spec.optimization
        fingers = list(opt.fingertip_links)            # thumb first, MediaPipe order
        tip_links = [spec_frame(opt.fingertip_links[f]) for f in fingers]
        wrist = spec_frame(opt.wrist_link or HAND_FRAME)
        tip_keypoints = [int(indices([f"{f}_tip"])[0]) for f in fingers]
        robot = _robot_wrapper(spec)
        joints = robot.dof_joint_names
        targets = list(spec.robot.optimised_joints)
        if method == "vector":
            # wrist -> fingertip vectors, then the spec's extra (e.g. phalanx) vectors
            origin_links = [wrist] * len(fingers) + [spec_frame(r[0]) for _, r in opt.vector_targets]
            task_links = tip_links + [spec_frame(r[1]) for _, r in opt.vector_targets]
            human = np.array([[0] * len(fingers) + [int(indices([h[0]])[0]) for h, _ in opt.vector_targets],
                              tip_keypoints + [int(indices([h[1]])[0]) for h, _ in opt.vector_targets]])
            optimizer = VectorOpt(robot, targets, target_origin_link_names=origin_links,
                                  target_task_link_names=task_links, target_link_human_indices=human,
                                  scaling=opt.scaling_factor)
        else:
            # DexPilot pairs: every finger with every later finger, then the wrist with each
            # finger (dex-retargeting's generate_link_indices); 0 stands for the wrist.
            origin, task = DexPilotOpt.generate_link_indices(len(fingers))
            keypoint_of = [0] + tip_keypoints
            human = np.array([[keypoint_of[i] for i in origin], [keypoint_of[i] for i in task]])
            optimizer = DexPilotOpt(robot, targets, finger_tip_link_names=tip_links,
                                    wrist_link_name=wrist, target_link_human_indices=human,
                                    scaling=opt.scaling_factor)
        if opt.rest_weights:
            if objective != "numpy":
                raise ValueError(f"{spec.source}: optimization.rest_weights needs the numpy objective")
            target_spec = {spec.robot.joint_names[j.name]: j for j in spec.joints}
            optimizer.rest_weight = np.array([opt.rest_weights.get(target_spec[n].name, 0.0) for n in targets])
            optimizer.rest = np.array([target_spec[n].safe for n in targets])
        lp_filter = None if low_pass_alpha is None else LPFilter(float(low_pass_alpha))
        self._seq = SeqRetargeting(optimizer, has_joint_limits=True, lp_filter=lp_filter)

        self.spec = spec
        self.method = method
        self.joint_names = spec.joint_names
        self._fixed_qpos = np.array([spec.robot.held[joints[i]] for i in optimizer.idx_pin2fixed])
        self._to_spec_order = np.array([joints.index(spec.robot.joint_names[n]) for n in spec.joint_names])
        # hand-frame vectors -> URDF root frame vectors (row vectors: v @ R^T)
        self._to_root = spec.robot.hand_frame_in_root()[:3, :3].T.copy()
        self._human_indices = np.asarray(optimizer.target_link_human_indices)   # [2, V]
        self._finger_of_keypoint = {int(i): f for f, idx in _finger_keypoints().items() for i in idx}
        self._joint_groups = np.array(spec.groups)
        self._last_ref: np.ndarray | None = None

    def reset(self) -> None:
        self._seq.reset()
        projected = getattr(self._seq.optimizer, "projected", None)  # DexPilot's pinch state
        if projected is not None:
            projected[:] = False
        self._last_ref = None

    def retarget(self, keypoints_xyz, handedness: str) -> np.ndarray:
        check_handedness(handedness)
        local = to_hand_frame(np.asarray(keypoints_xyz, dtype=np.float64), handedness)  # [21, 3]
        finite = np.all(np.isfinite(local), axis=-1)                                     # [21]
        missing_fingers = {self._finger_of_keypoint[i] for i in np.flatnonzero(~finite)
                           if i in self._finger_of_keypoint}
        if not finite[0] or len(missing_fingers) == len(FINGERS):
            return np.full(len(self.joint_names), np.nan)

        origin, task = self._human_indices
        ref = local[task] - local[origin]                                                # [V, 3]
        bad = ~np.all(np.isfinite(ref), axis=-1)
        if bad.any():
            if self._last_ref is None:
                return np.full(len(self.joint_names), np.nan)
            ref[bad] = self._last_ref[bad]
        self._last_ref = ref.copy()

        with contextlib.redirect_stdout(sys.stderr):  # nlopt failures are printed: keep stdout clean
            q = np.asarray(self._seq.retarget(ref @ self._to_root, self._fixed_qpos),
                           dtype=np.float64)[self._to_spec_order]
        if missing_fingers:
            q[np.isin(self._joint_groups, sorted(missing_fingers))] = np.nan
        return q

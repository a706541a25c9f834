"""The robot description (vla_description's URDFs) and the MuJoCo model agree.

Both are generated from one table, so this checks the generators: every frame of the URDF, posed
by vla_core's forward kinematics from the URDF text, against MuJoCo's bodies, sites and cameras for
random joint angles; the limits; and the URDF Jacobian against MuJoCo's.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from vla_core.kinematics import KinematicTree
from vla_description import urdf_path
from vla_sim.config import SimConfig
from vla_sim.scene import JOINT_EFFORT_LIMITS, JOINT_VELOCITY_LIMITS, LINK_BODIES
from vla_sim.sim import MujocoSim

CONFIGURATIONS = 200
TOLERANCE = 1e-6  # [m] and [rad]


@pytest.fixture(scope='module')
def sim() -> MujocoSim:
    return MujocoSim(SimConfig())


@pytest.fixture(scope='module', params=['vla_tabletop', 'vla_arm'])
def tree(request) -> KinematicTree:
    return KinematicTree.from_file(urdf_path(request.param))


def _pose_to(sim: MujocoSim, q: np.ndarray) -> None:
    """Set the joints (the coupled right finger too) and run MuJoCo's kinematics only."""
    m, d = sim.model, sim.data
    d.qpos[sim.qpos_addresses] = q
    d.qpos[m.jnt_qposadr[m.joint('right_finger').id]] = q[-1]
    mujoco.mj_kinematics(m, d)
    mujoco.mj_camlight(m, d)  # cameras are posed here, not in mj_kinematics


def _rotation_error(a: np.ndarray, b: np.ndarray) -> float:
    """Angle of a^T b [rad] (accurate for small angles, unlike arccos of the trace)."""
    r = a.T @ b
    return float(np.linalg.norm([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) / 2)


def test_every_frame_matches_mujoco_for_random_joint_angles(sim, tree):
    names = sim.joint_names
    assert tree.actuated_joints == names
    lower, upper = tree.limits(names)
    rng = np.random.default_rng(0)
    mujoco_frames = set(sim.frame_poses())
    base = np.eye(4)  # vla_arm is rooted at base_link, which the sim puts at the world origin
    assert set(tree.links) <= mujoco_frames | {'world'}
    assert {*LINK_BODIES, 'left_finger', 'right_finger', 'wrist_camera_link'} <= set(tree.links)
    worst_pos = worst_rot = 0.0
    for _ in range(CONFIGURATIONS):
        q = rng.uniform(lower, upper)
        _pose_to(sim, q)
        mj = sim.frame_poses()
        fk = tree.forward(dict(zip(names, q, strict=True)))
        for link, pose in fk.items():
            if link == 'world':
                continue
            pose = base @ pose
            worst_pos = max(worst_pos, float(np.abs(pose[:3, 3] - mj[link].position).max()))
            worst_rot = max(worst_rot, _rotation_error(pose[:3, :3], mj[link].rotation))
    assert worst_pos < TOLERANCE and worst_rot < TOLERANCE, (worst_pos, worst_rot)


def test_limits_match_the_sim(sim, tree):
    m = sim.model
    for name in (*sim.joint_names, 'right_finger'):
        limit = tree.joints[name].limit
        jid = m.joint(name).id
        np.testing.assert_allclose([limit.lower, limit.upper], m.jnt_range[jid], atol=TOLERANCE)
    for name in sim.joint_names:
        limit = tree.joints[name].limit
        assert limit.velocity == JOINT_VELOCITY_LIMITS[name]
        assert limit.effort == JOINT_EFFORT_LIMITS[name]
        # The actuators saturate at the effort limit the description declares.
        np.testing.assert_allclose(m.actuator(name).forcerange, [-limit.effort, limit.effort])
    np.testing.assert_allclose(
        sim.limits.velocity, [JOINT_VELOCITY_LIMITS[n] for n in sim.joint_names]
    )


def test_jacobian_matches_mujoco(sim, tree):
    names = sim.joint_names[:6]
    m, d = sim.model, sim.data
    jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
    rng = np.random.default_rng(1)
    lower, upper = tree.limits(sim.joint_names)
    for _ in range(20):
        q = rng.uniform(lower, upper)
        _pose_to(sim, q)
        mujoco.mj_comPos(m, d)
        mujoco.mj_jacSite(m, d, jacp, jacr, sim.ee_site_id)
        expected = np.vstack([jacp[:, sim.dof_addresses[:6]], jacr[:, sim.dof_addresses[:6]]])
        jac = tree.jacobian('ee_link', dict(zip(sim.joint_names, q, strict=True)), names)
        np.testing.assert_allclose(jac, expected, atol=1e-9)


def test_the_gripper_opens_both_fingers(sim, tree):
    opened = tree.forward({'gripper': 0.04}, ['left_finger', 'right_finger'])
    closed = tree.forward({'gripper': 0.0}, ['left_finger', 'right_finger'])
    np.testing.assert_allclose(opened['left_finger'][:3, 3] - closed['left_finger'][:3, 3],
                               [0.0, 0.04, 0.0], atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(opened['right_finger'][:3, 3] - closed['right_finger'][:3, 3],
                               [0.0, -0.04, 0.0], atol=1e-12)  # fmt: skip

import math

import numpy as np
import pytest

from vla_core.config import ConfigError
from vla_core.robot import CommandError, JointCommand
from vla_sim.config import MismatchConfig, SimConfig
from vla_sim.scene import LINK_BODIES
from vla_sim.sim import HOME_QPOS, MujocoSim

NAMES = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper')


@pytest.fixture(scope='module')
def sim() -> MujocoSim:
    s = MujocoSim()
    s.connect()
    return s


def test_interface_basics(sim: MujocoSim) -> None:
    sim.reset()
    assert sim.joint_names == NAMES
    assert sim.actuation_mode == 'position'
    state = sim.read_state()
    assert state.joint_names == NAMES
    np.testing.assert_allclose(state.position, HOME_QPOS, atol=1e-9)
    assert sim.control_period == pytest.approx(0.02) and sim.physics_dt == pytest.approx(0.001)
    sim.step(5)
    assert sim.now() == pytest.approx(0.1)
    assert np.all(sim.limits.position_lower < sim.limits.position_upper)


def test_wrist_imu_reads_plus_g_at_rest_and_senses_motion() -> None:
    sim = MujocoSim(SimConfig(imu_mount='link6'))
    sim.connect()
    sim.step(25)  # at home the tool points down, so link6 z points up
    np.testing.assert_allclose(sim.imu().linear_acceleration, [0.0, 0.0, 9.81], atol=5e-3)
    link6 = sim.frame_poses()['link6']
    np.testing.assert_allclose(sim.frame_poses()['imu_link'].position,
                               link6.transform_points([0.0, 0.0, -0.01]), atol=1e-12)  # fmt: skip
    target = HOME_QPOS.copy()
    target[0] += 0.5
    sim.send_command(JointCommand('position', target))
    sim.step(5)
    assert abs(sim.imu().angular_velocity[2]) > 0.1  # base yaw seen by the wrist gyro


def test_holds_home_and_imu_reads_plus_g_at_rest(sim: MujocoSim) -> None:
    sim.reset()
    sim.step(25)
    imu = sim.imu()
    assert imu.frame_id == 'imu_link'
    np.testing.assert_allclose(imu.linear_acceleration, [0.0, 0.0, 9.81], atol=1e-3)
    np.testing.assert_allclose(imu.angular_velocity, 0.0, atol=1e-6)
    np.testing.assert_allclose(sim.read_state().position, HOME_QPOS, atol=2e-3)


@pytest.mark.parametrize(
    'cmd',
    [
        JointCommand('position', [0.0] * 6),
        JointCommand('position', [0.0] * 8),
        JointCommand('position', [0.0] * 7, (*NAMES[:6], 'finger')),
        JointCommand('velocity', [0.0] * 7),
    ],
)
def test_bad_commands_rejected_and_not_applied(sim: MujocoSim, cmd: JointCommand) -> None:
    sim.reset()
    before = sim.applied_ctrl
    with pytest.raises(CommandError):
        sim.send_command(cmd)
    sim.step()
    np.testing.assert_array_equal(sim.applied_ctrl, before)


def test_non_finite_values_rejected_before_reaching_the_sim() -> None:
    with pytest.raises(CommandError, match='NaN or Inf'):
        JointCommand('position', [0, 0, math.nan, 0, 0, 0, 0])


def test_clipping_is_reported_and_applied(sim: MujocoSim) -> None:
    sim.reset()
    target = HOME_QPOS.copy()
    target[0] = 10.0  # beyond the +-170 deg range
    target[6] = 0.5  # gripper opens 0.04 m at most
    applied = sim.send_command(JointCommand('position', target[::-1], NAMES[::-1]))
    assert applied.joint_names == NAMES
    assert applied.values[0] == pytest.approx(sim.limits.position_upper[0])
    assert applied.values[6] == pytest.approx(0.04)
    np.testing.assert_allclose(sim.applied_ctrl, applied.values)


def test_position_command_is_tracked(sim: MujocoSim) -> None:
    sim.reset()
    target = HOME_QPOS + np.array([0.2, 0.1, -0.1, 0.1, 0.2, -0.3, 0.03])
    sim.send_command(JointCommand('position', target))
    sim.step(75)
    np.testing.assert_allclose(sim.read_state().position, target, atol=0.01)


def test_latency_delays_the_command() -> None:
    sim = MujocoSim(SimConfig(mismatch=MismatchConfig(latency_s=0.05)))
    sim.connect()
    target = HOME_QPOS + np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.02])
    sim.send_command(JointCommand('position', target))
    sim.step(2)  # 40 ms < latency
    np.testing.assert_allclose(sim.applied_ctrl, HOME_QPOS)
    sim.step(1)
    np.testing.assert_allclose(sim.applied_ctrl, target)


def test_velocity_mode_moves_at_commanded_rate() -> None:
    sim = MujocoSim(SimConfig(actuation='velocity'))
    sim.connect()
    sim.send_command(JointCommand('velocity', [0.5, 0, 0, 0, 0, 0, 0]))
    sim.step(25)
    q0 = sim.read_state().position[0]
    sim.step(25)
    state = sim.read_state()
    assert state.velocity[0] == pytest.approx(0.5, abs=0.03)
    assert state.position[0] - q0 == pytest.approx(0.25, abs=0.02)


def test_effort_mode_torque_accelerates_joint() -> None:
    sim = MujocoSim(SimConfig(actuation='effort'))
    sim.connect()
    sim.send_command(JointCommand('effort', [0, 0, 0, 0, 0, 2.0, 0]))
    sim.step(5)
    state = sim.read_state()
    assert state.effort[5] == pytest.approx(2.0)
    assert state.velocity[5] > 0.5
    # Other joints hold roughly still: gravity is compensated as on torque-controlled arms.
    np.testing.assert_allclose(state.position[:4], HOME_QPOS[:4], atol=0.02)
    applied = sim.send_command(JointCommand('effort', [0, 0, 0, 0, 0, 1000.0, 0]))
    assert applied.values[5] == pytest.approx(sim.limits.effort[5])


def test_mismatch_knobs_change_the_plant() -> None:
    nominal = MujocoSim()
    knobs = MismatchConfig(payload_kg=0.5, friction_scale=2.0, damping_scale=3.0, gain_scale=0.5)
    off = MujocoSim(SimConfig(mismatch=knobs))
    assert off.model.body('payload').mass[0] == pytest.approx(0.5)
    j = nominal.model.joint('joint2').id
    assert off.model.dof_damping[j] == pytest.approx(3.0 * nominal.model.dof_damping[j])
    assert off.model.dof_frictionloss[j] == pytest.approx(2.0 * nominal.model.dof_frictionloss[j])
    a = nominal.model.actuator('joint2').id
    assert off.model.actuator_gainprm[a, 0] == pytest.approx(
        0.5 * nominal.model.actuator_gainprm[a, 0]
    )
    # The uncompensated payload makes the arm sag under the same command.
    for s in (nominal, off):
        s.connect()
        s.send_command(JointCommand('position', HOME_QPOS))
        s.step(50)
    sag = off.read_state().position[1] - nominal.read_state().position[1]
    assert abs(sag) > 5e-3


def test_config_rejects_bad_rates() -> None:
    with pytest.raises(ConfigError, match='control_hz'):
        SimConfig(physics_hz=1000.0, control_hz=30.0)
    with pytest.raises(ConfigError, match='physics_hz'):
        SimConfig(physics_hz=100.0)
    with pytest.raises(ConfigError, match='actuation'):
        SimConfig(actuation='torque')


def test_link_poses_are_mujoco_bodies(sim: MujocoSim) -> None:
    sim.reset(HOME_QPOS + 0.3 * np.array([1, -1, 1, -1, 1, -1, 0]))
    poses = sim.frame_poses()
    for name in LINK_BODIES:
        body = sim.data.body(name)
        np.testing.assert_allclose(poses[name].position, body.xpos, atol=1e-12)
        np.testing.assert_allclose(poses[name].rotation, body.xmat.reshape(3, 3), atol=1e-12)
    np.testing.assert_allclose(sim.ee_pose().position, sim.data.body('ee_link').xpos, atol=1e-12)


def test_deterministic(sim: MujocoSim) -> None:
    def run() -> np.ndarray:
        sim.reset()
        sim.set_block_pose('red', (0.4, 0.0), 0.3)
        for k in range(20):
            sim.send_command(JointCommand('position', HOME_QPOS + 0.01 * k))
            sim.step()
        return np.concatenate([sim.data.qpos, sim.data.qvel])

    np.testing.assert_array_equal(run(), run())


def test_restore_replays_from_the_snapshot_including_commands_in_flight() -> None:
    sim = MujocoSim(SimConfig(mismatch=MismatchConfig(latency_s=0.05)))
    sim.connect()
    sim.set_block_pose('red', (0.4, 0.0), 0.3)
    target = HOME_QPOS + np.array([0.2, 0.1, -0.1, 0.1, 0.2, -0.3, 0.03])
    sim.send_command(JointCommand('position', target))
    sim.step(2)  # 40 ms: the command is still in flight
    snapshot = sim.snapshot()
    sim.step(30)
    after = (sim.now(), np.concatenate([sim.data.qpos, sim.data.qvel]))
    sim.send_command(JointCommand('position', HOME_QPOS))  # a what-if that is then undone
    sim.step(10)
    sim.restore(snapshot)
    assert sim.now() == pytest.approx(0.04) and sim.applied_ctrl[0] == HOME_QPOS[0]
    sim.step(30)
    assert sim.now() == after[0]
    np.testing.assert_array_equal(np.concatenate([sim.data.qpos, sim.data.qvel]), after[1])

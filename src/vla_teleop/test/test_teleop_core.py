"""The pure teleop core: jog limits, deadman and hold, timeouts, EE jog through a toy IK."""

import math

import numpy as np
import pytest

from vla_core.config import ConfigError
from vla_core.robot import JointStateSample
from vla_teleop.teleop.core import InputSample, JogCommand, JogConfig, TeleopCore, parse_channel

NAMES = ('a', 'b', 'c')


def _cfg(**kw) -> JogConfig:
    base = dict(
        joint_names=NAMES,
        ee_joints=(),
        velocity_max=(1.0, 0.5, 0.1),
        position_min=(-1.0,),
        position_max=(1.0,),
        horizon=5,
        step_dt=0.1,
        max_deviation=0.5,
        rearm_after_timeout=False,
    )
    base.update(kw)
    return JogConfig(**base)


def _state(q, stamp, names=NAMES) -> JointStateSample:
    n = len(names)
    return JointStateSample(stamp, names, np.asarray(q, float), np.zeros(n), np.zeros(n))


def _on(now, **cmd) -> InputSample:
    return InputSample(True, JogCommand(**cmd), now)


def test_no_deadman_no_chunk():
    core = TeleopCore(_cfg())
    out = core.step(1.0, InputSample(False, JogCommand(joint_rates={'a': 1.0}), 1.0),
                    _state([0, 0, 0], 100.0), 1.0)  # fmt: skip
    assert out.chunk is None and not out.intervention and out.event == ''
    assert core.step(1.0, None, _state([0, 0, 0], 100.0), 1.0).chunk is None


def test_joint_jog_starts_at_the_state_stamp_and_respects_speed_and_limits():
    core = TeleopCore(_cfg(), source='teleop_test')
    out = core.step(
        1.0, _on(1.0, joint_rates={'a': 1.0, 'b': -2.0}), _state([0.8, 0, 0], 50.0), 1.0
    )
    chunk = out.chunk
    assert out.intervention and out.event == 'engaged'
    assert chunk.stamp == 50.0 and chunk.dt == 0.1 and chunk.horizon == 5
    assert chunk.source == 'teleop_test' and chunk.joint_names == NAMES
    np.testing.assert_allclose(chunk.targets[0], [0.8, 0, 0])
    # a: 1 rad/s until the limit at 1.0; b: rate clipped to -1 -> -0.5 rad/s; c holds
    np.testing.assert_allclose(chunk.targets[:, 0], [0.8, 0.9, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(chunk.targets[:, 1], [0, -0.05, -0.1, -0.15, -0.2])
    np.testing.assert_allclose(chunk.targets[:, 2], 0.0)


def test_speed_scales_and_caps_all_joints_together():
    core = TeleopCore(_cfg())
    out = core.step(1.0, _on(1.0, joint_rates={'a': 0.5}, speed=0.5), _state([0, 0, 0], 0.0), 1.0)
    np.testing.assert_allclose(np.diff(out.chunk.targets[:, 0]), 0.025)
    core = TeleopCore(_cfg())
    goal = core.step(1.1, _on(1.1, positions={'a': 1.0, 'b': 1.0}), _state([0, 0, 0], 0.1), 1.1)
    # b's cap (0.5 rad/s) slows a too: both move along the straight line to the goals
    steps = np.diff(goal.chunk.targets, axis=0)
    np.testing.assert_allclose(steps[:, 1], 0.05)
    np.testing.assert_allclose(steps[:, 0], steps[:, 1])


def test_reference_continues_the_previous_chunk_not_the_measurement():
    core = TeleopCore(_cfg())
    first = core.step(1.0, _on(1.0, joint_rates={'a': 1.0}), _state([0, 0, 0], 10.0), 1.0).chunk
    # The arm lags by 0.05: the next chunk starts on the previous plan at the new stamp.
    second = core.step(1.05, _on(1.05), _state([0.0, 0, 0], 10.15), 1.05).chunk
    assert second.stamp == 10.15
    np.testing.assert_allclose(second.targets[0, 0], np.interp(10.15, first.times,
                                                               first.targets[:, 0]))  # fmt: skip
    np.testing.assert_allclose(second.targets[:, 0], 0.15)  # zero input: holds there


def test_reference_does_not_wind_up_against_an_obstacle():
    core = TeleopCore(_cfg(max_deviation=0.2))
    stamp, now = 0.0, 0.0
    for _ in range(20):  # the arm is stuck at 0 while the operator pushes
        out = core.step(now, _on(now, joint_rates={'a': 1.0}), _state([0, 0, 0], stamp), now)
        stamp += 0.1
        now += 0.1
    assert out.chunk.targets[0, 0] <= 0.2 + 1e-9


def test_release_gives_one_hold_chunk_then_silence():
    core = TeleopCore(_cfg())
    core.step(1.0, _on(1.0, joint_rates={'a': 1.0}), _state([0, 0, 0], 10.0), 1.0)
    released = core.step(
        1.1, InputSample(False, JogCommand(joint_rates={'a': 1.0}), 1.1),
        _state([0.05, 0, 0], 10.1), 1.1,
    )  # fmt: skip
    assert released.event == 'released' and not released.intervention
    hold = released.chunk
    assert hold.stamp == 10.1 and hold.horizon == 5
    np.testing.assert_allclose(hold.targets, np.tile([0.1, 0, 0], (5, 1)))  # where the plan was
    assert not core.engaged
    again = core.step(1.2, InputSample(False, JogCommand(), 1.2), _state([0.1, 0, 0], 10.2), 1.2)
    assert again.chunk is None and not again.intervention


def test_input_timeout_releases_and_needs_a_rearm():
    core = TeleopCore(_cfg(input_timeout=0.3, rearm_after_timeout=True))
    state = _state([0, 0, 0], 0.0)
    assert core.blocked  # at start too: a stuck deadman does not move the arm
    assert core.step(0.0, _on(0.0), state, 0.0).chunk is None
    core.step(0.1, InputSample(False, JogCommand(), 0.1), state, 0.1)
    assert core.step(0.2, _on(0.2), state, 0.2).event == 'engaged'
    stale = InputSample(True, JogCommand(joint_rates={'a': 1.0}), 0.2)
    out = core.step(0.6, stale, state, 0.6)
    assert out.event == 'input_timeout' and out.chunk is not None and not out.intervention
    assert np.ptp(out.chunk.targets, axis=0).max() == 0.0
    # the device comes back with the deadman still held: nothing until it is released once
    assert core.step(0.7, _on(0.7), state, 0.7).chunk is None
    core.step(0.8, InputSample(False, JogCommand(), 0.8), state, 0.8)
    assert core.step(0.9, _on(0.9), state, 0.9).intervention


def test_stale_joint_states_hold_and_missing_joints_never_engage():
    core = TeleopCore(_cfg(state_timeout=0.2))
    core.step(1.0, _on(1.0), _state([0.3, 0, 0], 5.0), 1.0)
    out = core.step(1.5, _on(1.5), _state([0.3, 0, 0], 5.0), 1.0)
    assert out.event == 'state_lost' and not out.intervention
    assert out.chunk.stamp == 5.0
    np.testing.assert_allclose(out.chunk.targets[:, 0], 0.3)
    partial = _state([0.0, 0.0], 6.0, names=('a', 'b'))
    assert core.step(2.0, _on(2.0), partial, 2.0).event == 'no_state'


def test_config_validation():
    with pytest.raises(ConfigError, match='velocity_max'):
        _cfg(velocity_max=(1.0, 2.0))
    with pytest.raises(ConfigError, match='ee_joints'):
        _cfg(ee_joints=('z9',))
    with pytest.raises(ConfigError, match='position_min'):
        _cfg(position_min=(2.0,))
    assert parse_channel('-x', NAMES) == ('x', -1.0)
    assert parse_channel('b', NAMES) == ('b', 1.0)
    assert parse_channel(' ', NAMES) is None
    with pytest.raises(ValueError, match='unknown channel'):
        parse_channel('elbow', NAMES)


# --- EE jog through a toy planar 2-link arm -------------------------------------------------------

L1, L2 = 0.5, 0.4


def _fk(q):
    return np.array([
        L1 * math.cos(q[0]) + L2 * math.cos(q[0] + q[1]),
        L1 * math.sin(q[0]) + L2 * math.sin(q[0] + q[1]),
    ])  # fmt: skip


def _jacobian(q):
    s1, c1 = math.sin(q[0]), math.cos(q[0])
    s12, c12 = math.sin(q[0] + q[1]), math.cos(q[0] + q[1])
    jac = np.zeros((6, 2))
    jac[0] = [-L1 * s1 - L2 * s12, -L2 * s12]
    jac[1] = [L1 * c1 + L2 * c12, L2 * c12]
    return jac  # z and rotation rows zero: the toy only moves in the plane


def test_ee_jog_moves_the_tool_along_the_base_axis():
    cfg = JogConfig(
        joint_names=('s', 'e', 'gripper'), ee_joints=('s', 'e'), velocity_max=(2.0, 2.0, 0.05),
        position_min=(-3.0, -3.0, 0.0), position_max=(3.0, 3.0, 0.04), linear_speed=0.1,
        ik_damping=1e-3, horizon=11, step_dt=0.1, rearm_after_timeout=False,
    )  # fmt: skip
    core = TeleopCore(cfg, jacobian=_jacobian)
    q0 = np.array([0.3, 1.2])
    state = JointStateSample(0.0, cfg.joint_names, [*q0, 0.02], np.zeros(3), np.zeros(3))
    cmd = JogCommand(twist=(1.0, 0, 0, 0, 0, 0), joint_rates={'gripper': 1.0})
    chunk = core.step(0.0, InputSample(True, cmd, 0.0), state, 0.0).chunk
    start, end = _fk(chunk.targets[0, :2]), _fk(chunk.targets[-1, :2])
    assert end[0] - start[0] == pytest.approx(0.1, abs=2e-3)  # 1 s at 0.1 m/s along +x
    assert abs(end[1] - start[1]) < 2e-3
    np.testing.assert_allclose(chunk.targets[-1, 2], 0.04)  # gripper opened to its limit


def test_ee_jog_without_a_jacobian_is_ignored_and_counted():
    core = TeleopCore(_cfg(ee_joints=('a', 'b')))
    out = core.step(0.0, _on(0.0, twist=(1.0, 0, 0, 0, 0, 0)), _state([0, 0, 0], 0.0), 0.0)
    np.testing.assert_allclose(out.chunk.targets, 0.0)
    assert core.ee_unavailable > 0


def test_urdf_jacobian_matches_finite_differences():
    from vla_core.kinematics import KinematicTree
    from vla_description import urdf_path
    from vla_teleop.teleop.kinematics import urdf_jacobian

    names = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6')
    urdf = urdf_path('vla_arm').read_text()
    jac_fn = urdf_jacobian(urdf, names)
    tree = KinematicTree.from_urdf(urdf)

    def pos(q):
        return tree.link_pose('ee_link', dict(zip(names, q, strict=True)))[:3, 3]

    q = np.array([0.2, 0.4, 0.9, -1.2, 0.1, 0.3])
    jac = jac_fn(q)
    eps = 1e-6
    numeric = np.stack([(pos(q + eps * e) - pos(q - eps * e)) / (2 * eps) for e in np.eye(6)], 1)
    np.testing.assert_allclose(jac[:3], numeric, atol=1e-8)
    # The base-frame twist of a shoulder-yaw turn is a rotation about +z.
    np.testing.assert_allclose(jac[3:, 0], [0.0, 0.0, 1.0], atol=1e-12)


def test_urdf_jacobian_refuses_what_the_description_lacks():
    from vla_description import urdf_path
    from vla_teleop.teleop.kinematics import urdf_jacobian

    urdf = urdf_path('vla_arm').read_text()
    with pytest.raises(ValueError, match="no actuated joint 'elbow'"):
        urdf_jacobian(urdf, ('joint1', 'elbow'))
    with pytest.raises(ValueError, match="no link 'tool0'"):
        urdf_jacobian(urdf, ('joint1',), link='tool0')

"""Leader arm: joint name mapping, scale/offset, deadman sources, limits through the core."""

import numpy as np
import pytest

from vla_core.config import ConfigError
from vla_core.robot import JointStateSample
from vla_teleop.teleop.core import JogConfig, TeleopCore
from vla_teleop.teleop.leader_arm import LeaderArmConfig, LeaderArmInput, parse_joint_map

NAMES = ('joint1', 'joint2', 'gripper')


def test_joint_map_parsing():
    assert parse_joint_map((), NAMES) == {n: n for n in NAMES}
    assert parse_joint_map(('l_shoulder = joint1', 'l_grip=gripper'), NAMES) == {
        'l_shoulder': 'joint1', 'l_grip': 'gripper'
    }  # fmt: skip
    for bad in (('joint1',), ('a=joint9',), ('a=joint1', 'b=joint1'), ('=joint1',)):
        with pytest.raises(ConfigError, match='joint_map'):
            parse_joint_map(bad, NAMES)


def test_mapping_scale_offset_and_missing_joints():
    cfg = LeaderArmConfig(
        joint_map=('s=joint1', 'e=joint2', 'g=gripper'), scale=(1.0, -1.0, 0.5),
        offset=(0.1, 0.0, 0.0),
    )  # fmt: skip
    leader = LeaderArmInput(cfg, NAMES)
    leader.on_leader(['e', 's', 'g', 'extra'], [0.2, 0.5, 0.06, 9.0], now=1.0)
    s = leader.sample(1.0)
    assert s.deadman and s.stamp == 1.0
    assert s.command.positions == pytest.approx({'joint1': 0.6, 'joint2': -0.2, 'gripper': 0.03})
    assert leader.mapper.missing(['s']) == ['e', 'g']
    leader.on_leader(['s'], [float('nan')], now=2.0)  # nothing usable: not renewed
    leader.on_leader(['s', 'e'], [0.1], now=2.0)  # malformed
    assert leader.sample(2.0).stamp == 1.0
    with pytest.raises(ConfigError, match='scale'):
        LeaderArmInput(LeaderArmConfig(scale=(1.0, 1.0)), NAMES)


def test_deadman_topic_with_and_without_refresh():
    leader = LeaderArmInput(LeaderArmConfig(deadman='topic', deadman_timeout=0.5), NAMES)
    assert not leader.deadman(0.0)
    leader.on_deadman(True, 1.0)
    assert leader.deadman(1.4) and not leader.deadman(1.6)
    latched = LeaderArmInput(LeaderArmConfig(deadman='topic', deadman_timeout=0.0), NAMES)
    latched.on_deadman(True, 1.0)
    assert latched.deadman(100.0)
    latched.on_deadman(False, 101.0)
    assert not latched.deadman(101.0)


def test_follower_approaches_the_leader_within_limits_and_speed():
    jog = JogConfig(
        joint_names=NAMES, ee_joints=(), velocity_max=(1.0, 1.0, 0.1),
        position_min=(-1.0, -1.0, 0.0), position_max=(1.0, 1.0, 0.04), horizon=5, step_dt=0.1,
        rearm_after_timeout=False,
    )  # fmt: skip
    core = TeleopCore(jog)
    leader = LeaderArmInput(LeaderArmConfig(), NAMES)
    leader.on_leader(list(NAMES), [5.0, 0.05, 0.02], now=0.0)
    state = JointStateSample(10.0, NAMES, [0.0, 0.0, 0.02], np.zeros(3), np.zeros(3))
    chunk = core.step(0.0, leader.sample(0.0), state, 0.0).chunk
    # joint1 is far: it sets the pace (1 rad/s) and every joint moves in step; clipped at 1.0
    np.testing.assert_allclose(chunk.targets[:, 0], [0.0, 0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(chunk.targets[:, 1], [0.0, 0.001, 0.002, 0.003, 0.004])
    np.testing.assert_allclose(chunk.targets[:, 2], 0.02)
    leader.on_leader(list(NAMES), [0.05, 0.05, 0.02], now=0.1)
    state = JointStateSample(10.1, NAMES, [0.05, 0.0, 0.02], np.zeros(3), np.zeros(3))
    near = core.step(0.1, leader.sample(0.1), state, 0.1).chunk
    np.testing.assert_allclose(near.targets[-1], [0.05, 0.05, 0.02])

"""Leader-arm teleop: mirror a leader device's joint states onto the follower's joints.

Each follower joint ``f`` mapped from leader joint ``l`` gets the goal ``scale[f] * q_l +
offset[f]`` (``scale``/``offset`` in ``jog.joint_names`` order, 1 value or one per joint);
unmapped follower joints hold. The core approaches the goals at most at ``jog.velocity_max`` and
clips them to the position limits, so engaging with the two arms apart does not jump.

The deadman is ``'always'`` (the leader's own presence: its joint states arriving within
``jog.input_timeout``) or ``'topic'``: a std_msgs/Bool (a foot pedal, a button on the leader) that
must be true and, with ``deadman_timeout`` > 0, refreshed that often.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vla_core.config import Config, ConfigError, param
from vla_teleop.teleop.core import InputSample, JogCommand, per_joint

__all__ = ['LeaderArmConfig', 'LeaderArmInput', 'LeaderArmMapper', 'parse_joint_map']


@dataclass(frozen=True, kw_only=True)
class LeaderArmConfig(Config):
    topic: str = param('leader/joint_states', description='leader JointState topic', read_only=True)
    joint_map: tuple[str, ...] = param(
        (), description="'leader_joint=follower_joint' entries; empty: the same names"
    )
    scale: tuple[float, ...] = param(
        (1.0,), description='goal = scale * leader + offset, per follower joint (1 or one each)'
    )
    offset: tuple[float, ...] = param(
        (0.0,), description='[rad or m] per follower joint (1 or one each)'
    )
    deadman: str = param(
        'always', description="'always': while the leader publishes; 'topic': deadman_topic",
        choices=('always', 'topic'), read_only=True,
    )  # fmt: skip
    deadman_topic: str = param(
        'leader/deadman', description='std_msgs/Bool deadman (deadman: topic)', read_only=True
    )
    deadman_timeout: float = param(
        0.5, description='the deadman Bool must be refreshed this often [s]; 0: on-change '
        'publishers (kept until changed)', range=(0.0, 10.0),
    )  # fmt: skip


def parse_joint_map(entries: Sequence[str], follower: Sequence[str]) -> dict[str, str]:
    """``('a=joint1', ...)`` -> ``{'a': 'joint1'}``; empty -> identity on ``follower``."""
    if not entries:
        return {n: n for n in follower}
    mapping: dict[str, str] = {}
    for entry in entries:
        leader, sep, target = (s.strip() for s in entry.partition('='))
        if not sep or not leader or not target:
            raise ConfigError('leader.joint_map', f"{entry!r} is not 'leader_joint=follower_joint'")
        if target not in follower:
            raise ConfigError('leader.joint_map', f'{target!r} is not a follower joint')
        if target in mapping.values() or leader in mapping:
            raise ConfigError('leader.joint_map', f'{entry!r} maps a joint twice')
        mapping[leader] = target
    return mapping


class LeaderArmMapper:
    """Leader joint positions -> follower goals."""

    def __init__(self, config: LeaderArmConfig, follower_joints: Sequence[str]) -> None:
        follower = tuple(follower_joints)
        self.mapping = parse_joint_map(config.joint_map, follower)
        scale = per_joint(config.scale, len(follower), 'leader.scale')
        offset = per_joint(config.offset, len(follower), 'leader.offset')
        self._scale = dict(zip(follower, scale, strict=True))
        self._offset = dict(zip(follower, offset, strict=True))

    def goals(self, names: Sequence[str], positions: Sequence[float]) -> dict[str, float]:
        """Goals of the follower joints whose leader joints are in the message (finite only)."""
        out: dict[str, float] = {}
        for name, value in zip(names, positions, strict=False):
            target = self.mapping.get(name)
            if target is not None and np.isfinite(value):
                out[target] = float(self._scale[target] * value + self._offset[target])
        return out

    def missing(self, names: Sequence[str]) -> list[str]:
        """Mapped leader joints absent from a message."""
        return [n for n in self.mapping if n not in set(names)]


class LeaderArmInput:
    """Latest leader state and deadman -> input samples."""

    def __init__(self, config: LeaderArmConfig, follower_joints: Sequence[str]) -> None:
        self.config = config
        self.mapper = LeaderArmMapper(config, follower_joints)
        self._goals: Mapping[str, float] = {}
        self._leader_stamp = -float('inf')
        self._button = False
        self._button_stamp = -float('inf')
        self.messages = 0

    def on_leader(self, names: Sequence[str], positions: Sequence[float], now: float) -> None:
        if len(positions) != len(names):
            return  # malformed: the leader's freshness is not renewed
        goals = self.mapper.goals(names, positions)
        if not goals:
            return
        self._goals = goals
        self._leader_stamp = now
        self.messages += 1

    def on_deadman(self, pressed: bool, now: float) -> None:
        self._button = pressed
        self._button_stamp = now

    def deadman(self, now: float) -> bool:
        cfg = self.config
        if cfg.deadman == 'always':
            return True
        fresh = cfg.deadman_timeout <= 0.0 or now - self._button_stamp <= cfg.deadman_timeout
        return self._button and fresh

    def sample(self, now: float) -> InputSample:
        return InputSample(
            deadman=self.deadman(now),
            command=JogCommand(positions=dict(self._goals)),
            stamp=self._leader_stamp,
        )

"""Teleoperation core (pure: numpy + vla_core): operator input -> short chunks of joint targets.

Every input device reduces to an :class:`InputSample` (deadman, :class:`JogCommand`, the time the
input was last known good). :class:`TeleopCore` turns it, with the newest joint state, into an
``ActionChunk`` of ``horizon`` future targets starting at the joint state's stamp:

- joint jog: per-joint rates in [-1, 1] of ``velocity_max``;
- end-effector jog: a base-frame twist in [-1, 1] of ``linear_speed``/``angular_speed``, mapped to
  joint rates by damped least squares on an injected Jacobian (``jacobian(q_ee) -> (6, n)``, rows
  vx vy vz wx wy wz of the tool point in the base frame), so the core needs no MuJoCo;
- position goals (leader arm): approached at most at ``velocity_max``.

The joint rates are scaled down together (direction kept) to ``velocity_max * speed`` and the
targets clipped to the position limits.

The reference is continuous: each chunk starts where the previous one says the arm should be at
the new stamp, not at the measured position, so a held arm does not creep with tracking error or
sag. It is kept within ``max_deviation`` of the measured joints, so pushing against an obstacle
or a limit does not wind it up.

Deadman: no deadman -> no chunk and intervention false. Deadman released (or the input or the
joint states going stale) -> one final chunk holding the reference, intervention false. After an
input timeout (device lost) the deadman must be seen released before it engages again
(``rearm_after_timeout``), so a reconnecting device with a stuck button does not start moving.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from vla_core.chunk import ActionChunk
from vla_core.config import Config, ConfigError, param
from vla_core.robot import JointStateSample

__all__ = [
    'EE_AXES',
    'InputSample',
    'Jacobian',
    'JogCommand',
    'JogConfig',
    'TeleopCore',
    'TeleopOutput',
    'dls_rates',
    'parse_channel',
    'per_joint',
]

EE_AXES = ('x', 'y', 'z', 'rx', 'ry', 'rz')
# Arm joints (n,) -> (6, n): tool-point linear and angular velocity in the base frame per joint.
Jacobian = Callable[[np.ndarray], np.ndarray]

_SIM_JOINTS = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper')


def per_joint(values: Sequence[float], dof: int, name: str) -> np.ndarray:
    """A per-joint array from a config tuple of 1 value (all joints) or ``dof`` values."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size not in (1, dof):
        raise ConfigError(name, f'needs 1 or {dof} values, got {arr.size}')
    return np.broadcast_to(arr, (dof,)).copy() if arr.size == 1 else arr.copy()


def parse_channel(spec: str, joint_names: Sequence[str]) -> tuple[str, float] | None:
    """``'-x'`` -> ``('x', -1.0)``, ``'gripper'`` -> ``('gripper', 1.0)``; ``''`` -> None.

    A channel is an end-effector axis (``EE_AXES``) or a joint name, with an optional sign.
    """
    spec = spec.strip()
    if not spec:
        return None
    sign = -1.0 if spec.startswith('-') else 1.0
    name = spec.lstrip('+-')
    if name not in EE_AXES and name not in joint_names:
        raise ValueError(f'unknown channel {spec!r}: not one of {list(EE_AXES)} or a joint name')
    return name, sign


@dataclass(frozen=True, kw_only=True)
class JogConfig(Config):
    joint_names: tuple[str, ...] = param(
        _SIM_JOINTS,
        description='joints of every chunk, in column order (all the controller expects)',
    )
    ee_joints: tuple[str, ...] = param(
        _SIM_JOINTS[:6],
        description='joints the end-effector Jacobian spans, in its column order; empty: no EE jog',
    )
    velocity_max: tuple[float, ...] = param(
        (0.5, 0.5, 0.5, 0.8, 0.8, 1.0, 0.03),
        description='jog speed at full input and cap on any motion, per joint [rad/s or m/s]; '
        '1 value or one per joint',
        range=(1e-6, 10.0),
    )
    position_min: tuple[float, ...] = param(
        (-2.96, -1.91, -2.61, -2.96, -2.96, -3.05, 0.0),
        description='lower target limit per joint [rad or m]; 1 value or one per joint',
    )
    position_max: tuple[float, ...] = param(
        (2.96, 1.91, 2.61, 2.96, 2.96, 3.05, 0.04),
        description='upper target limit per joint [rad or m]; 1 value or one per joint',
    )
    linear_speed: float = param(
        0.1, description='end-effector speed at full input [m/s]', range=(0.0, 2.0)
    )
    angular_speed: float = param(
        0.5, description='end-effector angular speed at full input [rad/s]', range=(0.0, 5.0)
    )
    ik_damping: float = param(
        0.05, description='damped-least-squares damping of the EE jog', range=(1e-6, 1.0)
    )
    horizon: int = param(5, description='targets per chunk', range=(1, 100))
    step_dt: float = param(0.05, description='time between targets [s]', range=(1e-3, 1.0))
    max_deviation: float = param(
        0.15,
        description='how far the reference may lead the measured joints [rad or m] (no wind-up)',
        range=(1e-4, 10.0),
    )
    state_timeout: float = param(
        0.25, description='joint_states older than this (on receipt) stop the jog [s]',
        range=(0.01, 10.0),
    )  # fmt: skip
    input_timeout: float = param(
        0.3, description='input not confirmed for this long counts as deadman released [s]',
        range=(0.01, 10.0),
    )  # fmt: skip
    rearm_after_timeout: bool = param(
        True, description='after an input timeout (and at start) the deadman must be released '
        'once before it engages',
    )  # fmt: skip

    def validate(self) -> None:
        names = self.joint_names
        if not names or len(set(names)) != len(names) or not all(names):
            raise ConfigError('joint_names', f'must be unique, non-empty names, got {list(names)}')
        unknown = [n for n in self.ee_joints if n not in names]
        if unknown or len(set(self.ee_joints)) != len(self.ee_joints):
            raise ConfigError('ee_joints', f'must be distinct names from joint_names: {unknown}')
        clash = [n for n in names if n in EE_AXES]
        if clash:
            raise ConfigError('joint_names', f'{clash} clash with the EE axis channels')
        lo = per_joint(self.position_min, len(names), 'position_min')
        hi = per_joint(self.position_max, len(names), 'position_max')
        per_joint(self.velocity_max, len(names), 'velocity_max')
        if np.any(lo > hi):
            raise ConfigError('position_min', 'exceeds position_max')


@dataclass(frozen=True)
class JogCommand:
    """What the operator asks for now; everything is summed."""

    joint_rates: Mapping[str, float] = field(default_factory=dict)  # [-1, 1] of velocity_max
    twist: tuple[float, ...] = (0.0,) * 6  # [-1, 1] of linear/angular speed, base frame
    positions: Mapping[str, float] = field(default_factory=dict)  # goals, reached at velocity_max
    speed: float = 1.0  # scale (0, 1] of every speed above


@dataclass(frozen=True)
class InputSample:
    """A device's state: ``stamp`` is when (monotonic seconds) the input was last known good."""

    deadman: bool
    command: JogCommand
    stamp: float


@dataclass(frozen=True)
class TeleopOutput:
    chunk: ActionChunk | None  # publish on expert/action_chunk when not None
    intervention: bool  # teleop/intervention
    event: str = ''  # 'engaged', 'released', 'input_timeout', 'state_lost', 'no_state' or ''


def dls_rates(jac: np.ndarray, twist: np.ndarray, damping: float) -> np.ndarray:
    """Joint rates realising ``twist`` in the damped-least-squares sense (bounded near
    singularities): ``J^T (J J^T + lambda^2 I)^-1 v``."""
    jjt = jac @ jac.T
    return jac.T @ np.linalg.solve(jjt + damping**2 * np.eye(jjt.shape[0]), twist)


class TeleopCore:
    """Deadman state machine and jog integrator; call :meth:`step` at the teleop rate."""

    def __init__(
        self, config: JogConfig, jacobian: Jacobian | None = None, source: str = 'teleop'
    ) -> None:
        self.config = config
        self._jacobian = jacobian
        self.source = source
        names = config.joint_names
        dof = len(names)
        self._index = {n: i for i, n in enumerate(names)}
        self._ee_index = np.array([self._index[n] for n in config.ee_joints], dtype=int)
        self._vmax = per_joint(config.velocity_max, dof, 'velocity_max')
        self._lo = per_joint(config.position_min, dof, 'position_min')
        self._hi = per_joint(config.position_max, dof, 'position_max')
        self._engaged = False
        self._blocked = config.rearm_after_timeout
        self._last: ActionChunk | None = None  # newest chunk published while engaged
        self._sequence = 0
        self.ee_unavailable = 0  # cycles with a twist asked for but no Jacobian

    @property
    def engaged(self) -> bool:
        return self._engaged

    @property
    def blocked(self) -> bool:
        """Waiting for the deadman to be released after a timeout (or at start)."""
        return self._blocked

    # --- the cycle --------------------------------------------------------------------------------

    def step(
        self,
        now: float,
        sample: InputSample | None,
        state: JointStateSample | None,
        state_received: float = -np.inf,
    ) -> TeleopOutput:
        """One cycle at monotonic time ``now``; ``state_received`` is when ``state`` arrived."""
        cfg = self.config
        input_ok = sample is not None and now - sample.stamp <= cfg.input_timeout
        if not input_ok and cfg.rearm_after_timeout:
            self._blocked = True
        elif input_ok and not sample.deadman:
            self._blocked = False
        q = self._measured(state) if now - state_received <= cfg.state_timeout else None
        wants = input_ok and sample.deadman and not self._blocked
        if wants and q is not None:
            assert state is not None and sample is not None
            event = '' if self._engaged else 'engaged'
            if not self._engaged:
                self._engaged = True
                ref = q
            else:
                ref = self._reference_at(state.stamp, q)
            chunk = self._rollout(ref, sample.command, state.stamp)
            self._last = chunk
            return TeleopOutput(chunk, True, event)
        if not self._engaged:
            event = 'no_state' if wants else ''
            return TeleopOutput(None, False, event)
        # Was engaged: one hold chunk, then silence.
        if not input_ok:
            event = 'input_timeout'
        elif sample is not None and sample.deadman and not self._blocked:
            event = 'state_lost'
        else:
            event = 'released'
        return TeleopOutput(self.release(state if q is not None else None), False, event)

    def release(self, state: JointStateSample | None = None) -> ActionChunk | None:
        """Disengage now; the chunk holding the reference (None if never engaged)."""
        if not self._engaged or self._last is None:
            self._engaged = False
            return None
        self._engaged = False
        last = self._last
        self._last = None
        if state is not None and state.stamp >= last.stamp:
            stamp = state.stamp
            ref = self._reference_at(stamp, self._measured(state), last)
        else:  # no fresh state: hold where the last chunk starts, at its stamp
            stamp = last.stamp
            ref = last.targets[0]
        targets = np.tile(ref, (self.config.horizon, 1))
        return self._chunk(targets, stamp)

    # --- internals --------------------------------------------------------------------------------

    def _measured(self, state: JointStateSample | None) -> np.ndarray | None:
        if state is None:
            return None
        where = {n: i for i, n in enumerate(state.joint_names)}
        if any(n not in where for n in self.config.joint_names):
            return None
        q = np.array([state.position[where[n]] for n in self.config.joint_names])
        return q if np.all(np.isfinite(q)) else None

    def _reference_at(
        self, stamp: float, measured: np.ndarray | None, last: ActionChunk | None = None
    ) -> np.ndarray:
        """Where the previous chunk says the arm should be at ``stamp``, near ``measured``."""
        last = self._last if last is None else last
        if last is None:
            ref = measured.copy() if measured is not None else np.zeros(len(self._vmax))
        else:
            times = last.times
            ref = np.array([np.interp(stamp, times, last.targets[:, j]) for j in range(last.dof)])
        if measured is not None:
            dev = self.config.max_deviation
            ref = np.clip(ref, measured - dev, measured + dev)
        return np.clip(ref, self._lo, self._hi)

    def _rates(self, q: np.ndarray, cmd: JogCommand) -> np.ndarray:
        cfg = self.config
        speed = float(np.clip(cmd.speed, 0.0, 1.0))
        v = np.zeros_like(q)
        for name, rate in cmd.joint_rates.items():
            i = self._index.get(name)
            if i is not None:
                v[i] += float(np.clip(rate, -1.0, 1.0)) * self._vmax[i] * speed
        twist = np.clip(np.asarray(cmd.twist, dtype=np.float64), -1.0, 1.0)
        if np.any(twist) and self._ee_index.size:
            if self._jacobian is None:
                self.ee_unavailable += 1
            else:
                scale = np.array([cfg.linear_speed] * 3 + [cfg.angular_speed] * 3) * speed
                jac = np.asarray(self._jacobian(q[self._ee_index]), dtype=np.float64)
                v[self._ee_index] += dls_rates(jac, twist * scale, cfg.ik_damping)
        return v

    def _rollout(self, ref: np.ndarray, cmd: JogCommand, stamp: float) -> ActionChunk:
        cfg = self.config
        dt = cfg.step_dt
        speed = float(np.clip(cmd.speed, 0.0, 1.0))
        cap = self._vmax * speed
        goals = {self._index[n]: g for n, g in cmd.positions.items() if n in self._index}
        targets = np.empty((cfg.horizon, len(ref)))
        q = ref.copy()
        targets[0] = q
        for i in range(1, cfg.horizon):
            v = self._rates(q, cmd)
            for j, goal in goals.items():
                v[j] = (goal - q[j]) / dt
            # Scale all joints together so an EE jog keeps its direction.
            over = np.max(np.abs(v) / np.maximum(cap, 1e-12)) if speed > 0.0 else np.inf
            v = v / over if over > 1.0 else v
            if not np.all(np.isfinite(v)):
                v = np.zeros_like(v)
            q = np.clip(q + v * dt, self._lo, self._hi)
            targets[i] = q
        return self._chunk(targets, stamp)

    def _chunk(self, targets: np.ndarray, stamp: float) -> ActionChunk:
        self._sequence += 1
        return ActionChunk(
            stamp=stamp,
            dt=self.config.step_dt,
            joint_names=self.config.joint_names,
            targets=targets,
            source=self.source,
            sequence=self._sequence,
        )

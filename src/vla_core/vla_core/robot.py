"""The hardware-agnostic robot interface and the samples it exchanges.

The MuJoCo sim implements :class:`RobotInterface`, and so can any hardware driver later; the ROS
node is only a bridge on top of it. :meth:`RobotInterface.send_command` is a template method:
every command is validated (mode, joint names, length, NaN/Inf) before a driver sees it, clipped
to the joint limits, and the command actually applied is returned, so callers can log what the
robot really got.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
import math
from typing import Any

import numpy as np
import transforms3d

__all__ = [
    'ACTUATION_MODES',
    'CameraIntrinsics',
    'CommandError',
    'ImuSample',
    'JointCommand',
    'JointLimits',
    'JointStateSample',
    'Pose',
    'RobotInterface',
    'validate_command',
]

ACTUATION_MODES = ('position', 'velocity', 'effort')


class CommandError(ValueError):
    """A command that was rejected and not applied; the message says why."""


def _frozen_array(value: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.array(value, dtype=np.float64, copy=True)
    if shape is not None and arr.shape != shape:
        raise ValueError(f'{name} must have shape {shape}, got {arr.shape}')
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True)
class JointLimits:
    """Per-joint limits in ``joint_names`` order: position [rad or m], velocity, effort (> 0)."""

    joint_names: tuple[str, ...]
    position_lower: np.ndarray
    position_upper: np.ndarray
    velocity: np.ndarray  # symmetric |qdot| limit
    effort: np.ndarray  # symmetric |tau| limit

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        object.__setattr__(self, 'joint_names', tuple(self.joint_names))
        for name in ('position_lower', 'position_upper', 'velocity', 'effort'):
            object.__setattr__(self, name, _frozen_array(getattr(self, name), name, (n,)))
        if np.any(self.position_lower > self.position_upper):
            raise ValueError('position_lower must not exceed position_upper')
        if np.any(self.velocity <= 0.0) or np.any(self.effort <= 0.0):
            raise ValueError('velocity and effort limits must be positive')

    def bounds(self, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) command bounds for an actuation mode."""
        if mode == 'position':
            return self.position_lower, self.position_upper
        if mode == 'velocity':
            return -self.velocity, self.velocity
        if mode == 'effort':
            return -self.effort, self.effort
        raise CommandError(f'unknown actuation mode {mode!r}; expected one of {ACTUATION_MODES}')


@dataclass(frozen=True)
class JointStateSample:
    """One joint-state reading, as sensor_msgs/JointState carries it."""

    stamp: float  # [s] robot clock
    joint_names: tuple[str, ...]
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        object.__setattr__(self, 'joint_names', tuple(self.joint_names))
        for name in ('position', 'velocity', 'effort'):
            object.__setattr__(self, name, _frozen_array(getattr(self, name), name, (n,)))


@dataclass(frozen=True)
class JointCommand:
    """Targets for every joint in one actuation mode.

    ``joint_names`` empty means the robot's own order. Partial commands are not allowed: a robot
    must never be left guessing what an omitted joint should do.
    """

    mode: str
    values: np.ndarray
    joint_names: tuple[str, ...] = ()
    stamp: float = 0.0  # [s] when it was issued (robot clock); informative only

    def __post_init__(self) -> None:
        if self.mode not in ACTUATION_MODES:
            raise CommandError(
                f'unknown actuation mode {self.mode!r}; expected one of {ACTUATION_MODES}'
            )
        try:
            values = np.array(self.values, dtype=np.float64, copy=True)
        except (TypeError, ValueError) as err:
            raise CommandError(f'command values are not numbers: {err}') from None
        if values.ndim != 1:
            raise CommandError(f'command values must be a flat list, got shape {values.shape}')
        if not np.all(np.isfinite(values)):
            bad = np.flatnonzero(~np.isfinite(values)).tolist()
            raise CommandError(f'command contains NaN or Inf at indices {bad}; not applied')
        names = tuple(self.joint_names)
        if names and len(names) != values.size:
            raise CommandError(
                f'command has {len(names)} joint names but {values.size} values; not applied'
            )
        if len(set(names)) != len(names):
            raise CommandError(f'duplicate joint names in command: {list(names)}')
        values.flags.writeable = False
        object.__setattr__(self, 'values', values)
        object.__setattr__(self, 'joint_names', names)
        object.__setattr__(self, 'stamp', float(self.stamp))


def validate_command(cmd: JointCommand, joint_names: tuple[str, ...], mode: str) -> np.ndarray:
    """``cmd.values`` in ``joint_names`` order, or :class:`CommandError` saying what is wrong."""
    if cmd.mode != mode:
        raise CommandError(f'command mode {cmd.mode!r} but the robot is in {mode!r} mode')
    if not cmd.joint_names:
        if cmd.values.size != len(joint_names):
            raise CommandError(
                f'command has {cmd.values.size} values, the robot has {len(joint_names)} joints '
                f'{list(joint_names)}; not applied'
            )
        return np.array(cmd.values)
    unknown = [n for n in cmd.joint_names if n not in joint_names]
    if unknown:
        raise CommandError(f'unknown joint names {unknown}; known: {list(joint_names)}')
    missing = [n for n in joint_names if n not in cmd.joint_names]
    if missing:
        raise CommandError(f'command is missing joints {missing}; not applied')
    index = {n: i for i, n in enumerate(cmd.joint_names)}
    return np.array([cmd.values[index[n]] for n in joint_names])


class RobotInterface(ABC):
    """What a robot (sim or hardware) offers the controller and the ROS bridge.

    Drivers implement the abstract members; :meth:`send_command` validates and clips first, so
    :meth:`_apply` only ever sees finite values within the limits, in ``joint_names`` order.
    """

    @property
    @abstractmethod
    def joint_names(self) -> tuple[str, ...]: ...

    @property
    @abstractmethod
    def limits(self) -> JointLimits: ...

    @property
    @abstractmethod
    def actuation_mode(self) -> str: ...

    @property
    @abstractmethod
    def is_connected(self) -> bool: ...

    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def disconnect(self) -> None: ...

    @abstractmethod
    def now(self) -> float:
        """[s] the robot's clock (sim time for the simulator)."""

    @abstractmethod
    def read_state(self) -> JointStateSample: ...

    @abstractmethod
    def _apply(self, values: np.ndarray, stamp: float) -> None:
        """Hand validated, clipped values (``joint_names`` order) to the actuators."""

    def send_command(self, cmd: JointCommand) -> JointCommand:
        """Validate, clip to limits and apply; returns the command actually applied."""
        if not self.is_connected:
            raise CommandError('robot is not connected; command not applied')
        values = validate_command(cmd, self.joint_names, self.actuation_mode)
        lo, hi = self.limits.bounds(self.actuation_mode)
        applied = np.clip(values, lo, hi)
        self._apply(applied, cmd.stamp)
        return JointCommand(
            mode=self.actuation_mode, values=applied, joint_names=self.joint_names, stamp=cmd.stamp
        )

    def __enter__(self) -> RobotInterface:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()


# --- geometry and sensor samples shared by sim and hardware drivers --------------------------


@dataclass(frozen=True)
class Pose:
    """A rigid transform: ``position`` (3,) and unit quaternion ``quat_wxyz`` (4,), w first."""

    position: np.ndarray
    quat_wxyz: np.ndarray

    def __post_init__(self) -> None:
        q = np.array(self.quat_wxyz, dtype=np.float64)
        norm = float(np.linalg.norm(q))
        if q.shape != (4,) or not math.isfinite(norm) or norm < 1e-9:
            raise ValueError(f'quat_wxyz must be a non-zero 4-vector, got {self.quat_wxyz!r}')
        q = q / norm
        if q[0] < 0.0:  # one canonical sign, so equal rotations compare equal
            q = -q
        q.flags.writeable = False
        object.__setattr__(self, 'quat_wxyz', q)
        object.__setattr__(self, 'position', _frozen_array(self.position, 'position', (3,)))

    @classmethod
    def from_matrix(cls, position: Any, rotation: Any) -> Pose:
        return cls(np.asarray(position), transforms3d.quaternions.mat2quat(np.asarray(rotation)))

    @property
    def quat_xyzw(self) -> np.ndarray:
        """ROS (geometry_msgs) order."""
        w, x, y, z = self.quat_wxyz
        return np.array([x, y, z, w])

    @property
    def rotation(self) -> np.ndarray:
        return transforms3d.quaternions.quat2mat(self.quat_wxyz)

    @property
    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous transform."""
        t = np.eye(4)
        t[:3, :3] = self.rotation
        t[:3, 3] = self.position
        return t

    def inverse(self) -> Pose:
        r = self.rotation.T
        return Pose.from_matrix(-r @ self.position, r)

    def __mul__(self, other: Pose) -> Pose:
        """Composition: ``a * b`` maps b's frame into a's parent frame."""
        r = self.rotation
        return Pose.from_matrix(self.position + r @ other.position, r @ other.rotation)

    def transform_points(self, points: Any) -> np.ndarray:
        """Map (N, 3) or (3,) points from this pose's frame into its parent frame."""
        p = np.asarray(points, dtype=np.float64)
        return p @ self.rotation.T + self.position


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in the ROS/OpenCV convention (pixel centres at integer coordinates)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @property
    def k(self) -> np.ndarray:
        """(3, 3) camera matrix K, as sensor_msgs/CameraInfo.k (row-major)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def p(self) -> np.ndarray:
        """(3, 4) projection matrix P of a monocular camera (no baseline)."""
        return np.hstack([self.k, np.zeros((3, 1))])

    def project(self, points_optical: Any) -> np.ndarray:
        """(N, 2) pixels (u, v) of (N, 3) points in the optical frame (z fwd, x right, y down)."""
        p = np.atleast_2d(np.asarray(points_optical, dtype=np.float64))
        if np.any(p[:, 2] <= 0.0):
            raise ValueError('points must lie in front of the camera (z > 0)')
        return np.stack(
            [self.fx * p[:, 0] / p[:, 2] + self.cx, self.fy * p[:, 1] / p[:, 2] + self.cy], axis=1
        )


@dataclass(frozen=True)
class ImuSample:
    """REP 145 raw IMU reading in ``frame_id``: specific force (includes +g at rest) and rate."""

    stamp: float
    frame_id: str
    linear_acceleration: np.ndarray  # [m/s^2]
    angular_velocity: np.ndarray  # [rad/s]
    orientation_wxyz: np.ndarray | None = field(default=None)  # raw IMUs report none

    def __post_init__(self) -> None:
        for name in ('linear_acceleration', 'angular_velocity'):
            object.__setattr__(self, name, _frozen_array(getattr(self, name), name, (3,)))

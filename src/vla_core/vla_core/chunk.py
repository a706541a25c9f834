"""The action chunk: the one currency between policy, expert, arbiter, recorder and controller.

A chunk is computed from one observation taken at ``stamp`` (seconds, the robot's clock) and
holds ``H`` future joint targets; target ``i`` is meant for time ``stamp + i * dt``. Consumers look
actions up by time, so inference latency is compensated and a chunk whose time has passed can be
refused.
The ROS message ``vla_interfaces/msg/ActionChunk`` carries exactly these fields
(``vla_ros_common.conversions`` converts both ways).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ['ActionChunk']


@dataclass(frozen=True)
class ActionChunk:
    """``H`` joint targets ``(H, DoF)`` starting at the source observation's ``stamp``."""

    stamp: float  # [s] time of the observation the chunk was computed from
    dt: float  # [s] time between consecutive targets
    joint_names: tuple[str, ...]
    targets: np.ndarray  # (H, DoF) float64, read-only
    source: str = ''  # who produced it: 'policy', 'expert', 'teleop', ...
    sequence: int = 0  # producer's running counter, for drop accounting

    def __post_init__(self) -> None:
        names = tuple(self.joint_names)
        if len(set(names)) != len(names) or not all(names):
            raise ValueError(f'joint names must be unique and non-empty: {names}')
        targets = np.array(self.targets, dtype=np.float64, copy=True)
        if targets.ndim != 2 or targets.shape[0] < 1 or targets.shape[1] != len(names):
            raise ValueError(f'targets must be (H>=1, DoF={len(names)}), got shape {targets.shape}')
        if not np.all(np.isfinite(targets)):
            raise ValueError('targets contain NaN or Inf')
        if not (np.isfinite(self.dt) and self.dt > 0.0):
            raise ValueError(f'dt must be a positive finite number of seconds, got {self.dt}')
        if not np.isfinite(self.stamp):
            raise ValueError(f'stamp must be finite, got {self.stamp}')
        targets.flags.writeable = False
        object.__setattr__(self, 'joint_names', names)
        object.__setattr__(self, 'targets', targets)
        object.__setattr__(self, 'stamp', float(self.stamp))
        object.__setattr__(self, 'dt', float(self.dt))

    @property
    def horizon(self) -> int:
        return int(self.targets.shape[0])

    @property
    def dof(self) -> int:
        return int(self.targets.shape[1])

    @property
    def times(self) -> np.ndarray:
        """(H,) time at which each target applies."""
        return self.stamp + self.dt * np.arange(self.horizon)

    @property
    def end_time(self) -> float:
        """Time of the last target: after it the chunk has nothing left to say."""
        return self.stamp + self.dt * (self.horizon - 1)

    def reordered(self, joint_names: tuple[str, ...] | list[str]) -> ActionChunk:
        """The same chunk with columns in ``joint_names`` order; unknown or missing names raise."""
        names = tuple(joint_names)
        if names == self.joint_names:
            return self
        missing = set(names) - set(self.joint_names)
        if missing or len(names) != len(self.joint_names):
            raise ValueError(
                f'chunk joints {list(self.joint_names)} do not match expected {list(names)}'
            )
        index = [self.joint_names.index(n) for n in names]
        return ActionChunk(
            stamp=self.stamp,
            dt=self.dt,
            joint_names=names,
            targets=self.targets[:, index],
            source=self.source,
            sequence=self.sequence,
        )

"""What goes in and out of the residual controller each tick: a joint-state sample, the command,
and the metrics it reports."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_core.control.reference import Reference, TrackerMetrics

__all__ = ['ControlCommand', 'ControllerMetrics', 'JointSample']


@dataclass(frozen=True)
class JointSample:
    """One joint-state measurement in ``joint_names`` order; ``stamp`` on the control clock."""

    stamp: float
    position: np.ndarray
    velocity: np.ndarray | None = None  # None: differentiated from consecutive positions
    effort: np.ndarray | None = None


@dataclass(frozen=True)
class ControlCommand:
    t: float
    mode: str  # output mode
    status: str  # 'track' | 'hold' (no chunk yet) | 'stop' (watchdog) | 'estop'
    classic: str  # 'pid' | 'mpc' | 'pid_fallback' | 'reference' | 'open_loop' | 'estop'
    position: np.ndarray  # position mode: the command; else the reference position
    velocity: np.ndarray  # velocity mode: the command; position mode: its rate
    effort: np.ndarray | None  # effort mode only
    reference: Reference
    u_classic: np.ndarray  # command units, for residual training logs
    u_residual: np.ndarray

    @property
    def values(self) -> np.ndarray:
        """The array to send to the configured command interface."""
        if self.mode == 'position':
            return self.position
        if self.mode == 'velocity':
            return self.velocity
        assert self.effort is not None
        return self.effort


@dataclass(frozen=True)
class ControllerMetrics:
    status: str
    classic: str
    residual_enabled: bool
    ticks: int
    tracker: TrackerMetrics  # accepted/refused chunks, seam jump and gap, RMS jerk
    watchdog_trips: int
    clock_stalled: bool  # the last tick ran on the wall clock: simulated time stopped
    state_age: float
    reference_age: float
    estop_latched: bool
    estop_reason: str
    mpc_solves: int
    mpc_failures: int  # ticks that fell back to PID
    mpc_last_iterations: int
    mpc_last_solve_time: float
    residual_errors: int
    residual_nonfinite: int
    rejected_states: int  # non-finite, wrong-sized or out-of-order joint states
    nonfinite_commands: int  # commands replaced because something upstream was NaN/Inf
    tracking_error_max: float  # [rad] max |q_ref - q| at the last tick

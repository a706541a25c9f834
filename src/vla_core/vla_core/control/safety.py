"""Safety: joint limits, staleness and clock watchdogs, latching e-stop, final command limiter.

Everything here is deliberately dumb and stateless-ish so it can be reasoned about: the limiter is
the last thing between the controllers and the actuators and it never lets NaN/Inf through.
"""

from __future__ import annotations

from dataclasses import dataclass
import threading

import numpy as np

from vla_core.config import Config, ConfigError, param
from vla_core.control._util import per_joint

__all__ = [
    'ClockTick',
    'ClockWatchdog',
    'CommandLimiter',
    'EStop',
    'SafetyConfig',
    'SafetyLimits',
    'Watchdog',
    'WatchdogStatus',
]


@dataclass(frozen=True, kw_only=True)
class SafetyConfig(Config):
    position_min: tuple[float, ...] = param(
        (-3.14,), description='lower joint position limit per joint [rad]', range=(-1e3, 1e3)
    )
    position_max: tuple[float, ...] = param(
        (3.14,), description='upper joint position limit per joint [rad]', range=(-1e3, 1e3)
    )
    velocity_max: tuple[float, ...] = param(
        (2.0,), description='joint speed limit per joint [rad/s]', range=(1e-6, 1e3)
    )
    acceleration_max: tuple[float, ...] = param(
        (10.0,), description='joint acceleration limit per joint [rad/s^2]', range=(1e-6, 1e5)
    )
    effort_max: tuple[float, ...] = param(
        (50.0,), description='joint effort limit per joint [Nm]', range=(1e-6, 1e5)
    )
    stop_deceleration: tuple[float, ...] = param(
        (5.0,), description='deceleration of a watchdog stop per joint [rad/s^2]', range=(1e-6, 1e5)
    )
    state_timeout: float = param(
        0.05, description='joint states older than this trigger a stop [s]', range=(1e-4, 60.0)
    )
    reference_timeout: float = param(
        0.5, description='no accepted chunk for this long triggers a stop [s]', range=(1e-4, 600.0)
    )
    auto_recover: bool = param(
        True, description='resume tracking once joint states and chunks are fresh again'
    )
    clock_timeout: float = param(
        1.0,
        description='simulated time (/clock, use_sim_time) not advancing for this long on the '
        'wall clock: controlled stop, the loop running on the wall clock until it advances [s]. '
        'A simulator starved on a loaded machine pauses for tenths of a second',
        range=(0.01, 60.0),
    )

    def validate(self) -> None:
        lo, hi = self.position_min, self.position_max
        if len(lo) == len(hi) and any(a >= b for a, b in zip(lo, hi, strict=True)):
            raise ConfigError('position_min', 'must be below position_max')


@dataclass(frozen=True)
class SafetyLimits:
    q_min: np.ndarray
    q_max: np.ndarray
    v_max: np.ndarray
    a_max: np.ndarray
    effort_max: np.ndarray
    stop_decel: np.ndarray

    @classmethod
    def from_config(cls, cfg: SafetyConfig, dof: int) -> SafetyLimits:
        lim = cls(
            q_min=per_joint(cfg.position_min, dof, 'position_min'),
            q_max=per_joint(cfg.position_max, dof, 'position_max'),
            v_max=per_joint(cfg.velocity_max, dof, 'velocity_max'),
            a_max=per_joint(cfg.acceleration_max, dof, 'acceleration_max'),
            effort_max=per_joint(cfg.effort_max, dof, 'effort_max'),
            stop_decel=per_joint(cfg.stop_deceleration, dof, 'stop_deceleration'),
        )
        if np.any(lim.q_min >= lim.q_max):
            raise ConfigError('position_min', 'must be below position_max for every joint')
        return lim


@dataclass(frozen=True)
class WatchdogStatus:
    state_stale: bool
    reference_stale: bool
    state_age: float  # [s] inf when never received
    reference_age: float  # [s] nan when no chunk is expected (holding after start or reset)
    clock_stalled: bool = False  # the control clock (simulated time) stopped advancing

    @property
    def stale(self) -> bool:
        return self.state_stale or self.reference_stale or self.clock_stalled

    @property
    def blind(self) -> bool:
        """No joint state to close the loop on: stale, or the clock that stamps them stopped
        (the last one would look fresh for state_timeout, but nothing measures any more)."""
        return self.state_stale or self.clock_stalled


class Watchdog:
    """Staleness of the joint states and the reference, from explicit times."""

    def __init__(self, state_timeout: float, reference_timeout: float) -> None:
        self.state_timeout = state_timeout
        self.reference_timeout = reference_timeout
        self.trips = 0
        self._tripped = False

    def check(
        self,
        t: float,
        state_time: float | None,
        reference_time: float | None,
        clock_stalled: bool = False,
    ) -> WatchdogStatus:
        """``state_time``: stamp of the newest valid joint state; ``reference_time``: receipt of
        the newest accepted chunk (None: no chunk expected, so the reference cannot go stale);
        ``clock_stalled``: :class:`ClockWatchdog` says the control clock stopped."""
        state_age = np.inf if state_time is None else t - state_time
        ref_age = np.nan if reference_time is None else t - reference_time
        status = WatchdogStatus(
            state_stale=bool(state_age > self.state_timeout),
            reference_stale=bool(reference_time is not None and ref_age > self.reference_timeout),
            state_age=float(state_age),
            reference_age=float(ref_age),
            clock_stalled=clock_stalled,
        )
        if status.stale and not self._tripped:
            self.trips += 1
        self._tripped = status.stale
        return status


@dataclass(frozen=True)
class ClockTick:
    t: float  # [s] control time of the tick
    dt: float  # [s] since the previous tick
    stalled: float  # [s] of wall time the control clock has not advanced (0: it advances)
    restarted: bool  # the control clock started over: a new time line, older stamps mean nothing


class ClockWatchdog:
    """Ticks of a control loop on simulated time (/clock), watched on the wall clock.

    While simulated time advances, a tick takes it; while it pauses, ticks are skipped so nothing
    integrates. Paused for longer than ``timeout`` (the simulator died), the loop ticks on the
    wall clock from the last simulated time, flagged ``stalled``, so the controller can stop the
    arm and say why instead of going silent. When simulated time advances again after a stall,
    or goes back (a restarted simulator), the tick is flagged ``restarted``. The watch starts
    once time has advanced on its time line: a starting simulator may pause after its first
    /clock.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._sim: float | None = None  # newest simulated time seen
        self._sim_wall = 0.0  # wall time when it was seen
        self._last_t: float | None = None  # control time of the last tick
        self._stalled = False
        self._armed = False  # time has advanced on this time line (a starting simulator pauses)

    def tick(self, sim_now: float, wall_now: float, dt_wall: float) -> ClockTick | None:
        """``sim_now``: simulated time (0: none yet); ``wall_now``: a monotonic wall clock;
        ``dt_wall``: the loop's period. None: skip this tick."""
        sim, last = self._sim, self._last_t
        if sim_now > 0.0 and (sim is None or sim_now != sim):
            restarted = self._stalled or (sim is not None and sim_now < sim)
            dt = sim_now - last if last is not None and not restarted else dt_wall
            self._armed = sim is not None and not restarted
            self._sim, self._sim_wall, self._last_t = sim_now, wall_now, sim_now
            self._stalled = False
            return ClockTick(sim_now, dt, 0.0, restarted)
        stalled = wall_now - self._sim_wall
        if not self._armed or last is None or sim is None or stalled <= self.timeout:
            return None
        t = sim + stalled
        dt = t - last if self._stalled else dt_wall  # nothing was commanded while it waited
        self._last_t, self._stalled = t, True
        return ClockTick(t, dt, stalled, False)


class EStop:
    """Latching emergency stop: once triggered it stays until :meth:`reset` is called."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latched = False
        self.reason = ''
        self.count = 0

    def trigger(self, reason: str = 'e-stop') -> None:
        with self._lock:
            if not self._latched:
                self.count += 1
                self.reason = reason
            self._latched = True

    def reset(self) -> bool:
        """Unlatch; True if it was latched."""
        with self._lock:
            was = self._latched
            self._latched = False
            self.reason = ''
            return was

    @property
    def latched(self) -> bool:
        return self._latched


class CommandLimiter:
    """Turns a command-unit request into the final, limited actuator command.

    Position and velocity modes take a *velocity* request: it is clipped to the speed limit, to
    the speed from which the joint can still brake before its position limit, and rate-limited
    by the acceleration limit; position mode integrates it into the commanded position, so the
    position command obeys all four limits. Effort mode clips to the effort limit and refuses
    to push further past a speed or position limit (gravity compensation is kept).
    """

    def __init__(self, limits: SafetyLimits, mode: str) -> None:
        if mode not in ('position', 'velocity', 'effort'):
            raise ValueError(f'unknown output mode {mode!r}')
        self.limits = limits
        self.mode = mode
        dof = limits.q_min.size
        self.q_cmd = np.zeros(dof)
        self.v_cmd = np.zeros(dof)
        self.effort_cmd = np.zeros(dof)

    def sync(self, q: np.ndarray, v: np.ndarray | None = None) -> None:
        """Restart the command state from the measurement."""
        self.q_cmd = np.clip(np.array(q, dtype=np.float64), self.limits.q_min, self.limits.q_max)
        self.v_cmd = np.zeros_like(self.q_cmd) if v is None else np.array(v, dtype=np.float64)
        self.effort_cmd = np.zeros_like(self.q_cmd)

    def velocity(
        self, request: np.ndarray, dt: float, q: np.ndarray, *, rate_limit: bool = True
    ) -> np.ndarray:
        lim = self.limits
        v = np.minimum(np.maximum(request, -lim.v_max), lim.v_max)  # (np.clip is slow)
        if rate_limit:
            dv = lim.a_max * dt
            v = np.minimum(np.maximum(v, self.v_cmd - dv), self.v_cmd + dv)
        # Braking distance to the position limits wins over the acceleration limit. Discrete-time
        # profile: the largest v from which v, v - a dt, ... (one step each) stays within reach.
        v_up = self._brake_speed(np.maximum(lim.q_max - q, 0.0), dt)
        v_dn = self._brake_speed(np.maximum(q - lim.q_min, 0.0), dt)
        v = np.minimum(np.maximum(v, -v_dn), v_up)
        if self.mode == 'position':
            q_new = np.minimum(np.maximum(self.q_cmd + v * dt, lim.q_min), lim.q_max)
            v = (q_new - self.q_cmd) / dt
            self.q_cmd = q_new
        self.v_cmd = v
        return v

    def _brake_speed(self, distance: np.ndarray, dt: float) -> np.ndarray:
        adt = self.limits.a_max * dt
        return adt * (np.sqrt(0.25 + 2.0 * distance / (adt * dt)) - 0.5)

    def follow(self, position: np.ndarray, velocity: np.ndarray, dt: float) -> np.ndarray:
        """The velocity request that moves the position command onto a reference moving at
        ``velocity``: the reference's speed plus the closing speed for the gap, which is at
        most what the acceleration limit can still brake before the gap closes. A plain gap / dt
        request would be rate-limited into overshoot and a limit cycle around every step of the
        reference (expert through the controller: 7.9 s per episode against 3.8 s directly)."""
        gap = position - self.q_cmd - velocity * dt  # what following at its speed leaves
        closing = np.minimum(np.abs(gap) / dt, self._brake_speed(np.abs(gap), dt))
        return velocity + np.sign(gap) * closing

    def hold_position(self, position: np.ndarray) -> None:
        """E-stop in position mode: command ``position`` now, without rate limits."""
        self.q_cmd = np.clip(
            np.array(position, dtype=np.float64), self.limits.q_min, self.limits.q_max
        )
        self.v_cmd = np.zeros_like(self.q_cmd)

    def effort(
        self, request: np.ndarray, q: np.ndarray, qd: np.ndarray, bias: np.ndarray | float = 0.0
    ) -> np.ndarray:
        lim = self.limits
        tau = np.clip(request, -lim.effort_max, lim.effort_max)
        push = tau - bias  # the part beyond gravity compensation
        over = ((qd > lim.v_max) | (q > lim.q_max)) & (push > 0.0)
        under = ((qd < -lim.v_max) | (q < lim.q_min)) & (push < 0.0)
        tau = np.where(over | under, np.clip(bias, -lim.effort_max, lim.effort_max), tau)
        self.effort_cmd = tau
        return tau

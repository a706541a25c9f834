"""The residual tracking controller: chunks in, safe joint commands out, one ``update`` per tick.

A ROS node only has to convert messages and call, from its control thread::

    cmd = controller.update(t, dt, JointSample(stamp, position, velocity))
    if cmd is not None:
        publish(cmd.values)            # position, velocity or effort, per config.output_mode

and, from its callbacks, ``push_chunk(chunk, now)``, ``estop(reason)``, ``reset()``,
``set_residual_enabled(flag)``, ``set_classic('pid' | 'mpc')`` and ``metrics()``.
All times are seconds on one clock (the node's clock); nothing here reads a clock.

Per tick: newest valid joint state -> watchdog / e-stop -> reference from the chunk tracker ->
classical command (PID, or MPC with PID fallback) -> + bounded residual -> command limiter.
Commands are in command units: a velocity request in position and velocity modes (position mode
integrates it into the commanded position), an effort in effort mode. Position mode's default
``position_command: reference`` requests whatever keeps the command on the reference (the chunk's
targets are the servo's setpoints, as when the demonstrations were recorded), so the PID/MPC
serves velocity and effort modes, as ros2_control's trajectory controller does on a position
interface; ``integrate`` closes the PID on the measured position instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import math
import threading

import numpy as np

from vla_core.chunk import ActionChunk
from vla_core.config import Config, ConfigError, param
from vla_core.control.command import ControlCommand, ControllerMetrics, JointSample
from vla_core.control.mpc import JointMpc, MpcConfig
from vla_core.control.pid import JointPid, PidConfig
from vla_core.control.reference import ChunkTracker, Reference, TrackerConfig
from vla_core.control.residual import ResidualConfig, ResidualFn, ResidualLayer
from vla_core.control.safety import (
    CommandLimiter,
    EStop,
    SafetyConfig,
    SafetyLimits,
    Watchdog,
    WatchdogStatus,
)

__all__ = [
    'ControlCommand',
    'ControllerConfig',
    'ControllerMetrics',
    'GravityFn',
    'JointSample',
    'ResidualController',
]

GravityFn = Callable[[np.ndarray], np.ndarray]  # q (DoF,) -> gravity torque (DoF,) [Nm]

OUTPUT_MODES = ('position', 'velocity', 'effort')


@dataclass(frozen=True, kw_only=True)
class ControllerConfig(Config):
    joint_names: tuple[str, ...] = param(
        description='controlled joints, in command order', read_only=True
    )
    output_mode: str = param(
        'position',
        description='command interface: position, velocity or effort',
        choices=OUTPUT_MODES,
        read_only=True,
    )
    classic: str = param('pid', description='classical layer', choices=('pid', 'mpc'))
    position_command: str = param(
        'reference',
        description='position mode: reference (the command is the tracked reference itself, '
        "limited: chunk targets are servo setpoints, as the policy's demonstrations were "
        'executed) or integrate (the classical velocity request integrated into the command)',
        choices=('reference', 'integrate'),
        read_only=True,
    )
    gravity_compensation: bool = param(
        True, description='effort mode: add the model gravity torque when a model is given'
    )
    # Nested configs become dotted parameters (tracker.blend_time, pid.kp, ...).
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    pid: PidConfig = field(default_factory=PidConfig)
    mpc: MpcConfig = field(default_factory=MpcConfig)
    residual: ResidualConfig = field(default_factory=ResidualConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)

    def validate(self) -> None:
        names = self.joint_names
        if not names or len(set(names)) != len(names) or not all(names):
            raise ConfigError('joint_names', 'must be non-empty and unique')
        dof = len(names)
        for prefix, sub in (
            ('pid', self.pid),
            ('mpc', self.mpc),
            ('residual', self.residual),
            ('safety', self.safety),
        ):
            for key, value in sub.__dict__.items():
                if isinstance(value, tuple) and len(value) not in (1, dof):
                    raise ConfigError(f'{prefix}.{key}', f'needs 1 or {dof} values')
        SafetyLimits.from_config(self.safety, dof)


class ResidualController:
    """Chunk tracking + PID/MPC + learned residual + safety, as one object per arm."""

    def __init__(
        self,
        config: ControllerConfig,
        *,
        residual: ResidualFn | None = None,
        gravity: GravityFn | None = None,
    ) -> None:
        self.config = config
        self.joint_names = config.joint_names
        self.dof = dof = len(config.joint_names)
        self.mode = config.output_mode
        self.limits = SafetyLimits.from_config(config.safety, dof)
        self.tracker = ChunkTracker(
            config.tracker, config.joint_names, (self.limits.q_min, self.limits.q_max)
        )
        self.pid = JointPid(config.pid, dof)
        self._inertia = np.broadcast_to(np.asarray(config.mpc.inertia, float), (dof,)).copy()
        self.mpc: JointMpc | None = self._make_mpc() if config.classic == 'mpc' else None
        self._classic = config.classic
        self.residual = ResidualLayer(config.residual, dof, residual)
        self.gravity = gravity if config.gravity_compensation else None
        self.watchdog = Watchdog(config.safety.state_timeout, config.safety.reference_timeout)
        self.estop_latch = EStop()
        self.limiter = CommandLimiter(self.limits, self.mode)
        self._lock = threading.Lock()
        self._q: np.ndarray | None = None
        self._qd = np.zeros(dof)
        self._state_time: float | None = None
        self._started = False
        self._reset_requested = False
        self._stop_latched = False  # a watchdog stop kept through restart_time
        self._status = 'hold'
        self._in_estop = False
        self._ticks = 0
        self._rejected_states = 0
        self._nonfinite_commands = 0
        self._dt = 1e-3
        self._wd = WatchdogStatus(True, False, math.inf, math.nan)
        self._tracking_error = 0.0

    # --- called from other threads (ROS callbacks) ---

    def push_chunk(self, chunk: ActionChunk, t: float) -> bool:
        """Offer a chunk received at time ``t``; False if refused (expired, out of order, bad
        joints). It is spliced in at the next ``update``."""
        return self.tracker.push(chunk, t)

    def estop(self, reason: str = 'e-stop') -> None:
        """Latch the e-stop: position and velocity modes decelerate from the commanded state at
        the stop deceleration and hold at rest, effort mode damps against gravity, until
        :meth:`reset`."""
        self.estop_latch.trigger(reason)

    def reset(self) -> bool:
        """Unlatch the e-stop and a latched watchdog stop; tracking restarts from the current
        position and waits for fresh chunks. True if something was latched."""
        was = self.estop_latch.reset() or self._status == 'stop'
        self._reset_requested = True
        self._stop_latched = False
        return was

    def restart_time(self) -> None:
        """The control clock started over (a restarted simulator, simulated time back after a
        stall): forget every stamp of the old time line and restart, as at start-up, from the
        next joint state, waiting for fresh chunks. An e-stop stays latched, and so does a
        watchdog stop without ``auto_recover``."""
        self._stop_latched = self._status == 'stop' and not self.config.safety.auto_recover
        self._q = None
        self._state_time = None
        self._reset_requested = True

    def set_residual_enabled(self, enabled: bool) -> None:
        self.residual.enabled = bool(enabled)

    def set_classic(self, kind: str) -> None:
        """Switch between 'pid' and 'mpc' at runtime (the MPC is built here, not in the loop)."""
        if kind not in ('pid', 'mpc'):
            raise ValueError(f"classic must be 'pid' or 'mpc', got {kind!r}")
        if kind == 'mpc' and self.mpc is None:
            self.mpc = self._make_mpc()
        self._classic = kind

    def metrics(self) -> ControllerMetrics:
        mpc = self.mpc
        last = mpc.last if mpc is not None else None
        return ControllerMetrics(
            status=self._status,
            classic=self._classic,
            residual_enabled=self.residual.active,
            ticks=self._ticks,
            tracker=self.tracker.metrics,
            watchdog_trips=self.watchdog.trips,
            clock_stalled=self._wd.clock_stalled,
            state_age=self._wd.state_age,
            reference_age=self._wd.reference_age,
            estop_latched=self.estop_latch.latched,
            estop_reason=self.estop_latch.reason,
            mpc_solves=mpc.solves if mpc is not None else 0,
            mpc_failures=mpc.failures if mpc is not None else 0,
            mpc_last_iterations=last.iterations if last is not None else 0,
            mpc_last_solve_time=last.solve_time if last is not None else 0.0,
            residual_errors=self.residual.errors,
            residual_nonfinite=self.residual.nonfinite,
            rejected_states=self._rejected_states,
            nonfinite_commands=self._nonfinite_commands,
            tracking_error_max=self._tracking_error,
        )

    # --- control thread ---

    def update(
        self, t: float, dt: float, state: JointSample | None, *, clock_stalled: bool = False
    ) -> ControlCommand | None:
        """One control tick at time ``t`` covering ``dt`` seconds. ``state`` is the newest joint
        state (pass the same one again if nothing new came: its stamp decides staleness);
        ``clock_stalled``: the tick runs on the wall clock because simulated time stopped
        (:class:`~vla_core.control.safety.ClockWatchdog`), a watchdog stop like stale states.
        Returns None only until the first valid joint state has arrived."""
        self._ticks += 1
        if math.isfinite(dt) and dt > 0.0:
            self._dt = min(dt, 1.0)
        dt = self._dt
        if state is not None:
            self._accept_state(state)
        if self._q is None:
            return None
        q, qd = self._q, self._qd
        if not self._started or self._reset_requested:
            self._restart(t, q)
        wd = self._wd = self.watchdog.check(
            t, self._state_time, self.tracker.last_receipt, clock_stalled
        )
        if self.estop_latch.latched:
            return self._estop_command(t, dt, q, qd, wd)
        self._in_estop = False
        if wd.stale:
            if self._status != 'stop':
                self._enter_stop(t, q, qd)
        elif self._status == 'stop' and self.config.safety.auto_recover:
            self.tracker.resume(t)
            self._status = 'hold'
        ref = self.tracker.update(t)
        if self._status != 'stop':
            self._status = 'hold' if math.isnan(ref.chunk_stamp) else 'track'
        self._tracking_error = float(np.max(np.abs(ref.position - q)))
        gravity = self._gravity(q)
        zero = np.zeros(self.dof)
        if self._status == 'stop' and wd.blind:
            # No feedback: follow the stop trajectory open loop (effort: hold against gravity).
            kind = 'open_loop'
            u_classic = ref.velocity if self.mode != 'effort' else gravity
            u_res = zero
        else:
            u_classic, kind = self._classic_command(t, dt, q, qd, ref, gravity)
            u_res = (
                zero
                if self._status == 'stop'
                else self.residual(q, qd, ref.position, ref.velocity, ref.acceleration)
            )
        u = u_classic + u_res
        if not np.all(np.isfinite(u)):
            self._nonfinite_commands += 1
            u = gravity if self.mode == 'effort' else zero
        return self._finish(t, dt, q, qd, u, gravity, ref, kind, u_classic, u_res)

    # --- internals ---

    def _make_mpc(self) -> JointMpc:
        lim = self.limits
        return JointMpc(self.config.mpc, lim.q_min, lim.q_max, lim.v_max, lim.a_max)

    def _accept_state(self, s: JointSample) -> None:
        q = np.asarray(s.position, dtype=np.float64).reshape(-1)
        ok = q.shape == (self.dof,) and bool(np.all(np.isfinite(q))) and math.isfinite(s.stamp)
        if ok and self._state_time is not None and s.stamp <= self._state_time:
            if s.stamp < self._state_time:
                self._rejected_states += 1
            return  # nothing new
        qd: np.ndarray | None = None
        if ok and s.velocity is not None:
            qd = np.asarray(s.velocity, dtype=np.float64).reshape(-1)
            ok = qd.shape == (self.dof,) and bool(np.all(np.isfinite(qd)))
        if not ok:
            self._rejected_states += 1  # never reaches the controllers; the watchdog will see it
            return
        if qd is None:
            if self._q is not None and self._state_time is not None:
                qd = (q - self._q) / (s.stamp - self._state_time)
            else:
                qd = np.zeros(self.dof)
        self._q, self._qd, self._state_time = q, qd, float(s.stamp)

    def _restart(self, t: float, q: np.ndarray) -> None:
        self.tracker.reset_hold(q, t, forget=self._started)  # a reset forgets old chunks
        self.limiter.sync(q, None)
        self.pid.reset()
        self._started = True
        self._reset_requested = False
        self._status = 'hold'
        self._in_estop = False
        if self._stop_latched:  # kept through a clock restart: held until reset()
            self.tracker.hold(q)
            self._status = 'stop'

    def _gravity(self, q: np.ndarray) -> np.ndarray:
        if self.gravity is None or self.mode != 'effort':
            return np.zeros(self.dof)
        try:
            g = np.asarray(self.gravity(q), dtype=np.float64).reshape(-1)
        except Exception:
            g = np.full(self.dof, np.nan)
        if g.shape != (self.dof,) or not np.all(np.isfinite(g)):
            self._nonfinite_commands += 1
            return np.zeros(self.dof)
        return g

    def _enter_stop(self, t: float, q: np.ndarray, qd: np.ndarray) -> None:
        if self.mode == 'effort':
            self.tracker.stop(t, q, qd, self.limits.stop_decel)
        else:
            self._stop_commanded(t)
        self._status = 'stop'

    def _classic_command(
        self,
        t: float,
        dt: float,
        q: np.ndarray,
        qd: np.ndarray,
        ref: Reference,
        gravity: np.ndarray,
    ) -> tuple[np.ndarray, str]:
        if self.mode == 'position' and self.config.position_command == 'reference':
            # The speed that puts the command on the reference this tick; the limiter bounds it.
            return self.limiter.follow(ref.position, ref.velocity, dt), 'reference'
        if self.mode == 'effort':
            u_lo, u_hi = -self.limits.effort_max, self.limits.effort_max
        else:
            u_lo, u_hi = -self.limits.v_max, self.limits.v_max
        kind = 'pid'
        u_mpc = None
        mpc = self.mpc
        if self._classic == 'mpc' and mpc is not None:
            p_ref, v_ref, _ = self.tracker.preview(t + mpc.times)
            res = mpc.solve(q, qd, p_ref, v_ref)
            if res.ok:
                a0 = res.acceleration[0]
                u_mpc = self._inertia * a0 + gravity if self.mode == 'effort' else qd + a0 * dt
                kind = 'mpc'
            else:
                kind = 'pid_fallback'
        # PID runs every tick to keep its derivative filter warm; it integrates only when used.
        u_pid = self.pid.update(
            dt,
            q,
            qd,
            ref.position,
            ref.velocity,
            ref.acceleration,
            u_lo,
            u_hi,
            bias=gravity,
            integrate=u_mpc is None,
        )
        return (u_pid if u_mpc is None else u_mpc), kind

    def _estop_command(
        self, t: float, dt: float, q: np.ndarray, qd: np.ndarray, wd: WatchdogStatus
    ) -> ControlCommand:
        zero = np.zeros(self.dof)
        if not self._in_estop:  # latch instant: stop from what is being commanded
            self._in_estop = True
            if self.mode == 'effort':
                self.tracker.hold(q if not wd.blind else self.limiter.q_cmd)
            else:
                self._stop_commanded(t)
            self.pid.reset()
        self._status = 'estop'
        ref = self.tracker.update(t)
        gravity = self._gravity(q)
        effort = None
        position, velocity = ref.position, ref.velocity
        if self.mode == 'effort':
            damping = zero if wd.blind else -self.pid.kd * qd
            effort = self.limiter.effort(gravity + damping, q, qd, gravity)
            velocity = zero
        else:  # open loop along the stop: it must not depend on feedback
            self.limiter.hold_position(ref.position)
            self.limiter.v_cmd = ref.velocity.copy()
            if self.mode == 'position':
                position = self.limiter.q_cmd
        return ControlCommand(
            t=t,
            mode=self.mode,
            status='estop',
            classic='estop',
            position=position.copy(),
            velocity=velocity.copy(),
            effort=effort,
            reference=ref,
            u_classic=zero,
            u_residual=zero,
        )

    def _stop_commanded(self, t: float) -> None:
        """Decelerate at the stop deceleration from the commanded state (position mode: the
        commanded position and its rate; velocity mode: the commanded speed from the measured
        position), never with a step back to where the trailing joints are measured. The stop
        starts when that state was commanded, the previous tick, so this tick already slows."""
        p0 = self.limiter.q_cmd if self.mode == 'position' or self._q is None else self._q
        self.tracker.stop(t - self._dt, p0, self.limiter.v_cmd, self.limits.stop_decel)

    def safe_stop(self, t: float) -> ControlCommand | None:
        """The last command before the controller goes away (shutdown): at rest, latched as an
        e-stop. Position mode commands the point where a stop from the commanded state ends
        (ahead of the command while moving, never behind it), velocity mode zero, effort mode
        the gravity torque. None before the first joint state."""
        if self._q is None:
            return None
        self.estop('shutdown')
        self._in_estop = True
        zero = np.zeros(self.dof)
        gravity = self._gravity(self._q)
        if self.mode == 'effort':
            self.tracker.hold(self._q)
        else:
            self._stop_commanded(t)
        t_rest = t + float(np.max(np.abs(self.limiter.v_cmd) / self.limits.stop_decel))
        # (the stop started a tick earlier: t_rest is at or past its end, where it holds)
        p, _, _ = (x[0] for x in self.tracker.preview(np.array([t_rest])))
        self.limiter.hold_position(p)
        self.tracker.hold(self.limiter.q_cmd)
        self._status = 'estop'
        ref = self.tracker.update(t)
        return ControlCommand(
            t=t,
            mode=self.mode,
            status='estop',
            classic='estop',
            position=self.limiter.q_cmd.copy() if self.mode == 'position' else ref.position,
            velocity=zero,
            effort=self.limiter.effort(gravity, self._q, zero, gravity)
            if self.mode == 'effort'
            else None,
            reference=ref,
            u_classic=zero,
            u_residual=zero,
        )

    def _finish(
        self,
        t: float,
        dt: float,
        q: np.ndarray,
        qd: np.ndarray,
        u: np.ndarray,
        gravity: np.ndarray,
        ref: Reference,
        kind: str,
        u_classic: np.ndarray,
        u_res: np.ndarray,
    ) -> ControlCommand:
        effort = None
        if self.mode == 'effort':
            effort = self.limiter.effort(u, q, qd, gravity)
            velocity = qd.copy()
            position = ref.position
        else:
            q_lim = self.limiter.q_cmd if self.mode == 'position' else q
            velocity = self.limiter.velocity(u, dt, q_lim).copy()
            position = self.limiter.q_cmd.copy() if self.mode == 'position' else ref.position
        out = effort if effort is not None else (position if self.mode == 'position' else velocity)
        if not np.all(np.isfinite(out)):  # belt and braces: never reaches the actuators
            self._nonfinite_commands += 1
            self.limiter.sync(q)  # restart the command state from the measurement
            position = q.copy() if self.mode == 'position' else ref.position
            velocity = np.zeros(self.dof)
            effort = gravity.copy() if self.mode == 'effort' else None
        return ControlCommand(
            t=t,
            mode=self.mode,
            status=self._status,
            classic=kind,
            position=np.asarray(position).copy(),
            velocity=velocity,
            effort=effort,
            reference=ref,
            u_classic=np.asarray(u_classic, dtype=np.float64).copy(),
            u_residual=u_res,
        )

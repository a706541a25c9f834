"""Residual PID/MPC tracking controller node (issue 5): a thin ROS wrapper of
:class:`vla_core.control.ResidualController`, run by a :class:`~vla_core.control.DeadlineLoop`.

    ros2 run vla_control controller_node --ros-args --params-file config/controller.yaml

Topics (relative names, so namespaces and remaps apply):

* in ``joint_states`` (sensor_msgs/JointState): mapped by name onto ``joint_names``; a message with
  unknown (unless ``ignore_unknown_joints``) or missing names is rejected and counted, NaN/Inf
  samples are rejected by the core (the watchdog then stops the arm)
* in ``control/reference`` (vla_interfaces/ActionChunk): chunks to track; malformed, expired,
  out-of-order and wrong-joint chunks, and chunks beyond the tracker's limits (stamp too far
  ahead, horizon too long, a target beyond the position limits), are refused and counted
* in ``estop`` (std_msgs/Bool, best-effort: reliable and best-effort publishers both match): true
  latches the e-stop; false only allows a reset
* out ``joint_commands`` (``output.topic``): every tick, sensor_msgs/JointState with names in
  ``joint_names`` order, the ``output_mode`` field (position, velocity or effort) filled, stamped
  with the control time; or, for ros2_control, a Float64MultiArray (forward_command_controller)
  or a JointTrajectory of the reference ahead (joint_trajectory_controller): ``output.message``,
  see :mod:`vla_control.command_output`
* out ``control/state`` (trajectory_msgs/JointTrajectory): the reference being tracked, one point
  with positions, velocities and accelerations, every ``state_decimation`` ticks. A standard
  message that carries the whole p/v/a triple with names and a stamp (sensor_msgs/JointState has
  no accelerations); control_msgs/JointTrajectoryControllerState would add feedback and error but
  control_msgs is not part of our environment.
* out ``/diagnostics``: tracking status, watchdog, e-stop, seam metrics (largest joint jump at a
  splice, RMS jerk), refusal counters and loop timing every ``diagnostics_period``, and at once,
  stamped with the control time of that tick, whenever the status (track, hold, stop, estop)
  changes.

Services: ``control/estop`` and ``control/reset`` (std_srvs/Trigger; a reset is refused while the
``estop`` topic still asserts true; it also restarts tracking from the current position, waiting
for a fresh chunk), ``control/enable_residual`` (std_srvs/SetBool: sets the ``residual.enabled``
parameter, so both always agree; enabling is refused when no model is loaded).

Parameters: those of ``ControllerConfig`` (``joint_names``, ``output_mode``, ``classic``,
``tracker.*``, ``pid.*``, ``mpc.*``, ``residual.*``, ``safety.*``), ``loop.*`` (``LoopConfig``) and
``ControllerNodeConfig`` below, ``output.*`` (``OutputConfig``). Only ``classic``,
``residual.enabled`` and ``state_decimation`` change at run time; changing another one is refused
with a reason, so the parameter values always describe the running controller.

Threads: the control loop runs on its own thread with absolute deadlines; callbacks only convert
messages and hand them to the core (a slot swap under a lock, the tracker's own lock), so they never
block it. The e-stop subscription and services have their own callback group so nothing queues
ahead of them. ``destroy_node`` stops the loop and publishes one command at rest (the core's
``safe_stop``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math
import threading
import time

from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration as RclpyDuration
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_control.command_output import CommandOutput, OutputConfig
from vla_core.chunk import ActionChunk
from vla_core.config import Config, iter_params, param
from vla_core.control import (
    ClockTick,
    ClockWatchdog,
    ControlCommand,
    ControllerConfig,
    ControllerMetrics,
    DeadlineLoop,
    JointSample,
    LoopConfig,
    ResidualController,
    TrackerMetrics,
)
from vla_interfaces.msg import ActionChunk as ActionChunkMsg
from vla_ros_common import diagnostics, qos
from vla_ros_common.conversions import chunk_from_msg, seconds_to_stamp, stamp_to_seconds
from vla_ros_common.jsonl import JsonLinesLog
from vla_ros_common.node_main import run_node
from vla_ros_common.params import ParameterError, declare_config

__all__ = [
    'ControlLoopConfig',
    'ControllerNode',
    'ControllerNodeConfig',
    'JointStateMapper',
    'LoopClock',
    'main',
]

# Parameters applied while running; every other one of ours is refused at run time.
_LIVE_PARAMS = frozenset({'classic', 'residual.enabled', 'state_decimation'})
_NO_MODEL = 'no residual model loaded (set residual.model_path and restart)'
# [s] of wall time a running controller may go without publishing a command before it is an error.
_COMMAND_GAP = 1.0
# [s] a shutdown waits for the subscribers to acknowledge the safe stop.
_SAFE_STOP_ACK_S = 1.0


@dataclass(frozen=True, kw_only=True)
class ControlLoopConfig(LoopConfig):
    # A window of a few seconds: the statistics are recomputed for every diagnostics report.
    history: int = param(
        2000, description='ticks kept for the loop statistics in /diagnostics', range=(16, 1000000)
    )


@dataclass(frozen=True, kw_only=True)
class ControllerNodeConfig(Config):
    ignore_unknown_joints: bool = param(
        False,
        description='joint_states: ignore joints not in joint_names (false: reject the message)',
        read_only=True,
    )
    state_stamp: str = param(
        'header',
        description='time of a joint state: header (its stamp, capped at the receipt time; a zero '
        'stamp counts as unstamped) or receipt (for drivers whose clock is not synchronised)',
        choices=('header', 'receipt'),
        read_only=True,
    )
    publish_state: bool = param(
        True, description='publish the tracked reference on control/state', read_only=True
    )
    state_decimation: int = param(
        5, description='publish control/state every N control ticks', range=(1, 100000)
    )
    diagnostics_period: float = param(
        1.0, description='period of the /diagnostics report [s]', range=(0.05, 60.0), read_only=True
    )
    tick_source: str = param(
        'timer',
        description='timer: the control loop at loop.rate_hz; joint_states: one tick per joint '
        "state, at its stamp (lockstep evaluation: the simulator waits for each tick's command)",
        choices=('timer', 'joint_states'),
        read_only=True,
    )
    chunk_delay: float = param(
        0.0,
        description='a chunk takes effect no earlier than this long after its stamp (an inference '
        'latency injected in control time, for evaluations) [s]',
        range=(0.0, 10.0),
        read_only=True,
    )
    timing_log: str = param(
        '', description='append the age of every chunk when it is spliced in (JSON lines)',
        read_only=True,
    )  # fmt: skip


class JointStateMapper:
    """JointState arrays -> arrays in ``joint_names`` order; ValueError saying what is wrong."""

    def __init__(self, joint_names: Sequence[str], ignore_unknown: bool = False) -> None:
        self.joint_names = tuple(joint_names)
        self.ignore_unknown = ignore_unknown
        self._cache: tuple[tuple[str, ...], np.ndarray] | None = None

    def index(self, names: Sequence[str]) -> np.ndarray:
        """Positions of ``joint_names`` in ``names``; drivers send the same names every time."""
        names = tuple(names)
        cache = self._cache
        if cache is not None and cache[0] == names:
            return cache[1]
        if len(set(names)) != len(names):
            raise ValueError(f'duplicate joint names {list(names)}')
        where = {n: i for i, n in enumerate(names)}
        missing = [n for n in self.joint_names if n not in where]
        unknown = [n for n in names if n not in self.joint_names]
        if missing:
            raise ValueError(f'missing joints {missing} (got {list(names)})')
        if unknown and not self.ignore_unknown:
            raise ValueError(f'unknown joints {unknown}; controlled: {list(self.joint_names)}')
        index = np.array([where[n] for n in self.joint_names], dtype=np.intp)
        self._cache = (names, index)
        return index

    def map(
        self,
        names: Sequence[str],
        position: Sequence[float],
        velocity: Sequence[float] = (),
        effort: Sequence[float] = (),
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(position, velocity or None, effort or None); empty velocity/effort means not sent."""
        index = self.index(names)
        n = len(names)
        out: list[np.ndarray | None] = []
        for field, values in (('position', position), ('velocity', velocity), ('effort', effort)):
            if len(values) == 0 and field != 'position':
                out.append(None)
                continue
            if len(values) != n:
                raise ValueError(f'{field} has {len(values)} values for {n} names')
            out.append(np.asarray(values, dtype=np.float64)[index])
        q, qd, eff = out
        assert q is not None
        return q, qd, eff


class LoopClock:
    """Control time on the node's clock, which chunk and joint-state stamps use.

    The loop sleeps on CLOCK_MONOTONIC; a tick's time is its monotonic deadline shifted onto the
    node's clock (both read together, so scheduling jitter does not enter ``t``). Under simulated
    time (/clock) the tick takes the simulated time and is skipped while it has not advanced, so a
    paused simulation does not integrate commands; stalled longer than ``stall_timeout`` on the
    wall clock, ticks run on from the last simulated time, flagged (:class:`ClockWatchdog`).
    """

    def __init__(self, clock: Clock, stall_timeout: float) -> None:
        self._clock = clock
        self._sim = ClockWatchdog(stall_timeout)

    def tick(self, deadline: float, dt: float) -> ClockTick | None:
        now = self._clock.now().nanoseconds * 1e-9
        if getattr(self._clock, 'ros_time_is_active', False):
            return self._sim.tick(now, time.monotonic(), dt)
        return ClockTick(deadline + (now - time.monotonic()), dt, 0.0, False)


class ControllerNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('controller', **kwargs)
        self._cfg = declare_config(self, ControllerConfig)
        self._loop_cfg = declare_config(self, ControlLoopConfig, prefix='loop.')
        self._node_cfg = declare_config(self, ControllerNodeConfig)
        self._cfg.on_change(self._on_controller_change)
        cfg = self._cfg.value
        node_cfg = self._node_cfg.value
        self._ctl = ResidualController(cfg, residual=self._load_residual(cfg))
        # Added after the configs, so it runs before their callbacks and can refuse first.
        self._restart_only = (
            {s.name for s in iter_params(ControllerConfig)}
            | {'loop.' + s.name for s in iter_params(ControlLoopConfig)}
            | {s.name for s in iter_params(ControllerNodeConfig)}
        ) - _LIVE_PARAMS
        self.add_on_set_parameters_callback(self._refuse_restart_only)
        self._names = list(cfg.joint_names)
        self._mapper = JointStateMapper(cfg.joint_names, node_cfg.ignore_unknown_joints)
        self._receipt_stamp = node_cfg.state_stamp == 'receipt'
        self._loop_clock = LoopClock(self.get_clock(), cfg.safety.clock_timeout)
        self._on_state_ticks = node_cfg.tick_source == 'joint_states'
        # Chunks wait here for their tick when ticks follow joint states or a delay is injected.
        self._hold_chunks = self._on_state_ticks or node_cfg.chunk_delay > 0.0
        self._held: list[ActionChunk] = []
        self._timing = JsonLinesLog(node_cfg.timing_log) if node_cfg.timing_log else None
        self._spliced_stamp = math.nan
        self._matched_since = math.nan  # monotonic: when the chunk source was first matched

        # Written by callbacks, read by the control loop and the diagnostics.
        self._state_lock = threading.Lock()
        self._latest: JointSample | None = None
        self._rejected_state_msgs = 0
        self._last_state_rejection = ''
        self._malformed_chunks = 0
        self._last_chunk_refusal = ''
        self._estop_asserted = False
        # Control thread only (plus destroy_node after the loop stopped).
        self._status = 'waiting'
        self._ticks = 0
        self._loop_errors = 0
        self._last_loop_error = ''
        self._blocked_nonfinite = 0
        self._last_t = math.nan
        self._last_dt = 1.0 / self._loop_cfg.value.rate_hz
        self._clock_stalled = 0.0  # [s] of wall time simulated time has not advanced
        self._last_command = time.monotonic()  # wall time of the last published command
        self._reported: dict[str, int] = {}  # refusal totals at the last periodic report

        overrides = qos.qos_overrides()
        limits = self._ctl.limits
        self._output = CommandOutput(
            declare_config(self, OutputConfig, prefix='output.').value, self._names,
            self._ctl.tracker.preview, limits.q_min, limits.q_max,
        )  # fmt: skip
        self._cmd_pub = self.create_publisher(
            self._output.msg_type, self._output.config.topic, qos.COMMAND,
            qos_overriding_options=overrides,
        )  # fmt: skip
        self._state_pub = None
        if node_cfg.publish_state:
            self._state_pub = self.create_publisher(
                JointTrajectory, 'control/state', qos.SENSOR_OUT, qos_overriding_options=overrides
            )
        self._diag_pub = self.create_publisher(
            DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS, qos_overriding_options=overrides
        )
        # Chunks first: when both are ready, the executor takes them in creation order.
        self._chunk_sub = self.create_subscription(
            ActionChunkMsg,
            'control/reference',
            self._on_chunk,
            qos.ACTION_CHUNK,
            qos_overriding_options=overrides,
        )
        self.create_subscription(
            JointState,
            'joint_states',
            self._on_joint_state,
            qos.SENSOR_IN,
            qos_overriding_options=overrides,
        )
        safety = MutuallyExclusiveCallbackGroup()
        self.create_subscription(
            Bool,
            'estop',
            self._on_estop_topic,
            qos.ESTOP_IN,
            qos_overriding_options=overrides,
            callback_group=safety,
        )
        self.create_service(Trigger, 'control/estop', self._on_estop_srv, callback_group=safety)
        self.create_service(Trigger, 'control/reset', self._on_reset_srv, callback_group=safety)
        self.create_service(SetBool, 'control/enable_residual', self._on_enable_residual)
        # On the wall clock: a simulator that stops /clock must not silence the report.
        self._diag_timer = self.create_timer(
            node_cfg.diagnostics_period,
            self._publish_periodic_diagnostics,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )

        self._loop = DeadlineLoop(self._loop_cfg.value, self._step, name='controller_loop')
        if not self._on_state_ticks:
            self._loop.start()
        self.get_logger().info(
            f'{cfg.output_mode} control of {self._names} at {self._loop_cfg.value.rate_hz:g} Hz '
            f'({cfg.classic}, residual {"on" if self._ctl.residual.active else "off"}) -> '
            f'{self._cmd_pub.topic_name}'
        )

    # --- set-up -----------------------------------------------------------------------------------

    def _load_residual(self, cfg: ControllerConfig):  # -> OnnxResidual | None
        if not cfg.residual.model_path:
            if cfg.residual.enabled:
                self.get_logger().warn('residual.enabled but no residual.model_path: residual off')
            return None
        from vla_control.residual_onnx import OnnxResidual  # onnxruntime only when needed

        try:
            return OnnxResidual(cfg.residual.model_path, dof=len(cfg.joint_names))
        except Exception as err:  # missing file, bad model, wrong size: a config error
            raise ParameterError(
                'residual.model_path', f'cannot load {cfg.residual.model_path!r}: {err}'
            ) from None

    def _refuse_restart_only(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name in self._restart_only:
                return SetParametersResult(
                    successful=False,
                    reason=f'{p.name} is applied at start only: restart the node to change it',
                )
            if p.name == 'residual.enabled' and p.value is True and self._ctl.residual.fn is None:
                return SetParametersResult(successful=False, reason=_NO_MODEL)
        return SetParametersResult(successful=True)

    def _on_controller_change(self, cfg: ControllerConfig) -> None:
        self._ctl.set_residual_enabled(cfg.residual.enabled)
        try:
            self._ctl.set_classic(cfg.classic)  # builds the MPC here, not in the loop
        except Exception as err:
            self.get_logger().error(f'cannot switch to {cfg.classic}: {err}')

    # --- callbacks (executor threads): convert and hand over, never block -------------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joint_state(self, msg: JointState) -> None:
        receipt = self._now()
        try:
            q, qd, effort = self._mapper.map(msg.name, msg.position, msg.velocity, msg.effort)
        except ValueError as err:
            with self._state_lock:
                self._rejected_state_msgs += 1
                self._last_state_rejection = str(err)
            self.get_logger().warn(f'joint_states rejected: {err}', throttle_duration_sec=5.0)
            return
        stamp = receipt
        if not self._receipt_stamp:
            header = stamp_to_seconds(msg.header.stamp)
            if self._on_state_ticks:  # the sample's own time is the tick's
                stamp = header
            elif header > 0.0:
                stamp = min(header, receipt)  # a future stamp would blind the watchdog
        # NaN/Inf values go to the core, which rejects and counts them.
        sample = JointSample(stamp, q, qd, effort)
        with self._state_lock:
            self._latest = sample
        if self._on_state_ticks and (math.isnan(self._last_t) or stamp > self._last_t):
            if math.isnan(self._last_t) and not self._chunk_source_matched():
                return  # (the simulator sends this joint state again while it waits)
            dt = stamp - self._last_t if math.isfinite(self._last_t) else self._last_dt
            self._tick(stamp, dt)

    def _chunk_source_matched(self) -> bool:
        """Ticking on joint states, the first tick waits until the chunk source has been matched
        for a moment (the reader and the writer learn of each other separately): a chunk sent
        before would be lost, and a lockstep run would not repeat."""
        if self._chunk_sub.get_publisher_count() == 0:
            self._matched_since = math.nan
            return False
        if math.isnan(self._matched_since):
            self._matched_since = time.monotonic()
        return time.monotonic() - self._matched_since >= 0.5

    def _on_chunk(self, msg: ActionChunkMsg) -> None:
        now = self._now()
        try:
            chunk = chunk_from_msg(msg)
        except ValueError as err:
            self._malformed_chunks += 1
            self._refused(
                f'malformed chunk (sequence {msg.sequence}, source {msg.source!r}): {err}'
            )
            return
        if self._hold_chunks:
            with self._state_lock:
                self._held.append(chunk)
            return
        self._push(chunk, now)

    def _push(self, chunk: ActionChunk, now: float) -> None:
        before = self._ctl.tracker.metrics
        if not self._ctl.push_chunk(chunk, now):
            reason = _refusal_reason(before, self._ctl.tracker.metrics)
            self._refused(
                f'chunk refused ({reason}): sequence {chunk.sequence}, source {chunk.source!r}, '
                f'joints {list(chunk.joint_names)}, stamp {chunk.stamp:.3f}, '
                f'ends {chunk.end_time - now:+.3f} s from now'
            )

    def _refused(self, reason: str) -> None:
        self._last_chunk_refusal = reason
        self.get_logger().warn(reason, throttle_duration_sec=5.0)

    def _on_estop_topic(self, msg: Bool) -> None:
        self._estop_asserted = bool(msg.data)
        if msg.data:
            self._ctl.estop('estop topic')

    def _on_estop_srv(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        self._ctl.estop('control/estop service')
        self.get_logger().warn('e-stop latched by control/estop')
        res.success, res.message = True, 'e-stop latched; call control/reset to release it'
        return res

    def _on_reset_srv(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        if self._estop_asserted:
            res.success = False
            res.message = 'refused: the estop topic still asserts true; publish false first'
            return res
        was_latched = self._ctl.reset()
        with self._state_lock:
            self._held.clear()  # the last episode's chunks must not act in the next
        res.success = True
        res.message = (
            'released; holding the current position until a fresh chunk arrives'
            if was_latched
            else 'nothing was latched; tracking restarts from the current position'
        )
        self.get_logger().info(f'control/reset: {res.message}')
        return res

    def _on_enable_residual(self, req: SetBool.Request, res: SetBool.Response) -> SetBool.Response:
        result = self.set_parameters([Parameter('residual.enabled', value=bool(req.data))])[0]
        res.success = result.successful
        res.message = (
            f'residual {"enabled" if req.data else "disabled"}' if res.success else result.reason
        )
        return res

    # --- control thread ---------------------------------------------------------------------------

    def _step(self, deadline: float, dt: float) -> None:
        tick = self._loop_clock.tick(deadline, dt)
        if tick is None:
            return
        if tick.restarted:
            with self._state_lock:
                self._latest = None  # of the old time line
            self._ctl.restart_time()
            self._status = 'waiting'
            self.get_logger().warn(
                f'simulated time started over at {tick.t:.3f}: restarting from the next joint state'
            )
        if (tick.stalled > 0.0) != (self._clock_stalled > 0.0) and tick.stalled > 0.0:
            self.get_logger().error(
                f'/clock stalled for {tick.stalled:.2f} s: stopping the arm on the wall clock'
            )
        self._clock_stalled = tick.stalled
        self._tick(tick.t, tick.dt, clock_stalled=tick.stalled > 0.0)

    def _tick(self, t: float, dt: float, *, clock_stalled: bool = False) -> None:
        delay = self._node_cfg.value.chunk_delay - 1e-6  # (stamps went through float seconds)
        with self._state_lock:
            sample = self._latest
            # Due: old enough, and never at the tick it was observed (it did not exist yet).
            due = [t - c.stamp >= delay and t > c.stamp for c in self._held]
            ready = [c for c, d in zip(self._held, due, strict=True) if d]
            self._held = [c for c, d in zip(self._held, due, strict=True) if not d]
        for chunk in ready:
            self._push(chunk, t)
        try:
            cmd = self._ctl.update(t, dt, sample, clock_stalled=clock_stalled)
        except Exception as err:  # a bug must not kill the loop silently: latch a hold instead
            self._loop_errors += 1
            self._last_loop_error = f'{type(err).__name__}: {err}'
            self._ctl.estop(f'controller error: {self._last_loop_error}')
            self.get_logger().error(
                f'control tick failed, e-stop latched: {self._last_loop_error}',
                throttle_duration_sec=5.0,
            )
            return
        self._ticks += 1
        self._last_t, self._last_dt = t, dt
        if cmd is None:  # no valid joint state yet: nothing to command
            return
        stamp = cmd.reference.chunk_stamp
        if self._timing is not None and stamp != self._spliced_stamp and math.isfinite(stamp):
            self._timing.append({'t': t, 'chunk_stamp': stamp, 'chunk_age': t - stamp})
        self._spliced_stamp = stamp
        self._publish_command(cmd)
        if cmd.status != self._status:
            self._status = cmd.status
            self._diag_pub.publish(self._diagnostics(seconds_to_stamp(t), periodic=False))
        if self._state_pub is not None and self._ticks % self._node_cfg.value.state_decimation == 0:
            self._publish_state(cmd)

    def _publish_command(self, cmd: ControlCommand) -> None:
        values = cmd.values
        if not np.all(np.isfinite(values)):  # the core guarantees this; never trust one layer
            self._blocked_nonfinite += 1
            return
        msg = self._output.message(cmd)
        if msg is not None:
            self._cmd_pub.publish(msg)
            self._last_command = time.monotonic()

    def _publish_state(self, cmd: ControlCommand) -> None:
        ref = cmd.reference
        point = JointTrajectoryPoint(
            positions=ref.position.tolist(),
            velocities=ref.velocity.tolist(),
            accelerations=ref.acceleration.tolist(),
            time_from_start=Duration(),
        )
        msg = JointTrajectory(joint_names=self._names, points=[point])
        msg.header.stamp = seconds_to_stamp(cmd.t)
        self._state_pub.publish(msg)  # type: ignore[union-attr]

    # --- diagnostics ------------------------------------------------------------------------------

    def _publish_periodic_diagnostics(self) -> None:
        if self._timing is not None:
            self._timing.flush()
        self._diag_pub.publish(self._diagnostics(self.get_clock().now().to_msg(), periodic=True))

    def _diagnostics(self, stamp: object, *, periodic: bool) -> DiagnosticArray:
        m = self._ctl.metrics()
        tr = m.tracker
        cfg = self._cfg.value
        with self._state_lock:
            rejected_msgs, last_rejection = self._rejected_state_msgs, self._last_state_rejection
        refusals = {
            'chunks_refused_expired': tr.refused_expired,
            'chunks_refused_out_of_order': tr.refused_out_of_order,
            'chunks_refused_joints': tr.refused_invalid,
            'chunks_refused_future': tr.refused_future,
            'chunks_refused_horizon': tr.refused_horizon,
            'chunks_refused_position': tr.refused_position,
            'chunks_refused_malformed': self._malformed_chunks,
            'joint_states_rejected_names': rejected_msgs,
            'joint_states_rejected_values': m.rejected_states,
        }
        level, message = self._level_and_message(m, cfg)
        if periodic:
            new = {k: v - self._reported.get(k, 0) for k, v in refusals.items()}
            self._reported = refusals
            bad = [f'{v} {k.replace("_", " ")}' for k, v in new.items() if v > 0]
            if bad:
                message += '; since the last report: ' + ', '.join(bad)
                level = max(level, diagnostics.WARN)
        values: dict[str, object] = {
            'status': m.status if self._status != 'waiting' else 'waiting',
            'classic': m.classic,
            'residual_enabled': m.residual_enabled,
            'output_mode': cfg.output_mode,
            'control_time': self._last_t,
            'state_age': m.state_age,
            'reference_age': m.reference_age,
            'watchdog_trips': m.watchdog_trips,
            'estop_latched': m.estop_latched,
            'estop_reason': m.estop_reason,
            'estop_input_asserted': self._estop_asserted,
            'chunks_accepted': tr.accepted,
            **refusals,
            'last_chunk_refusal': self._last_chunk_refusal,
            'last_joint_state_rejection': last_rejection,
            'splices': tr.splices,
            'last_splice_jump': tr.last_splice_jump,
            'max_splice_jump': tr.max_splice_jump,
            'last_seam_gap': tr.last_seam_gap,
            'max_seam_gap': tr.max_seam_gap,
            'rms_jerk': tr.rms_jerk,
            'max_jerk': tr.max_jerk,
            'tracking_error_max': m.tracking_error_max,
            'mpc_solves': m.mpc_solves,
            'mpc_failures': m.mpc_failures,
            'mpc_last_iterations': m.mpc_last_iterations,
            'mpc_last_solve_time_ms': m.mpc_last_solve_time * 1e3,
            'residual_errors': m.residual_errors,
            'residual_nonfinite': m.residual_nonfinite,
            'nonfinite_commands_replaced': m.nonfinite_commands,
            'nonfinite_commands_blocked': self._blocked_nonfinite,
            'loop_errors': self._loop_errors,
            'last_loop_error': self._last_loop_error,
        }
        if periodic and not self._on_state_ticks:  # sorts the history: not on the control thread
            s = self._loop.stats()
            values.update(
                rate_hz=self._loop_cfg.value.rate_hz,
                achieved_hz=s.achieved_hz,
                overruns=s.overruns,
                skipped_deadlines=s.skipped,
                latency_p99_ms=s.latency_p99 * 1e3,
                step_time_p99_ms=s.step_time_p99 * 1e3,
                period_error_max_ms=s.period_error_max * 1e3,
            )
        status = diagnostics.status(
            f'{self.get_name()}: controller', level, message, values, hardware_id=self.get_name()
        )
        return diagnostics.diagnostic_array(stamp, [status])

    def _level_and_message(self, m: ControllerMetrics, cfg: ControllerConfig) -> tuple[bytes, str]:
        if not self._loop.running and not self._on_state_ticks:
            return diagnostics.ERROR, f'control loop stopped: {self._loop.error}'
        if self._status == 'waiting':
            return diagnostics.WARN, 'waiting for valid joint_states: no commands'
        silent = time.monotonic() - self._last_command
        if silent > _COMMAND_GAP:
            why = self._last_loop_error if self._loop_errors else 'the control time stands still'
            return diagnostics.ERROR, f'no joint_commands for {silent:.1f} s: {why}'
        if m.status == 'stop' and m.clock_stalled:
            return diagnostics.ERROR, (
                f'stopped: /clock stalled for {self._clock_stalled:.1f} s (did the simulator '
                'stop?); restarts from the next joint state when simulated time advances'
            )
        if m.status == 'estop':
            return diagnostics.ERROR, f'e-stop latched ({m.estop_reason}); call control/reset'
        if m.status == 'stop':
            why = []
            if m.state_age > cfg.safety.state_timeout:
                why.append(f'joint_states stale ({m.state_age:.3f} s)')
            if m.reference_age > cfg.safety.reference_timeout:
                why.append(f'reference stale ({m.reference_age:.3f} s)')
            recover = 'resumes when fresh' if cfg.safety.auto_recover else 'call control/reset'
            return diagnostics.WARN, f'stopped: {", ".join(why) or "watchdog"}; {recover}'
        if m.status == 'hold':
            return diagnostics.OK, 'holding: no chunk to track'
        return diagnostics.OK, 'tracking'

    # --- shutdown ---------------------------------------------------------------------------------

    def destroy_node(self) -> None:
        loop = getattr(self, '_loop', None)
        if loop is not None:
            loop.stop(timeout=2.0)
            if loop.running:
                self.get_logger().error('control loop did not stop: no safe stop published')
            else:
                self._publish_safe_stop()
        timing = getattr(self, '_timing', None)
        if timing is not None:
            timing.close()
        super().destroy_node()

    def _publish_safe_stop(self) -> None:
        """One last command at rest, from the commanded state (the core's safe stop: position
        mode where a stop from the command ends, velocity zero, effort holding against gravity),
        so the actuators are not left on a moving command."""
        t = self._now()
        if math.isfinite(self._last_t):
            t = max(t, self._last_t + self._last_dt)  # stamps stay increasing
        try:
            cmd = self._ctl.safe_stop(t)
        except Exception as err:
            self.get_logger().error(f'no safe stop published: {type(err).__name__}: {err}')
            return
        if cmd is not None:
            self._publish_command(cmd)
            # The process may end right after this: a sample not yet acknowledged by the driver
            # went down with it on a loaded machine.
            acked = self._cmd_pub.wait_for_all_acked(RclpyDuration(seconds=_SAFE_STOP_ACK_S))
            self.get_logger().info(
                f'published the safe stop ({cmd.mode})'
                + ('' if acked else f', not acknowledged within {_SAFE_STOP_ACK_S:g} s')
            )


def _refusal_reason(before: TrackerMetrics, after: TrackerMetrics) -> str:
    for key, reason in (
        ('refused_invalid', 'joints do not match joint_names'),
        ('refused_expired', 'expired'),
        ('refused_out_of_order', 'not newer than the last accepted chunk'),
        ('refused_future', 'stamped beyond tracker.max_future_stamp ahead'),
        ('refused_horizon', 'more targets than tracker.max_horizon'),
        ('refused_position', 'a target beyond the position limits + tracker.position_margin'),
    ):
        if getattr(after, key) > getattr(before, key):
            return reason
    return 'refused'


def main(args: Sequence[str] | None = None) -> int:
    return run_node(ControllerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

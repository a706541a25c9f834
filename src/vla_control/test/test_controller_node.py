"""The controller node in-process with a fake arm (joint_states), a chunk source and a probe, all on
a private context and executor; observed only through what it publishes and serves.

Timing is checked against the stamps the node puts on its commands and status reports (the control
time of the tick), never against wall-clock rates, so a loaded machine cannot fail the wiring
checks: exact watchdog timing is the core's tests' job (vla_core/test/test_control_safety.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import math
import threading
import time
from typing import TypeVar

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import onnx
from onnx import TensorProto, helper
import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from vla_control.controller_node import ControllerNode, JointStateMapper, LoopClock
from vla_core.chunk import ActionChunk
from vla_interfaces.msg import ActionChunk as ActionChunkMsg
from vla_ros_common import qos
from vla_ros_common.conversions import chunk_to_msg, seconds_to_stamp, stamp_to_seconds
from vla_ros_common.node_main import make_executor
from vla_ros_common.params import ParameterError

NAMES = ('j1', 'j2')
RATE = 100.0
PERIOD = 1.0 / RATE
# Long enough that a test process starved for a few periods on a loaded machine rarely trips it;
# every timing check is relative to it, so its value does not weaken them.
STATE_TIMEOUT = 0.25
REF_TIMEOUT = 0.3
DECEL = 2.0  # [rad/s^2] stop deceleration
SPEED = 0.3  # [rad/s] of the chunks' ramp
ARM_PERIOD = 0.01  # joint_states at 100 Hz
CHUNK_PERIOD = 0.1  # chunks at 10 Hz
# Hang guard of every wait: the machine may be loaded; no timing is asserted with it.
WAIT = 30.0
RELIABLE = QoSProfile(depth=10000, reliability=ReliabilityPolicy.RELIABLE)
STATUS_NAME = 'controller: controller'
# Tests that are not about the watchdog: a stalled test thread on a loaded machine must not stop it.
RELAXED = {'safety.state_timeout': 1.0, 'safety.reference_timeout': 5.0}

BASE_PARAMS: dict[str, object] = {
    'joint_names': list(NAMES),
    'output_mode': 'velocity',
    'loop.rate_hz': RATE,
    'pid.kp': [5.0],
    'safety.state_timeout': STATE_TIMEOUT,
    'safety.reference_timeout': REF_TIMEOUT,
    'safety.stop_deceleration': [DECEL],
    'safety.acceleration_max': [20.0],
    'safety.velocity_max': [1.0],
    'safety.position_min': [-10.0],
    'safety.position_max': [10.0],
    'diagnostics_period': 0.1,
    'state_decimation': 1,
    # The fault timing below needs the last joint state delivered: reliable, via the overrides.
    'qos_overrides./joint_states.subscription.reliability': 'reliable',
    # Every command and report reaches the probe, however late its thread runs (a loaded machine).
    'qos_overrides./joint_commands.publisher.depth': 10000,
    'qos_overrides./diagnostics.publisher.depth': 10000,
}


@dataclass(frozen=True)
class Command:
    t: float
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


@dataclass(frozen=True)
class Report:
    stamp: float
    level: int
    message: str
    values: dict[str, str]

    @property
    def status(self) -> str:
        return self.values['status']

    @property
    def periodic(self) -> bool:  # event reports (status changes) carry no loop statistics
        return 'achieved_hz' in self.values


def wait(cond: Callable[[], object], timeout: float = WAIT, what: str = 'condition') -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.01)


class Harness:
    """Private context, executor thread, and a probe publishing inputs and recording outputs."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = make_executor(context=self.context)
        self.probe = Node('probe', context=self.context)
        self.nodes: list[Node] = [self.probe]
        self.sources: list[Source] = []
        self.lock = threading.Lock()
        self.commands: list[Command] = []
        self.reports: list[Report] = []
        self.states: list[JointTrajectory] = []
        self.state_pub = self.probe.create_publisher(JointState, 'joint_states', qos.SENSOR_OUT)
        self.chunk_pub = self.probe.create_publisher(
            ActionChunkMsg, 'control/reference', qos.ACTION_CHUNK
        )
        self.estop_pub = self.probe.create_publisher(Bool, 'estop', qos.COMMAND)
        self.clock_pub = self.probe.create_publisher(ClockMsg, '/clock', qos.CLOCK)
        self.probe.create_subscription(JointState, 'joint_commands', self._on_command, RELIABLE)
        self.probe.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, RELIABLE)
        self.probe.create_subscription(
            JointTrajectory, 'control/state', lambda m: self._add(self.states, m), RELIABLE
        )
        self.clients = {
            'estop': self.probe.create_client(Trigger, 'control/estop'),
            'reset': self.probe.create_client(Trigger, 'control/reset'),
            'residual': self.probe.create_client(SetBool, 'control/enable_residual'),
        }
        self.executor.add_node(self.probe)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self.t0 = self.now()

    def now(self) -> float:
        return self.probe.get_clock().now().nanoseconds * 1e-9

    def _add(self, target: list, item: object) -> None:
        with self.lock:
            target.append(item)

    def _on_command(self, msg: JointState) -> None:
        assert list(msg.name) == list(NAMES)
        n = len(NAMES)
        arrays = [
            np.asarray(v, dtype=float) if len(v) else np.full(n, np.nan)
            for v in (msg.position, msg.velocity, msg.effort)
        ]
        self._add(self.commands, Command(stamp_to_seconds(msg.header.stamp), *arrays))

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for s in msg.status:
            if s.name == STATUS_NAME:
                values = {kv.key: kv.value for kv in s.values}
                report = Report(stamp_to_seconds(msg.header.stamp), s.level[0], s.message, values)
                self._add(self.reports, report)

    # --- the node under test ----------------------------------------------------------------------

    def controller(self, **params: object) -> ControllerNode:
        merged = {**BASE_PARAMS, **params}
        node = ControllerNode(
            context=self.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in merged.items()],
        )
        self.nodes.append(node)
        self.executor.add_node(node)
        for pub in (self.state_pub, self.chunk_pub, self.estop_pub):
            wait(lambda p=pub: p.get_subscription_count() > 0, what='controller subscriptions')
        wait(lambda: node.count_subscribers('joint_commands') > 0, what='command subscriber')
        for client in self.clients.values():
            assert client.wait_for_service(timeout_sec=10.0)
        return node

    def call(self, name: str, request: object) -> object:
        future = self.clients[name].call_async(request)
        wait(future.done, what=f'{name} service')
        return future.result()

    # --- recordings -------------------------------------------------------------------------------

    def get_commands(self, after: float = -math.inf) -> list[Command]:
        with self.lock:
            return [c for c in self.commands if c.t > after]

    def get_reports(self) -> list[Report]:
        with self.lock:
            return list(self.reports)

    def last_command(self) -> Command | None:
        with self.lock:
            return self.commands[-1] if self.commands else None

    def transition(self, status: str, after: float) -> Report | None:
        """The status-change report of the first tick after ``after`` that entered ``status``."""
        events = [
            r
            for r in self.get_reports()
            if not r.periodic and r.status == status and r.stamp > after
        ]
        return min(events, key=lambda r: r.stamp) if events else None

    def wait_transition(self, status: str, after: float, timeout: float = WAIT) -> Report:
        wait(lambda: self.transition(status, after), timeout, what=f'status {status}')
        report = self.transition(status, after)
        assert report is not None
        return report

    def latest_periodic(self, after: float) -> Report | None:
        reports = [r for r in self.get_reports() if r.periodic and r.stamp > after]
        return reports[-1] if reports else None

    def wait_periodic(self, cond: Callable[[Report], bool], timeout: float = WAIT) -> Report:
        after = self.now()
        wait(
            lambda: (r := self.latest_periodic(after)) is not None and cond(r),
            timeout,
            what='diagnostics report',
        )
        report = self.latest_periodic(after)
        assert report is not None
        return report

    def close(self) -> None:
        for source in self.sources:
            source.stop()
        self.executor.shutdown(timeout_sec=2.0)
        for node in reversed(self.nodes):
            node.destroy_node()
        rclpy.shutdown(context=self.context)


S = TypeVar('S', bound='Source')


class Source:
    """A publishing thread that can be killed; ``stop()`` returns when it has stopped."""

    period = 0.01

    def __init__(self, ros: Harness, clock: Callable[[], float] | None = None) -> None:
        self.ros = ros
        self.now = clock or ros.now  # stamps: the probe's clock, or a simulated one
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.count = 0

    def start(self: S) -> S:
        self.ros.sources.append(self)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        next_time = time.monotonic()
        while not self._stop.is_set():
            self.publish_one()
            self.count += 1
            next_time += self.period
            self._stop.wait(max(0.0, next_time - time.monotonic()))

    def publish_one(self) -> None:
        raise NotImplementedError


class Arm(Source):
    """joint_states of an ideal servo: integrates velocity commands, follows position commands,
    or stays where it is (``plant='static'``). ``corrupt(i, q)`` may replace a message's values.

    Every command is executed for its own tick, by the command stamps, however late this thread
    runs: a starved test process must not change the motion the controller sees.
    """

    period = ARM_PERIOD

    def __init__(
        self,
        ros: Harness,
        plant: str = 'velocity',
        q0: tuple[float, ...] = (0.0, 0.0),
        names: tuple[str, ...] = NAMES,
        corrupt: Callable[[int, list[float]], tuple[list[float], list[float]]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(ros, clock)
        self.plant = plant
        self.q = np.array(q0, dtype=float)
        self.names = names
        self.corrupt = corrupt
        self.stamps: list[float] = []
        self._executed = len(ros.get_commands())  # commands before this arm started: not ours
        self._held: Command | None = None  # the command being executed

    def _execute_commands(self) -> None:
        for cmd in self.ros.get_commands()[self._executed :]:
            held = self._held
            if self.plant == 'velocity' and held is not None:
                self.q = self.q + held.velocity * min(max(cmd.t - held.t, 0.0), 0.1)
            elif self.plant == 'position':
                self.q = cmd.position.copy()
            self._held = cmd
            self._executed += 1

    def publish_one(self) -> None:
        stamp = self.now()
        self._execute_commands()
        position, velocity = [float(v) for v in self.q], []
        if self.corrupt is not None:
            position, velocity = self.corrupt(self.count, position)
        msg = JointState(name=list(self.names), position=position, velocity=velocity)
        msg.header.stamp = seconds_to_stamp(stamp)
        self.ros.state_pub.publish(msg)
        self.stamps.append(stamp)


class Chunks(Source):
    """Chunks of a ramp at ``SPEED`` (both joints) from 0 at ``origin``, each 1 s long, stamped
    now."""

    period = CHUNK_PERIOD

    def __init__(
        self,
        ros: Harness,
        names: tuple[str, ...] = NAMES,
        clock: Callable[[], float] | None = None,
        origin: float | None = None,
    ) -> None:
        super().__init__(ros, clock)
        self.names = names
        self.origin = ros.t0 if origin is None else origin
        self.last_publish = math.nan

    def publish_one(self) -> None:
        stamp = self.now()
        self.last_publish = stamp
        msg = ramp_chunk(self.ros, stamp, self.names, self.count, self.origin)
        self.ros.chunk_pub.publish(msg)


class SimClock(Source):
    """/clock of a simulator from ``start``, 1:1 with the wall clock."""

    def __init__(self, ros: Harness, start: float) -> None:
        super().__init__(ros, clock=lambda: start + time.monotonic() - self._wall0)
        self._wall0 = time.monotonic()
        self.last = math.nan

    def publish_one(self) -> None:
        self.last = self.now()
        self.ros.clock_pub.publish(ClockMsg(clock=seconds_to_stamp(self.last)))


def ramp_chunk(
    ros: Harness,
    stamp: float,
    names: tuple[str, ...] = NAMES,
    seq: int = 0,
    origin: float | None = None,
) -> ActionChunkMsg:
    times = stamp + 0.05 * np.arange(20)
    origin = ros.t0 if origin is None else origin
    targets = np.repeat((SPEED * (times - origin))[:, None], len(names), axis=1)
    return chunk_to_msg(
        ActionChunk(stamp=stamp, dt=0.05, joint_names=names, targets=targets, sequence=seq)
    )


@pytest.fixture
def ros():
    h = Harness()
    yield h
    h.close()


def track(ros: Harness, **params: object) -> tuple[ControllerNode, Arm, Chunks]:
    """Controller tracking the ramp with a live arm and chunk source, at steady speed."""
    node = ros.controller(**params)
    plant = 'position' if params.get('output_mode') == 'position' else 'velocity'
    arm = Arm(ros, plant=plant).start()
    chunks = Chunks(ros).start()
    ros.wait_transition('track', ros.t0)

    def steady() -> bool:
        cmds = ros.get_commands()[-10:]
        if len(cmds) < 10:
            return False
        if plant == 'velocity':
            return all(np.allclose(c.velocity, SPEED, atol=0.05) for c in cmds)
        speed = (cmds[-1].position - cmds[0].position) / (cmds[-1].t - cmds[0].t)
        return bool(np.allclose(speed, SPEED, atol=0.05))

    wait(steady, what='steady tracking')
    return node, arm, chunks


def reported_age(stop: Report, key: str) -> tuple[float, float]:
    """An age from the diagnostics report and its resolution: diagnostics print 4 significant
    digits, so 0.5 s reads back within 50 us (a tick that close to the deadline is ambiguous)."""
    age = float(stop.values[key])
    return age, 0.5 * 10 ** (math.floor(math.log10(abs(age))) - 3) if age else 1e-6


def check_stop_timing(ros: Harness, stop: Report, deadline: float, tol: float = 1e-6) -> None:
    """The stop began at the first control tick after ``deadline`` (known within ``tol``):
    within two periods, unless the loop itself skipped deadlines (loaded machine), and never
    before it."""
    assert stop.stamp > deadline - tol, f'stopped {deadline - stop.stamp:.4f} s early'
    before = [c.t for c in ros.get_commands() if c.t < stop.stamp - 1e-9]
    assert before, 'no command before the stop'
    prev_tick = max(before)
    assert prev_tick <= deadline + tol, 'a tick after the timeout did not stop'
    late = stop.stamp - deadline
    assert late <= max(2 * PERIOD, stop.stamp - prev_tick) + tol, f'stop {late:.4f} s late'
    assert any(abs(c.t - stop.stamp) < 1e-6 for c in ros.get_commands()), 'no command at the stop'


def check_controlled_stop(ros: Harness, t_stop: float) -> None:
    """Velocity commands from the stop on: finite, never speeding up, decelerating no faster than
    the configured deceleration, and zero once the stop time has passed (open loop)."""
    wait(lambda: ros.get_commands(after=t_stop + 1.0 / DECEL + 0.1), what='commands after a stop')
    cmds = ros.get_commands(after=t_stop - 1e-6)
    assert len(cmds) >= 3
    v = np.array([c.velocity for c in cmds])
    t = np.array([c.t for c in cmds])
    assert np.all(np.isfinite(v))
    speed = np.abs(v)
    assert np.all(np.diff(speed, axis=0) <= 1e-9), 'speeding up during a stop'
    assert np.all(np.abs(np.diff(v, axis=0)) <= DECEL * np.diff(t)[:, None] + 1e-6), 'not smooth'
    at_rest_after = t_stop + speed[0].max() / DECEL + 2 * PERIOD
    rest = speed[t > at_rest_after]
    assert rest.size and np.all(rest < 1e-9), 'not at rest after the stop time'


# --- fault injection ------------------------------------------------------------------------------


def wait_stop(ros: Harness, reason: str, caused: Callable[[Report], bool]) -> Report:
    """The stop transition for ``reason`` that ``caused`` says is the fault's: on a loaded
    machine a late message may have stopped the arm briefly before, and that is not the stop
    under test."""

    def find() -> Report | None:
        stops = [r for r in ros.get_reports() if not r.periodic and r.status == 'stop']
        return next((r for r in stops if reason in r.message and caused(r)), None)

    wait(find, what=f'the stop for {reason}')
    report = find()
    assert report is not None
    return report


def test_joint_state_loss_stops_within_two_periods_then_recovers(ros):
    _, arm, _ = track(ros)
    arm.stop()  # the joint-state source dies
    s_last = arm.stamps[-1]

    def for_the_last_state(r: Report) -> bool:  # its reported state age dates the last one sent
        age, tol = reported_age(r, 'state_age')
        return abs(r.stamp - age - s_last) <= tol + 1e-6

    stop = wait_stop(ros, 'joint_states stale', for_the_last_state)
    check_stop_timing(ros, stop, s_last + STATE_TIMEOUT, reported_age(stop, 'state_age')[1])
    check_controlled_stop(ros, stop.stamp)

    restart = ros.now()
    Arm(ros, q0=tuple(arm.q)).start()
    ros.wait_transition('track', after=restart)


def test_reference_loss_stops_within_two_periods_then_recovers(ros):
    _, arm, chunks = track(ros)
    chunks.stop()  # the policy dies; its last chunk still has targets for ~1 s
    # The stop after every chunk sent was accepted: its reference age dates the last receipt.
    stop = wait_stop(
        ros, 'reference stale', lambda r: r.values['chunks_accepted'] == str(chunks.count)
    )
    age, tol = reported_age(stop, 'reference_age')
    receipt = stop.stamp - age
    assert receipt >= chunks.last_publish - 1e-4, 'received before it was sent'
    check_stop_timing(ros, stop, receipt + REF_TIMEOUT, tol)
    # Joint states are fresh: the arm is brought to rest in closed loop.
    rest_time = stop.stamp + SPEED / DECEL + 0.5
    wait(lambda: ros.get_commands(after=rest_time), what='commands after the stop')
    later = ros.get_commands(after=rest_time)
    assert all(np.all(np.abs(c.velocity) < 0.02) for c in later)
    assert all(np.all(np.isfinite(c.velocity)) for c in ros.get_commands())

    restart = ros.now()
    Chunks(ros).start()
    ros.wait_transition('track', after=restart)
    assert arm.count > 0


def test_a_stalled_clock_stops_the_arm_and_says_why_then_a_new_one_restarts(ros):
    # Under use_sim_time a simulator that died took the controller's clock with it: no command,
    # not even diagnostics. Stalled past safety.clock_timeout of wall time, the loop runs on the
    # wall clock from the last simulated time, stops the arm and reports it.
    timeout = 0.3
    sim = SimClock(ros, start=1000.0).start()
    ros.controller(use_sim_time=True, **RELAXED, **{'safety.clock_timeout': timeout})
    arm = Arm(ros, clock=sim.now).start()
    chunks = Chunks(ros, clock=sim.now, origin=1000.0).start()
    ros.wait_transition('track', after=0.0)
    wait(lambda: np.allclose(ros.last_command().velocity, SPEED, atol=0.05), what='steady')
    for source in (sim, arm, chunks):  # the simulator dies
        source.stop()
    stop = ros.wait_transition('stop', after=0.0)
    assert stop.level == 2 and '/clock stalled' in stop.message
    cmds = ros.get_commands()
    t_frozen = max(c.t for c in cmds if c.t <= sim.last + 1e-9)  # its last simulated tick
    after = [c for c in cmds if c.t > t_frozen]
    assert abs(after[0].t - stop.stamp) < 1e-6, 'the first command after the freeze is the stop'
    assert stop.stamp - t_frozen > timeout
    check_controlled_stop(ros, stop.stamp)

    # A new simulation, its time line from an earlier time: the controller starts over.
    restart = len(ros.get_reports())
    sim = SimClock(ros, start=500.0).start()
    Arm(ros, q0=tuple(arm.q), clock=sim.now).start()
    Chunks(ros, clock=sim.now, origin=500.0 - arm.q[0] / SPEED).start()

    def tracking_again() -> bool:
        new = ros.get_reports()[restart:]
        return any(not r.periodic and r.status == 'track' and r.stamp < 900.0 for r in new)

    wait(tracking_again, what='tracking on the new time line')


def test_a_controller_that_stops_commanding_reports_an_error(ros):
    node = ros.controller(**RELAXED)
    Arm(ros, plant='static').start()
    wait(lambda: ros.get_commands(), what='first command')
    assert ros.wait_periodic(lambda r: True).level == 0

    def broken(*args, **kwargs):
        raise RuntimeError('the model of the arm is broken')

    node._ctl.update = broken  # every tick fails: no command goes out
    report = ros.wait_periodic(lambda r: r.level == 2 and 'no joint_commands' in r.message)
    assert 'the model of the arm is broken' in report.message


def test_estop_latches_until_reset(ros):
    _, arm, chunks = track(ros, output_mode='position', **RELAXED)
    ros.estop_pub.publish(Bool(data=True))
    estop = ros.wait_transition('estop', after=ros.t0)
    assert 'estop topic' in estop.message

    refused = ros.call('reset', Trigger.Request())
    assert not refused.success and 'still asserts' in refused.message
    ros.estop_pub.publish(Bool(data=False))  # releasing the button does not unlatch
    time.sleep(0.3)
    assert ros.wait_periodic(lambda r: True).status == 'estop'
    assert ros.transition('hold', estop.stamp) is None
    assert ros.transition('track', estop.stamp) is None
    settled = estop.stamp + SPEED / DECEL + 2 * PERIOD  # decelerated from the command by then
    # Enough commands at rest to tell holding from drifting (ticks, not wall time: a loaded
    # machine runs fewer of them in a given wall time).
    wait(lambda: len(ros.get_commands(after=settled)) > 30, what='commands at rest')

    reset_at = ros.now()
    assert ros.call('reset', Trigger.Request()).success
    released = ros.wait_transition('hold', after=estop.stamp)
    # Commands carry their tick's deadline; a tick that ran late on a loaded machine may see the
    # reset with a deadline a little before it. The latch itself is proven above (no transition
    # before the reset).
    assert released.stamp >= reset_at - 0.05
    held = [c.position for c in ros.get_commands(after=settled) if c.t < released.stamp]
    assert len(held) > 30 and np.all(np.isfinite(held))
    assert np.ptp(np.array(held), axis=0).max() < 1e-12, 'moved after the e-stop came to rest'
    resumed = ros.wait_transition('track', after=released.stamp)

    # The service latches too, and a reset releases it.
    res = ros.call('estop', Trigger.Request())
    assert res.success
    second = ros.wait_transition('estop', after=resumed.stamp)
    assert 'control/estop service' in second.message
    time.sleep(0.3)
    assert ros.transition('track', second.stamp) is None
    reset_at = ros.now()
    assert ros.call('reset', Trigger.Request()).success
    ros.wait_transition('track', after=reset_at)
    assert arm.count > 0 and chunks.count > 0


def test_estop_from_a_best_effort_publisher_latches(ros):
    # Buttons and gamepads often publish best-effort; a reliable-only subscription ignored them.
    ros.controller(output_mode='position', **RELAXED)
    Arm(ros, plant='static').start()
    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    button = ros.probe.create_publisher(Bool, 'estop', best_effort)
    wait(lambda: button.get_subscription_count() > 0, what='the e-stop matching a best-effort pub')
    wait(lambda: button.publish(Bool(data=True)) or ros.transition('estop', ros.t0), what='e-stop')
    assert 'estop topic' in ros.transition('estop', ros.t0).message


def test_nan_in_joint_states_never_reaches_the_commands(ros):
    ros.controller()

    def every_third_bad(i: int, q: list[float]) -> tuple[list[float], list[float]]:
        if i % 3 == 1:
            return [math.nan, q[1]], []
        if i % 3 == 2:
            return q, [0.0, math.inf]  # a bad velocity poisons the sample too
        return q, []

    arm = Arm(ros, corrupt=every_third_bad).start()
    Chunks(ros).start()
    ros.wait_transition('track', ros.t0)
    report = ros.wait_periodic(lambda r: int(r.values['joint_states_rejected_values']) >= 20)
    assert 'joint states rejected values' in report.message
    arm.corrupt = lambda i, q: ([math.nan, q[1]] if i % 2 else [math.inf, -math.inf], [])
    # Only bad samples now; under load the sparse good ones may already have let it go stale.
    ros.wait_periodic(lambda r: r.status == 'stop')
    stops = [r for r in ros.get_reports() if not r.periodic and r.status == 'stop']
    stop = max(stops, key=lambda r: r.stamp)
    assert 'joint_states stale' in stop.message
    check_controlled_stop(ros, stop.stamp)
    commands = ros.get_commands()
    assert len(commands) > 50
    for c in commands:
        assert np.all(np.isfinite(c.velocity)), c


def test_bad_chunks_are_refused_and_counted(ros):
    ros.controller(**RELAXED)
    Arm(ros, plant='static').start()
    wait(lambda: ros.get_commands(), what='first command')
    now = ros.now()
    wrong_joints = ramp_chunk(ros, now, names=('j1', 'j3'))
    expired = ramp_chunk(ros, now - 5.0)
    malformed = ramp_chunk(ros, now)
    malformed.horizon = 3  # targets no longer horizon x joints
    nan = ramp_chunk(ros, now)
    nan.targets[5] = math.nan
    for msg in (wrong_joints, expired, malformed, nan):
        ros.chunk_pub.publish(msg)
    report = ros.wait_periodic(lambda r: int(r.values['chunks_refused_malformed']) == 2)
    v = report.values
    assert (v['chunks_refused_joints'], v['chunks_refused_expired']) == ('1', '1')
    assert v['chunks_accepted'] == '0' and v['status'] == 'hold'
    warned = [r for r in ros.get_reports() if r.periodic and r.level == 1]
    assert any('chunks refused malformed' in r.message for r in warned)
    assert ros.transition('track', ros.t0) is None  # none of them was tracked
    assert all(np.allclose(c.velocity, 0.0, atol=1e-12) for c in ros.get_commands())

    good = ramp_chunk(ros, ros.now())
    older = ramp_chunk(ros, stamp_to_seconds(good.header.stamp) - 0.01)
    ros.chunk_pub.publish(good)
    ros.chunk_pub.publish(older)
    report = ros.wait_periodic(lambda r: r.values['chunks_refused_out_of_order'] == '1')
    assert report.values['chunks_accepted'] == '1'
    assert 'not newer' in report.values['last_chunk_refusal']
    ros.wait_transition('track', ros.t0)


def test_joint_states_mapped_by_name_and_mismatches_rejected(ros):
    ros.controller(output_mode='position', **RELAXED)
    unknown = Arm(ros, plant='static', names=('j1', 'j2', 'j9'), q0=(0.1, 0.2, 0.3)).start()
    missing = Arm(ros, plant='static', names=('j1',), q0=(0.1,)).start()
    report = ros.wait_periodic(lambda r: int(r.values['joint_states_rejected_names']) >= 10)
    assert 'joint states rejected names' in report.message
    assert (
        "'j9'" in report.values['last_joint_state_rejection']
        or 'missing' in (report.values['last_joint_state_rejection'])
    )
    assert report.values['status'] == 'waiting' and not ros.get_commands()
    unknown.stop()
    missing.stop()
    Arm(ros, plant='static', names=('j2', 'j1'), q0=(0.2, 0.1)).start()  # another order: fine
    wait(lambda: len(ros.get_commands()) > 5, what='commands')
    assert np.allclose(ros.get_commands()[-1].position, [0.1, 0.2])  # held, in config order


def test_unknown_joints_ignored_when_configured(ros):
    ros.controller(output_mode='position', ignore_unknown_joints=True, **RELAXED)
    Arm(ros, plant='static', names=('gripper', 'j2', 'j1'), q0=(0.04, 0.2, 0.1)).start()
    wait(lambda: len(ros.get_commands()) > 5, what='commands')
    assert np.allclose(ros.get_commands()[-1].position, [0.1, 0.2])


def test_shutdown_publishes_a_hold(ros):
    node, arm, _ = track(ros)
    last_before = ros.last_command()
    assert last_before is not None and np.all(last_before.velocity > 0.1)
    ros.executor.remove_node(node)
    ros.nodes.remove(node)
    node.destroy_node()
    wait(lambda: np.all(ros.last_command().velocity == 0.0), timeout=5.0, what='the safe stop')
    final = ros.last_command()
    assert final.t > last_before.t
    assert arm.count > 0


# --- runtime switches and parameters --------------------------------------------------------------


def _residual_model(path, bias: float) -> str:
    """features (1, 12) -> constant residual (1, 2): what the layer adds is visible in commands."""
    dof = len(NAMES)
    weights = helper.make_tensor('w', TensorProto.FLOAT, [6 * dof, dof], [0.0] * (6 * dof * dof))
    offset = helper.make_tensor('b', TensorProto.FLOAT, [dof], [bias] * dof)
    graph = helper.make_graph(
        [
            helper.make_node('MatMul', ['x', 'w'], ['xw']),
            helper.make_node('Add', ['xw', 'b'], ['y']),
        ],
        'residual',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 6 * dof])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, dof])],
        initializer=[weights, offset],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    file = path / 'residual.onnx'
    onnx.save(model, str(file))
    return str(file)


def test_residual_switchable_by_service_and_parameter(ros, tmp_path):
    node = ros.controller(**RELAXED, **{'residual.model_path': _residual_model(tmp_path, 0.1)})
    Arm(ros, plant='static').start()  # holding a static arm: the command is the residual alone
    wait(lambda: len(ros.get_commands()) > 5, what='commands')
    assert np.allclose(ros.last_command().velocity, 0.0, atol=1e-12)

    res = ros.call('residual', SetBool.Request(data=True))
    assert res.success, res.message
    assert node.get_parameter('residual.enabled').value is True
    wait(lambda: np.allclose(ros.last_command().velocity, 0.1), what='the residual in commands')
    assert ros.wait_periodic(lambda r: True).values['residual_enabled'] == 'True'

    result = node.set_parameters([Parameter('residual.enabled', value=False)])[0]
    assert result.successful
    wait(
        lambda: np.allclose(ros.last_command().velocity, 0.0, atol=1e-12),
        what='the residual switched off',
    )


def test_enabling_a_missing_residual_is_refused(ros):
    node = ros.controller()
    res = ros.call('residual', SetBool.Request(data=True))
    assert not res.success and 'no residual model' in res.message
    result = node.set_parameters([Parameter('residual.enabled', value=True)])[0]
    assert not result.successful and 'no residual model' in result.reason
    assert node.get_parameter('residual.enabled').value is False


def test_classic_layer_switches_at_runtime_other_parameters_need_a_restart(ros):
    node = ros.controller(**RELAXED)
    Arm(ros, plant='static').start()
    Chunks(ros).start()
    assert node.set_parameters([Parameter('classic', value='mpc')])[0].successful
    report = ros.wait_periodic(lambda r: int(r.values['mpc_solves']) > 10)
    assert report.values['classic'] == 'mpc'
    for name, value in (('safety.state_timeout', 1.0), ('loop.rate_hz', 50.0), ('pid.kp', [1.0])):
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and 'restart' in result.reason, name
    assert node.get_parameter('safety.state_timeout').value == RELAXED['safety.state_timeout']
    assert node.set_parameters([Parameter('classic', value='lqr')])[0].successful is False


def test_configuration_errors_name_the_parameter(tmp_path):
    context = Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(ParameterError, match='joint_names'):
            ControllerNode(context=context)
        bad = tmp_path / 'missing.onnx'
        overrides = [
            Parameter('joint_names', value=list(NAMES)),
            Parameter('residual.model_path', value=str(bad)),
        ]
        with pytest.raises(ParameterError, match=r'residual\.model_path'):
            ControllerNode(context=context, parameter_overrides=overrides)
    finally:
        rclpy.shutdown(context=context)


# --- pure helpers ---------------------------------------------------------------------------------


def test_joint_state_mapper():
    mapper = JointStateMapper(('a', 'b'))
    q, qd, eff = mapper.map(['b', 'a'], [2.0, 1.0], [], [])
    assert q.tolist() == [1.0, 2.0] and qd is None and eff is None
    q, qd, _ = mapper.map(['b', 'a'], [2.0, 1.0], [20.0, 10.0])
    assert qd is not None and qd.tolist() == [10.0, 20.0]
    for names, pos, vel, match in (
        (['a'], [1.0], [], 'missing'),
        (['a', 'b', 'c'], [1.0, 2.0, 3.0], [], 'unknown'),
        (['a', 'a'], [1.0, 2.0], [], 'duplicate'),
        (['a', 'b'], [1.0], [], 'position has 1 values'),
        (['a', 'b'], [1.0, 2.0], [1.0], 'velocity has 1 values'),
    ):
        with pytest.raises(ValueError, match=match):
            mapper.map(names, pos, vel)
    lenient = JointStateMapper(('a', 'b'), ignore_unknown=True)
    assert lenient.map(['c', 'b', 'a'], [3.0, 2.0, 1.0])[0].tolist() == [1.0, 2.0]


class FakeClock:
    def __init__(self, times: list[float], sim: bool) -> None:
        self.times = times
        self.ros_time_is_active = sim

    def now(self) -> Time:
        return Time(nanoseconds=round(self.times.pop(0) * 1e9))


def test_loop_clock_maps_deadlines_onto_the_node_clock():
    offset = 1.7e9
    clock = LoopClock(FakeClock([time.monotonic() + offset], sim=False), stall_timeout=0.5)
    deadline = time.monotonic() - 0.001  # the tick woke up 1 ms late
    tick = clock.tick(deadline, 0.002)
    assert abs(tick.t - (deadline + offset)) < 1e-3 and tick.dt == 0.002 and not tick.stalled


def test_loop_clock_under_sim_time_ticks_only_when_time_advances():
    clock = LoopClock(FakeClock([0.0, 5.0, 5.0, 5.01], sim=True), stall_timeout=0.5)
    assert clock.tick(1.0, 0.002) is None  # no /clock yet
    tick = clock.tick(1.002, 0.002)
    assert (tick.t, tick.dt) == (5.0, 0.002)
    assert clock.tick(1.004, 0.002) is None  # paused
    tick = clock.tick(1.006, 0.002)
    assert abs(tick.t - 5.01) < 1e-9 and abs(tick.dt - 0.01) < 1e-9

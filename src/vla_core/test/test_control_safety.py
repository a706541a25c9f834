"""Safety: watchdog stop timing, e-stop latch, NaN/Inf containment, limits, output modes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_core.chunk import ActionChunk
from vla_core.control import (
    ControlCommand,
    ControllerConfig,
    EStop,
    JointSample,
    PidConfig,
    ResidualConfig,
    ResidualController,
    SafetyConfig,
    Watchdog,
)

NAMES = ('j1', 'j2')
DT = 0.002  # 500 Hz


def make(mode: str = 'velocity', **safety: object) -> ResidualController:
    kw: dict = dict(
        state_timeout=0.02,
        reference_timeout=0.3,
        velocity_max=(1.0,),
        acceleration_max=(20.0,),
        stop_deceleration=(4.0,),
        position_min=(-2.0,),
        position_max=(2.0,),
        effort_max=(10.0,),
    )
    kw.update(safety)
    pid = PidConfig(kp=(10.0,)) if mode != 'effort' else PidConfig(kp=(100.0,), kd=(10.0,))
    cfg = ControllerConfig(joint_names=NAMES, output_mode=mode, pid=pid, safety=SafetyConfig(**kw))
    return ResidualController(cfg, gravity=lambda q: GRAVITY.copy())


def ramp_chunk(stamp: float, speed: float = 0.5) -> ActionChunk:
    t = 0.1 * np.arange(20)
    return ActionChunk(
        stamp=stamp, dt=0.1, joint_names=NAMES, targets=(speed * (stamp + t))[:, None] * [1, 1]
    )


GRAVITY = np.array([1.0, -1.0])


class Sim:
    """Ideal velocity/position servo, or a unit-inertia joint under effort and gravity."""

    def __init__(self, ctl: ResidualController) -> None:
        self.ctl = ctl
        self.q = np.zeros(2)
        self.v = np.zeros(2)

    def apply(self, cmd: ControlCommand) -> None:
        assert np.all(np.isfinite(cmd.values))
        if cmd.mode == 'velocity':
            self.v = cmd.velocity.copy()
            self.q = self.q + self.v * DT
        elif cmd.mode == 'position':
            self.v = (cmd.position - self.q) / DT
            self.q = cmd.position.copy()
        else:
            self.v = self.v + (cmd.values - GRAVITY) * DT
            self.q = self.q + self.v * DT


def track(
    ctl: ResidualController,
    sim: Sim,
    t0: float,
    t1: float,
    *,
    chunks: bool = True,
    states: bool = True,
) -> list[ControlCommand]:
    out = []
    last_state = JointSample(t0, sim.q.copy(), sim.v.copy())
    for k in range(round((t1 - t0) / DT)):
        t = t0 + k * DT
        if chunks and k % 50 == 0:  # a chunk every 100 ms, observed 60 ms ago
            ctl.push_chunk(ramp_chunk(t - 0.06), t)
        if states:
            last_state = JointSample(t, sim.q.copy(), sim.v.copy())
        cmd = ctl.update(t, DT, last_state)
        assert cmd is not None
        sim.apply(cmd)
        out.append(cmd)
    return out


def test_watchdog_unit_timing():
    wd = Watchdog(state_timeout=0.05, reference_timeout=0.2)
    assert not wd.check(1.0, 0.96, None).stale  # no chunk expected yet: reference cannot be stale
    assert wd.check(1.0, 0.94, None).state_stale
    s = wd.check(1.0, 0.99, 0.75)
    assert s.reference_stale and not s.state_stale
    assert math.isclose(s.reference_age, 0.25)
    assert wd.check(1.0, None, None).state_stale  # still the same trip
    assert wd.trips == 1
    assert not wd.check(2.0, 1.99, 1.99).stale
    assert wd.check(2.1, 2.0, 1.99).stale
    assert wd.trips == 2


@pytest.mark.parametrize('mode', ['velocity', 'position', 'effort'])
def test_joint_state_loss_stops_within_two_periods(mode: str):
    ctl = make(mode)
    sim = Sim(ctl)
    cmds = track(ctl, sim, 0.0, 1.0)
    assert cmds[-1].status == 'track'
    assert np.all(np.abs(sim.v) > 0.3)  # moving when the state source dies
    t_last = cmds[-1].t  # last fresh joint state stamp
    cmds = track(ctl, sim, 1.0, 2.0, states=False)
    t_trip = next(c.t for c in cmds if c.status == 'stop')
    deadline = t_last + 0.02
    assert deadline < t_trip <= deadline + 2 * DT
    assert ctl.metrics().watchdog_trips == 1
    stop = [c for c in cmds if c.t >= t_trip]
    assert all(c.status == 'stop' for c in stop)  # chunks keep coming, states do not
    if mode != 'effort':  # commanded speed ramps down at the stop deceleration, then zero
        speeds = np.array([np.max(np.abs(c.velocity)) for c in stop])
        assert np.all(np.diff(speeds) <= 1e-9)
        assert np.all(np.diff(speeds) >= -4.0 * DT - 1e-9)
        assert speeds[-1] == 0.0
    if mode == 'position':  # ...and then holds
        np.testing.assert_array_equal(stop[-1].position, stop[-100].position)


def test_reference_loss_stops_within_two_periods_then_recovers():
    ctl = make('velocity')
    sim = Sim(ctl)
    cmds = track(ctl, sim, 0.0, 1.0)
    t_chunk = max(c.t for c in cmds if round(c.t / DT) % 50 == 0)  # last chunk receipt
    cmds = track(ctl, sim, 1.0, 1.6, chunks=False)
    t_trip = next(c.t for c in cmds if c.status == 'stop')
    assert t_chunk + 0.3 < t_trip <= t_chunk + 0.3 + 2 * DT
    stopped = cmds[-1]
    # States are fresh: the PID holds the stop position (closed loop, so not exactly zero).
    assert stopped.status == 'stop' and np.all(np.abs(stopped.velocity) < 1e-3)
    assert np.all(np.abs(stopped.reference.velocity) == 0.0)
    # Chunks come back: auto-recovery splices in smoothly from the stop.
    cmds = track(ctl, sim, 1.6, 2.2)
    assert cmds[0].status != 'stop'
    assert cmds[-1].status == 'track'
    dv = np.abs(np.diff([c.velocity for c in cmds], axis=0))
    assert np.max(dv) <= 20.0 * DT + 1e-9  # acceleration limit holds through the recovery


def test_no_auto_recover_needs_reset():
    ctl = make('velocity', auto_recover=False)
    sim = Sim(ctl)
    track(ctl, sim, 0.0, 0.5)
    cmds = track(ctl, sim, 0.5, 0.7, states=False)
    assert cmds[-1].status == 'stop'
    cmds = track(ctl, sim, 0.7, 0.9)
    assert all(c.status == 'stop' for c in cmds)
    assert ctl.reset()
    cmds = track(ctl, sim, 0.9, 1.2)
    assert cmds[-1].status == 'track'


def test_estop_unit_latch():
    e = EStop()
    assert not e.latched and not e.reset()
    e.trigger('button')
    e.trigger('again')
    assert e.latched and e.reason == 'button' and e.count == 1
    assert e.reset()
    assert not e.latched


def check_decelerates(cmds: list[ControlCommand], mode: str, decel: float = 4.0) -> None:
    """Commands from a stop on: the commanded speed never grows, falls at most at ``decel`` and
    reaches zero at v0 / decel; in position mode the commanded position then holds."""
    if mode == 'position':
        v = np.diff([c.position for c in cmds], axis=0) / DT
    else:
        v = np.array([c.velocity for c in cmds])
    speed = np.abs(v)
    assert np.all(np.diff(speed, axis=0) <= 1e-9), 'speeding up during a stop'
    assert np.all(np.abs(np.diff(v, axis=0)) <= decel * DT + 1e-6), 'faster than the deceleration'
    rest = round(speed[0].max() / decel / DT) + 2
    assert rest < len(speed) and np.all(speed[rest:] < 1e-9), 'not at rest after v0 / decel'


@pytest.mark.parametrize('mode', ['velocity', 'position', 'effort'])
def test_estop_stays_latched_until_reset(mode: str):
    ctl = make(mode)
    sim = Sim(ctl)
    track(ctl, sim, 0.0, 0.6)
    ctl.estop('operator')
    cmds = track(ctl, sim, 0.6, 1.6)  # fresh states and chunks all along
    assert all(c.status == 'estop' for c in cmds)
    m = ctl.metrics()
    assert m.estop_latched and m.estop_reason == 'operator'
    if mode != 'effort':
        check_decelerates(cmds, mode)
    if mode == 'effort':  # gravity compensation + damping, within limits
        np.testing.assert_allclose(cmds[-1].effort, [1.0, -1.0], atol=1e-2)
    q_held = sim.q.copy()
    assert ctl.reset()
    cmds = track(ctl, sim, 1.6, 1.602, chunks=False)
    assert cmds[0].status == 'hold'  # waits for fresh chunks, from where it is
    np.testing.assert_allclose(cmds[0].reference.position, q_held, atol=1e-9)
    cmds = track(ctl, sim, 1.602, 2.5)
    assert cmds[-1].status == 'track'


class LaggingServo(Sim):
    """A position servo whose joints trail the command by a first-order lag (tau 50 ms): moving
    at 0.5 rad/s they are 25 mrad behind it, as real position-controlled joints are."""

    def apply(self, cmd: ControlCommand) -> None:
        if cmd.mode != 'position':
            return super().apply(cmd)
        q = self.q + (cmd.position - self.q) * (DT / 0.05)
        self.v, self.q = (q - self.q) / DT, q


@pytest.mark.parametrize('mode', ['velocity', 'position'])
def test_estop_decelerates_from_the_commanded_state(mode: str):
    # Not a step to the measured position (up to 0.17 rad behind the command on the robot), and
    # not a step to zero velocity: a stop at stop_deceleration from what was commanded.
    ctl = make(mode)
    sim = LaggingServo(ctl)
    before = track(ctl, sim, 0.0, 0.6)[-1]
    assert np.all(np.abs(before.velocity) > 0.3)
    if mode == 'position':
        assert np.all(before.position - sim.q > 0.02)  # the joints trail the command
    ctl.estop('operator')
    cmds = [before, *track(ctl, sim, 0.6, 1.2)]
    assert all(c.status == 'estop' for c in cmds[1:])
    check_decelerates(cmds, mode)


@pytest.mark.parametrize('mode', ['velocity', 'position', 'effort'])
def test_the_last_command_is_at_rest_where_a_stop_from_the_command_ends(mode: str):
    ctl = make(mode)
    sim = LaggingServo(ctl)
    before = track(ctl, sim, 0.0, 0.6)[-1]
    last = ctl.safe_stop(0.6)
    assert last is not None and last.status == 'estop'
    if mode == 'position':
        v = before.velocity
        stopping_point = before.position + v * np.abs(v) / (2 * 4.0)
        np.testing.assert_allclose(last.position, stopping_point, atol=2 * DT * np.abs(v).max())
        assert np.all(last.position > before.position)  # ahead of the command, never behind
    if mode == 'velocity':
        assert np.all(last.velocity == 0.0)
    if mode == 'effort':
        np.testing.assert_allclose(last.effort, GRAVITY)  # holds against gravity, no push


@pytest.mark.parametrize('mode', ['velocity', 'position', 'effort'])
def test_nan_and_inf_never_reach_the_actuators(mode: str):
    bad_residual = {'n': 0}

    def residual(features: np.ndarray) -> np.ndarray:
        bad_residual['n'] += 1
        return np.array([np.nan, np.inf]) if bad_residual['n'] % 3 == 0 else np.zeros(2)

    calls = {'n': 0}

    def gravity(q: np.ndarray) -> np.ndarray:
        calls['n'] += 1
        return np.array([np.nan, 0.0]) if calls['n'] % 5 == 0 else np.array([1.0, -1.0])

    cfg = ControllerConfig(
        joint_names=NAMES,
        output_mode=mode,
        residual=ResidualConfig(enabled=True, bound=(0.1,)),
        safety=SafetyConfig(state_timeout=0.02),
    )
    ctl = ResidualController(cfg, residual=residual, gravity=gravity)
    q = np.zeros(2)
    rng = np.random.default_rng(0)
    for k in range(300):
        t = k * DT
        if k % 50 == 0:
            ctl.push_chunk(ramp_chunk(t - 0.05), t)
        pos = q.copy()
        vel = np.zeros(2)
        if rng.uniform() < 0.2:
            pos[rng.integers(2)] = rng.choice([np.nan, np.inf, -np.inf])
        if rng.uniform() < 0.2:
            vel[rng.integers(2)] = np.nan
        cmd = ctl.update(t, DT if k % 17 else float('nan'), JointSample(t, pos, vel))
        if cmd is None:
            continue
        assert np.all(np.isfinite(cmd.values)), cmd
        assert np.all(np.isfinite(cmd.position)) and np.all(np.isfinite(cmd.velocity))
    m = ctl.metrics()
    assert m.rejected_states > 0
    assert m.residual_nonfinite > 0
    if mode == 'effort':
        assert m.nonfinite_commands > 0  # the NaN gravity was caught


def test_nan_chunks_cannot_be_built():
    with pytest.raises(ValueError):
        ActionChunk(stamp=0.0, dt=0.1, joint_names=NAMES, targets=[[np.nan, 0.0]])


def test_limits_hold_in_every_mode():
    for mode in ('velocity', 'position'):
        ctl = make(mode, velocity_max=(0.3,), acceleration_max=(2.0,), position_max=(0.4,))
        # The chunks run past the limit; let them in, the limiter must hold anyway.
        wide = ctl.config.tracker.replace(position_margin=10.0)
        ctl = ResidualController(ctl.config.replace(tracker=wide))
        sim = Sim(ctl)
        cmds = track(ctl, sim, 0.0, 2.0)  # the ramp asks for 0.5 rad/s up to 1 rad
        v = np.array([c.velocity for c in cmds])
        assert np.max(np.abs(v)) <= 0.3 + 1e-9
        # Braking for the position limit may exceed the acceleration limit by a fraction of one
        # step on the last approach ticks (position limits win); everywhere else it is exact.
        dv = np.max(np.abs(np.diff(v, axis=0)), axis=1)
        assert np.max(dv) <= 1.25 * 2.0 * DT
        assert np.mean(dv <= 2.0 * DT + 1e-9) > 0.99
        assert np.max(sim.q) <= 0.4 + 1e-5
        assert np.max(sim.q) > 0.39
    ctl = make('effort', effort_max=(3.0,))
    sim = Sim(ctl)
    cmds = track(ctl, sim, 0.0, 1.0)
    assert np.max(np.abs([c.effort for c in cmds])) <= 3.0


def test_a_chunk_beyond_the_position_limits_is_refused():
    # Refused, not clipped: such a chunk is a wrong one (units, a corrupt model or message), and
    # clipped it would be tracked along a path nobody planned. The arm keeps the chunk it had.
    ctl = make('position')
    sim = Sim(ctl)
    track(ctl, sim, 0.0, 0.5)
    margin = ctl.config.tracker.position_margin
    for bad in (1e9, 2.0 + 1.5 * margin, -2.0 - 1.5 * margin):
        targets = np.zeros((20, 2))
        targets[10, 1] = bad
        assert not ctl.push_chunk(ActionChunk(0.49, 0.1, NAMES, targets), 0.5)
    assert ctl.metrics().tracker.refused_position == 3
    near = np.full((20, 2), 2.0 + 0.5 * margin)  # a learned policy's scatter at a limit: clamped
    assert ctl.push_chunk(ActionChunk(0.495, 0.1, NAMES, near), 0.5)
    cmds = track(ctl, sim, 0.5, 3.0, chunks=False)
    assert max(np.max(c.position) for c in cmds) <= 2.0


def test_residual_switchable_and_bounded():
    cfg = ControllerConfig(
        joint_names=NAMES,
        output_mode='velocity',
        residual=ResidualConfig(enabled=False, bound=(0.05, 0.1)),
        safety=SafetyConfig(acceleration_max=(1e4,)),
    )
    ctl = ResidualController(cfg, residual=lambda f: np.array([1.0, -1.0]))
    s = JointSample(0.0, np.zeros(2), np.zeros(2))
    cmd = ctl.update(0.0, DT, s)
    assert cmd is not None and np.all(cmd.u_residual == 0.0)
    ctl.set_residual_enabled(True)
    cmd = ctl.update(DT, DT, JointSample(DT, np.zeros(2), np.zeros(2)))
    assert cmd is not None
    np.testing.assert_array_equal(cmd.u_residual, [0.05, -0.1])
    np.testing.assert_allclose(cmd.velocity, cmd.u_classic + cmd.u_residual)
    assert ctl.metrics().residual_enabled


def test_no_command_before_the_first_state_and_dof_checked():
    ctl = make('velocity')
    assert ctl.update(0.0, DT, None) is None
    assert ctl.update(0.0, DT, JointSample(0.0, np.zeros(3))) is None  # wrong size: rejected
    assert ctl.metrics().rejected_states == 1
    cmd = ctl.update(DT, DT, JointSample(DT, np.zeros(2)))  # velocity omitted: differentiated
    assert cmd is not None and cmd.status == 'hold'


def test_clock_watchdog_runs_a_stalled_clock_on_and_flags_its_restart():
    from vla_core.control import ClockWatchdog

    clock = ClockWatchdog(timeout=0.5)
    assert clock.tick(0.0, 10.0, 0.01) is None  # no /clock yet
    first = clock.tick(100.0, 10.0, 0.01)
    assert (first.t, first.stalled, first.restarted) == (100.0, 0.0, False)
    assert clock.tick(100.0, 10.9, 0.01) is None  # a starting simulator's pause: not watched yet
    clock = ClockWatchdog(timeout=0.5)
    clock.tick(100.0, 10.0, 0.01)
    assert clock.tick(100.0, 10.2, 0.01) is None  # paused briefly: no tick, nothing integrates
    tick = clock.tick(100.01, 10.3, 0.01)
    assert abs(tick.t - 100.01) < 1e-12 and abs(tick.dt - 0.01) < 1e-12
    assert clock.tick(100.01, 10.8, 0.01) is None  # 0.5 s: not yet past the timeout
    stalled = clock.tick(100.01, 10.81, 0.01)  # the simulator died: time runs on the wall clock
    assert stalled.stalled > 0.5 and abs(stalled.t - (100.01 + 0.51)) < 1e-9
    assert stalled.dt == 0.01  # the loop's period: nothing was commanded while it waited
    later = clock.tick(100.01, 10.9, 0.01)
    assert abs(later.t - 100.61) < 1e-9 and abs(later.dt - 0.09) < 1e-9
    back = clock.tick(50.0, 11.0, 0.01)  # a new simulation: its own time line
    assert back.restarted and back.t == 50.0 and back.stalled == 0.0
    assert clock.tick(50.0, 11.9, 0.01) is None  # watched again once it advances
    assert not clock.tick(50.01, 11.91, 0.01).restarted
    jumped = clock.tick(40.0, 11.02, 0.01)  # back in time without a stall: restarted too
    assert jumped.restarted and jumped.t == 40.0


@pytest.mark.parametrize('mode', ['velocity', 'position'])
def test_a_stalled_clock_stops_from_the_command_and_a_restarted_one_starts_over(mode: str):
    ctl = make(mode, state_timeout=5.0)  # the last state still looks fresh: nothing measures now
    sim = Sim(ctl)
    before = track(ctl, sim, 0.0, 0.6)[-1]
    # The simulator died: no joint states, the node ticks on the wall clock, flagged stalled.
    cmds = [before]
    for k in range(1, 400):
        t = before.t + 0.5 + k * DT
        cmd = ctl.update(t, DT, JointSample(before.t, sim.q.copy()), clock_stalled=True)
        assert cmd is not None
        cmds.append(cmd)
    assert all(c.status == 'stop' for c in cmds[1:])
    assert ctl.metrics().clock_stalled
    check_decelerates(cmds, mode)  # open loop from the command, to rest
    # A new simulation, time from 0 again: stamps of the old time line are forgotten.
    ctl.restart_time()
    assert ctl.update(0.0, DT, None) is None  # waits for a joint state of the new time line
    sim.q = np.array([0.3, -0.3])
    cmds = track(ctl, sim, 0.01, 0.8)
    assert cmds[0].status == 'hold' and cmds[-1].status == 'track'
    np.testing.assert_allclose(cmds[0].reference.position, [0.3, -0.3])
    assert not ctl.metrics().clock_stalled

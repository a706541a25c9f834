"""The fault contracts of docs/faults.md, each injected into a running graph and observed.

Each case injects one fault and returns an :class:`Outcome` (fault, expected, observed, figure,
ok); test/test_faults.py asserts every one, bench/bench_faults.py prints them as a table. Timing
is judged on message stamps and control ticks (the stop at the first tick past its timeout), never
on wall-clock thresholds.
"""

from __future__ import annotations

from collections.abc import Callable

from fault_graphs import CONTROLLER, JOINTS, POLICY, Checks, Outcome, Report, Rig, wait_for
import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool

from vla_core.chunk import ActionChunk
from vla_interfaces.msg import ActionChunk as ActionChunkMsg
from vla_ros_common import qos
from vla_ros_common.conversions import chunk_to_msg, seconds_to_stamp, stamp_to_seconds
from vla_ros_common.image import numpy_to_image

CAMERAS = ('scene_camera', 'wrist_camera')
# From config/controller.yaml (the graphs' controller): what the contracts are measured against.
CLOCK_TIMEOUT = 1.0
REFERENCE_TIMEOUT = 0.5
LOOP_PERIOD = 1.0 / 200.0  # the graphs run the loop at 200 Hz (wall clock)
V_MAX = np.array([2.0, 2.0, 2.5, 3.0, 3.0, 3.0, 0.2])
STOP_DECEL = np.array([5.0, 5.0, 5.0, 8.0, 8.0, 8.0, 0.5])
Q_MIN = np.array([-2.96, -1.91, -2.61, -2.96, -2.96, -3.05, 0.0])
Q_MAX = np.array([2.96, 1.91, 2.61, 2.96, 2.96, 3.05, 0.04])


def _chunk(rig: Rig, stamp: float, targets: np.ndarray, dt: float = 0.05) -> ActionChunkMsg:
    return chunk_to_msg(ActionChunk(stamp, dt, JOINTS, targets, source='fault', sequence=0))


def _hold(rig: Rig, horizon: int) -> np.ndarray:
    """Targets holding the commanded position (a valid chunk, whatever else is wrong)."""
    return np.tile(rig.probe.get_commands()[-1].position, (horizon, 1))


def _refused(rig: Rig, key: str, msg: ActionChunkMsg) -> tuple[Checks, str, str]:
    """Publish ``msg``; the controller must refuse and count it (``key``), and go on tracking."""
    c = Checks()
    before = rig.fresh_report()
    c(before is not None, 'no controller report')
    if before is None:
        return c, 'graph not running', ''
    pub = rig.publisher(ActionChunkMsg, rig.chunk_topic, qos.ACTION_CHUNK)
    mark = rig.probe.mark()
    counted = wait_for(  # sent again until counted: the first sample after discovery may be lost
        lambda: (
            pub.publish(msg)
            or (
                (r := rig.probe.latest(CONTROLLER, mark)) and r.count(key) > before.count(key) and r
            )
        ),
        period=0.5,
    )
    if not c(counted, f'{key} not counted'):
        last = rig.probe.latest()
        seen = {k: v for k, v in last.values.items() if k.startswith('chunks')} if last else {}
        return c, f'not refused; the controller reports {seen}', ''
    later = wait_for(
        lambda: (
            (r := rig.probe.latest(CONTROLLER, rig.probe.mark() - 1))
            and r.count('chunks_accepted') >= counted.count('chunks_accepted') + 2
            and r
        )
    )
    c(later and later.values['status'] == 'track', 'not tracking the next chunks')
    accepted = later.count('chunks_accepted') - before.count('chunks_accepted') if later else 0
    observed = f'refused, {key}={counted.count(key)}; {counted.values["last_chunk_refusal"][:60]}'
    return (
        c,
        observed,
        f'{accepted} later chunks accepted, status {later and later.values["status"]}',
    )


# --- chunks the controller must refuse -----------------------------------------------------------


def future_stamped_chunk(rig: Rig) -> Outcome:
    msg = _chunk(rig, rig.probe.sim_now() + 1e5, _hold(rig, 10))
    c, observed, figure = _refused(rig, 'chunks_refused_future', msg)
    return c.outcome(
        'chunk stamped now + 1e5 s', 'refused, counted (max_future_stamp 1 s); tracking goes on',
        observed, figure,
    )  # fmt: skip


def oversized_horizon(rig: Rig) -> Outcome:
    t0 = rig.probe.sim_now()
    msg = _chunk(rig, t0, _hold(rig, 3000), dt=0.001)
    c, observed, figure = _refused(rig, 'chunks_refused_horizon', msg)
    stamps = np.array([cmd.t for cmd in rig.probe.get_commands(after=t0 - 1.0)])
    gap = float(np.max(np.diff(stamps))) if stamps.size > 1 else np.inf
    c(gap < 1.0, f'joint_commands paused {gap:.3f} s')  # the fit stalled them 3.1 s
    return c.outcome(
        'chunk of 3000 targets', 'refused, counted (max_horizon 128); commands never pause',
        observed, f'{figure}; largest command gap {1e3 * gap:.0f} ms (sim time)',
    )  # fmt: skip


def targets_beyond_limits(rig: Rig) -> Outcome:
    t0 = rig.probe.sim_now()
    targets = _hold(rig, 10)
    targets[:, 5] = 1e9
    c, observed, figure = _refused(rig, 'chunks_refused_position', _chunk(rig, t0, targets))
    cmds = np.array([cmd.position for cmd in rig.probe.get_commands(after=t0)])
    c(cmds.size and np.all((cmds >= Q_MIN - 1e-9) & (cmds <= Q_MAX + 1e-9)), 'beyond the limits')
    return c.outcome(
        'chunk with a 1e9 rad target', 'refused, counted (position limits + 0.05 rad margin)',
        observed, figure,
    )  # fmt: skip


def _lockout_attempt(rig: Rig, c: Checks) -> tuple[float, float, Report | None, Report, int] | None:
    """Lock the chunk source out with a chunk 0.9 s ahead, reset: (its stamp, the restart
    tick, the first report that counts an accepted chunk, the lock-out report, the report
    bookmark of the reset), None if that failed."""
    key = 'chunks_refused_out_of_order'
    pub = rig.publisher(ActionChunkMsg, rig.chunk_topic, qos.ACTION_CHUNK)
    before = rig.fresh_report()
    ahead = rig.probe.sim_now() + 0.9
    pub.publish(_chunk(rig, ahead, _hold(rig, 60)))
    locked = wait_for(lambda: (r := rig.probe.latest()) and r.count(key) > before.count(key) and r)
    if not c(locked, 'the later chunks were not ordered out (no lock-out to release)'):
        return None
    mark = rig.probe.mark()
    if not c(rig.reset(), 'control/reset failed'):
        return None
    restart = wait_for(lambda: rig.probe.events('hold', mark))
    if not c(restart, 'no restart tick after the reset'):
        return None
    accepted = wait_for(
        lambda: [
            r for r in rig.probe.get_reports(CONTROLLER, mark)
            if r.periodic and r.count('chunks_accepted') > locked.count('chunks_accepted')
        ][:1]
    )  # fmt: skip
    return ahead, restart[0].stamp, accepted[0] if accepted else None, locked, mark


def reset_releases_a_lockout(rig: Rig) -> Outcome:
    """A chunk stamped 0.9 s ahead (inside the limit) orders every chunk before it out; a reset
    must forget it: the source's next chunks are accepted at once, before that stamp. Judged on
    the controller's own stamps: its restart tick (the 'hold' event) and its reports; a loaded
    machine whose reset lands too close to the stamp to tell is tried again."""
    c = Checks()
    fault, expected = 'control/reset after a lock-out', 'the reset forgets the newest stamp'
    for attempt in range(1, 6):
        result = _lockout_attempt(rig, c)
        if result is None:
            break
        ahead, t_reset, accepted, locked, mark = result
        if ahead - t_reset < 0.4:  # too close to the stamp for the source's next chunk: again
            continue
        c(accepted and accepted.stamp < ahead, 'nothing accepted until the lock-out expired')
        c(rig.tracking(mark), 'not tracking after the reset')
        lead = f'{ahead - accepted.stamp:.2f}' if accepted else '-'
        return c.outcome(
            fault, f'{expected}; tracking resumes',
            f'accepted again {lead} s before the lock-out would have ended',
            f'attempt {attempt}; out of order {locked.count("chunks_refused_out_of_order")}',
        )  # fmt: skip
    c(not c.failed and False, 'no attempt could tell (each reset within 0.4 s of the stamp)')
    return c.outcome(fault, expected, 'undecided', '')


# --- the e-stop ----------------------------------------------------------------------------------


def _speeds(cmds: list) -> tuple[np.ndarray, np.ndarray]:
    t = np.array([cmd.t for cmd in cmds])
    p = np.array([cmd.position for cmd in cmds])
    return t[1:], np.abs(np.diff(p, axis=0)) / np.diff(t)[:, None]


def _decelerates(c: Checks, rig: Rig, t_stop: float) -> str:
    """Commands from the tick before ``t_stop``: no step, never faster, at rest after v0/decel."""
    wait_for(lambda: rig.probe.get_commands(after=t_stop + 0.8))
    cmds = [cmd for cmd in rig.probe.get_commands(after=t_stop - 0.05)]
    t, v = _speeds(cmds)
    at = t >= t_stop - 1e-9
    c(np.all(v[at] <= V_MAX * 1.01 + 1e-6), 'a step in the commanded position at the stop')
    c(np.all(np.diff(v[at], axis=0) <= 1e-6), 'speeding up during the stop')
    bound = float(np.max(V_MAX / STOP_DECEL))
    rest = t > t_stop + bound + 0.05
    c(rest.any() and np.all(v[rest] < 1e-6), 'not at rest after v_max / deceleration')
    if not at.any():
        return ''
    moving = t[at][np.max(v[at], axis=1) >= 1e-6]
    t_rest = (moving[-1] if moving.size else t_stop) - t_stop
    v0 = float(np.max(v[at][0]))
    return f'{v0:.2f} rad/s at the stop, at rest {1e3 * t_rest:.0f} ms later (<= {bound:.1f} s)'


def estop_best_effort(rig: Rig) -> Outcome:
    c = Checks()
    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    button = rig.publisher(Bool, 'estop', best_effort)
    mark = rig.probe.mark()
    sent = rig.probe.sim_now()
    latched = wait_for(lambda: button.publish(Bool(data=True)) or rig.probe.events('estop', mark))
    c(latched, 'the e-stop from a best-effort publisher was ignored')
    if not latched:
        return c.outcome('e-stop, best-effort publisher', 'latched', 'ignored', '')
    event = latched[0]
    c(event.level == 2 and 'estop topic' in event.message, 'e-stop not diagnosed')
    figure = _decelerates(c, rig, event.stamp)
    button.publish(Bool(data=False))
    wait_for(
        lambda: rig.probe.latest() and rig.probe.latest().values['estop_input_asserted'] == 'False'
    )
    mark = rig.probe.mark()
    c(rig.reset(), 'control/reset refused')
    c(rig.tracking(mark), 'not tracking after the reset')
    return c.outcome(
        'e-stop from a best-effort publisher',
        'latched, ERROR; decelerates from the commanded state; reset resumes',
        f'latched {1e3 * (event.stamp - sent):.0f} ms after the first publish (sim time)', figure,
    )  # fmt: skip


def _settled_commands(rig: Rig, quiet: float = 1.0) -> list:
    """The commands once no new one has come for ``quiet`` seconds (all delivered)."""
    counts = [-1]

    def settled() -> bool:
        counts.append(len(rig.probe.get_commands()))
        return counts[-1] == counts[-2]

    wait_for(settled, period=quiet)
    return rig.probe.get_commands()


def shutdown_safe_stop(rig: Rig) -> Outcome:
    """Ctrl-C of the controller: its last command is at rest where a stop from the commanded
    state ends, never a step back to the measured position."""
    c = Checks()
    code = rig.graph.interrupt('control')
    c(code == 0, f'exit code {code}')
    cmds = _settled_commands(rig)
    c(len(cmds) >= 3, 'no commands')
    prev2, prev, last = cmds[-3:]
    step = last.position - prev.position
    if prev.t - prev2.t > 0.05:
        # The executor stops before the node is destroyed; on a loaded machine that took longer
        # than clock_timeout, /clock was no longer read and the loop had begun its stop on the
        # wall clock, whose first tick's rate the stamps do not show.
        c(np.all(np.abs(step) <= V_MAX * 0.05), 'a step at the last command')
        figure = 'the loop was already stopping on the wall clock'
    else:
        v = (prev.position - prev2.position) / (prev.t - prev2.t)
        stopping = np.clip(prev.position + v * np.abs(v) / (2 * STOP_DECEL), Q_MIN, Q_MAX)
        c(np.all(step * np.sign(v) >= -1e-6), 'the last command steps back')
        c(
            np.allclose(last.position, stopping, atol=1e-3),
            f'not where a stop from it ends: ticks {prev.t - prev2.t:.4f} s, '
            f'{last.t - prev.t:.4f} s apart, v {np.round(v, 3)}, step {np.round(step, 4)}',
        )
        figure = (
            f'last step {1e3 * float(np.max(np.abs(step))):.2f} mrad at '
            f'{float(np.max(np.abs(v))):.3f} rad/s'
        )
    recovered = _recovers(c, rig, 'control')
    return c.outcome(
        'Ctrl-C of the controller', 'last command at rest where a stop from the command ends',
        f'exit {code}; {recovered}', figure,
    )  # fmt: skip


# --- bad inputs to the policy --------------------------------------------------------------------


def _observation(rig: Rig, size: tuple[int, int], position: float | None) -> None:
    """Both cameras and a joint state stamped together just after the newest simulated time:
    the newest complete observation the policy sees."""
    stamp = rig.probe.sim_now() + 0.02
    pixels = np.random.default_rng(0).integers(0, 255, (*size, 3), np.uint8)
    for cam in CAMERAS:
        pub = rig.publisher(Image, f'camera/{cam}/image_raw', qos.SENSOR_OUT)
        pub.publish(numpy_to_image(pixels, 'rgb8', stamp=seconds_to_stamp(stamp)))
    with rig.probe.lock:
        state = rig.probe.states[-1]
    q = list(state.position) if position is None else [position] * len(state.position)
    msg = JointState(name=list(state.name), position=q)
    msg.header.stamp = seconds_to_stamp(stamp)
    rig.publisher(JointState, 'joint_states', qos.SENSOR_OUT).publish(msg)


def _policy_refuses(rig: Rig, fault: str, size: tuple[int, int], position, reason: str) -> Outcome:
    c = Checks()
    key = f'refused: {reason}'
    # Sent 20 times a second until refused: the worker takes the newest complete observation
    # when it wakes, and on a loaded machine the sim's next frames may have come in first.
    counted = wait_for(
        lambda: (
            _observation(rig, size, position)
            or ((r := rig.probe.latest(POLICY)) and key in r.values and r)
        ),
        period=0.05,
    )
    c(counted, f'not refused as "{reason}"')
    n = rig.probe.chunk_count()  # a chunk or two may still have been on their way
    after = wait_for(lambda: rig.probe.chunk_count() >= n + 5 and rig.probe.chunk_count() - n)
    c(after, 'no chunks after it: the inference thread died')
    report = rig.fresh_report(POLICY)
    c(report and report.level != 2, 'policy diagnostics ERROR while producing chunks')
    return c.outcome(
        fault, 'refused with the reason, counted; inference goes on',
        f'"{reason}" x{counted.values[key] if counted else 0}', f'{after or 0} chunks after',
    )  # fmt: skip


def nan_joint_state(rig: Rig) -> Outcome:
    return _policy_refuses(rig, 'NaN joint state to the policy', (48, 64), np.nan,
                           'joint state has NaN or Inf')  # fmt: skip


def empty_image(rig: Rig) -> Outcome:
    return _policy_refuses(rig, '0x0 camera image to the policy', (0, 0), None, 'camera image')


# --- kill -9 of a process group, and its restart --------------------------------------------------


def _first_tick_past(
    c: Checks, rig: Rig, stop: Report, deadline: float, late_ok: float | None = None
) -> str:
    """The stop came at the first control tick past ``deadline``: no tick between (a tick is a
    command), never before it, and at most ``late_ok`` after it (default: two 10 ms ticks of
    simulated time, unless the tick itself came late: a starved process ticks when it runs)."""
    before = [cmd.t for cmd in rig.probe.get_commands() if cmd.t < stop.stamp - 1e-9]
    prev = max(before) if before else -np.inf
    c(prev <= deadline + 1e-4, 'a tick past the timeout did not stop')
    c(stop.stamp > deadline - 1e-4, 'stopped before the timeout')
    late = stop.stamp - deadline
    late_ok = max(2 * 0.01, stop.stamp - prev) if late_ok is None else late_ok
    c(late <= late_ok + 1e-4, f'stopped {late:.3f} s past the timeout')
    return f'stop {1e3 * late:.1f} ms past the timeout (first tick after it)'


def _joints_resting(rig: Rig, after: float) -> float | None:
    """The stamp from which 20 joint states after ``after`` in a row are at rest (< 0.02
    rad/s; the simulator teleports the arm at an episode reset, so not every state is), once
    there are."""
    with rig.probe.lock:
        states = [s for s in rig.probe.states if stamp_to_seconds(s.header.stamp) > after]
    still = [bool(np.all(np.abs(s.velocity) < 0.02)) for s in states]
    for i in range(len(still) - 19):
        if all(still[i : i + 20]):
            return stamp_to_seconds(states[i].header.stamp)
    return None


def _at_rest(c: Checks, rig: Rig, t_stop: float) -> str:
    """Closed-loop stop (fresh joint states): no command beyond the speed limit; the joints
    measured at rest 1 s after the stop."""
    rest = wait_for(lambda: _joints_resting(rig, t_stop + 1.0))
    _, v = _speeds(rig.probe.get_commands(after=t_stop - 0.05))
    c(np.all(v <= V_MAX * 1.01 + 1e-6), 'a command step at the stop')
    c(rest, 'the joints did not come to rest after the stop')
    return f'joints at rest {rest - t_stop:.1f} s after the stop' if rest else '-'


def _recovers(c: Checks, rig: Rig, group: str) -> str:
    mark, _ = rig.restart(group)
    c(rig.tracking(mark), f'not tracking again after {group} restarted')
    return f'{group} restarted: tracking'


def kill_sim(rig: Rig) -> Outcome:
    """/clock stops with the simulator: the controller ticks on the wall clock and stops."""
    c = Checks()
    before = rig.fresh_report()
    mark = rig.probe.mark()
    rig.graph.kill('sim')
    found = wait_for(lambda: [e for e in rig.probe.events('stop', mark) if '/clock' in e.message])
    c(found, 'no stop saying /clock stalled')
    if not found or before is None:
        return c.outcome('kill -9 sim', 'stop on the wall clock', 'silent', '')
    stop = found[0]
    c(stop.level == 2, 'not ERROR')
    frozen = max(cmd.t for cmd in rig.probe.get_commands() if cmd.t < stop.stamp - 1e-9)
    after = rig.fresh_report()
    skipped = after.count('skipped_deadlines') - before.count('skipped_deadlines') if after else 0
    timing = _first_tick_past(c, rig, stop, frozen + CLOCK_TIMEOUT, (2 + skipped) * LOOP_PERIOD)
    figure = _decelerates(c, rig, stop.stamp)
    if rig.graph.name == 'deploy':  # the policy waits for frames: no error of its own
        wait_for(lambda: (r := rig.probe.latest(POLICY)) and 'no camera frame' in r.message)
        report = rig.fresh_report(POLICY)
        c(report and report.level == 1, 'policy not waiting for frames (WARN)')
    recovered = _recovers(c, rig, 'sim')
    return c.outcome(
        f'kill -9 sim ({rig.graph.name})',
        f'ERROR "/clock stalled", stop at the first tick past clock_timeout {CLOCK_TIMEOUT} s; '
        'decelerates; restarts on the new time line',
        f'{stop.message[:48]}...; {recovered}', f'{timing}, {skipped} loop deadlines skipped; '
        f'{figure}',
    )  # fmt: skip


def kill_policy(rig: Rig) -> Outcome:
    c = Checks()
    mark = rig.probe.mark()
    rig.graph.kill('policy')
    last_chunk = max(rig.probe.chunks, default=np.nan)
    found = wait_for(
        lambda: [e for e in rig.probe.events('stop', mark) if 'reference' in e.message]
    )
    c(found, 'no stop for the stale reference')
    if not found:
        return c.outcome('kill -9 policy', 'stop', 'no stop', '')
    stop = found[0]
    receipt = stop.stamp - float(stop.values['reference_age'])
    c(receipt >= last_chunk - 1e-3, 'stopped for an older chunk')
    timing = _first_tick_past(c, rig, stop, receipt + REFERENCE_TIMEOUT)
    figure = _at_rest(c, rig, stop.stamp)
    recovered = _recovers(c, rig, 'policy')
    return c.outcome(
        'kill -9 policy', f'WARN "reference stale", stop at the first tick past '
        f'reference_timeout {REFERENCE_TIMEOUT} s; restarted: tracking',
        f'{stop.message[:40]}...; {recovered}', f'{timing}; {figure}',
    )  # fmt: skip


def kill_control(rig: Rig) -> Outcome:
    """The controller dies: the sim holds the last command, so the arm comes to rest."""
    c = Checks()
    rig.graph.kill('control')
    t_kill = rig.probe.sim_now()
    rest = wait_for(lambda: _joints_resting(rig, t_kill))
    c(rest, 'the arm did not come to rest')
    recovered = _recovers(c, rig, 'control')
    return c.outcome(
        f'kill -9 control ({rig.graph.name})',
        'the sim holds the last command, the arm comes to rest; restarted: tracking',
        recovered, f'at rest {rest - t_kill:.2f} s after the kill (sim time)' if rest else '-',
    )  # fmt: skip


def kill_infra(rig: Rig) -> Outcome:
    """The graph monitor dies: the control loop goes on (on a loaded machine a starved tick may
    still stop the arm for a moment, as it would without the kill)."""
    c = Checks()
    rig.graph.kill('infra')
    t0 = rig.probe.sim_now()
    wait_for(lambda: rig.probe.sim_now() > t0 + 2.0)
    stamps = np.array([cmd.t for cmd in rig.probe.get_commands(after=t0)])
    c(stamps.size > 10, 'joint_commands stopped without the monitor')
    report = rig.fresh_report()
    c(report and report.values['status'] == 'track', 'not tracking without the monitor')
    c(report and report.count('loop_errors') == 0, 'control loop errors')
    gap = float(np.max(np.diff(stamps))) if stamps.size > 1 else np.inf
    mark = rig.probe.mark()
    rig.graph.start('infra')
    monitor = wait_for(
        lambda: any(r.name.startswith('graph_monitor:') for r in rig.probe.reports[mark:])
    )
    c(monitor, 'graph_monitor did not report after its restart')
    return c.outcome(
        f'kill -9 infra ({rig.graph.name})', 'the control loop goes on; restarted: reports',
        f'{stamps.size} commands in 2 s, tracking; monitor back',
        f'largest command gap {1e3 * gap:.0f} ms (sim time)',
    )  # fmt: skip


# (graph, case) in the order they run: refusals first, then each process group killed.
DEMO_CASES: tuple[Callable[[Rig], Outcome], ...] = (
    future_stamped_chunk, reset_releases_a_lockout, oversized_horizon, targets_beyond_limits,
    estop_best_effort, shutdown_safe_stop, kill_infra, kill_control, kill_sim,
)  # fmt: skip
DEPLOY_CASES: tuple[Callable[[Rig], Outcome], ...] = (
    nan_joint_state, empty_image, kill_policy, kill_infra, kill_control, kill_sim,
)  # fmt: skip

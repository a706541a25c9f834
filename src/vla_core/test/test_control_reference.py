"""Chunk tracking: lookup by time, splice continuity, expired-chunk refusal, ensembling, metrics."""

from __future__ import annotations

import numpy as np
import pytest

from vla_core.chunk import ActionChunk
from vla_core.control import ChunkTracker, TrackerConfig

NAMES = ('a', 'b', 'c')
DT_CTRL = 1e-3  # 1 kHz control


def plan(t: np.ndarray, offset: float) -> np.ndarray:
    """What a policy might plan: a slow motion, each chunk with its own offset (disagreement)."""
    base = 0.4 * np.sin(0.8 * t[:, None] + np.array([0.0, 1.0, 2.0]))
    return base + offset


def stream(
    tracker: ChunkTracker,
    *,
    period: float = 0.2,
    latency: float = 0.12,
    duration: float = 2.0,
    seed: int = 0,
    horizon: int = 20,
    step: float = 0.05,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feed a latency-delayed chunk stream; returns times, positions, velocities per tick."""
    rng = np.random.default_rng(seed)
    arrivals = []
    t_obs = 0.0
    while t_obs < duration:
        lat = latency + rng.uniform(-0.03, 0.03)
        arrivals.append((t_obs + lat, t_obs, rng.uniform(-0.05, 0.05)))
        t_obs += period
    ts, ps, vs, accs = [], [], [], []
    k = 0
    tracker.reset_hold(plan(np.zeros(1), 0.0)[0], 0.0)
    for i in range(int(duration / DT_CTRL)):
        t = i * DT_CTRL
        while k < len(arrivals) and arrivals[k][0] <= t:
            _, stamp, off = arrivals[k]
            times = stamp + step * np.arange(horizon)
            chunk = ActionChunk(stamp=stamp, dt=step, joint_names=NAMES, targets=plan(times, off))
            assert tracker.push(chunk, t)
            k += 1
        ref = tracker.update(t)
        ts.append(t)
        ps.append(ref.position)
        vs.append(ref.velocity)
        accs.append(ref.acceleration)
    stream.accelerations = np.array(accs)  # type: ignore[attr-defined]
    return np.array(ts), np.array(ps), np.array(vs)


def max_jump(ts: np.ndarray, ps: np.ndarray, vs: np.ndarray) -> float:
    """Largest departure of a tick's position from the previous tick's first-order prediction."""
    h = np.diff(ts)[:, None]
    return float(np.max(np.abs(ps[1:] - ps[:-1] - vs[:-1] * h)))


def test_lookup_by_time_interpolates_and_hits_knots():
    tracker = ChunkTracker(TrackerConfig(blend_time=0.0), NAMES)
    times = 10.0 + 0.1 * np.arange(12)
    targets = plan(times, 0.0)
    chunk = ActionChunk(stamp=10.0, dt=0.1, joint_names=NAMES, targets=targets)
    assert tracker.push(chunk, 10.05)
    ref = tracker.update(10.3)  # latency compensated: looked up at the tick's time
    np.testing.assert_allclose(ref.position, targets[3], atol=1e-12)
    # Between knots the spline follows the smooth plan closely, velocity included.
    ref = tracker.update(10.55)
    np.testing.assert_allclose(ref.position, plan(np.array([10.55]), 0.0)[0], atol=2e-4)
    v_true = 0.4 * 0.8 * np.cos(0.8 * 10.55 + np.array([0.0, 1.0, 2.0]))
    np.testing.assert_allclose(ref.velocity, v_true, atol=5e-3)
    assert ref.chunk_stamp == 10.0


def test_spline_is_c2_across_knots():
    tracker = ChunkTracker(TrackerConfig(blend_time=0.0), NAMES)
    rng = np.random.default_rng(1)
    chunk = ActionChunk(stamp=0.0, dt=0.1, joint_names=NAMES, targets=rng.normal(size=(10, 3)))
    tracker.push(chunk, 0.0)
    tracker.update(0.0)
    eps = 1e-8
    for knot in (0.3, 0.5, 0.8):
        p0, v0, a0 = tracker.preview(np.array([knot - eps]))
        p1, v1, a1 = tracker.preview(np.array([knot + eps]))
        # Differences of O(eps * next derivative) only; a kink would be O(1).
        np.testing.assert_allclose(p0, p1, atol=1e-6)
        np.testing.assert_allclose(v0, v1, atol=1e-4)
        np.testing.assert_allclose(a0, a1, atol=1e-2)


def test_splice_continuity_with_latency():
    """No jump above 1e-3 rad on a latency-delayed stream whose chunks disagree by up to 0.1."""
    tracker = ChunkTracker(TrackerConfig(blend_time=0.15), NAMES)
    ts, ps, vs = stream(tracker)
    m = tracker.metrics
    assert m.splices >= 9
    assert m.max_seam_gap > 0.02  # the chunks really disagree at the seams
    assert max_jump(ts, ps, vs) < 1e-3
    # Velocity continuous too: each tick's velocity follows from the previous acceleration.
    acc = stream.accelerations  # type: ignore[attr-defined]
    assert float(np.max(np.abs(vs[1:] - vs[:-1] - acc[:-1] * DT_CTRL))) < 5e-3
    assert m.max_splice_jump < 1e-3
    assert np.isfinite(m.rms_jerk) and m.rms_jerk > 0.0


def test_without_blend_the_same_stream_jumps():
    """Sanity check of the measure: an unblended hand-off (LeRobot-style) jumps at seams."""
    tracker = ChunkTracker(TrackerConfig(blend_time=0.0), NAMES)
    ts, ps, vs = stream(tracker)
    assert max_jump(ts, ps, vs) > 1e-2
    assert tracker.metrics.max_splice_jump > 1e-2


def test_splice_during_a_blend_is_continuous():
    """Chunks every 50 ms with a 150 ms window: blends nest, still no jump."""
    tracker = ChunkTracker(TrackerConfig(blend_time=0.15), NAMES)
    ts, ps, vs = stream(tracker, period=0.05, latency=0.04, duration=1.5)
    assert tracker.metrics.splices > 20
    assert max_jump(ts, ps, vs) < 1e-3


def test_ensemble_mode_is_continuous():
    cfg = TrackerConfig(mode='ensemble', blend_time=0.1, ensemble_decay=2.0, ensemble_max_chunks=4)
    tracker = ChunkTracker(cfg, NAMES)
    ts, ps, vs = stream(tracker, period=0.1, duration=1.0)
    assert max_jump(ts, ps, vs) < 1e-3
    # The average of disagreeing chunks sits between them: error vs. the common plan stays
    # within the offsets' range.
    err = ps[500:] - plan(ts[500:], 0.0)
    assert float(np.max(np.abs(err))) < 0.05


def test_expired_chunk_refused_and_counted():
    tracker = ChunkTracker(TrackerConfig(), NAMES)
    tracker.reset_hold(np.zeros(3), 0.0)
    late = ActionChunk(stamp=1.0, dt=0.1, joint_names=NAMES, targets=np.ones((5, 3)))
    assert not tracker.push(late, 1.41)  # last target at 1.4: fully passed
    assert tracker.metrics.refused_expired == 1
    assert tracker.last_receipt is None
    assert tracker.push(late, 1.39)  # a chunk with time left is fine, even if mostly past
    # ...but if it expires while queued, activation refuses it too.
    ref = tracker.update(1.5)
    assert tracker.metrics.refused_expired == 2
    np.testing.assert_array_equal(ref.position, np.zeros(3))  # still holding
    assert np.isnan(ref.chunk_stamp)


def test_out_of_order_and_wrong_joints_refused():
    tracker = ChunkTracker(TrackerConfig(), NAMES)
    tracker.reset_hold(np.zeros(3), 0.0)
    new = ActionChunk(stamp=1.0, dt=0.1, joint_names=NAMES, targets=np.ones((5, 3)))
    old = ActionChunk(stamp=0.9, dt=0.1, joint_names=NAMES, targets=np.ones((5, 3)))
    assert tracker.push(new, 1.0)
    assert not tracker.push(old, 1.0)
    other = ActionChunk(stamp=1.1, dt=0.1, joint_names=('a', 'b', 'x'), targets=np.ones((5, 3)))
    assert not tracker.push(other, 1.0)
    # A permutation of the right joints is reordered, not refused.
    perm = ActionChunk(
        stamp=1.2, dt=0.1, joint_names=('c', 'a', 'b'), targets=np.tile([3.0, 1.0, 2.0], (5, 1))
    )
    assert tracker.push(perm, 1.2)
    tracker.update(1.2)
    m = tracker.metrics
    assert (m.accepted, m.refused_out_of_order, m.refused_invalid) == (2, 1, 1)
    np.testing.assert_allclose(tracker.preview(np.array([2.0]))[0][0], [1.0, 2.0, 3.0])


def test_stop_freezes_and_resume_splices_back():
    tracker = ChunkTracker(TrackerConfig(blend_time=0.1), NAMES)
    tracker.reset_hold(np.zeros(3), 0.0)
    chunk = ActionChunk(
        stamp=0.0, dt=0.1, joint_names=NAMES, targets=np.linspace(0, 1, 30)[:, None] * np.ones(3)
    )
    tracker.push(chunk, 0.0)
    for i in range(300):
        tracker.update(i * 1e-3)
    ref = tracker.update(0.3)
    tracker.stop(0.3, ref.position, ref.velocity, np.full(3, 2.0))
    # Pushes during the stop are queued but not used.
    nxt = ActionChunk(stamp=0.35, dt=0.1, joint_names=NAMES, targets=np.ones((30, 3)))
    tracker.push(nxt, 0.36)
    prev = tracker.update(0.3)
    for i in range(1, 400):
        r = tracker.update(0.3 + i * 1e-3)
        assert np.all(np.abs(r.position - prev.position) < 1e-3)
        prev = r
    assert np.allclose(prev.velocity, 0.0)
    assert np.isnan(prev.chunk_stamp)
    tracker.resume(0.7)
    r = tracker.update(0.7)
    assert abs(r.chunk_stamp - 0.35) < 1e-12
    np.testing.assert_allclose(r.position, prev.position, atol=1e-3)


@pytest.mark.parametrize('mode', ['splice', 'ensemble'])
def test_after_the_last_chunk_ends_the_reference_holds(mode: str):
    tracker = ChunkTracker(TrackerConfig(mode=mode, blend_time=0.05), NAMES)
    tracker.reset_hold(np.zeros(3), 0.0)
    targets = np.linspace(0, 0.5, 5)[:, None] * np.ones(3)
    tracker.push(ActionChunk(stamp=0.0, dt=0.1, joint_names=NAMES, targets=targets), 0.0)
    for i in range(1000):
        ref = tracker.update(i * 1e-3)
    np.testing.assert_allclose(ref.position, 0.5, atol=1e-9)
    np.testing.assert_allclose(ref.velocity, 0.0, atol=1e-6)


def test_a_chunk_stamped_far_ahead_is_refused_and_locks_nothing_out():
    # One bad stamp (now + 1e5 s) must not make every later chunk look out of order.
    tracker = ChunkTracker(TrackerConfig(), NAMES)
    tracker.reset_hold(np.zeros(3), 0.0)
    future = ActionChunk(stamp=1e5, dt=0.1, joint_names=NAMES, targets=np.ones((5, 3)))
    assert not tracker.push(future, 1.0)
    ahead = TrackerConfig().max_future_stamp
    near = ActionChunk(stamp=1.0 + ahead, dt=0.1, joint_names=NAMES, targets=np.ones((5, 3)))
    assert tracker.push(near, 1.0)  # at the limit: a clock offset between hosts, accepted
    good = ActionChunk(stamp=1.0 + ahead + 0.01, dt=0.1, joint_names=NAMES, targets=np.ones((5, 3)))
    assert tracker.push(good, 1.1)
    m = tracker.metrics
    assert (m.refused_future, m.refused_out_of_order, m.accepted) == (1, 0, 2)


def test_reset_forgets_the_newest_stamp():
    # After a reset (e-stop release, a restarted simulator whose time starts over) the chunks of
    # the new time line are accepted, however new the forgotten ones were.
    tracker = ChunkTracker(TrackerConfig(), NAMES)
    tracker.reset_hold(np.zeros(3), 0.0)
    assert tracker.push(ActionChunk(5.0, 0.1, NAMES, np.ones((5, 3))), 5.0)
    tracker.update(5.0)
    tracker.reset_hold(np.zeros(3), 1.0)
    assert tracker.push(ActionChunk(1.0, 0.1, NAMES, np.full((5, 3), 2.0)), 1.0)
    tracker.update(1.0)  # spliced in here, blended over blend_time
    np.testing.assert_allclose(tracker.update(1.2).position, 2.0)
    assert tracker.metrics.refused_out_of_order == 0


def test_a_chunk_longer_than_the_largest_horizon_is_refused():
    # The spline fit runs on the control thread: one H=3000 chunk stalled the commands for 3 s.
    tracker = ChunkTracker(TrackerConfig(), NAMES)
    tracker.reset_hold(np.zeros(3), 0.0)
    huge = ActionChunk(stamp=1.0, dt=0.01, joint_names=NAMES, targets=np.ones((3000, 3)))
    assert not tracker.push(huge, 1.0)
    limit = tracker.config.max_horizon
    assert 100 <= limit < 3000  # ACT's 100-step chunks fit
    at_limit = ActionChunk(stamp=1.0, dt=0.01, joint_names=NAMES, targets=np.ones((limit, 3)))
    assert tracker.push(at_limit, 1.0)
    m = tracker.metrics
    assert (m.refused_horizon, m.accepted) == (1, 1)

"""Executing chunks as the demonstrations were executed: the natural-spline fit (linear time, same
result as the dense solve), linear interpolation, and position mode's ``reference`` command (the
reference is the servo setpoint, limited without overshoot)."""

from __future__ import annotations

import numpy as np
import pytest

from vla_core.chunk import ActionChunk
from vla_core.control import (
    ChunkTracker,
    CommandLimiter,
    ControllerConfig,
    JointSample,
    ResidualController,
    SafetyConfig,
    SafetyLimits,
    TrackerConfig,
)
from vla_core.control.reference import natural_second_derivatives

NAMES = ('j1', 'j2')


def dense_second_derivatives(y: np.ndarray, h: float) -> np.ndarray:
    """The textbook fit: the interior system solved as a dense matrix."""
    m = np.zeros_like(y)
    k = len(y) - 2
    if k > 0:
        a = 4.0 * np.eye(k) + np.eye(k, k=1) + np.eye(k, k=-1)
        m[1:-1] = np.linalg.solve(a, 6.0 / h**2 * (y[:-2] - 2.0 * y[1:-1] + y[2:]))
    return m


@pytest.mark.parametrize('horizon', [1, 2, 3, 4, 16, 50, 200])
def test_spline_fit_equals_the_dense_solve(horizon: int):
    y = np.random.default_rng(horizon).normal(size=(horizon, 7))
    m = natural_second_derivatives(y, 0.05)
    np.testing.assert_allclose(m, dense_second_derivatives(y, 0.05), rtol=1e-10, atol=1e-9)
    assert np.all(m[[0, -1]] == 0.0)  # natural ends


def test_cubic_tracker_passes_through_the_targets_with_the_fitted_curvature():
    y = np.random.default_rng(0).normal(size=(50, 2))
    chunk = ActionChunk(stamp=1.0, dt=0.05, joint_names=NAMES, targets=y)
    tracker = ChunkTracker(TrackerConfig(blend_time=0.0), NAMES)
    tracker.push(chunk, 1.0)
    m = dense_second_derivatives(y, 0.05)
    for i in (1, 17, 48):
        ref = tracker.update(1.0 + 0.05 * i)
        np.testing.assert_allclose(ref.position, y[i], atol=1e-12)
        np.testing.assert_allclose(ref.acceleration, m[i], rtol=1e-9, atol=1e-6)


def test_linear_interpolation_is_what_the_servo_was_sent():
    y = np.random.default_rng(1).normal(size=(10, 2))
    chunk = ActionChunk(stamp=2.0, dt=0.1, joint_names=NAMES, targets=y)
    tracker = ChunkTracker(TrackerConfig(blend_time=0.0, interpolation='linear'), NAMES)
    tracker.push(chunk, 2.0)
    knots = 2.0 + 0.1 * np.arange(10)
    for t in (2.0, 2.03, 2.25, 2.899, 2.9, 3.5):
        ref = tracker.update(t)
        expected = [np.interp(t, knots, y[:, j]) for j in range(2)]
        np.testing.assert_allclose(ref.position, expected, atol=1e-12)
        if t < 2.9:
            i = int((t - 2.0) / 0.1)
            np.testing.assert_allclose(ref.velocity, (y[i + 1] - y[i]) / 0.1, atol=1e-9)
            assert np.all(ref.acceleration == 0.0)


def make(position_command: str, a_max: float = 1e3) -> ResidualController:
    safety = SafetyConfig(
        velocity_max=(5.0,), acceleration_max=(a_max,), position_min=(-5.0,), position_max=(5.0,)
    )
    cfg = ControllerConfig(
        joint_names=NAMES,
        output_mode='position',
        position_command=position_command,
        tracker=TrackerConfig(blend_time=0.0, interpolation='linear'),
        safety=safety,
    )
    return ResidualController(cfg)


def ramp(stamp: float) -> ActionChunk:
    t = stamp + 0.05 * np.arange(20)
    return ActionChunk(stamp=stamp, dt=0.05, joint_names=NAMES, targets=np.c_[0.5 * t, -0.2 * t])


@pytest.mark.parametrize('position_command', ['reference', 'integrate'])
def test_position_reference_commands_the_setpoint_whatever_the_servo_lag(position_command: str):
    """Chunk targets are setpoints for a position servo that lags them (the expert's look-ahead
    compensates that lag): the command must be the setpoint, not the setpoint plus a feedback
    correction of the lag (integrate mode runs ahead of it, compensating twice)."""
    ctl = make(position_command)
    dt, lag = 0.01, 0.1
    ahead = []
    for k in range(150):
        t = k * dt
        if k % 10 == 0:
            ctl.push_chunk(ramp(t), t)
        # The measurement trails the reference by the servo's lag.
        measured = np.array([0.5, -0.2]) * max(t - lag, 0.0)
        cmd = ctl.update(t, dt, JointSample(t, measured, np.array([0.5, -0.2])))
        assert cmd is not None
        if k >= 20:
            ahead.append(np.max(np.abs(cmd.position - cmd.reference.position)))
    if position_command == 'reference':
        assert cmd.classic == 'reference'
        assert max(ahead) < 1e-9
    else:
        assert min(ahead) > 0.02  # 0.1 s x 0.5 rad/s of lag re-added by the feedback


def test_a_reference_step_is_closed_at_the_acceleration_limit_without_overshoot():
    limits = SafetyLimits.from_config(
        SafetyConfig(velocity_max=(2.0,), acceleration_max=(10.0,)), 1
    )
    dt, target = 0.01, np.array([0.3])
    follower, naive = CommandLimiter(limits, 'position'), CommandLimiter(limits, 'position')
    for lim in (follower, naive):
        lim.sync(np.zeros(1))
    path, naive_path = [], []
    for _ in range(200):
        follower.velocity(follower.follow(target, np.zeros(1), dt), dt, follower.q_cmd)
        naive.velocity((target - naive.q_cmd) / dt, dt, naive.q_cmd)
        path.append(follower.q_cmd[0])
        naive_path.append(naive.q_cmd[0])
    path = np.array(path)
    # Monotone up to the last tick's rounding of the discrete braking curve (0.1 mm here).
    assert np.all(np.diff(path) >= -5e-4) and path.max() <= 0.3 + 5e-4
    assert abs(path[-1] - 0.3) < 1e-9
    v = np.diff(np.r_[0.0, path]) / dt
    assert np.max(np.abs(np.diff(v))) <= 10.0 * dt + 1e-9
    # What a plain gap / dt request does under the same limits: it overshoots and rings.
    assert max(naive_path) > 0.35


def test_a_moving_reference_is_followed_without_lag():
    limits = SafetyLimits.from_config(SafetyConfig(acceleration_max=(10.0,)), 1)
    lim = CommandLimiter(limits, 'position')
    lim.sync(np.zeros(1))
    dt = 0.01
    for k in range(1, 200):
        t = k * dt
        lim.velocity(lim.follow(np.array([0.4 * t]), np.array([0.4]), dt), dt, lim.q_cmd)
    assert abs(lim.q_cmd[0] - 0.4 * t) < 1e-9

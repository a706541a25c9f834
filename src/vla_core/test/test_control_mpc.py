"""MPC: constraint satisfaction, feasibility from outside the limits, warm start, PID fallback."""

from __future__ import annotations

import numpy as np
import pytest

from vla_core.chunk import ActionChunk
from vla_core.control import (
    ControllerConfig,
    JointMpc,
    JointSample,
    MpcConfig,
    PidConfig,
    ResidualController,
    SafetyConfig,
)

D = 3
Q_MIN, Q_MAX = np.full(D, -1.0), np.full(D, 1.0)
V_MAX, A_MAX = np.full(D, 1.5), np.full(D, 4.0)


def make_mpc(**kw: float) -> JointMpc:
    return JointMpc(MpcConfig(**kw), Q_MIN, Q_MAX, V_MAX, A_MAX)


def test_plan_respects_box_limits_with_an_unreachable_reference():
    mpc = make_mpc()
    n = mpc.config.horizon
    # Reference far beyond the position limit and moving faster than allowed.
    p_ref = np.linspace(0.0, 5.0, n + 1)[:, None] * np.ones(D)
    v_ref = np.full((n + 1, D), 10.0)
    res = mpc.solve(np.zeros(D), np.zeros(D), p_ref, v_ref)
    assert res.ok, res.status
    tol = 1e-3
    assert np.all(np.abs(res.acceleration) <= A_MAX + tol)
    assert np.all(np.abs(res.velocity) <= V_MAX + tol)
    assert np.all(res.position <= Q_MAX + tol) and np.all(res.position >= Q_MIN - tol)
    # It does try: full acceleration at first.
    np.testing.assert_allclose(res.acceleration[0], A_MAX, rtol=1e-2)
    # The plan obeys the double-integrator dynamics.
    h = mpc.config.step_dt
    np.testing.assert_allclose(
        res.position[1:],
        res.position[:-1] + h * res.velocity[:-1] + 0.5 * h * h * res.acceleration,
        atol=1e-4,
    )


def test_closed_loop_stays_within_limits():
    mpc = make_mpc()
    dt = 0.005
    q, v = np.zeros(D), np.zeros(D)
    n = mpc.config.horizon
    worst_q = worst_v = worst_a = 0.0
    for k in range(400):
        t = k * dt
        times = t + mpc.times
        p_ref = np.stack([np.sign(np.sin(2.0 * times + i)) * 2.0 for i in range(D)], axis=1)
        res = mpc.solve(q, v, p_ref, np.zeros((n + 1, D)))
        assert res.ok, res.status
        a = res.acceleration[0]
        q = q + v * dt + 0.5 * a * dt * dt
        v = v + a * dt
        worst_q = max(worst_q, float(np.max(np.abs(q))))
        worst_v = max(worst_v, float(np.max(np.abs(v))))
        worst_a = max(worst_a, float(np.max(np.abs(a))))
    assert worst_q <= 1.0 + 5e-3
    assert worst_v <= 1.5 + 5e-3
    assert worst_a <= 4.0 + 1e-3
    assert worst_q > 0.95  # it did push to the limits


def test_soft_constraints_keep_it_feasible_outside_the_limits():
    # A cold start from a violated state is the hardest case for ADMM: give it iterations.
    mpc = make_mpc(max_iter=2000)
    n = mpc.config.horizon
    # Start beyond the position limit, moving outwards faster than the speed limit.
    q0, v0 = np.full(D, 1.2), np.full(D, 2.0)
    res = mpc.solve(q0, v0, np.zeros((n + 1, D)), np.zeros((n + 1, D)))
    assert res.ok, res.status
    assert np.all(res.acceleration[0] < -0.95 * A_MAX)  # brakes (about) as hard as allowed
    assert np.all(np.abs(res.acceleration) <= A_MAX + 1e-3)


def test_warm_start_cuts_iterations():
    mpc = make_mpc()
    n = mpc.config.horizon
    p_ref = np.full((n + 1, D), 0.5)
    first = mpc.solve(np.zeros(D), np.zeros(D), p_ref, np.zeros((n + 1, D)))
    again = mpc.solve(np.zeros(D), np.zeros(D), p_ref, np.zeros((n + 1, D)))
    assert first.ok and again.ok
    assert again.iterations < first.iterations


def test_iteration_cap_reports_failure():
    mpc = make_mpc(max_iter=1)
    n = mpc.config.horizon
    res = mpc.solve(np.zeros(D), np.zeros(D), np.full((n + 1, D), 0.9), np.zeros((n + 1, D)))
    assert not res.ok
    assert 'max' in res.status.lower()
    assert mpc.failures == 1
    assert np.all(np.isnan(res.acceleration))


def _controller(**mpc_kw: float) -> ResidualController:
    cfg = ControllerConfig(
        joint_names=('a', 'b', 'c'),
        output_mode='velocity',
        classic='mpc',
        mpc=MpcConfig(**mpc_kw),
        pid=PidConfig(kp=(5.0,)),
        safety=SafetyConfig(state_timeout=1.0, reference_timeout=1.0),
    )
    return ResidualController(cfg)


def _drive(ctl: ResidualController, ticks: int) -> list:
    names = ('a', 'b', 'c')
    ctl.push_chunk(
        ActionChunk(
            stamp=0.0,
            dt=0.1,
            joint_names=names,
            targets=np.linspace(0, 0.5, 10)[:, None] * [1, 1, 1],
        ),
        0.0,
    )
    q = np.zeros(3)
    out = []
    for k in range(ticks):
        t = k * 0.002
        cmd = ctl.update(t, 0.002, JointSample(t, q.copy(), np.zeros(3)))
        q = q + cmd.velocity * 0.002
        out.append(cmd)
    return out


def test_controller_falls_back_to_pid_when_the_solver_fails():
    ctl = _controller(max_iter=1)  # never converges in one iteration
    cmds = _drive(ctl, 50)
    assert all(c.classic == 'pid_fallback' for c in cmds)
    assert ctl.metrics().mpc_failures == 50
    assert all(np.all(np.isfinite(c.velocity)) for c in cmds)
    assert np.any(np.abs(cmds[-1].velocity) > 1e-3)  # PID is actually driving


def test_controller_falls_back_for_one_tick_on_a_solver_exception(monkeypatch: pytest.MonkeyPatch):
    ctl = _controller()
    cmds = _drive(ctl, 5)
    assert all(c.classic == 'mpc' for c in cmds)
    assert ctl.mpc is not None
    solver = ctl.mpc._solver
    real_solve = solver.solve
    calls = {'n': 0}

    def flaky(*args: object, **kwargs: object) -> object:
        calls['n'] += 1
        if calls['n'] == 1:
            raise RuntimeError('solver blew up')
        return real_solve(*args, **kwargs)

    monkeypatch.setattr(solver, 'solve', flaky)
    q = np.zeros(3)
    kinds = []
    for k in range(5, 8):
        cmd = ctl.update(k * 0.002, 0.002, JointSample(k * 0.002, q, np.zeros(3)))
        kinds.append(cmd.classic)
        assert np.all(np.isfinite(cmd.velocity))
    assert kinds == ['pid_fallback', 'mpc', 'mpc']


def test_runtime_switch_between_pid_and_mpc():
    cfg = ControllerConfig(joint_names=('a', 'b', 'c'), output_mode='velocity')
    ctl = ResidualController(cfg)
    assert ctl.mpc is None
    cmds = _drive(ctl, 3)
    assert cmds[-1].classic == 'pid'
    ctl.set_classic('mpc')
    cmd = ctl.update(0.01, 0.002, JointSample(0.01, np.zeros(3), np.zeros(3)))
    assert cmd is not None and cmd.classic == 'mpc'
    with pytest.raises(ValueError):
        ctl.set_classic('lqr')

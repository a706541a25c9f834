"""Linear MPC over decoupled double integrators (one per joint), solved with OSQP.

State (position, velocity) per joint, input acceleration, exact zero-order-hold discretisation
with step ``step_dt``. Box limits: acceleration hard (always feasible because states are free),
position and velocity soft through non-negative slacks with an L1 + L2 penalty, so the QP is
feasible from any initial state (even outside the limits). All joints are stacked into one
sparse QP; only the linear cost and the initial-state bounds change between ticks, and OSQP
warm-starts from the previous solution. Anything but a solved status is reported as a failure
so the caller can fall back to PID for that tick.
"""

from __future__ import annotations

from dataclasses import dataclass
import time

import numpy as np

from vla_core.config import Config, ConfigError, param

__all__ = ['JointMpc', 'MpcConfig', 'MpcResult']


@dataclass(frozen=True, kw_only=True)
class MpcConfig(Config):
    horizon: int = param(20, description='prediction steps', range=(2, 500))
    step_dt: float = param(0.02, description='prediction step [s]', range=(1e-4, 1.0))
    position_weight: float = param(100.0, description='cost on position error', range=(0, 1e9))
    velocity_weight: float = param(1.0, description='cost on velocity error', range=(0, 1e9))
    acceleration_weight: float = param(1e-3, description='cost on acceleration', range=(0, 1e9))
    terminal_factor: float = param(
        5.0, description='multiplies the last step position/velocity cost', range=(0, 1e6)
    )
    slack_weight_linear: float = param(
        1e3, description='L1 penalty on limit violations (exact penalty)', range=(0, 1e12)
    )
    slack_weight_quadratic: float = param(
        1.0, description='L2 penalty on limit violations', range=(1e-6, 1e12)
    )
    max_iter: int = param(200, description='OSQP iteration cap per tick', range=(1, 100000))
    eps_abs: float = param(1e-3, description='OSQP absolute tolerance', range=(1e-12, 1.0))
    eps_rel: float = param(1e-3, description='OSQP relative tolerance', range=(1e-12, 1.0))
    time_limit: float = param(
        0.0, description='OSQP wall-time limit per solve, 0 = none [s]', range=(0, 10.0)
    )
    inertia: tuple[float, ...] = param(
        (1.0,), description='effort mode: effort = inertia * acceleration [kg m^2]', range=(0, 1e6)
    )

    def validate(self) -> None:
        if self.position_weight + self.velocity_weight <= 0.0:
            raise ConfigError('position_weight', 'position and velocity weights are both zero')


@dataclass(frozen=True)
class MpcResult:
    ok: bool
    status: str
    iterations: int
    solve_time: float  # [s] wall time of this solve
    acceleration: np.ndarray  # (N, DoF) planned input, nan when not ok
    position: np.ndarray  # (N+1, DoF) predicted
    velocity: np.ndarray  # (N+1, DoF) predicted


class JointMpc:
    """One sparse QP for all joints; call :meth:`solve` once per control tick."""

    def __init__(
        self,
        config: MpcConfig,
        q_min: np.ndarray,
        q_max: np.ndarray,
        v_max: np.ndarray,
        a_max: np.ndarray,
    ) -> None:
        # Imported here: only a controller that runs the MPC layer needs OSQP and SciPy.
        import osqp
        import scipy.sparse as sp

        self._ok = (osqp.SolverStatus.OSQP_SOLVED, osqp.SolverStatus.OSQP_SOLVED_INACCURATE)
        self.config = config
        self.dof = d = int(np.asarray(q_min).size)
        self.q_min, self.q_max = np.asarray(q_min, float), np.asarray(q_max, float)
        self.v_max, self.a_max = np.asarray(v_max, float), np.asarray(a_max, float)
        n = config.horizon
        h = config.step_dt
        # Variable layout: p (N+1, D), v (N+1, D), dv (N, D), slack_p (N, D), slack_v (N, D).
        # The input is the velocity increment dv = a * h: O(1) coefficients condition ADMM far
        # better than a with its h^2 / 2 factor.
        self._np = (n + 1) * d
        self._na = n * d
        o_p, o_v = 0, self._np
        o_a = 2 * self._np
        o_sp = o_a + self._na
        o_sv = o_sp + self._na
        nz = o_sv + self._na
        self._o = (o_p, o_v, o_a, o_sp, o_sv, nz)

        def idx(offset: int, k: int) -> np.ndarray:
            return offset + k * d + np.arange(d)

        # Cost: w_p (p - r)^2 + w_v (v - rv)^2 on steps 1..N, w_a a^2, slack L2 (P is 2*w).
        wp = np.full(n, config.position_weight)
        wv = np.full(n, config.velocity_weight)
        wp[-1] *= config.terminal_factor
        wv[-1] *= config.terminal_factor
        self._wp = np.concatenate([[0.0], wp])  # (N+1,) per step
        self._wv = np.concatenate([[0.0], wv])
        diag = np.zeros(nz)
        diag[o_p : o_p + self._np] = 2.0 * np.repeat(self._wp, d)
        diag[o_v : o_v + self._np] = 2.0 * np.repeat(self._wv, d)
        diag[o_a:o_sp] = 2.0 * config.acceleration_weight / (h * h)
        diag[o_sp:nz] = 2.0 * config.slack_weight_quadratic
        # OSQP wants a positive-definite-ish problem: tiny regularisation of step-0 states.
        diag[idx(o_p, 0)] = 1e-6
        diag[idx(o_v, 0)] = 1e-6
        p_mat = sp.diags(diag, format='csc')

        rows, cols, vals = [], [], []
        lo: list[np.ndarray] = []
        hi: list[np.ndarray] = []
        r = 0

        def add(entries: list[tuple[np.ndarray, float]], lower: np.ndarray, upper: np.ndarray):
            nonlocal r
            for col, val in entries:
                rows.append(r + np.arange(d))
                cols.append(col)
                vals.append(np.full(d, val))
            lo.append(lower)
            hi.append(upper)
            r += d

        zero = np.zeros(d)
        inf = np.full(d, np.inf)
        add([(idx(o_p, 0), 1.0)], zero, zero)  # initial state, updated each tick
        add([(idx(o_v, 0), 1.0)], zero, zero)
        for k in range(n):
            add(
                [
                    (idx(o_p, k + 1), 1.0),
                    (idx(o_p, k), -1.0),
                    (idx(o_v, k), -h),
                    (idx(o_a, k), -0.5 * h),
                ],
                zero,
                zero,
            )
            add([(idx(o_v, k + 1), 1.0), (idx(o_v, k), -1.0), (idx(o_a, k), -1.0)], zero, zero)
        for k in range(n):
            add([(idx(o_p, k + 1), 1.0), (idx(o_sp, k), 1.0)], self.q_min, inf)
            add([(idx(o_p, k + 1), 1.0), (idx(o_sp, k), -1.0)], -inf, self.q_max)
            add([(idx(o_v, k + 1), 1.0), (idx(o_sv, k), 1.0)], -self.v_max, inf)
            add([(idx(o_v, k + 1), 1.0), (idx(o_sv, k), -1.0)], -inf, self.v_max)
            add([(idx(o_a, k), 1.0)], -self.a_max * h, self.a_max * h)
            add([(idx(o_sp, k), 1.0)], zero, inf)
            add([(idx(o_sv, k), 1.0)], zero, inf)
        a_mat = sp.csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, nz)
        )
        self._l = np.concatenate(lo)
        self._u = np.concatenate(hi)
        self._q = np.zeros(nz)
        self._q[o_sp:nz] = config.slack_weight_linear
        extra = {'time_limit': config.time_limit} if config.time_limit > 0.0 else {}
        self._solver = osqp.OSQP()
        self._solver.setup(
            p_mat,
            self._q,
            a_mat,
            self._l,
            self._u,
            verbose=False,
            warm_starting=True,
            polishing=False,
            max_iter=config.max_iter,
            eps_abs=config.eps_abs,
            eps_rel=config.eps_rel,
            adaptive_rho_interval=25,  # iteration-based: deterministic across machines
            check_termination=5,
            **extra,
        )
        self.solves = 0
        self.failures = 0
        self.last: MpcResult | None = None

    @property
    def times(self) -> np.ndarray:
        """(N+1,) offsets of the prediction steps from now [s]."""
        return self.config.step_dt * np.arange(self.config.horizon + 1)

    def solve(
        self, q: np.ndarray, qd: np.ndarray, p_ref: np.ndarray, v_ref: np.ndarray
    ) -> MpcResult:
        """Plan from measured (q, qd) to track ``p_ref``/``v_ref`` of shape (N+1, DoF)."""
        o_p, o_v, o_a, o_sp, _, _ = self._o
        d, n = self.dof, self.config.horizon
        # Track a reference clipped into the limits: the slack is for the state, not the goal.
        p_ref = np.clip(p_ref, self.q_min, self.q_max)
        v_ref = np.clip(v_ref, -self.v_max, self.v_max)
        self._q[o_p : o_p + self._np] = (-2.0 * self._wp[:, None] * p_ref).ravel()
        self._q[o_v : o_v + self._np] = (-2.0 * self._wv[:, None] * v_ref).ravel()
        self._l[:d] = self._u[:d] = q
        self._l[d : 2 * d] = self._u[d : 2 * d] = qd
        t0 = time.perf_counter()
        self.solves += 1
        try:
            self._solver.update(q=self._q, l=self._l, u=self._u)
            res = self._solver.solve(raise_error=False)
            status_val, status, iters, x = (
                res.info.status_val,
                res.info.status,
                res.info.iter,
                res.x,
            )
        except Exception as err:  # a solver fault must never take the loop down
            status_val, status, iters, x = -1, f'exception: {err}', 0, None
        dt_solve = time.perf_counter() - t0
        ok = status_val in self._ok and x is not None and bool(np.all(np.isfinite(x)))
        if ok:
            assert x is not None
            acc = x[o_a:o_sp].reshape(n, d) / self.config.step_dt
            pos = x[o_p : o_p + self._np].reshape(n + 1, d)
            vel = x[o_v : o_v + self._np].reshape(n + 1, d)
            acc = np.clip(acc, -self.a_max, self.a_max)  # within solver tolerance of the box
        if not ok:
            self.failures += 1
            acc = np.full((n, d), np.nan)
            pos = vel = np.full((n + 1, d), np.nan)
        self.last = MpcResult(ok, str(status), int(iters), dt_solve, acc, pos, vel)
        return self.last

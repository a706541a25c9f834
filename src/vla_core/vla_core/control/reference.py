"""Time-indexed tracking of action chunks: splicing, temporal ensembling and seam metrics.

The reference at time ``t`` is looked up by time in the newest valid chunk (natural cubic spline
through the targets, C2, or linear interpolation between them, as the demonstrations were executed),
so inference latency is compensated by construction. A new chunk is
spliced in at the control tick that first sees it, blended with a quintic ramp from the reference
*being executed* at that tick (whatever it is: a chunk, an earlier blend, a hold or a stop), so
position, velocity and acceleration stay continuous whatever the chunks disagree on. The
alternative ``ensemble`` mode averages every live chunk ACT-style, each weight ramped in/out over
the same window so chunk arrivals and expiries do not jump either.

``push`` may be called from another thread; everything else belongs to the control thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import functools
import math
import threading

import numpy as np

from vla_core.chunk import ActionChunk
from vla_core.config import Config, param
from vla_core.control._util import smoothstep5

__all__ = [
    'ChunkTracker',
    'Reference',
    'TrackerConfig',
    'TrackerMetrics',
]

Triple = tuple[np.ndarray, np.ndarray, np.ndarray]  # position, velocity, acceleration (K, DoF)


@dataclass(frozen=True, kw_only=True)
class TrackerConfig(Config):
    mode: str = param(
        'splice',
        description='splice: newest chunk, blended in; ensemble: ACT-style weighted average',
        choices=('splice', 'ensemble'),
    )
    interpolation: str = param(
        'cubic',
        description='between targets: cubic (natural spline, C2) or linear (what sending each '
        "target to a position servo in turn does: how the sim's demonstrations were executed)",
        choices=('cubic', 'linear'),
    )
    blend_time: float = param(
        0.1,
        description='window over which a new chunk is blended in from the executed reference [s]',
        range=(0.0, 10.0),
    )
    ensemble_decay: float = param(
        0.0,
        description='ACT weight exp(-decay * (stamp - oldest stamp)); > 0 favours older chunks '
        '[1/s]',
        range=(-100.0, 100.0),
    )
    ensemble_max_chunks: int = param(
        8, description='chunks averaged at most in ensemble mode', range=(1, 64)
    )
    jerk_time_constant: float = param(
        1.0, description='time constant of the RMS jerk running average [s]', range=(1e-3, 1e3)
    )
    # Limits of what a chunk may be; a chunk beyond one is refused and counted.
    max_future_stamp: float = param(
        1.0,
        description='refuse chunks stamped further than this ahead of their receipt [s]. A stamp '
        'is the time of an observation already taken, so only a clock offset between hosts '
        'puts it ahead; one far ahead would make every later chunk look out of order',
        range=(0.0, 3600.0),
    )
    max_horizon: int = param(
        128,
        description='refuse chunks with more targets than this. The spline fit runs on the '
        'control thread and its cost grows with the horizon cubed: 128 targets fit in 0.2 ms '
        '(a tenth of a 500 Hz period), one 3000-target chunk stalled the commands for 3 s. '
        'Policies send 10-100 (ACT 100, ours 16)',
        range=(2, 100000),
    )
    position_margin: float = param(
        0.05,
        description='refuse chunks with a target further than this beyond the position limits '
        '(safety.position_min/max) [rad, m for prismatic joints]. Such a chunk is a wrong one '
        '(units, a corrupt model or message) and clipped it would be tracked along a path nobody '
        'planned; targets within the margin (a learned policy scatters around a limit it was '
        'taught at) are clamped by the command limiter',
        range=(0.0, 1e3),
    )


@dataclass(frozen=True)
class Reference:
    """The reference at one time: position, velocity, acceleration (DoF,)."""

    t: float
    position: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    chunk_stamp: float  # stamp of the newest chunk contributing; nan while holding/stopping


@dataclass
class TrackerMetrics:
    accepted: int = 0
    refused_expired: int = 0  # the chunk's last target was already in the past
    refused_out_of_order: int = 0  # not newer than the newest accepted chunk
    refused_invalid: int = 0  # joint names do not match
    refused_future: int = 0  # stamped more than max_future_stamp ahead of its receipt
    refused_horizon: int = 0  # more than max_horizon targets
    refused_position: int = 0  # a target beyond the position limits by more than position_margin
    splices: int = 0
    last_seam_gap: float = 0.0  # [rad] largest joint gap between old and new chunk at a splice
    max_seam_gap: float = 0.0  # what an unblended hand-off would have jumped
    last_splice_jump: float = 0.0  # [rad] largest joint jump of the emitted reference at a splice
    max_splice_jump: float = 0.0
    rms_jerk: float = 0.0  # [rad/s^3] running RMS over joints of the emitted reference's jerk
    max_jerk: float = 0.0

    def copy(self) -> TrackerMetrics:
        return TrackerMetrics(**self.__dict__)


# --- trajectory sources: immutable, evaluated at an array of times -> (K, DoF) triples ---


class _Hold:
    def __init__(self, position: np.ndarray) -> None:
        self.position = np.array(position, dtype=np.float64)

    def eval(self, t: np.ndarray) -> Triple:
        p = np.broadcast_to(self.position, (t.size, self.position.size)).copy()
        return p, np.zeros_like(p), np.zeros_like(p)


class _Stop:
    """Decelerate each joint at a constant rate from (p0, v0) to rest, then hold."""

    def __init__(self, t0: float, p0: np.ndarray, v0: np.ndarray, decel: np.ndarray) -> None:
        self.t0 = t0
        self.p0 = np.array(p0, dtype=np.float64)
        self.v0 = np.array(v0, dtype=np.float64)
        self.sgn = np.sign(self.v0)
        self.decel = np.array(decel, dtype=np.float64)
        self.t_rest = np.abs(self.v0) / self.decel  # (DoF,)

    def eval(self, t: np.ndarray) -> Triple:
        tau = np.clip(t[:, None] - self.t0, 0.0, None)
        tau = np.minimum(tau, self.t_rest[None, :])
        moving = (t[:, None] - self.t0) < self.t_rest[None, :]
        a = np.where(moving, -self.sgn * self.decel, 0.0)
        v = self.v0 - self.sgn * self.decel * tau
        p = self.p0 + self.v0 * tau - 0.5 * self.sgn * self.decel * tau * tau
        return p, np.where(moving, v, 0.0), a


@functools.lru_cache(maxsize=16)
def _thomas_factors(k: int) -> tuple[float, ...]:
    """``1 / u_i``, the reciprocal pivots of tridiag(1, 4, 1) (k x k) in the Thomas algorithm
    (``u_0 = 4``, ``u_i = 4 - 1 / u_(i-1)``). Chunks of one policy share k."""
    inv = [0.25]
    for _ in range(k - 1):
        inv.append(1.0 / (4.0 - inv[-1]))
    return tuple(inv)


def natural_second_derivatives(y: np.ndarray, h: float) -> np.ndarray:
    """Knot second derivatives (n, DoF) of the natural cubic spline through ``y`` (n, DoF) at
    spacing ``h``: the tridiagonal system solved by the Thomas algorithm in O(n) (a dense solve
    is O(n^3): 52 ms at n = 1000). Rows are plain float lists: for a handful of joints that is
    faster than numpy's per-call overhead."""
    n, dof = y.shape
    m = np.zeros((n, dof))
    if n < 3:
        return m
    rhs = (6.0 / h**2 * (y[:-2] - 2.0 * y[1:-1] + y[2:])).tolist()
    inv = _thomas_factors(n - 2)
    w = [0.0] * dof
    rows = []
    for r, g in zip(rhs, inv, strict=True):  # forward elimination, each row scaled by 1/u_i
        w = [(ri - wi) * g for ri, wi in zip(r, w, strict=True)]
        rows.append(w)
    for i in range(len(rows) - 2, -1, -1):  # back substitution
        g = inv[i]
        rows[i] = [wi - g * mi for wi, mi in zip(rows[i], rows[i + 1], strict=True)]
    m[1:-1] = rows
    return m


class _Spline:
    """Natural cubic spline through a chunk's targets (``linear``: straight segments between
    them); holds the end values outside its span."""

    def __init__(self, chunk: ActionChunk, linear: bool = False) -> None:
        self.chunk = chunk
        self.t0 = chunk.stamp
        self.h = h = chunk.dt
        y = chunk.targets
        n = chunk.horizon
        self.n = n
        self.end = y[-1].copy()
        # Second derivatives at the knots; all zero is the linear interpolation.
        m = np.zeros_like(y) if linear else natural_second_derivatives(y, h)
        # Per-segment polynomial p(x) = c0 + c1 x + c2 x^2 + c3 x^3, x in [0, h]: cheap to eval.
        if n >= 2:
            self.c0 = y[:-1].copy()
            self.c1 = (y[1:] - y[:-1]) / h - h * (2.0 * m[:-1] + m[1:]) / 6.0
            self.c2 = m[:-1] / 2.0
            self.c3 = (m[1:] - m[:-1]) / (6.0 * h)

    def eval(self, t: np.ndarray) -> Triple:
        n, dof = self.n, self.end.size
        span = self.h * (n - 1)
        tau = t - self.t0
        if n == 1 or (t.size == 1 and not 0.0 <= tau[0] <= span):
            p = np.broadcast_to(self.end if n == 1 or tau[0] > 0 else self.c0[0], (t.size, dof))
            return p.copy(), np.zeros((t.size, dof)), np.zeros((t.size, dof))
        inside = ((tau >= 0.0) & (tau <= span))[:, None]
        tau = np.minimum(np.maximum(tau, 0.0), span)
        i = np.minimum((tau / self.h).astype(np.int64), n - 2)
        x = (tau - i * self.h)[:, None]
        c1, c2, c3 = self.c1[i], self.c2[i], self.c3[i]
        p = self.c0[i] + x * (c1 + x * (c2 + x * c3))
        v = c1 + x * (2.0 * c2 + 3.0 * x * c3)
        a = 2.0 * c2 + 6.0 * x * c3
        return p, np.where(inside, v, 0.0), np.where(inside, a, 0.0)


class _Blend:
    """Quintic cross-fade from ``old`` to ``new`` starting at ``t0`` over ``width`` seconds."""

    def __init__(self, old: object, new: object, t0: float, width: float) -> None:
        self.old, self.new, self.t0, self.width = old, new, t0, width

    def eval(self, t: np.ndarray) -> Triple:
        s, ds, dds = (x[:, None] for x in smoothstep5(t - self.t0, self.width))
        po, vo, ao = self.old.eval(t)  # type: ignore[attr-defined]
        pn, vn, an = self.new.eval(t)  # type: ignore[attr-defined]
        dp, dv = pn - po, vn - vo
        p = po + s * dp
        v = vo + s * dv + ds * dp
        a = ao + s * (an - ao) + 2.0 * ds * dv + dds * dp
        return p, v, a


def _collapse(src: object, t: float) -> object:
    """Drop blends whose window has passed so the chain stays short."""
    if isinstance(src, _Blend):
        if t >= src.t0 + src.width:
            return _collapse(src.new, t)
        old = _collapse(src.old, t)
        if old is not src.old:
            return _Blend(old, src.new, src.t0, src.width)
    return src


@dataclass
class _Member:
    spline: _Spline | None  # None: the base source (what ran before the first chunk)
    source: object
    t_in: float  # ramp-in start
    t_out: float  # weight reaches zero here


class _Ensemble:
    """ACT-style weighted average of live chunks, weights ramped so membership changes are C2."""

    def __init__(self, members: list[_Member], width: float, decay: float) -> None:
        self.members = members
        self.width = width
        self.decay = decay

    def _position(self, t: np.ndarray) -> np.ndarray:
        stamps = [m.spline.t0 for m in self.members if m.spline is not None]
        oldest = min(stamps) if stamps else 0.0
        num = 0.0
        den = 0.0
        fallback = None
        for m in self.members:
            w_in = smoothstep5(t - m.t_in, self.width)[0] if m.spline is not None else 1.0
            w_out = smoothstep5(m.t_out - t, self.width)[0] if math.isfinite(m.t_out) else 1.0
            w = w_in * w_out
            if m.spline is not None:
                w = w * math.exp(-self.decay * (m.spline.t0 - oldest))
            p = m.source.eval(t)[0]  # type: ignore[attr-defined]
            num = num + np.asarray(w)[:, None] * p
            den = den + np.asarray(w)
            fallback = p
        den = np.asarray(den)[:, None]
        assert fallback is not None
        return np.where(den > 1e-12, num / np.maximum(den, 1e-12), fallback)

    def eval(self, t: np.ndarray) -> Triple:
        # Weighted averages with moving weights: central differences are simpler than the
        # quotient rule twice and accurate to ~1e-8 here.
        h = 1e-4
        n = t.size
        pos = self._position(np.concatenate([t - h, t, t + h]))  # one pass over the members
        pm, p0, pp = pos[:n], pos[n : 2 * n], pos[2 * n :]
        return p0, (pp - pm) / (2.0 * h), (pp - 2.0 * p0 + pm) / (h * h)


class ChunkTracker:
    """Turns a stream of :class:`ActionChunk` into a continuous reference sampled by time."""

    def __init__(
        self,
        config: TrackerConfig,
        joint_names: Sequence[str],
        position_limits: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """``position_limits``: (lower, upper) per joint, widened by ``config.position_margin``;
        None accepts any target."""
        self.config = config
        self.joint_names = tuple(joint_names)
        self.dof = len(self.joint_names)
        self._bounds: tuple[np.ndarray, np.ndarray] | None = None
        if position_limits is not None:
            lo, hi = (np.broadcast_to(np.asarray(x, float), (self.dof,)) for x in position_limits)
            self._bounds = (lo - config.position_margin, hi + config.position_margin)
        self._lock = threading.Lock()
        self._pending: list[ActionChunk] = []
        self._newest_stamp = -math.inf
        self._last_receipt: float | None = None
        self._metrics = TrackerMetrics()
        self._source: object = _Hold(np.zeros(self.dof))
        self._members: list[_Member] = []
        self._current: ActionChunk | None = None  # newest chunk in use
        self._frozen = False
        self._prev: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._jerk_ms = 0.0

    # --- producer side (any thread) ---

    def push(self, chunk: ActionChunk, t: float) -> bool:
        """Queue ``chunk`` received at time ``t``; False (and counted) if refused."""
        try:
            chunk = chunk.reordered(self.joint_names)
        except ValueError:
            with self._lock:
                self._metrics.refused_invalid += 1
            return False
        bounds = self._bounds
        outside = bounds is not None and bool(
            np.any(chunk.targets < bounds[0]) or np.any(chunk.targets > bounds[1])
        )
        with self._lock:
            if outside:
                self._metrics.refused_position += 1
                return False
            if chunk.horizon > self.config.max_horizon:
                self._metrics.refused_horizon += 1
                return False
            if chunk.end_time < t:
                self._metrics.refused_expired += 1
                return False
            if chunk.stamp - t > self.config.max_future_stamp:
                self._metrics.refused_future += 1
                return False
            if chunk.stamp <= self._newest_stamp:
                self._metrics.refused_out_of_order += 1
                return False
            self._newest_stamp = chunk.stamp
            self._last_receipt = t
            self._metrics.accepted += 1
            self._pending.append(chunk)
            if self.config.mode == 'splice':
                del self._pending[:-1]  # only the newest matters
            else:
                del self._pending[: -self.config.ensemble_max_chunks]
            return True

    @property
    def last_receipt(self) -> float | None:
        """Control-clock time of the last accepted chunk (None: none since the last reset)."""
        return self._last_receipt

    @property
    def metrics(self) -> TrackerMetrics:
        with self._lock:
            return self._metrics.copy()

    # --- control thread ---

    def reset_hold(self, position: np.ndarray, t: float, *, forget: bool = True) -> None:
        """Hold ``position``; ``forget`` also drops queued chunks (e-stop reset), while start-up
        keeps what arrived before the first joint state."""
        if forget:
            with self._lock:
                self._pending.clear()
                self._last_receipt = None
                self._newest_stamp = -math.inf  # what came before the reset orders nothing after
        self._source = _Hold(position)
        self._members = []
        self._current = None
        self._frozen = False
        self._prev = None

    def stop(self, t: float, position: np.ndarray, velocity: np.ndarray, decel: np.ndarray) -> None:
        """Switch to a constant-deceleration stop from (position, velocity) and freeze there."""
        self._source = _Stop(t, position, velocity, decel)
        self._members = []
        self._frozen = True

    def hold(self, position: np.ndarray) -> None:
        """Hold ``position`` and freeze (e-stop)."""
        self._source = _Hold(position)
        self._members = []
        self._frozen = True

    def resume(self, t: float) -> None:
        """Unfreeze after a stop; the newest chunk (if still live) is spliced in from the stop."""
        if not self._frozen:
            return
        self._frozen = False
        with self._lock:
            if not self._pending and self._current is not None and self._current.end_time >= t:
                self._pending.append(self._current)

    @property
    def frozen(self) -> bool:
        return self._frozen

    def preview(self, times: np.ndarray) -> Triple:
        """Reference at future ``times`` (K,) without side effects (MPC horizon)."""
        return self._source.eval(np.asarray(times, dtype=np.float64))  # type: ignore[attr-defined]

    def update(self, t: float) -> Reference:
        """Activate pending chunks at this tick and return the reference at ``t``."""
        spliced = False
        gap = 0.0
        if not self._frozen:
            with self._lock:
                pending, self._pending = self._pending, []
            live = []
            for chunk in pending:
                if chunk.end_time < t:  # passed while queued
                    with self._lock:
                        self._metrics.refused_expired += 1
                else:
                    live.append(chunk)
            if live:
                gap = self._activate(live, t)
                spliced = True
        self._source = _collapse(self._source, t)
        if self._members:
            self._prune_members(t)
        p, v, a = (x[0] for x in self._source.eval(np.array([t])))  # type: ignore[attr-defined]
        self._update_metrics(t, p, v, a, spliced, gap)
        stamp = self._current.stamp if self._current is not None and not self._frozen else math.nan
        return Reference(t=t, position=p, velocity=v, acceleration=a, chunk_stamp=stamp)

    def _activate(self, chunks: list[ActionChunk], t: float) -> float:
        tt = np.array([t])
        old_p = self._source.eval(tt)[0][0]  # type: ignore[attr-defined]
        width = self.config.blend_time
        linear = self.config.interpolation == 'linear'
        if self.config.mode == 'splice':
            new = _Spline(chunks[-1], linear)
            self._source = _Blend(self._source, new, t, width) if width > 0.0 else new
        else:
            if not self._members:  # fade the executed reference out as the first chunk fades in
                self._members = [_Member(None, self._source, -math.inf, t + width)]
            for chunk in chunks:
                new = _Spline(chunk, linear)
                self._members.append(_Member(new, new, t, chunk.end_time))
            chunk_members = [m for m in self._members if m.spline is not None]
            excess = len(chunk_members) - self.config.ensemble_max_chunks
            for m in chunk_members[: max(excess, 0)]:
                m.t_out = min(m.t_out, t + width)  # ramp out instead of dropping
            self._source = _Ensemble(list(self._members), width, self.config.ensemble_decay)
        self._current = chunks[-1]
        new_p = new.eval(tt)[0][0]  # the newest chunk's spline, fitted once
        return float(np.max(np.abs(new_p - old_p)))

    def _prune_members(self, t: float) -> None:
        keep = [m for m in self._members if m.t_out > t]
        if len(keep) != len(self._members):
            if not keep:  # all expired: hold where the last one ended
                last = self._members[-1].source.eval(np.array([t]))[0][0]  # type: ignore[attr-defined]
                self._members = []
                self._source = _Hold(last)
                return
            self._members = keep
            self._source = _Ensemble(list(keep), self.config.blend_time, self.config.ensemble_decay)

    def _update_metrics(
        self, t: float, p: np.ndarray, v: np.ndarray, a: np.ndarray, spliced: bool, gap: float
    ) -> None:
        prev = self._prev
        self._prev = (t, p, v, a)
        if prev is None or t <= prev[0]:
            return
        t0, p0, v0, a0 = prev
        h = t - t0
        jerk = (a - a0) / h
        j2 = float(np.mean(jerk * jerk))
        alpha = min(1.0, h / self.config.jerk_time_constant)
        self._jerk_ms += alpha * (j2 - self._jerk_ms)
        with self._lock:
            m = self._metrics
            m.rms_jerk = math.sqrt(self._jerk_ms)
            m.max_jerk = max(m.max_jerk, float(np.max(np.abs(jerk))))
            if spliced:
                # Jump = departure from the second-order prediction of the previous tick.
                predicted = p0 + v0 * h + 0.5 * a0 * h * h
                jump = float(np.max(np.abs(p - predicted)))
                m.splices += 1
                m.last_seam_gap = gap
                m.max_seam_gap = max(m.max_seam_gap, gap)
                m.last_splice_jump = jump
                m.max_splice_jump = max(m.max_splice_jump, jump)

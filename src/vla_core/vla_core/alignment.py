"""Offline alignment of recorded streams onto a control-rate grid, by header stamps.

Datasets are derived from bags: every stream (cameras, joint states, commands, action chunks) is
sampled on one uniform grid ``t_k = anchor + k / rate`` using the **header stamps** of its
messages, never their receive time, and every sample says how far its stamp is from the tick it
stands for (its *skew*). Nothing is accepted silently: a sample further than ``max_skew`` from its
tick (a frozen or stale camera, a gap), two streams further apart than ``max_skew`` at a tick, or
a stream missing more than ``max_trim`` at either end of the episode is a violation, and the
dataset builder refuses the episode with a message naming the topic and the skew.

A uniform stamp offset (a camera with latency but correct capture stamps) is *not* an error:
aligning on stamps puts the frame where it belongs. Aligning on receive time would not.

Terms used in reports:

- ``duplicates``: messages whose stamp equals the previous one (a driver re-sending a frame);
  only the first is used.
- ``regressions``: stamps older than the previous one (out of order); sorted before use.
- ``gaps`` / ``dropped``: intervals longer than ``gap_factor`` typical (median) intervals, and the
  messages they imply were lost; plus sequence-number gaps where the stream has a counter.
- ``reused``: grid ticks that take the same source message as the previous tick (a dataset frame
  repeated: the stream is slower than the grid, or has a hole).

Pure numpy; stamps are ``int64`` nanoseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_core.config import Config, param

__all__ = [
    'AlignmentConfig',
    'AlignmentResult',
    'StreamHealth',
    'StreamSync',
    'Violation',
    'align_streams',
    'chunk_lookup',
    'control_grid',
    'interpolate',
    'nearest_indices',
    'sorted_unique',
    'stream_health',
]

NS = 1_000_000_000


@dataclass(frozen=True, kw_only=True)
class AlignmentConfig(Config):
    rate: float = param(10.0, description='control-rate grid [Hz]', range=(0.1, 10000.0))
    max_skew: float = param(
        0.05,
        description='largest |stamp - grid tick| of any sample, and largest spread of the '
        'stamps of the streams at one tick [s]; beyond it the episode is refused',
        range=(0.0, 10.0),
    )
    gap_factor: float = param(
        2.5,
        description='a stamp interval longer than this many median intervals is a gap',
        range=(1.1, 1000.0),
    )
    max_trim: float = param(
        1.0,
        description='a stream may start later / end earlier than the longest one by this much '
        '[s]; more is a violation (a camera that died mid-episode)',
        range=(0.0, 3600.0),
    )
    reference: str = param(
        '', description='stream whose first stamp anchors the grid (empty: the slowest)'
    )

    @property
    def period_ns(self) -> int:
        return round(NS / self.rate)


@dataclass(frozen=True)
class StreamHealth:
    """What a stream's stamps say about the stream itself, before any alignment."""

    count: int
    duplicates: int
    regressions: int
    gaps: int
    dropped: int  # messages missing by gaps and sequence numbers
    sequence_gaps: int
    median_period_s: float
    rate_hz: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def sorted_unique(stamps_ns: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Indices ``(M,)`` of the messages to use: sorted by stamp (stable), the first of each run of
    equal stamps; plus the counts of duplicates and regressions in ``stamps_ns (N,)``."""
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    if stamps.size == 0:
        return np.zeros(0, dtype=np.int64), 0, 0
    regressions = int(np.count_nonzero(np.diff(stamps) < 0))
    order = np.argsort(stamps, kind='stable')
    s = stamps[order]
    keep = np.ones(s.size, dtype=bool)
    keep[1:] = s[1:] != s[:-1]
    return order[keep].astype(np.int64), int(s.size - np.count_nonzero(keep)), regressions


def stream_health(
    stamps_ns: np.ndarray, gap_factor: float = 2.5, sequence: np.ndarray | None = None
) -> StreamHealth:
    """Duplicates, regressions, gaps and drops of one stream, from its stamps ``(N,)`` in
    arrival order and optionally the producer's counter ``(N,)``."""
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    keep, duplicates, regressions = sorted_unique(stamps)
    s = stamps[keep]
    gaps = dropped = 0
    median = 0.0
    if s.size >= 3:
        d = np.diff(s).astype(np.float64)
        median = float(np.median(d))
        if median > 0:
            long = d > gap_factor * median
            gaps = int(np.count_nonzero(long))
            dropped = int(np.sum(np.rint(d[long] / median) - 1))
    sequence_gaps = 0
    if sequence is not None and len(sequence) >= 2:
        seq = np.sort(np.unique(np.asarray(sequence, dtype=np.int64)))
        sequence_gaps = int(np.sum(np.diff(seq) - 1))
    return StreamHealth(
        count=int(stamps.size),
        duplicates=duplicates,
        regressions=regressions,
        gaps=gaps,
        dropped=max(dropped, sequence_gaps),  # the same loss seen twice counts once
        sequence_gaps=sequence_gaps,
        median_period_s=median / NS,
        rate_hz=NS / median if median > 0 else 0.0,
    )


def control_grid(anchor_ns: int, end_ns: int, rate: float) -> np.ndarray:
    """Ticks ``(G,)`` int64: ``anchor + k / rate`` for every one not after ``end_ns``."""
    if end_ns < anchor_ns:
        return np.zeros(0, dtype=np.int64)
    n = int((end_ns - anchor_ns) * rate // NS) + 1
    # Exact integer arithmetic: k * 1e9 / rate rounded, so long episodes do not drift.
    return anchor_ns + np.rint(np.arange(n, dtype=np.float64) * (NS / rate)).astype(np.int64)


def nearest_indices(stamps_ns: np.ndarray, grid_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted unique ``stamps_ns (N,)`` and ``grid_ns (G,)``: the index ``(G,)`` of the
    nearest stamp to each tick (the earlier one on a tie) and its skew ``stamp - tick (G,)``."""
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    grid = np.asarray(grid_ns, dtype=np.int64)
    if stamps.size == 0:
        raise ValueError('no stamps to align')
    right = np.clip(np.searchsorted(stamps, grid, side='left'), 0, stamps.size - 1)
    left = np.clip(right - 1, 0, stamps.size - 1)
    take_left = np.abs(grid - stamps[left]) <= np.abs(stamps[right] - grid)
    idx = np.where(take_left, left, right)
    return idx.astype(np.int64), stamps[idx] - grid


def interpolate(stamps_ns: np.ndarray, values: np.ndarray, grid_ns: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values (N, D)`` at sorted unique ``stamps_ns (N,)`` onto
    ``grid_ns (G,)`` -> ``(G, D)``; held constant outside the stamps."""
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    vals = np.asarray(values, dtype=np.float64)
    t = (stamps - stamps[0]).astype(np.float64)
    g = (np.asarray(grid_ns, dtype=np.int64) - stamps[0]).astype(np.float64)
    return np.stack([np.interp(g, t, vals[:, j]) for j in range(vals.shape[1])], axis=1)


def chunk_lookup(
    chunk_stamps_ns: np.ndarray,
    step_dt_s: np.ndarray,
    horizons: np.ndarray,
    grid_ns: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which action chunk speaks for each tick, and where in it.

    Chunks ``(N,)`` sorted by stamp; target ``i`` of chunk ``c`` is for ``stamp_c + i * dt_c``.
    Each tick ``(G,)`` takes the newest chunk stamped at or before it (the first chunk for ticks
    before it) and returns ``(chunk index (G,), fractional row (G,) clipped to [0, H-1],
    skew (G,) ns)``; the skew is 0 inside the chunk's span and the distance outside it (an
    expired chunk, or a tick before the first chunk), signed like ``stamp - tick``.
    """
    stamps = np.asarray(chunk_stamps_ns, dtype=np.int64)
    grid = np.asarray(grid_ns, dtype=np.int64)
    idx = np.clip(np.searchsorted(stamps, grid, side='right') - 1, 0, stamps.size - 1)
    dt_ns = np.asarray(step_dt_s, dtype=np.float64)[idx] * NS
    last = np.asarray(horizons, dtype=np.int64)[idx] - 1
    offset = (grid - stamps[idx]).astype(np.float64)
    row = np.clip(offset / dt_ns, 0.0, last.astype(np.float64))
    end = stamps[idx] + np.rint(last * dt_ns).astype(np.int64)
    skew = np.where(grid < stamps[idx], stamps[idx] - grid, np.where(grid > end, end - grid, 0))
    return idx.astype(np.int64), row, skew.astype(np.int64)


@dataclass
class StreamSync:
    """How one stream landed on the grid."""

    health: StreamHealth
    max_skew_s: float = 0.0  # largest |stamp - tick|
    mean_abs_skew_s: float = 0.0
    worst_tick_s: float = 0.0  # episode time of the tick with the largest skew
    reused: int = 0  # ticks repeating the previous tick's source message

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.health.to_dict(),
            'max_skew_s': self.max_skew_s,
            'mean_abs_skew_s': self.mean_abs_skew_s,
            'worst_tick_s': self.worst_tick_s,
            'reused': self.reused,
        }


@dataclass(frozen=True)
class Violation:
    kind: str  # skew | cross_skew | trim | empty
    stream: str
    value_s: float
    bound_s: float
    message: str


@dataclass
class AlignmentResult:
    """The grid and, per stream, the source index and skew of every tick."""

    grid_ns: np.ndarray  # (G,) int64
    indices: dict[str, np.ndarray]  # (G,) into the stream's *original* message order
    skew_ns: dict[str, np.ndarray]  # (G,) stamp - tick
    streams: dict[str, StreamSync]
    max_cross_skew_s: float = 0.0
    cross_skew_pair: tuple[str, str] = ('', '')
    trimmed_start_s: float = 0.0
    trimmed_end_s: float = 0.0
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def _skew_violation(name: str, sync: StreamSync, bound: float, rate: float) -> Violation:
    hint = ''
    if sync.health.rate_hz and sync.health.rate_hz < rate * 0.9:
        hint = f' (stream at {sync.health.rate_hz:.1f} Hz, slower than the {rate:g} Hz grid)'
    elif sync.health.gaps or sync.health.duplicates:
        hint = (
            f' ({sync.health.gaps} gaps, {sync.health.duplicates} duplicated stamps: '
            'stale or frozen stream)'
        )
    return Violation(
        'skew',
        name,
        sync.max_skew_s,
        bound,
        f'{name}: skew {sync.max_skew_s:.3f} s at t={sync.worst_tick_s:.3f} s exceeds max_skew '
        f'{bound:.3f} s{hint}',
    )


def align_streams(
    stamps: Mapping[str, np.ndarray],
    cfg: AlignmentConfig,
    *,
    sequences: Mapping[str, np.ndarray] | None = None,
    chunks: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> AlignmentResult:
    """Put every stream ``name -> stamps (N,)`` (arrival order) on one control-rate grid.

    The window is where all streams have data (latest first stamp .. earliest last stamp); the
    grid is anchored at the reference stream's first stamp in it, so a camera at the grid rate
    lands on its ticks. Each tick takes each stream's nearest message. ``chunks`` marks action
    chunk streams, ``name -> (step_dt_s (N,), horizon (N,))``: they cover a span, so a tick
    takes the newest chunk at or before it (:func:`chunk_lookup`) and their stamps do not bound
    the window's end. ``sequences`` optionally gives producer counters for drop accounting.
    """
    sequences = sequences or {}
    chunks = chunks or {}
    names = list(stamps)
    empty = [n for n in names if len(stamps[n]) == 0]
    if not names or empty:
        v = [Violation('empty', n, 0.0, 0.0, f'{n}: no messages') for n in empty]
        z = np.zeros(0, dtype=np.int64)
        return AlignmentResult(z, {}, {}, {}, violations=v or [Violation('empty', '', 0, 0, '')])
    clean: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # kept indices, their stamps
    health: dict[str, StreamHealth] = {}
    for n in names:
        raw = np.asarray(stamps[n], dtype=np.int64)
        keep, _, _ = sorted_unique(raw)
        clean[n] = (keep, raw[keep])
        health[n] = stream_health(raw, cfg.gap_factor, sequences.get(n))
    firsts = {n: int(clean[n][1][0]) for n in names}
    lasts = {}
    for n in names:
        s = clean[n][1]
        if n in chunks:
            dt, hor = chunks[n]
            k = clean[n][0][-1]
            lasts[n] = int(s[-1] + round(float(dt[k]) * (int(hor[k]) - 1) * NS))
        else:
            lasts[n] = int(s[-1])
    start, end = max(firsts.values()), min(lasts.values())
    tol = cfg.max_skew * NS
    ref = cfg.reference or max(
        (n for n in names if n not in chunks), key=lambda n: health[n].median_period_s,
        default=names[0],
    )  # fmt: skip
    if ref not in clean:
        raise ValueError(f'reference stream {ref!r} is not one of {names}')
    ref_stamps = clean[ref][1]
    i0 = int(np.searchsorted(ref_stamps, start - tol, side='left'))
    anchor = int(ref_stamps[min(i0, ref_stamps.size - 1)])
    grid = control_grid(anchor, int(end + tol / 2), cfg.rate)
    t0 = min(firsts.values())
    result = AlignmentResult(
        grid,
        {},
        {},
        {},
        trimmed_start_s=(start - t0) / NS,
        trimmed_end_s=(max(lasts.values()) - end) / NS,
    )
    if grid.size == 0:
        result.violations.append(
            Violation('empty', '', 0.0, 0.0, 'the streams do not overlap in time')
        )
        return result
    for n in names:
        keep, s = clean[n]
        if n in chunks:
            dt, hor = chunks[n]
            j, _, skew = chunk_lookup(s, np.asarray(dt)[keep], np.asarray(hor)[keep], grid)
        else:
            j, skew = nearest_indices(s, grid)
        abs_skew = np.abs(skew)
        worst = int(np.argmax(abs_skew))
        result.indices[n] = keep[j]
        result.skew_ns[n] = skew
        result.streams[n] = StreamSync(
            health=health[n],
            max_skew_s=float(abs_skew[worst]) / NS,
            mean_abs_skew_s=float(abs_skew.mean()) / NS,
            worst_tick_s=(int(grid[worst]) - anchor) / NS,
            # A chunk speaks for many ticks by design: only sampled streams count as reused.
            reused=0 if n in chunks else int(np.count_nonzero(j[1:] == j[:-1])),
        )
    # Cross-stream spread: chunk streams contribute the time they were asked for (the tick)
    # when inside their span, so only sampled streams' stamps spread.
    effective = np.stack([grid + result.skew_ns[n] for n in names])  # (S, G)
    spread = effective.max(axis=0) - effective.min(axis=0)
    k = int(np.argmax(spread))
    result.max_cross_skew_s = float(spread[k]) / NS
    result.cross_skew_pair = (
        names[int(np.argmin(effective[:, k]))],
        names[int(np.argmax(effective[:, k]))],
    )
    _check(result, cfg, firsts, lasts)
    return result


def _check(
    result: AlignmentResult,
    cfg: AlignmentConfig,
    firsts: Mapping[str, int],
    lasts: Mapping[str, int],
) -> None:
    eps = 1e-9
    for n, sync in sorted(result.streams.items(), key=lambda kv: -kv[1].max_skew_s):
        if sync.max_skew_s > cfg.max_skew + eps:
            result.violations.append(_skew_violation(n, sync, cfg.max_skew, cfg.rate))
    if not result.violations and result.max_cross_skew_s > cfg.max_skew + eps:
        a, b = result.cross_skew_pair
        result.violations.append(
            Violation(
                'cross_skew',
                b,
                result.max_cross_skew_s,
                cfg.max_skew,
                f'{a} and {b}: cross-stream skew {result.max_cross_skew_s:.3f} s exceeds '
                f'max_skew {cfg.max_skew:.3f} s',
            )
        )
    late = max(firsts, key=lambda n: firsts[n])
    if result.trimmed_start_s > cfg.max_trim + eps:
        result.violations.append(
            Violation(
                'trim',
                late,
                result.trimmed_start_s,
                cfg.max_trim,
                f'{late}: starts {result.trimmed_start_s:.3f} s after the first stream '
                f'(max_trim {cfg.max_trim:.3f} s)',
            )
        )
    early = min(lasts, key=lambda n: lasts[n])
    if result.trimmed_end_s > cfg.max_trim + eps:
        result.violations.append(
            Violation(
                'trim',
                early,
                result.trimmed_end_s,
                cfg.max_trim,
                f'{early}: ends {result.trimmed_end_s:.3f} s before the last stream '
                f'(max_trim {cfg.max_trim:.3f} s)',
            )
        )

"""Alignment on a control-rate grid by header stamps: skew, duplicates, drops, violations."""

from __future__ import annotations

import numpy as np
import pytest

from vla_core.alignment import (
    NS,
    AlignmentConfig,
    align_streams,
    chunk_lookup,
    control_grid,
    interpolate,
    nearest_indices,
    sorted_unique,
    stream_health,
)
from vla_core.config import ConfigError

T0 = 1_700_000_000 * NS
MS = 1_000_000


def ticks(rate: float, seconds: float, offset_ns: int = 0) -> np.ndarray:
    return T0 + offset_ns + np.rint(np.arange(int(seconds * rate)) * NS / rate).astype(np.int64)


def test_grid_is_exact_over_long_episodes():
    g = control_grid(T0, T0 + 3600 * NS, 30.0)
    assert g.size == 108001
    assert g[-1] == T0 + 3600 * NS  # no accumulated drift
    assert control_grid(T0, T0 - 1, 10.0).size == 0


def test_nearest_and_interpolate():
    stamps = np.array([0, 10, 20, 30], dtype=np.int64)
    idx, skew = nearest_indices(stamps, np.array([-5, 4, 5, 6, 40]))
    assert idx.tolist() == [0, 0, 0, 1, 3]  # ties take the earlier sample
    assert skew.tolist() == [5, -4, -5, 4, -10]
    vals = interpolate(stamps, np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([5, 25, 99]))
    np.testing.assert_allclose(vals[:, 0], [0.5, 2.5, 3.0])


def test_duplicates_regressions_and_drops():
    s = ticks(100.0, 1.0).tolist()
    s = s[:10] + s[15:]  # 5 lost
    s.insert(3, s[2])  # a duplicate
    s[20], s[21] = s[21], s[20]  # out of order
    h = stream_health(np.array(s), gap_factor=2.5)
    assert (h.duplicates, h.regressions, h.gaps, h.dropped) == (1, 1, 1, 5)
    assert h.rate_hz == pytest.approx(100.0)
    keep, dup, reg = sorted_unique(np.array(s))
    assert dup == 1 and reg == 1 and np.all(np.diff(np.array(s)[keep]) > 0)
    seq = stream_health(ticks(5.0, 2.0), sequence=np.array([0, 1, 2, 4, 5, 6, 7, 8, 9, 10]))
    assert seq.sequence_gaps == 1 and seq.dropped == 1


def test_aligned_streams_with_latency_pass():
    cfg = AlignmentConfig(rate=10.0, max_skew=0.02)
    # A camera whose frames arrive late is irrelevant: only stamps are given; joints at 100 Hz
    # with 3 ms phase offset.
    r = align_streams({'cam': ticks(10.0, 2.0), 'joints': ticks(100.0, 2.0, 3 * MS)}, cfg)
    assert r.ok, r.violations
    assert r.grid_ns[0] == T0  # the joints start 3 ms later: within max_skew of the tick
    assert r.streams['cam'].max_skew_s == 0.0
    assert r.streams['joints'].max_skew_s == pytest.approx(0.003)
    assert r.max_cross_skew_s == pytest.approx(0.003)
    assert r.streams['cam'].reused == 0


def test_frozen_camera_is_refused_naming_topic_and_skew():
    cam = ticks(10.0, 3.0)
    cam = np.concatenate([cam[:10], cam[16:]])  # nothing from 1.0 s to 1.6 s
    cfg = AlignmentConfig(rate=10.0, max_skew=0.05)
    r = align_streams({'/camera/x/image_raw': cam, '/joint_states': ticks(100.0, 3.0)}, cfg)
    assert not r.ok
    v = r.violations[0]
    assert v.stream == '/camera/x/image_raw' and v.value_s == pytest.approx(0.3)
    assert (
        '/camera/x/image_raw: skew 0.300 s at t=1.200 s' in v.message
        and 'max_skew 0.050' in v.message
    )
    assert r.streams['/camera/x/image_raw'].reused == 6  # 6 ticks without a frame of their own


def test_slow_stream_hint_and_cross_skew():
    r = align_streams(
        {'cam': ticks(5.0, 2.0), 'joints': ticks(100.0, 2.0)}, AlignmentConfig(rate=10.0)
    )
    assert 'slower than the 10 Hz grid' in r.violations[0].message
    # Two cameras 40 ms apart: each within 40 ms of the tick, spread 40 ms > 30 ms bound.
    r = align_streams(
        {'a': ticks(10.0, 2.0), 'b': ticks(10.0, 2.0, 40 * MS)},
        AlignmentConfig(rate=10.0, max_skew=0.045, reference='a'),
    )
    assert r.ok
    r = align_streams(
        {'a': ticks(10.0, 2.0), 'b': ticks(10.0, 2.0, 40 * MS)},
        AlignmentConfig(rate=10.0, max_skew=0.041, reference='a'),
    )
    assert r.ok and r.max_cross_skew_s == pytest.approx(0.04)
    r = align_streams(
        {'a': ticks(10.0, 2.0), 'b': ticks(10.0, 2.0, 40 * MS), 'c': ticks(100.0, 2.0)},
        AlignmentConfig(rate=10.0, max_skew=0.039, reference='a'),
    )
    assert [v.kind for v in r.violations] == ['skew']


def test_stream_that_dies_is_trimmed_and_reported():
    cfg = AlignmentConfig(rate=10.0, max_trim=0.5)
    r = align_streams({'cam': ticks(10.0, 1.0), 'joints': ticks(100.0, 3.0)}, cfg)
    assert any(v.kind == 'trim' and v.stream == 'cam' for v in r.violations)
    assert r.trimmed_end_s == pytest.approx(2.09)


def test_chunks_cover_their_span():
    stamps = ticks(5.0, 2.0)  # every 200 ms
    dt = np.full(stamps.size, 0.1)
    horizon = np.full(stamps.size, 4)  # spans 300 ms
    grid = ticks(10.0, 2.0)
    idx, row, skew = chunk_lookup(stamps, dt, horizon, grid)
    assert idx[:4].tolist() == [0, 0, 1, 1] and row[:4].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert not skew.any()
    # A lost chunk: the previous one covers 300 ms of the 400 ms hole.
    keep = np.array([i for i in range(stamps.size) if i != 3])
    r = align_streams(
        {'chunk': stamps[keep], 'cam': grid},
        AlignmentConfig(rate=10.0, max_skew=0.05),
        chunks={'chunk': (dt[keep], horizon[keep])},
        sequences={'chunk': keep},
    )
    assert r.ok and r.streams['chunk'].health.dropped == 1
    r = align_streams(
        {'chunk': stamps[keep], 'cam': grid + 50 * MS},
        AlignmentConfig(rate=10.0, max_skew=0.049, reference='cam'),
        chunks={'chunk': (dt[keep], np.full(keep.size, 2))},
    )
    assert r.violations[0].stream == 'chunk'


def test_config_validation():
    with pytest.raises(ConfigError):
        AlignmentConfig(rate=0.0)
    with pytest.raises(ValueError, match='reference'):
        align_streams({'a': ticks(10, 1)}, AlignmentConfig(reference='zz'))
    r = align_streams({'a': ticks(10, 1), 'b': np.zeros(0, np.int64)}, AlignmentConfig())
    assert r.violations[0].message == 'b: no messages'

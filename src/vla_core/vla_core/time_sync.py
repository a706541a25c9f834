"""Approximate-time matching of sensor streams into bundles (camera + joint states + IMU, ...).

One stream is the *reference* (normally the slowest, the camera): every reference message becomes
one bundle holding, from each other stream, the message whose stamp is nearest to it, provided all
of them lie within ``max_skew``. A bundle is emitted only once the nearest neighbour is final, i.e.
every other stream has delivered a message stamped at or after the reference stamp, so the result
does not depend on arrival order or callback timing. A stream that has gone quiet would hold
bundles back forever; :meth:`ApproximateTimeSynchronizer.flush` (called with the current time)
resolves reference messages older than ``max_wait`` with whatever has arrived.

Pure Python and stamp-driven (seconds, any clock), with no dependence on ``message_filters``.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vla_core.config import Config, ConfigError, param

__all__ = ['ApproximateTimeSynchronizer', 'SyncBundle', 'SyncStats', 'TimeSyncConfig']


@dataclass(frozen=True, kw_only=True)
class TimeSyncConfig(Config):
    streams: tuple[str, ...] = param(
        ('camera', 'joint_states', 'imu'),
        description='stream names; the first is the default reference',
    )
    reference: str = param(
        '', description='stream whose messages define bundles (empty: the first)'
    )
    max_skew: float = param(
        0.02,
        description='largest |stamp - reference stamp| accepted in a bundle [s]',
        range=(0.0, 10.0),
    )
    max_wait: float = param(
        0.2,
        description='flush(now) gives up waiting for later messages after this long [s]',
        range=(0.0, 60.0),
    )
    queue_size: int = param(
        200, description='messages kept per stream (oldest are dropped first)', range=(2, 100000)
    )

    def validate(self) -> None:
        if len(self.streams) < 2:
            raise ConfigError('streams', 'need at least two streams to synchronize')
        if len(set(self.streams)) != len(self.streams) or not all(self.streams):
            raise ConfigError(
                'streams', f'names must be unique and non-empty: {list(self.streams)}'
            )
        if self.reference and self.reference not in self.streams:
            raise ConfigError('reference', f'{self.reference!r} is not one of {list(self.streams)}')


@dataclass(frozen=True)
class SyncBundle:
    """One matched set: ``messages[name]`` was stamped ``stamps[name]``."""

    stamp: float  # the reference message's stamp
    messages: dict[str, Any]
    stamps: dict[str, float]

    @property
    def skew(self) -> float:
        """Largest distance of any member from the reference stamp [s]."""
        return max(abs(s - self.stamp) for s in self.stamps.values())


@dataclass
class SyncStats:
    bundles: int = 0
    dropped_skew: int = 0  # reference messages with no partner within max_skew in some stream
    dropped_timeout: int = 0  # resolved by flush() without a partner
    dropped_overflow: int = 0  # messages pushed out of a full queue
    late: int = 0  # messages older than what was already decided; ignored
    per_stream: dict[str, int] = field(default_factory=dict)


class _Stream:
    """Messages of one stream sorted by stamp."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.stamps: list[float] = []
        self.msgs: list[Any] = []

    def insert(self, stamp: float, msg: Any) -> bool:
        """Insert in stamp order; False when the oldest had to be dropped to make room."""
        i = bisect.bisect_right(self.stamps, stamp)
        self.stamps.insert(i, stamp)
        self.msgs.insert(i, msg)
        if len(self.stamps) > self.size:
            del self.stamps[0], self.msgs[0]
            return False
        return True

    def prune_before(self, t: float) -> None:
        """Drop messages stamped before ``t`` but keep the newest of them (a possible neighbour)."""
        i = bisect.bisect_left(self.stamps, t)
        if i > 1:
            del self.stamps[: i - 1], self.msgs[: i - 1]

    def nearest(self, t: float) -> int | None:
        if not self.stamps:
            return None
        i = bisect.bisect_left(self.stamps, t)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self.stamps)]
        return min(candidates, key=lambda j: abs(self.stamps[j] - t))


class ApproximateTimeSynchronizer:
    """Feed messages with :meth:`add`; it returns the bundles that became complete.

    Not thread-safe: call it from one thread (or hold a lock) as a ROS node's callbacks would.
    """

    def __init__(self, config: TimeSyncConfig | None = None) -> None:
        self.config = config or TimeSyncConfig()
        self.reference = self.config.reference or self.config.streams[0]
        self.others: Sequence[str] = [s for s in self.config.streams if s != self.reference]
        self._pending: deque[tuple[float, Any]] = deque()  # reference messages not yet decided
        self._streams = {s: _Stream(self.config.queue_size) for s in self.others}
        self._decided_until = float('-inf')  # reference stamps up to here are final
        self.stats = SyncStats(per_stream={s: 0 for s in self.config.streams})

    def add(self, stream: str, stamp: float, msg: Any) -> list[SyncBundle]:
        if stream not in self.stats.per_stream:
            raise KeyError(f'unknown stream {stream!r}; known: {list(self.config.streams)}')
        self.stats.per_stream[stream] += 1
        stamp = float(stamp)
        if stream == self.reference:
            if stamp <= self._decided_until or (self._pending and stamp < self._pending[-1][0]):
                self.stats.late += 1  # out of order reference messages would reorder bundles
                return []
            self._pending.append((stamp, msg))
            if len(self._pending) > self.config.queue_size:
                self._pending.popleft()
                self.stats.dropped_overflow += 1
        else:
            if stamp < self._decided_until - self.config.max_skew:
                self.stats.late += 1
                return []
            if not self._streams[stream].insert(stamp, msg):
                self.stats.dropped_overflow += 1
        return self._resolve(now=None)

    def flush(self, now: float) -> list[SyncBundle]:
        """Resolve reference messages older than ``now - max_wait`` with what has arrived."""
        return self._resolve(now=now)

    def _resolve(self, now: float | None) -> list[SyncBundle]:
        out: list[SyncBundle] = []
        while self._pending:
            t, ref_msg = self._pending[0]
            final = all(
                self._streams[s].stamps and self._streams[s].stamps[-1] >= t for s in self.others
            )
            expired = now is not None and t <= now - self.config.max_wait
            if not (final or expired):
                break
            self._pending.popleft()
            self._decided_until = t
            bundle = self._match(t, ref_msg)
            if bundle is not None:
                out.append(bundle)
                self.stats.bundles += 1
            elif final:
                self.stats.dropped_skew += 1
            else:
                self.stats.dropped_timeout += 1
        horizon = (
            self._pending[0][0] if self._pending else self._decided_until
        ) - self.config.max_skew
        for s in self._streams.values():
            s.prune_before(horizon)
        return out

    def _match(self, t: float, ref_msg: Any) -> SyncBundle | None:
        messages = {self.reference: ref_msg}
        stamps = {self.reference: t}
        for name in self.others:
            s = self._streams[name]
            j = s.nearest(t)
            if j is None or abs(s.stamps[j] - t) > self.config.max_skew:
                return None
            messages[name] = s.msgs[j]
            stamps[name] = s.stamps[j]
        return SyncBundle(stamp=t, messages=messages, stamps=stamps)

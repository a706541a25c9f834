"""Small thread-safe meters the drivers keep so a node can report rate and latency."""

from __future__ import annotations

from collections import deque
import threading

import numpy as np

__all__ = ['ClockOffsetTracker', 'LatencyWindow', 'RateMeter']


class RateMeter:
    """Event rate over the last ``window`` seconds of event times."""

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, t: float) -> None:
        with self._lock:
            self._times.append(t)
            while self._times and self._times[0] < t - self.window:
                self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        """Events per second; 0 with fewer than two events in the window (ending at ``now``)."""
        with self._lock:
            times = list(self._times)
        if now is not None:
            times = [t for t in times if t >= now - self.window]
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


class LatencyWindow:
    """The last ``size`` latencies [s] with percentiles."""

    def __init__(self, size: int = 1000) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.count = 0

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(value)
            self.count += 1

    def percentile(self, q: float) -> float:
        with self._lock:
            values = np.fromiter(self._values, dtype=np.float64)
        return float(np.percentile(values, q)) if values.size else float('nan')

    def values(self) -> np.ndarray:
        with self._lock:
            return np.fromiter(self._values, dtype=np.float64)


class ClockOffsetTracker:
    """Maps a device clock (buffer PTS with unknown epoch) onto the host clock.

    ``arrival - device_time`` is the true offset plus a transport delay that is never negative, so
    the running minimum is the offset plus the *smallest* delay: stamps become jitter-free capture
    times shifted by a constant (the minimum delay, compensated by the driver's ``latency_offset``).
    The minimum may rise by ``drift`` seconds per second so that clock drift is followed.
    """

    def __init__(self, drift: float = 1e-4) -> None:
        self.drift = drift
        self.offset: float | None = None
        self._last_arrival = 0.0

    def reset(self) -> None:
        self.offset = None

    def to_host(self, device_time: float, arrival: float) -> float:
        sample = arrival - device_time
        if self.offset is None:
            self.offset = sample
        else:
            allowed = self.offset + self.drift * max(0.0, arrival - self._last_arrival)
            self.offset = min(sample, allowed)
        self._last_arrival = arrival
        return device_time + self.offset

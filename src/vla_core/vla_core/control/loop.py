"""A fixed-rate loop on its own thread with absolute deadlines, overrun counting and statistics.

Deadlines are ``start + k * period`` on ``CLOCK_MONOTONIC``; each wait sleeps *until* the next
deadline (``clock_nanosleep(TIMER_ABSTIME)`` through libc when available), so time spent in the
step or in a late wake-up never accumulates into drift as it does with ``sleep(period)``. A
``relative`` schedule is kept for comparison only. Clock and sleeper are injectable, so the
scheduling logic is unit-tested with a fake clock.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import ctypes
import ctypes.util
from dataclasses import dataclass
import os
import threading
import time

import numpy as np

from vla_core.config import Config, param

__all__ = [
    'DeadlineLoop',
    'LoopConfig',
    'LoopStats',
    'sleep_until_ns',
]

StepFn = Callable[[float, float], None]  # (t [s] scheduled deadline, dt [s] since last tick)

_CLOCK_MONOTONIC = 1
_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]


def _load_clock_nanosleep() -> Callable[..., int] | None:
    if os.uname().sysname != 'Linux':
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
        fn = libc.clock_nanosleep  # CDLL releases the GIL for the call
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Timespec), ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


_clock_nanosleep = _load_clock_nanosleep()


def sleep_until_ns(deadline_ns: int, spin_ns: int = 0) -> None:
    """Sleep until ``time.monotonic_ns() >= deadline_ns`` (absolute), optionally busy-waiting the
    last ``spin_ns`` to cut wake-up latency."""
    target = deadline_ns - spin_ns
    if _clock_nanosleep is not None:
        ts = _Timespec(target // 1_000_000_000, target % 1_000_000_000)
        while _clock_nanosleep(_CLOCK_MONOTONIC, _TIMER_ABSTIME, ctypes.byref(ts), None) == 4:
            pass  # EINTR: same absolute deadline, no drift
    else:
        remaining = target - time.monotonic_ns()
        if remaining > 0:
            time.sleep(remaining * 1e-9)
    while spin_ns > 0 and time.monotonic_ns() < deadline_ns:
        pass


@dataclass(frozen=True, kw_only=True)
class LoopConfig(Config):
    rate_hz: float = param(500.0, description='control rate [Hz]', range=(1.0, 20000.0))
    spin_us: float = param(
        0.0, description='busy-wait before each deadline to cut wake-up jitter [us]', range=(0, 1e4)
    )
    realtime_priority: int = param(
        0, description='SCHED_FIFO priority of the loop thread, 0 = leave as is', range=(0, 99)
    )
    history: int = param(
        100000, description='ticks kept for period statistics', range=(16, 10_000_000)
    )


@dataclass(frozen=True)
class LoopStats:
    ticks: int
    overruns: int  # ticks whose step finished after the next deadline
    skipped: int  # deadlines dropped to get back in phase after an overrun
    achieved_hz: float
    period_error_p50: float  # [s] |actual period - nominal|
    period_error_p99: float
    period_error_max: float
    latency_p50: float  # [s] wake-up time - deadline
    latency_p99: float
    step_time_p50: float  # [s] time spent in the step
    step_time_p99: float


class DeadlineLoop:
    """Calls ``step(t, dt)`` every ``period`` seconds; ``t`` is the scheduled deadline in seconds
    of the injected clock, ``dt`` the time since the previous tick's deadline.

    ``run(n)`` runs on the caller's thread (tests, benchmarks); ``start()`` spawns the loop thread
    and ``stop()`` joins it. After an overrun the loop skips the deadlines it missed (keeping
    phase) instead of firing a burst of late ticks.
    """

    def __init__(
        self,
        config: LoopConfig,
        step: StepFn,
        *,
        schedule: str = 'absolute',
        clock_ns: Callable[[], int] = time.monotonic_ns,
        sleep_until: Callable[[int, int], None] | None = None,
        name: str = 'control_loop',
    ) -> None:
        if schedule not in ('absolute', 'relative'):
            raise ValueError(f'unknown schedule {schedule!r}')
        self.config = config
        self.step = step
        self.schedule = schedule
        self.period_ns = round(1e9 / config.rate_hz)
        self.clock_ns = clock_ns
        self.sleep_until = sleep_until if sleep_until is not None else sleep_until_ns
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        n = config.history
        self._wake = np.zeros(n, dtype=np.int64)
        self._deadline = np.zeros(n, dtype=np.int64)
        self._step_ns = np.zeros(n, dtype=np.int64)
        self.ticks = 0
        self.overruns = 0
        self.skipped = 0
        self.error: BaseException | None = None

    # --- threading ---

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError('loop already started')
        self._stop.clear()
        self._thread = threading.Thread(target=self._thread_main, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _thread_main(self) -> None:
        prio = self.config.realtime_priority
        if prio > 0 and hasattr(os, 'sched_setscheduler'):
            # Needs CAP_SYS_NICE or an rtprio limit; otherwise run best-effort.
            with contextlib.suppress(PermissionError, OSError):
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(prio))
        try:
            self.run()
        except BaseException as err:  # surfaced to the owner instead of dying silently
            self.error = err

    # --- the loop ---

    def run(self, max_ticks: int | None = None, duration_s: float | None = None) -> LoopStats:
        """Run until ``stop()``, ``max_ticks`` ticks or ``duration_s`` seconds."""
        period = self.period_ns
        spin = int(self.config.spin_us * 1000)
        start = self.clock_ns()
        end = None if duration_s is None else start + int(duration_s * 1e9)
        deadline = start + period
        prev_deadline = start
        count = 0
        while not self._stop.is_set():
            if max_ticks is not None and count >= max_ticks:
                break
            if end is not None and deadline > end:
                break
            self.sleep_until(deadline, spin)
            wake = self.clock_ns()
            self.step(deadline * 1e-9, (deadline - prev_deadline) * 1e-9)
            done = self.clock_ns()
            self._record(deadline, wake, done - wake)
            count += 1
            prev_deadline = deadline
            if self.schedule == 'relative':
                deadline = done + period  # what `sleep(period)` loops do: drifts by step + latency
                continue
            deadline += period
            if done > deadline:  # overran into the next period: skip missed deadlines, keep phase
                self.overruns += 1
                missed = (done - deadline) // period + 1
                self.skipped += int(missed)
                deadline += int(missed) * period
        return self.stats()

    def _record(self, deadline: int, wake: int, step_ns: int) -> None:
        i = self.ticks % self._wake.size
        self._wake[i] = wake
        self._deadline[i] = deadline
        self._step_ns[i] = step_ns
        self.ticks += 1

    def stats(self) -> LoopStats:
        n = min(self.ticks, self._wake.size)
        order = np.argsort(self._wake[:n], kind='stable')
        wake = self._wake[:n][order]
        lat = (wake - self._deadline[:n][order]) * 1e-9
        step = self._step_ns[:n][order] * 1e-9
        nominal = self.period_ns * 1e-9
        if n >= 2:
            periods = np.diff(wake) * 1e-9
            err = np.abs(periods - nominal)
            achieved = (n - 1) / ((wake[-1] - wake[0]) * 1e-9)
            e50, e99, emax = (float(x) for x in np.percentile(err, [50, 99, 100]))
        else:
            achieved, e50, e99, emax = 0.0, 0.0, 0.0, 0.0
        pct = (lambda x, p: float(np.percentile(x, p))) if n else (lambda x, p: 0.0)
        return LoopStats(
            ticks=self.ticks,
            overruns=self.overruns,
            skipped=self.skipped,
            achieved_hz=float(achieved),
            period_error_p50=e50,
            period_error_p99=e99,
            period_error_max=emax,
            latency_p50=pct(lat, 50),
            latency_p99=pct(lat, 99),
            step_time_p50=pct(step, 50),
            step_time_p99=pct(step, 99),
        )

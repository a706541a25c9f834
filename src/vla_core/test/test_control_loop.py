"""Deadline loop: absolute deadlines (no drift), overrun counting and skipping, real-time smoke."""

from __future__ import annotations

import itertools
import time

import pytest

from vla_core.control import DeadlineLoop, LoopConfig


class FakeClock:
    """Monotonic ns clock that only moves when the loop sleeps or a step 'works'."""

    def __init__(self, wake_latency_ns: int = 0) -> None:
        self.now = 1_000_000_000
        self.wake_latency_ns = wake_latency_ns

    def clock(self) -> int:
        return self.now

    def sleep_until(self, deadline: int, spin_ns: int) -> None:
        self.now = max(self.now, deadline) + self.wake_latency_ns

    def work(self, ns: int) -> None:
        self.now += ns


def run_fake(schedule: str, step_ns: int, ticks: int = 1000, latency: int = 50_000):
    clk = FakeClock(wake_latency_ns=latency)
    seen: list[tuple[float, float]] = []

    def step(t: float, dt: float) -> None:
        seen.append((t, dt))
        clk.work(step_ns)

    loop = DeadlineLoop(
        LoopConfig(rate_hz=1000.0),
        step,
        schedule=schedule,
        clock_ns=clk.clock,
        sleep_until=clk.sleep_until,
    )
    stats = loop.run(max_ticks=ticks)
    return stats, seen, clk


def test_absolute_deadlines_do_not_drift():
    stats, seen, _ = run_fake('absolute', step_ns=300_000)
    assert stats.ticks == 1000 and stats.overruns == 0
    # Deadlines are start + k * period exactly, whatever the step time and wake-up latency.
    assert seen[-1][0] - seen[0][0] == pytest.approx(0.999, abs=1e-9)
    assert all(dt == pytest.approx(1e-3) for _, dt in seen[1:])
    assert stats.achieved_hz == pytest.approx(1000.0, rel=1e-6)
    assert stats.latency_p50 == pytest.approx(50e-6)


def test_relative_sleeps_drift():
    stats, _, _ = run_fake('relative', step_ns=300_000)
    # Each period stretches by the step time and the wake-up latency: 1.35 ms -> ~741 Hz.
    assert stats.achieved_hz == pytest.approx(1e3 / 1.35, rel=1e-3)


def test_overruns_are_counted_and_skipped_in_phase():
    clk = FakeClock()
    times: list[float] = []

    def step(t: float, dt: float) -> None:
        times.append(t)
        clk.work(2_500_000 if len(times) == 10 else 100_000)  # one 2.5 ms step at 1 kHz

    loop = DeadlineLoop(
        LoopConfig(rate_hz=1000.0), step, clock_ns=clk.clock, sleep_until=clk.sleep_until
    )
    stats = loop.run(max_ticks=20)
    assert stats.overruns == 1
    assert stats.skipped == 2  # the deadlines at +1 ms and +2 ms were missed
    gaps = [round((b - a) * 1e3, 6) for a, b in itertools.pairwise(times)]
    assert gaps[9] == 3.0 and all(g == 1.0 for i, g in enumerate(gaps) if i != 9)


def test_thread_start_stop_real_clock():
    ticks: list[float] = []
    loop = DeadlineLoop(LoopConfig(rate_hz=500.0), lambda t, dt: ticks.append(t))
    loop.start()
    time.sleep(0.2)
    loop.stop()
    assert not loop.running and loop.error is None
    # Behaviour only: rates and period errors are measured by bench/bench_control.py.
    assert loop.stats().ticks == len(ticks) > 0
    assert all(b > a for a, b in itertools.pairwise(ticks))
    count = len(ticks)
    time.sleep(0.02)
    assert len(ticks) == count  # stopped means stopped


def test_step_exception_is_kept():
    def boom(t: float, dt: float) -> None:
        raise RuntimeError('step failed')

    loop = DeadlineLoop(LoopConfig(rate_hz=1000.0), boom)
    loop.start()
    time.sleep(0.05)
    loop.stop()
    assert isinstance(loop.error, RuntimeError)

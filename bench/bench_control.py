"""Benchmark of the residual tracking controller core (issue 5).

Prints controller update time p50/p99 for PID and MPC (7 joints, MPC horizon 20) and, at 500 Hz
and 1 kHz, the absolute-deadline loop's achieved rate and period error p50/p99 next to a
relative-sleep loop doing the same work.

    .venv/bin/python bench/bench_control.py [--seconds 3] [--ticks 3000]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import platform
import sys
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src' / 'vla_core'))

from vla_core.chunk import ActionChunk
from vla_core.control import (
    ControllerConfig,
    DeadlineLoop,
    JointSample,
    LoopConfig,
    ResidualController,
)

DOF = 7
NAMES = tuple(f'joint{i + 1}' for i in range(DOF))


def plan(t: np.ndarray) -> np.ndarray:
    return 0.4 * np.sin(0.9 * t[:, None] + 0.5 * np.arange(DOF))


class Rig:
    """Controller + ideal velocity servo + a 5 Hz chunk stream with 120 ms latency."""

    def __init__(self, classic: str) -> None:
        cfg = ControllerConfig(joint_names=NAMES, output_mode='velocity', classic=classic)
        self.ctl = ResidualController(cfg)
        self.q = plan(np.zeros(1))[0]
        self.v = np.zeros(DOF)
        self.next_chunk: float | None = None  # first tick's time: loop clocks start anywhere

    def tick(self, t: float, dt: float) -> None:
        if self.next_chunk is None:
            self.next_chunk = t
        if t >= self.next_chunk:
            stamp = t - 0.12
            times = stamp + 0.05 * np.arange(20)
            self.ctl.push_chunk(
                ActionChunk(stamp=stamp, dt=0.05, joint_names=NAMES, targets=plan(times)), t
            )
            self.next_chunk += 0.2
        cmd = self.ctl.update(t, dt, JointSample(t, self.q.copy(), self.v.copy()))
        assert cmd is not None
        self.v = cmd.velocity
        self.q = self.q + self.v * dt


def bench_update(classic: str, ticks: int, dt: float = 0.002) -> dict[str, float]:
    rig = Rig(classic)
    for k in range(200):  # warm-up: first splice, solver warm start
        rig.tick(k * dt, dt)
    times = np.empty(ticks)
    for k in range(ticks):
        t = (200 + k) * dt
        t0 = time.perf_counter_ns()
        rig.tick(t, dt)
        times[k] = time.perf_counter_ns() - t0
    m = rig.ctl.metrics()
    us = times / 1e3
    return {
        'p50': float(np.percentile(us, 50)),
        'p99': float(np.percentile(us, 99)),
        'max': float(np.max(us)),
        'mpc_failures': m.mpc_failures,
        'mpc_iter': m.mpc_last_iterations,
        'splices': m.tracker.splices,
        'max_splice_jump': m.tracker.max_splice_jump,
        'rms_jerk': m.tracker.rms_jerk,
    }


def bench_loop(rate_hz: float, schedule: str, seconds: float, work: bool) -> dict[str, float]:
    rig = Rig('pid')  # work: the step is one PID controller tick; else an empty step
    step = rig.tick if work else (lambda t, dt: None)
    loop = DeadlineLoop(LoopConfig(rate_hz=rate_hz), step, schedule=schedule)
    s = loop.run(duration_s=seconds)
    return {
        'hz': s.achieved_hz,
        'e50': s.period_error_p50 * 1e3,
        'e99': s.period_error_p99 * 1e3,
        'lat99': s.latency_p99 * 1e3,
        'overruns': s.overruns,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--seconds', type=float, default=3.0, help='per loop run')
    ap.add_argument('--ticks', type=int, default=3000, help='timed controller updates')
    args = ap.parse_args()
    load = ', '.join(f'{x:.2f}' for x in os.getloadavg())
    print(
        f'# bench_control: {platform.python_implementation()} {platform.python_version()}, '
        f'{platform.machine()}, {os.cpu_count()} CPUs, load average {load}, '
        f'numpy {np.__version__}'
    )
    print(f'\n## controller update time, {DOF} joints, velocity output, {args.ticks} ticks')
    print(f'{"classic":<8} {"p50 [us]":>9} {"p99 [us]":>9} {"max [us]":>9}  notes')
    for classic in ('pid', 'mpc'):
        r = bench_update(classic, args.ticks)
        note = ''
        if classic == 'mpc':
            note = f'mpc fallbacks {r["mpc_failures"]}, last OSQP iters {r["mpc_iter"]}, '
        note += (
            f'splices {r["splices"]}, max splice jump {r["max_splice_jump"]:.1e} rad, '
            f'RMS jerk {r["rms_jerk"]:.2f} rad/s^3'
        )
        print(f'{classic:<8} {r["p50"]:9.1f} {r["p99"]:9.1f} {r["max"]:9.1f}  {note}')
    print(f'\n## loop timing over {args.seconds:g} s each')
    print(
        f'{"rate":>6} {"schedule":<9} {"step":<9} {"achieved Hz":>11} '
        f'{"|period err| p50 [ms]":>22} {"p99 [ms]":>9} {"wake lat p99 [ms]":>18} {"overruns":>9}'
    )
    for work in (False, True):
        for rate in (500.0, 1000.0):
            for schedule in ('absolute', 'relative'):
                r = bench_loop(rate, schedule, args.seconds, work)
                print(
                    f'{rate:6.0f} {schedule:<9} {"PID tick" if work else "empty":<9} '
                    f'{r["hz"]:11.1f} {r["e50"]:22.3f} {r["e99"]:9.3f} {r["lat99"]:18.3f} '
                    f'{r["overruns"]:9d}'
                )
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

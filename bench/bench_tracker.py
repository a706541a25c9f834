"""Cost of the chunk tracker on the control thread, by chunk horizon H.

Prints p50/p99 of: the natural-spline fit (Thomas algorithm, O(H), against the dense solve it
replaced, O(H^3)); a tracker update at a splice tick (the new chunk fitted and blended in); an
update between splices; and a whole controller tick (position mode) at a splice.

    .venv/bin/python bench/bench_tracker.py [--repeats 300] [--horizons 16 50 200 1000]
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
    ChunkTracker,
    ControllerConfig,
    JointSample,
    ResidualController,
    TrackerConfig,
)
from vla_core.control.reference import natural_second_derivatives

DOF = 7
NAMES = tuple(f'joint{i + 1}' for i in range(DOF))
DT_CHUNK = 0.05
DT_CTRL = 0.002


def chunk(stamp: float, horizon: int) -> ActionChunk:
    times = stamp + DT_CHUNK * np.arange(horizon)
    targets = 0.4 * np.sin(0.9 * times[:, None] + 0.5 * np.arange(DOF))
    return ActionChunk(stamp=stamp, dt=DT_CHUNK, joint_names=NAMES, targets=targets)


def dense_fit(y: np.ndarray, h: float) -> np.ndarray:
    k = len(y) - 2
    a = 4.0 * np.eye(k) + np.eye(k, k=1) + np.eye(k, k=-1)
    return np.linalg.solve(a, 6.0 / h**2 * (y[:-2] - 2.0 * y[1:-1] + y[2:]))


def percentiles_us(samples: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.array(samples) * 1e6, [50, 99])
    return float(p50), float(p99)


def timed(fn, repeats: int) -> tuple[float, float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return percentiles_us(out)


def bench(horizon: int, repeats: int) -> dict[str, tuple[float, float]]:
    y = chunk(0.0, horizon).targets
    results = {
        'fit (Thomas)': timed(lambda: natural_second_derivatives(y, DT_CHUNK), repeats),
        'fit (dense solve)': timed(
            lambda: dense_fit(y, DT_CHUNK), max(3, repeats // (1 + horizon // 50))
        ),
    }
    # Chunks at 10 Hz on a 500 Hz loop, as deployed: every 50th tick splices.
    every = round(0.1 / DT_CTRL)
    tracker = ChunkTracker(TrackerConfig(), NAMES)
    tracker.reset_hold(y[0], 0.0)
    splice, between = [], []
    for k in range(repeats * every):
        t = k * DT_CTRL
        if k % every == 0:
            tracker.push(chunk(t - 0.1, horizon), t)
        t0 = time.perf_counter()
        tracker.update(t)
        (splice if k % every == 0 else between).append(time.perf_counter() - t0)
    results['tracker update, splice'] = percentiles_us(splice)
    results['tracker update, between'] = percentiles_us(between)
    ctl = ResidualController(ControllerConfig(joint_names=NAMES, output_mode='position'))
    ticks = []
    for k in range(repeats * every):
        t = k * DT_CTRL
        if k % every == 0:
            ctl.push_chunk(chunk(t - 0.1, horizon), t)
        t0 = time.perf_counter()
        ctl.update(t, DT_CTRL, JointSample(t, y[0].copy(), np.zeros(DOF)))
        if k % every == 0 and k > 0:
            ticks.append(time.perf_counter() - t0)
    results['controller tick, splice'] = percentiles_us(ticks)
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=200, help='splices per horizon')
    p.add_argument('--horizons', type=int, nargs='+', default=[16, 50, 200, 1000])
    args = p.parse_args()
    print(f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load '
          f'{os.getloadavg()[0]:.1f}; {DOF} joints; p50 / p99 [us]')  # fmt: skip
    rows = {h: bench(h, args.repeats) for h in args.horizons}
    names = list(next(iter(rows.values())))
    print(f'{"":28s}' + ''.join(f'{"H=" + str(h):>20s}' for h in args.horizons))
    for name in names:
        cells = ''.join(f'{rows[h][name][0]:>9.0f} /{rows[h][name][1]:>8.0f}' for h in rows)
        print(f'{name:28s}{cells}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

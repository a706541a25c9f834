"""Benchmark the scripted expert: success per task, nominal and perturbed, with Wilson intervals.

    vla eval-expert --episodes 200

For every task and seed it runs the nominal episode, then the same seed again with the arm
teleported by random joint offsets at a random time between 20 % and 80 % of the nominal
episode's duration, i.e. from a state off the expert's own trajectory (the sim is
deterministic, so up to that time the perturbed run replays the nominal one). It also reports the
real-time factor of the expert loop and the render time per frame of each camera.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
import multiprocessing
import sys
import time

import numpy as np
from tqdm import tqdm

from vla_core.cli import cli_main
from vla_core.stats import success_rate
from vla_sim.config import SimConfig
from vla_sim.rollout import EpisodeResult, run_episode
from vla_sim.sim import MujocoSim
from vla_sim.tasks import TASKS, TaskConfig

__all__ = ['PairResult', 'evaluate_pair', 'main', 'render_benchmark']


@dataclass(frozen=True)
class PairResult:
    nominal: EpisodeResult
    perturbed: EpisodeResult


_SIM: MujocoSim | None = None
_MAGNITUDE = 0.3


def _worker_init(magnitude: float) -> None:
    global _SIM, _MAGNITUDE
    _SIM = MujocoSim(SimConfig())
    _SIM.connect()
    _MAGNITUDE = magnitude


def evaluate_pair(sim: MujocoSim, task: str, seed: int, magnitude: float = 0.3) -> PairResult:
    """The nominal episode of (task, seed) and its perturbed twin."""
    nominal = run_episode(sim, task, seed)
    horizon = nominal.sim_time if nominal.success else TaskConfig().time_limit_s / 4.0
    frac = np.random.default_rng([seed, 104729]).uniform(0.2, 0.8)
    perturbed = run_episode(
        sim, task, seed, perturb_at=float(frac * horizon), perturb_magnitude=magnitude
    )
    return PairResult(nominal, perturbed)


def _run_item(item: tuple[str, int]) -> PairResult:
    assert _SIM is not None
    return evaluate_pair(_SIM, item[0], item[1], _MAGNITUDE)


def _results(items: list[tuple[str, int]], workers: int, magnitude: float) -> Iterator[PairResult]:
    if workers <= 1:
        _worker_init(magnitude)
        yield from map(_run_item, items)
        return
    with multiprocessing.get_context('spawn').Pool(
        workers, initializer=_worker_init, initargs=(magnitude,)
    ) as pool:
        yield from pool.imap_unordered(_run_item, items, chunksize=2)


def render_benchmark(frames: int = 50) -> dict[str, float]:
    """Mean ms per rendered frame of each camera at the default resolutions."""
    sim = MujocoSim(SimConfig())
    sim.connect()
    out = {}
    for cam in sim.camera_names:
        sim.render(cam)  # context creation and first upload are not per-frame costs
        total = 0.0
        for _ in range(frames):
            sim.step()  # a new state each frame, as in recording
            t0 = time.perf_counter()
            sim.render(cam)
            total += time.perf_counter() - t0
        out[cam] = 1e3 * total / frames
    sim.disconnect()
    return out


@cli_main('vla eval-expert')
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='vla eval-expert', description=__doc__.split('\n\n')[0])
    parser.add_argument('--episodes', type=int, default=200, help='seeds per task')
    parser.add_argument('--first-seed', type=int, default=0)
    parser.add_argument('--tasks', default=','.join(TASKS), help='comma-separated task names')
    parser.add_argument('--workers', type=int, default=1, help='parallel processes')
    parser.add_argument(
        '--perturb-magnitude', type=float, default=0.3, help='max joint offset [rad]'
    )
    parser.add_argument('--render-frames', type=int, default=50, help='0 skips the benchmark')
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks.split(',') if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or args.episodes < 1:
        parser.error(f'unknown tasks {unknown}; known: {list(TASKS)}' if unknown else 'episodes')

    items = [(t, args.first_seed + s) for t in tasks for s in range(args.episodes)]
    by_task: dict[str, list[PairResult]] = {t: [] for t in tasks}
    wall0 = time.perf_counter()
    for pair in tqdm(
        _results(items, args.workers, args.perturb_magnitude),
        total=len(items),
        desc='episode pairs',
        file=sys.stderr,
    ):
        by_task[pair.nominal.task].append(pair)
    wall = time.perf_counter() - wall0

    print(f'scripted expert, {args.episodes} seeded episodes per task '
          f'(seeds {args.first_seed}..{args.first_seed + args.episodes - 1}), '
          f'perturbation: arm joints +-{args.perturb_magnitude} rad at 20-80 % of the nominal '
          'duration')  # fmt: skip
    sim_time = ep_wall = 0.0
    totals = {'nominal': [0, 0], 'perturbed': [0, 0]}
    for task, pairs in by_task.items():
        print(f'{task}: "{TASKS[task].instruction}"')
        for kind in ('nominal', 'perturbed'):
            eps = [getattr(p, kind) for p in pairs]
            ok = sum(e.success for e in eps)
            totals[kind][0] += ok
            totals[kind][1] += len(eps)
            mean_t = np.mean([e.sim_time for e in eps if e.success]) if ok else float('nan')
            extra = ''
            if kind == 'perturbed':
                applied = sum(e.perturbed_at is not None for e in eps)
                extra = f', perturbation applied in {applied}/{len(eps)}'
            print(f'  {kind:9s} {success_rate(ok, len(eps))}, mean time to success '
                  f'{mean_t:.2f} s{extra}')  # fmt: skip
            failed = [e.seed for e in eps if not e.success]
            if failed:
                print(f'            failed seeds: {failed}')
            sim_time += sum(e.sim_time for e in eps)
            ep_wall += sum(e.wall_time for e in eps)
    for kind, (ok, n) in totals.items():
        print(f'all tasks {kind:9s} {success_rate(ok, n)}')
    print(
        f'real-time factor (sim time / wall time of the expert loop, per process): '
        f'{sim_time / ep_wall:.1f}x; {sim_time:.0f} s simulated in {wall:.0f} s wall with '
        f'{args.workers} worker(s)'
    )
    if args.render_frames > 0:
        ms = render_benchmark(args.render_frames)
        cfg = SimConfig()
        sizes = {
            'scene_camera': (cfg.scene_camera_width, cfg.scene_camera_height),
            'wrist_camera': (cfg.wrist_camera_width, cfg.wrist_camera_height),
        }
        for cam, value in ms.items():
            w, h = sizes[cam]
            print(f'render {cam} {w}x{h}: {value:.1f} ms/frame (no shadows, EGL)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Closed-loop evaluation of an exported policy in the simulator.

    python -m vla_sim.evaluation.policy --artifact out/exports/sim_flow --episodes 200

For every task, N seeded episodes (seeds disjoint from training's when ``--seed`` differs): the
policy sees the rendered cameras and joint state at ``--rate`` Hz, its chunk is executed by time
(target i at stamp + i*dt): ``--tracking direct`` interpolates the newest chunk linearly,
``splice`` and ``ensemble`` run the controller's ``ChunkTracker`` (vla_core.control.reference) in
that mode (blended hand-offs; ACT-style temporal ensembling of the live chunks). Prints success
per task with a Wilson 95 % interval, writes ``results.json``, a summary plot and the first
``--videos`` episodes of each task as mp4 (scene camera). Each episode also records how it went
(closest approach of the tool to the named block, how far that block and the others moved, final
distance to the target), and failures are counted by kind: never reached the block, moved another
block, pushed it closer but not in.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
import json
from pathlib import Path
import sys
import time

import numpy as np

from vla_core.cli import cli_main
from vla_core.config import config_to_flat
from vla_core.control.reference import TrackerConfig

__all__ = ['EpisodeOutcome', 'evaluate', 'load_backend', 'main', 'run_episodes', 'sim_observation']


@dataclass(frozen=True)
class EpisodeOutcome:
    task: str
    seed: int
    success: bool
    sim_time: float
    chunks: int
    mean_latency_ms: float
    # Where a failure went wrong: never reached the block, pushed it off line, or moved the others.
    start_distance_m: float  # named block to target centre, at reset
    final_distance_m: float  # the same at the end
    closest_approach_m: float  # tool centre to the named block's centre (xy), over the episode
    block_travel_m: float  # net xy displacement of the named block
    others_travel_m: float  # largest net xy displacement of any other block


def sim_observation(sim, spec, instruction: str):
    """What the policy sees now in ``sim``: ``(Observation, full-size camera frames)``."""
    from vla_learning.preprocess import resize_square
    from vla_policy.backends.base import Observation

    frames = [sim.render(c) for c in list(sim.camera_names)[: spec.num_cameras]]
    state = sim.read_state()
    index = [state.joint_names.index(n) for n in spec.joint_names]
    observation = Observation(
        stamp=state.stamp,
        images=np.stack([resize_square(f, spec.image_size) for f in frames]),
        state=state.position[index].astype(np.float32),
        instruction=instruction,
    )
    return observation, frames


def _episode(
    sim,
    backend,
    task,
    seed: int,
    rate: float,
    video: Path | None,
    tracking: TrackerConfig | None,
) -> EpisodeOutcome:
    import cv2

    from vla_core.control.reference import ChunkTracker
    from vla_core.robot import JointCommand
    from vla_sim.expert import chunk_target
    from vla_sim.scene import BLOCK_COLORS

    task.reset(seed)
    reset_episode = getattr(backend, 'reset_episode', None)
    if reset_episode is not None:  # backends with per-episode state (the state oracle)
        reset_episode(task, seed)
    start = {c: sim.block_pose(c).position[:2].copy() for c in BLOCK_COLORS}
    closest = np.inf
    every = max(1, round(1.0 / (rate * sim.control_period)))
    writer = None
    chunk, step, latencies = None, 0, []
    names = backend.spec.joint_names
    tracker = None if tracking is None else ChunkTracker(tracking, names)
    while True:
        if chunk is None or step % every == 0:
            observation, frames = sim_observation(sim, backend.spec, task.instruction)
            if video is not None:
                if writer is None:
                    h, w = frames[0].shape[:2]
                    fourcc = cv2.VideoWriter_fourcc(*'mp4v')
                    writer = cv2.VideoWriter(str(video), fourcc, rate, (w, h))
                writer.write(cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
            started = time.perf_counter()
            chunk = backend.infer(observation)
            latencies.append(1e3 * (time.perf_counter() - started))
            if tracker is not None:
                if step == 0:
                    tracker.reset_hold(observation.state, sim.now())
                tracker.push(chunk, sim.now())  # it reorders to ``names`` itself
        if tracker is None:
            target, order = chunk_target(chunk, sim.now()), chunk.joint_names
        else:
            target, order = tracker.update(sim.now()).position, names
        result = task.step(JointCommand('position', target, order, stamp=sim.now()))
        gap = sim.ee_pose().position[:2] - sim.block_pose(task.block).position[:2]
        closest = min(closest, float(np.linalg.norm(gap)))
        step += 1
        if result.done:
            break
    if writer is not None:
        writer.release()
    end = {c: sim.block_pose(c).position[:2] for c in BLOCK_COLORS}
    travel = {c: float(np.linalg.norm(end[c] - start[c])) for c in BLOCK_COLORS}
    return EpisodeOutcome(
        task.name, seed, bool(result.success), float(result.time), len(latencies),
        float(np.mean(latencies)),
        start_distance_m=float(np.linalg.norm(start[task.block] - task.target_xy)),
        final_distance_m=float(np.linalg.norm(end[task.block] - task.target_xy)),
        closest_approach_m=closest,
        block_travel_m=travel[task.block],
        others_travel_m=max(v for c, v in travel.items() if c != task.block),
    )  # fmt: skip


def load_backend(artifact: str, kind: str, threads: int, instruction_encoder: str):
    """A loaded, warmed-up backend of ``kind`` running ``artifact``."""
    from vla_learning.language import make_instruction_encoder
    from vla_policy.backends import backend_config, make_backend

    backend = make_backend(
        kind, config=backend_config(kind, num_threads=threads),
        instruction_encoder=make_instruction_encoder(instruction_encoder),
    )  # fmt: skip
    backend.load(artifact)
    backend.warm_up()
    return backend


def evaluate(
    artifact: str,
    tasks: list[str],
    episodes: int,
    seed: int,
    out: Path,
    *,
    backend_kind: str = 'onnxruntime',
    instruction_encoder: str = 'minilm',
    threads: int = 2,
    true_scene_state: bool = False,
    **options,
) -> list[EpisodeOutcome]:
    """Load ``artifact`` in a backend and :func:`run_episodes` with it. ``true_scene_state``:
    the policy's localizer token gets the sim's true scene state instead of its estimate
    (perfect perception; the torch backend): is perception or control short?"""
    backend = load_backend(artifact, backend_kind, threads, instruction_encoder)
    if true_scene_state:
        from vla_sim.evaluation.true_scene import TrueSceneBackend

        backend = TrueSceneBackend(backend)
    return run_episodes(backend, tasks, episodes, seed, out, label=artifact, **options)


def run_episodes(
    backend,
    tasks: list[str],
    episodes: int,
    seed: int,
    out: Path,
    *,
    rate: float = 10.0,
    videos: int = 2,
    control_hz: float = 100.0,
    time_limit_s: float | None = None,
    tracking: TrackerConfig | None = None,
    progress: bool = True,
    label: str = '',
    sim=None,
) -> list[EpisodeOutcome]:
    """``episodes`` seeded episodes per task with a loaded backend (anything with ``spec`` and
    ``infer(Observation) -> ActionChunk``, optionally ``reset_episode(task, seed)``, called
    after each reset); writes the report to ``out``.

    ``sim``: a connected :class:`~vla_sim.sim.MujocoSim` to run in (else one is made at
    ``control_hz`` and disconnected at the end). ``tracking``: chunks go through the
    controller's tracker with this config (else the newest chunk, linearly interpolated).
    """
    from tqdm import tqdm

    from vla_sim.config import SimConfig
    from vla_sim.sim import MujocoSim
    from vla_sim.tasks import TabletopTask, TaskConfig

    out.mkdir(parents=True, exist_ok=True)
    task_config = TaskConfig() if time_limit_s is None else TaskConfig(time_limit_s=time_limit_s)
    own_sim = sim is None
    if own_sim:
        sim = MujocoSim(SimConfig(control_hz=control_hz))
        sim.connect()
    outcomes: list[EpisodeOutcome] = []
    bar = tqdm(total=len(tasks) * episodes, desc='closed-loop episodes', disable=not progress)
    try:
        for name in tasks:
            task = TabletopTask(sim, name, task_config)
            for i in range(episodes):
                video = out / f'{name}_seed{seed + i}.mp4' if i < videos else None
                outcomes.append(_episode(sim, backend, task, seed + i, rate, video, tracking))
                bar.update()
                done = [o for o in outcomes if o.task == name]
                bar.set_postfix(task=name, success=f'{sum(o.success for o in done)}/{len(done)}')
    finally:
        bar.close()
        if own_sim:
            sim.disconnect()
    settings = {
        'rate_hz': rate, 'control_hz': sim.config.control_hz,
        'tracking': 'direct' if tracking is None else config_to_flat(tracking),
        'time_limit_s': task_config.time_limit_s,
        'scene_state': getattr(backend, 'scene_state_source', 'estimated'),
    }  # fmt: skip
    _report(outcomes, tasks, out, label, settings)
    return outcomes


# A tool centre this far from the block centre never touched it (half size 2 cm + finger).
_NO_CONTACT_M = 0.045
_DISTURBED_M = 0.02


def _failure_modes(failed: list[EpisodeOutcome]) -> dict[str, float | int]:
    """Counts of the ways episodes failed, and how far the block ended from the target."""
    return {
        'never_reached_block': sum(o.closest_approach_m > _NO_CONTACT_M for o in failed),
        'block_not_moved': sum(o.block_travel_m < _DISTURBED_M for o in failed),
        'other_block_moved': sum(o.others_travel_m >= _DISTURBED_M for o in failed),
        'pushed_closer': sum(
            o.final_distance_m < o.start_distance_m - _DISTURBED_M for o in failed
        ),
        'median_final_distance_m': round(float(np.median([o.final_distance_m for o in failed])), 3),
    }


def _report(
    outcomes: list[EpisodeOutcome], tasks: list[str], out: Path, label: str, settings: dict
) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from vla_core.stats import wilson_interval

    summary = {}
    for task in tasks:
        ok = [o.success for o in outcomes if o.task == task]
        lo, hi = wilson_interval(sum(ok), len(ok))
        summary[task] = {'success': sum(ok), 'episodes': len(ok), 'wilson95': [lo, hi]}
        print(f'{task:<12} {sum(ok):4d}/{len(ok):<4d} = {100 * sum(ok) / len(ok):5.1f} % '
              f'(Wilson 95 % CI {100 * lo:.1f}-{100 * hi:.1f} %)')  # fmt: skip
        failed = [o for o in outcomes if o.task == task and not o.success]
        if failed:
            modes = _failure_modes(failed)
            summary[task]['failures'] = modes
            print('    failures: ' + ', '.join(f'{k} {v}' for k, v in modes.items()))
    latency = np.mean([o.mean_latency_ms for o in outcomes])
    print(f'mean inference latency {latency:.1f} ms per chunk')
    (out / 'results.json').write_text(json.dumps({
        'artifact': label, 'settings': settings, 'summary': summary,
        'episodes': [asdict(o) for o in outcomes],
    }, indent=2))  # fmt: skip
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(tasks), 3.5))
    rates = [summary[t]['success'] / summary[t]['episodes'] for t in tasks]
    errors = np.array([[r - summary[t]['wilson95'][0], summary[t]['wilson95'][1] - r]
                       for t, r in zip(tasks, rates, strict=True)]).T  # fmt: skip
    ax.bar(tasks, rates, yerr=errors, capsize=6, color='tab:blue')
    ax.axhline(0.8, color='tab:red', ls='--', lw=1, label='80 % target')
    ax.set_ylim(0, 1.05)
    ax.set_ylabel('success rate (Wilson 95 % CI)')
    ax.set_title(f'closed-loop success, {outcomes and len(outcomes) // len(tasks)} seeds per task')
    ax.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(out / 'success.png', dpi=120)
    plt.close(fig)


@cli_main('vla eval')
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='vla eval', description=__doc__.split('\n')[0])
    p.add_argument('--artifact', required=True, help='export dir (or .pt for --backend torch)')
    p.add_argument('--backend', default='onnxruntime', choices=('onnxruntime', 'torch', 'tensorrt'))
    p.add_argument('--tasks', nargs='+', default=['push_red', 'push_green', 'push_blue'])
    p.add_argument('--episodes', type=int, default=20, help='seeded episodes per task')
    p.add_argument('--seed', type=int, default=100_000, help='first seed (keep off training seeds)')
    p.add_argument('--rate', type=float, default=10.0, help='policy rate [Hz]')
    p.add_argument('--videos', type=int, default=2, help='episodes per task saved as mp4')
    p.add_argument('--control-hz', type=float, default=100.0)
    p.add_argument('--time-limit', type=float, help='episode time limit [s] (task default)')
    p.add_argument(
        '--tracking', default='direct', choices=('direct', 'splice', 'ensemble'),
        help='how chunks become targets: newest chunk, or the controller tracker in that mode',
    )  # fmt: skip
    p.add_argument('--blend-time', type=float, default=TrackerConfig().blend_time,
                   help='tracker blend window [s] (splice, ensemble)')  # fmt: skip
    p.add_argument('--instruction-encoder', default='minilm', choices=('minilm', 'hashed'))
    p.add_argument('--threads', type=int, default=2, help='inference CPU threads')
    p.add_argument('--out', type=Path, default=Path('out/eval'))
    p.add_argument('--no-progress', action='store_true')
    p.add_argument(
        '--true-scene-state', action='store_true',
        help="diagnostic: the scene localizer's token gets the sim's true block and target "
        'position instead of its estimate (--backend torch, a checkpoint with the localizer)',
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.true_scene_state and args.backend != 'torch':
        print('error: --true-scene-state needs --backend torch', file=sys.stderr)
        return 2
    tracking = (
        None if args.tracking == 'direct'
        else TrackerConfig(mode=args.tracking, blend_time=args.blend_time)
    )  # fmt: skip
    evaluate(
        args.artifact, args.tasks, args.episodes, args.seed, args.out,
        backend_kind=args.backend, rate=args.rate, videos=args.videos,
        control_hz=args.control_hz, time_limit_s=args.time_limit, tracking=tracking,
        instruction_encoder=args.instruction_encoder,
        threads=args.threads, progress=not args.no_progress,
        true_scene_state=args.true_scene_state,
    )  # fmt: skip
    print(f'results: {args.out / "results.json"}, plot: {args.out / "success.png"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

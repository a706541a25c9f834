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
from pathlib import Path
import sys
import time

import numpy as np

from vla_core.cli import cli_main
from vla_core.config import config_to_flat
from vla_core.control.reference import TrackerConfig
from vla_sim.outcomes import EpisodeOutcome, EpisodeProbe, write_report

__all__ = ['EpisodeOutcome', 'evaluate', 'load_backend', 'main', 'run_episodes', 'sim_observation']


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

    task.reset(seed)
    reset_episode = getattr(backend, 'reset_episode', None)
    if reset_episode is not None:  # backends with per-episode state (the state oracle)
        reset_episode(task, seed)
    probe = EpisodeProbe(sim, task.block, task.target_xy)
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
        probe.step()
        step += 1
        if result.done:
            break
    if writer is not None:
        writer.release()
    return probe.outcome(
        task.name, seed, result.success, result.time, len(latencies), float(np.mean(latencies))
    )


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
    from vla_sim.tasks import TabletopTask, TaskConfig, episode_schedule

    out.mkdir(parents=True, exist_ok=True)
    task_config = TaskConfig() if time_limit_s is None else TaskConfig(time_limit_s=time_limit_s)
    own_sim = sim is None
    if own_sim:
        sim = MujocoSim(SimConfig(control_hz=control_hz))
        sim.connect()
    outcomes: list[EpisodeOutcome] = []
    bar = tqdm(total=len(tasks) * episodes, desc='closed-loop episodes', disable=not progress)
    try:
        by_name = {name: TabletopTask(sim, name, task_config) for name in tasks}
        for name, episode_seed in episode_schedule(tasks, seed, episodes):
            video = out / f'{name}_seed{episode_seed}.mp4' if episode_seed < seed + videos else None
            outcomes.append(
                _episode(sim, backend, by_name[name], episode_seed, rate, video, tracking)
            )
            bar.update()
            bar.set_postfix(success=f'{sum(o.success for o in outcomes)}/{len(outcomes)}')
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
    write_report(outcomes, tasks, out, label, settings)
    return outcomes


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

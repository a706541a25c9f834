"""Expert demonstrations generated in-process in the MuJoCo sim, written as a built dataset.

    vla demos --out out/dataset_sim --episodes-per-task 100 [--lerobot]

The same data the ROS path gives (``config/graphs/collect.yaml`` -> recorder bags ->
``vla dataset``), minus the transport: the scripted expert drives the sim at the control rate,
and every ``1 / rate`` s the cameras, the joint state and the expert's target for that instant
become one frame of the ``vla_dataset`` format, so training reads both identically. It runs
many times faster than real time, which is what makes 100 demonstrations per task a few minutes.

Robustness of the learned policy (DART, Laskey et al. 2017): with ``noise_rad`` > 0 the *executed*
command is the expert's target plus smooth joint noise (an Ornstein-Uhlenbeck process), while the
*recorded* action stays the expert's clean target. The demonstrations then visit the small
deviations a policy makes and show how the expert corrects them. ``perturb_fraction`` of the
episodes also teleport the arm once mid-episode (``TabletopTask.perturb``), for larger recoveries,
and ``slip_fraction`` of them move the named block off the push line once
(``TabletopTask.slip_block``): the expert's re-approach is what a policy that pushed it astray
needs to have seen.

DAgger (Ross et al. 2011): with a :class:`Driver` (``vla_dagger.dagger_sim`` wraps a trained
policy in one), the driver's targets are executed instead of the expert's wherever it returns one,
and the expert still labels every frame: the dataset then holds the expert's answer on the states
the policy visits.

With ``--lerobot`` the dataset is also exported to the LeRobot v3 layout in ``<out>/lerobot``, as
``vla dataset --lerobot`` does for recorded bags.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
import itertools
import math
from pathlib import Path
import sys
from typing import Protocol

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from vla_core.cli import cli_main
from vla_core.config import Config, ConfigError, config_to_flat, param
from vla_data.dataset.format import DatasetWriter, encode_png, frame_columns
from vla_data.dataset.lerobot import export_lerobot
from vla_sim.config import SimConfig
from vla_sim.expert import ExpertConfig, PushExpert
from vla_sim.rollout import expert_rollout_targets, run_episode
from vla_sim.scene import ARM_JOINTS
from vla_sim.sim import MujocoSim
from vla_sim.tasks import SCENE_STATE_NAMES, TASKS, TabletopTask, TaskConfig

__all__ = [
    'ENV_STATE_NAMES',
    'Driver',
    'SimDemoConfig',
    'add_dataset_arguments',
    'generate',
    'main',
    'output_is_free',
]

NS = 1_000_000_000
ENV_STATE_NAMES = SCENE_STATE_NAMES  # recorded with every frame as observation.environment_state


@dataclass(frozen=True, kw_only=True)
class SimDemoConfig(Config):
    tasks: tuple[str, ...] = param(tuple(TASKS), description='tasks, cycled per seed')
    episodes_per_task: int = param(100, description='episodes per task', range=(1, 100_000))
    seed: int = param(0, description='first layout seed', range=(0, 2**31 - 1))
    rate: float = param(20.0, description='frames per second of the dataset', range=(1.0, 100.0))
    control_hz: float = param(100.0, description='sim control rate [Hz]', range=(10.0, 1000.0))
    replan_period: float = param(0.1, description='expert re-plan period [s]', range=(0.01, 1.0))
    noise_rad: float = param(
        0.01, description='std of the executed joint noise (DART) [rad]; 0 = none',
        range=(0.0, 0.3),
    )  # fmt: skip
    noise_tau: float = param(0.3, description='correlation time of that noise [s]', range=(0.01, 5))
    perturb_fraction: float = param(
        0.2, description='fraction of episodes with one mid-episode arm perturbation',
        range=(0.0, 1.0),
    )  # fmt: skip
    perturb_magnitude: float = param(0.3, description='perturbation size [rad]', range=(0.0, 1.0))
    slip_fraction: float = param(
        0.5, description='fraction of episodes in which the named block slips once mid-push '
        '(teleported slip_m in a random direction), for recoveries from a block off the line',
        range=(0.0, 1.0),
    )  # fmt: skip
    slip_m: float = param(0.04, description='slip distance [m]', range=(0.0, 0.2))
    time_limit_s: float = param(20.0, description='episode time limit [s]', range=(1.0, 600.0))
    plan_ticks: int = param(
        0, description='record, from every frame, this many frames of what the re-planning '
        'expert would command if it took over there (a rollout from a copy of the sim state: '
        'the labels of relabelled episodes, see vla_data.dataset.format); 0 = none',
        range=(0, 1000),
    )  # fmt: skip

    def validate(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ConfigError('tasks', f'unknown or empty {unknown}; known: {list(TASKS)}')
        ratio = self.control_hz / self.rate
        if abs(ratio - round(ratio)) > 1e-6:
            raise ConfigError('rate', f'control_hz/rate must be an integer, got {ratio:.3f}')


class Driver(Protocol):
    """Who executes, when not the expert: a policy acting in the sim (DAgger)."""

    name: str  # recorded as the episode's operator

    def begin(self, task_name: str, seed: int) -> None:
        """A new episode starts (the sim is reset)."""

    def act(self, sim: MujocoSim, instruction: str) -> np.ndarray | None:
        """Called every control period: the joint target to execute (``sim.joint_names``
        order), or None to let the expert's (noisy) target through."""


@dataclass(frozen=True)
class _Episode:
    task: str
    seed: int
    success: bool
    columns: dict[str, pa.Array]


def _run_episode(
    sim: MujocoSim, cfg: SimDemoConfig, task_name: str, seed: int, driver: Driver | None = None
) -> _Episode:
    rng = np.random.default_rng([seed, list(TASKS).index(task_name), 4243])
    # Within the push of a typical 3-4 s episode.
    perturb_at = rng.uniform(0.5, 2.0) if rng.uniform() < cfg.perturb_fraction else None
    slip_at = None
    if cfg.slip_fraction > 0:  # drawn only when on: datasets without slips replay as before
        slip_at = rng.uniform(1.0, 2.5) if rng.uniform() < cfg.slip_fraction else None
    frame_every = round(cfg.control_hz / cfg.rate)
    n_arm = len(ARM_JOINTS)
    decay = math.exp(-sim.control_period / cfg.noise_tau)
    noise = np.zeros(len(sim.joint_names))
    stamps, states, actions, plans, scene = [], [], [], [], []
    images: dict[str, list[bytes]] = {c: [] for c in sim.camera_names}
    ticks = itertools.count()  # control periods since the episode's start
    replan_every = max(1, round(cfg.replan_period * cfg.control_hz))
    labeller = labeller_chunk = None
    if cfg.plan_ticks:  # its own expert, with run_episode's config: it re-plans the same way
        labeller = PushExpert(sim, ExpertConfig())
    block = TASKS[task_name].block
    scene_of = TabletopTask(sim, task_name).scene_state  # reads the sim; run_episode resets it

    def record_and_perturb(target: np.ndarray) -> np.ndarray:
        nonlocal labeller_chunk
        tick = next(ticks)
        if labeller is not None and tick % replan_every == 0:
            labeller_chunk = labeller.act(block, sim.target_xy)
        if tick % frame_every == 0:
            state = sim.read_state()
            stamps.append(round(state.stamp * NS))
            states.append(state.position[[state.joint_names.index(n) for n in sim.joint_names]])
            actions.append(target)  # the clean expert target is the label
            scene.append(scene_of())
            if labeller is not None:
                plans.append(expert_rollout_targets(
                    sim, labeller, block, sim.target_xy, chunk=labeller_chunk,
                    phase=tick % replan_every, replan_every=replan_every,
                    sample_every=frame_every, samples=cfg.plan_ticks,
                ))  # fmt: skip
            for c in sim.camera_names:
                images[c].append(encode_png(sim.render(c)))
        noise[:n_arm] = decay * noise[:n_arm] + math.sqrt(1 - decay**2) * rng.normal(
            0.0, cfg.noise_rad, n_arm
        )
        executed = None if driver is None else driver.act(sim, instruction)
        return target + noise if executed is None else executed

    instruction = TASKS[task_name].instruction
    if driver is not None:
        driver.begin(task_name, seed)
    result = run_episode(
        sim, task_name, seed, replan_period=cfg.replan_period, perturb_at=perturb_at,
        perturb_magnitude=cfg.perturb_magnitude, slip_at=slip_at, slip_m=cfg.slip_m,
        on_step=record_and_perturb,
        task_config=TaskConfig(time_limit_s=cfg.time_limit_s),
    )  # fmt: skip
    grid = np.array(stamps, dtype=np.int64)
    columns = frame_columns(
        grid, cfg.rate, np.array(states), np.array(actions), images,
        {key: grid for key in ('state', 'action', *sim.camera_names)},
        plan=np.array(plans) if labeller is not None else None, env_state=np.array(scene),
    )  # fmt: skip
    return _Episode(task_name, seed, result.success, columns)


def generate(
    out_dir: str | Path,
    cfg: SimDemoConfig | None = None,
    *,
    sim_config: SimConfig | None = None,
    progress: bool = True,
    driver: Driver | None = None,
) -> Path:
    """Run ``episodes_per_task`` expert episodes per task and write them to ``out_dir``.

    Failed episodes are kept, marked ``success: false`` (training selects successes). With a
    ``driver``, it acts and the expert only labels (see the module notes).
    """
    cfg = cfg or SimDemoConfig()
    sim_config = (sim_config or SimConfig()).replace(control_hz=cfg.control_hz)
    sim = MujocoSim(sim_config)
    sim.connect()
    writer = DatasetWriter(out_dir)
    jobs = [(t, cfg.seed + i) for i in range(cfg.episodes_per_task) for t in cfg.tasks]
    desc = 'expert demos' if driver is None else f'{driver.name} episodes'
    bar = tqdm(jobs, desc=desc, unit='ep', disable=not progress, file=sys.stderr)
    successes = 0
    try:
        for task_name, seed in bar:
            ep = _run_episode(sim, cfg, task_name, seed, driver)
            successes += ep.success
            writer.add_episode(
                pa.table(ep.columns),
                {
                    'source_index': seed, 'bag': '', 'instruction': TASKS[task_name].instruction,
                    'task': task_name, 'success': ep.success, 'status': 'saved',
                    'start_ns': int(ep.columns['stamp_ns'][0].as_py()), 'robot': 'vla_sim',
                    'operator': driver.name if driver else 'scripted_expert', 'seed': seed,
                    'max_cross_skew_s': 0.0,
                },
            )  # fmt: skip
            bar.set_postfix(success=f'{successes}/{len(writer.episodes)}')
        shapes = {c: list(sim.render(c).shape) for c in sim.camera_names}
        names = list(sim.joint_names)
        info = {
            'fps': cfg.rate,
            'cameras': {c: {'topic': f'sim:{c}', 'shape': s} for c, s in shapes.items()},
            'state': {'topic': 'sim:joint_state', 'field': 'position', 'names': names},
            'action': {'topic': 'sim:expert', 'type': 'expert target', 'field': 'targets',
                       'names': names, 'executed_by': driver.name if driver else 'expert'},
            'environment_state': {'names': list(ENV_STATE_NAMES), 'frame': 'world'},
            'alignment': 'generated on the grid (no skew)',
            'build_config': {f'sim_demos.{k}': v for k, v in config_to_flat(cfg).items()},
            'sources': [],
        }  # fmt: skip
        writer.finish(info)
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
        sim.disconnect()
    return Path(out_dir)


def add_dataset_arguments(p: argparse.ArgumentParser, *, episodes: int, seed: int) -> None:
    """The options every generated dataset has: where, which tasks, how many, from which seed."""
    p.add_argument('--out', type=Path, required=True, help='dataset directory to write')
    p.add_argument('--tasks', nargs='+', default=list(TASKS))
    p.add_argument('--episodes-per-task', type=int, default=episodes)
    p.add_argument('--seed', type=int, default=seed, help='first layout seed')
    p.add_argument('--overwrite', action='store_true')
    p.add_argument('--no-progress', action='store_true')


def output_is_free(out: Path, overwrite: bool) -> bool:
    """False (and says why) when ``out`` holds something and ``overwrite`` was not asked for."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        print(f'{out} exists and is not empty (use --overwrite)', file=sys.stderr)
        return False
    return True


@cli_main('vla demos')
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='vla demos', description=__doc__.split('\n')[0])
    add_dataset_arguments(p, episodes=100, seed=0)
    defaults = SimDemoConfig()  # one home for the defaults: the config
    p.add_argument('--rate', type=float, default=defaults.rate, help='dataset frames per second')
    p.add_argument('--noise', type=float, default=defaults.noise_rad,
                   help='DART joint noise std [rad]')  # fmt: skip
    p.add_argument('--perturb-fraction', type=float, default=defaults.perturb_fraction)
    p.add_argument(
        '--slip-fraction', type=float, default=defaults.slip_fraction,
        help='share of episodes whose block slips once mid-push',
    )  # fmt: skip
    p.add_argument('--lerobot', action='store_true', help='also export LeRobot v3 to <out>/lerobot')
    args = p.parse_args(argv)
    if not output_is_free(args.out, args.overwrite):
        return 2
    cfg = SimDemoConfig(
        tasks=tuple(args.tasks), episodes_per_task=args.episodes_per_task, seed=args.seed,
        rate=args.rate, noise_rad=args.noise, perturb_fraction=args.perturb_fraction,
        slip_fraction=args.slip_fraction,
    )  # fmt: skip
    out = generate(args.out, cfg, progress=not args.no_progress)
    print(f'dataset: {out}')
    if args.lerobot:
        print(f'LeRobot v3: {export_lerobot(out, out / "lerobot", progress=not args.no_progress)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

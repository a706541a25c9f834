"""How chunk execution changes the scripted expert's episodes (the diagnosis of issue 22).

The expert's chunks are executed in-process, no ROS, either as the demonstrations were (the
newest chunk's targets, linearly interpolated, sent straight to the position servos) or through
the controller core (ResidualController at the control rate) in several configurations: the
shipped config/controller.yaml, and the settings it had before (the PID on the measured position
integrated into the command; 10 rad/s^2 acceleration limit), each change alone. Prints success
and mean episode time per configuration, against direct execution.

    .venv/bin/python bench/bench_chunk_execution.py [--episodes 5] [--first-seed 100000]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src' / 'vla_core'))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src' / 'vla_sim'))

from vla_core.config import config_from_dict
from vla_core.control import ControllerConfig
from vla_sim.config import SimConfig
from vla_sim.rollout import run_episode
from vla_sim.sim import MujocoSim
from vla_sim.tasks import TASKS, episode_schedule

ROOT = Path(__file__).resolve().parents[1]
BEFORE = {'position_command': 'integrate', 'acceleration_max': (10.0, 10, 10, 15, 15, 15, 1)}


def shipped_config(**changes: object) -> ControllerConfig:
    """config/controller.yaml's ControllerConfig, with ``changes`` (safety.* by their name)."""
    params = yaml.safe_load((ROOT / 'config' / 'controller.yaml').read_text())
    params = params['controller']['ros__parameters']
    fields = ControllerConfig.__dataclass_fields__
    data = {k: v for k, v in params.items() if k in fields}
    for key, value in changes.items():
        if key in fields:
            data[key] = value
        elif key in data['safety']:
            data['safety'] = {**data['safety'], key: value}
        else:
            data['tracker'] = {**data['tracker'], key: value}
    return config_from_dict(ControllerConfig, data)


VARIANTS: dict[str, ControllerConfig | None] = {
    'direct (as demonstrated)': None,
    'controller, before': shipped_config(**BEFORE),
    'before, acceleration 40': shipped_config(position_command='integrate'),
    'before, reference command': shipped_config(acceleration_max=BEFORE['acceleration_max']),
    'controller.yaml (shipped)': shipped_config(),
    'shipped, linear interp.': shipped_config(interpolation='linear'),
    'shipped, no blend': shipped_config(blend_time=0.0),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--episodes', type=int, default=5, help='seeds per task')
    p.add_argument('--first-seed', type=int, default=100_000)
    args = p.parse_args()
    sim = MujocoSim(SimConfig(control_hz=100.0))
    sim.connect()
    pairs = list(episode_schedule(list(TASKS), args.first_seed, args.episodes))
    print(f'scripted expert, {len(pairs)} episodes (seeds {args.first_seed}+, every task), '
          f'control 100 Hz, re-plan 10 Hz; load {os.getloadavg()[0]:.1f}')  # fmt: skip
    direct = None
    for name, config in VARIANTS.items():
        results = [run_episode(sim, task, seed, controller=config) for task, seed in pairs]
        ok = [r.sim_time for r in results if r.success]
        mean = float(np.mean(ok)) if ok else float('nan')
        direct = mean if direct is None else direct
        change = 100 * (mean / direct - 1)
        print(f'{name:28s} success {len(ok):3d}/{len(results):<3d} mean episode '
              f'{mean:5.2f} s ({change:+4.0f} % vs direct)', flush=True)  # fmt: skip
    return 0


if __name__ == '__main__':
    sys.exit(main())

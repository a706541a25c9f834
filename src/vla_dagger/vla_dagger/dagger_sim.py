"""DAgger data in the sim: the trained policy drives, the scripted expert labels every frame.

    vla dagger --artifact out/exports/sim_flow --out out/dagger/sim_flow_r1 \\
        --episodes-per-task 30 --seed 1000

Behaviour cloning only sees the expert's own states; a policy's small errors take it to states
no demonstration covers, and the errors compound (Ross et al. 2011). Here the policy's chunks are
executed (re-planned at ``--rate`` Hz, as in evaluation), except in a random ``--beta`` fraction
of re-plan periods, where the expert's target goes through. Every frame records the expert's
target for that state and, as its chunk label (``action.plan``, one policy chunk long), what the
re-planning expert would command if it took over there: a rollout of the expert from a copy of
the sim state (``vla_sim.rollout.expert_rollout_targets``), so the label means what a
demonstration's chunk means. Train on the demonstrations plus these datasets
(``data.recorded.extra_paths``), then repeat with the new policy.

Experimental: it has not helped yet. Measured on 20 seeded episodes per task: the FiLM flow
policy at 11/60 gave 12/60 after round 1 and 3/60 after round 2 (the earlier open-loop plan
labels 8/60 and 0/60); the shipped flow recipe at 48/60 gave 38/60 after one round of 30
rollouts per task (half at beta 0.3, half at 0, as ``make dagger`` runs it). The same labelling
on the states that the state oracle's MLP visits does help that MLP (169 -> 171 of 201 episodes),
while the flow policy's round lowers it (src/vla_learning/README.md): the states differ, not the
labels.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import sys

import numpy as np

from vla_core.cli import cli_main
from vla_sim.demos import (
    SimDemoConfig,
    add_dataset_arguments,
    generate,
    output_is_free,
)
from vla_sim.evaluation.policy import load_backend, sim_observation
from vla_sim.expert import chunk_target
from vla_sim.tasks import TASKS

__all__ = ['PolicyDriver', 'main']


class PolicyDriver:
    """A loaded backend as a :class:`vla_sim.demos.Driver`."""

    name = 'policy (expert labels)'

    def __init__(self, backend, rate: float = 10.0, beta: float = 0.0, seed: int = 0) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f'beta must be in [0, 1], got {beta}')
        self.backend = backend
        self.period = 1.0 / rate
        self.beta = beta
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._chunk = None
        self._order: list[int] = []  # chunk joint order -> sim joint order
        self._next = 0.0
        self._expert_turn = False

    def begin(self, task_name: str, seed: int) -> None:
        self._rng = np.random.default_rng([seed, list(TASKS).index(task_name), self._seed])
        self._chunk, self._next = None, -np.inf

    def act(self, sim, instruction: str) -> np.ndarray | None:
        now = sim.now()
        if now >= self._next - 1e-9:
            self._next = now + self.period
            self._expert_turn = self._rng.uniform() < self.beta
            if not self._expert_turn:
                observation, _ = sim_observation(sim, self.backend.spec, instruction)
                self._chunk = self.backend.infer(observation)
                self._order = [self._chunk.joint_names.index(n) for n in sim.joint_names]
        if self._expert_turn or self._chunk is None:
            return None
        return chunk_target(self._chunk, now)[self._order]


@cli_main('vla dagger')
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='vla dagger', description=__doc__.split('\n')[0])
    p.add_argument('--artifact', required=True, help='exported policy directory')
    p.add_argument('--backend', default='onnxruntime', choices=('onnxruntime', 'torch', 'tensorrt'))
    add_dataset_arguments(p, episodes=30, seed=1000)  # seeds off the demonstrations' 0..99
    p.add_argument('--beta', type=float, default=0.3, help='share of periods the expert executes')
    p.add_argument('--rate', type=float, default=10.0, help='policy re-plan rate [Hz]')
    p.add_argument('--time-limit', type=float, default=10.0, help='episode time limit [s]')
    p.add_argument('--threads', type=int, default=1, help='inference CPU threads')
    p.add_argument('--instruction-encoder', default='minilm', choices=('minilm', 'hashed'))
    args = p.parse_args(argv)
    if not output_is_free(args.out, args.overwrite):
        return 2
    if not 0.0 <= args.beta <= 1.0:
        print(f'error: --beta must be in [0, 1], got {args.beta}', file=sys.stderr)
        return 2
    backend = load_backend(args.artifact, args.backend, args.threads, args.instruction_encoder)
    spec = backend.spec
    cfg = SimDemoConfig(  # frames and plan labels on the policy's own chunk grid
        tasks=tuple(args.tasks), episodes_per_task=args.episodes_per_task, seed=args.seed,
        rate=1.0 / spec.dt, noise_rad=0.0, perturb_fraction=0.0, slip_fraction=0.0,
        time_limit_s=args.time_limit, plan_ticks=spec.horizon,
    )  # fmt: skip
    driver = PolicyDriver(backend, args.rate, args.beta, args.seed)
    out = generate(args.out, cfg, progress=not args.no_progress, driver=driver)
    print(f'dataset: {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

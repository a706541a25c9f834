"""How well would a policy do with perfect perception? The same demos, the scene state as input.

    vla state-oracle --dataset out/dataset_sim --episodes 20 \
        [--noise-m 0.01] [--bias-m 0.015] --out out/eval/state_oracle

A diagnostic for simulated datasets that record the privileged scene state
(``observation.environment_state``: the instructed block's and the target's xy). It fits a small
MLP from (joint state, scene state) to the expert's chunk (relative to the current joints) and
runs it in closed loop through :func:`vla_sim.evaluation.policy.run_episodes`, reading the scene
state from the sim instead of the cameras. If it succeeds where the visuomotor policy fails, the
data and the action representation are sufficient and perception is what to fix.
``--noise-m``: fresh Gaussian noise on that state at every inference; ``--bias-m``: a Gaussian
offset drawn once per episode. Together they say how precise perception has to be.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import itertools
from pathlib import Path
import sys

import numpy as np
import torch
from torch import nn

from vla_core.cli import cli_main

__all__ = ['StateMLP', 'StateOracle', 'fit_state_mlp', 'load_state_samples', 'main']


class StateMLP(nn.Module):
    """``x (B, X)`` raw -> ``y (B, Y)`` raw; the normalization statistics are buffers."""

    x_mean: torch.Tensor
    x_std: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor

    def __init__(self, x: torch.Tensor, y: torch.Tensor, hidden: int = 512, layers: int = 3):
        super().__init__()
        self.register_buffer('x_mean', x.mean(0))
        self.register_buffer('x_std', x.std(0) + 1e-6)
        self.register_buffer('y_mean', y.mean(0))
        self.register_buffer('y_std', y.std(0) + 1e-6)
        dims = [x.shape[1], *[hidden] * layers]
        body: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            body += [nn.Linear(a, b), nn.GELU()]
        self.net = nn.Sequential(*body, nn.Linear(dims[-1], y.shape[1]))

    def normalized(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.x_mean) / self.x_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalized(x) * self.y_std + self.y_mean


def fit_state_mlp(
    x: torch.Tensor, y: torch.Tensor, *, epochs: float = 100.0, batch_size: int = 256,
    lr: float = 1e-3, seed: int = 0, hidden: int = 512,
) -> StateMLP:  # fmt: skip
    """Regress ``y`` on ``x`` (mean squared error in normalized units, cosine learning rate)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = StateMLP(x, y, hidden)
    y_n = (y - model.y_mean) / model.y_std
    steps = max(1, round(epochs * len(x) / batch_size))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        idx = torch.randint(len(x), (batch_size,), generator=gen)
        loss = (model.normalized(x[idx]) - y_n[idx]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    return model.eval()


def load_state_samples(
    dataset: str | Path, horizon: int, success_only: bool = True
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``x = [state, scene state]`` ``(N, S + E)``, ``y`` = chunk minus state ``(N, H * A)``,
    and the action joint names, from a dataset that records the scene state."""
    from vla_data.dataset import EpisodeDataset

    data = EpisodeDataset(dataset, horizon=horizon, success_only=success_only, cameras=[])
    if not data.env_state_names:
        raise ValueError(f'{dataset} records no scene state (observation.environment_state)')
    if data.state_names != data.action_names:
        raise ValueError('the oracle predicts chunks relative to the state: joints must match')
    xs, ys = [], []
    for i in range(len(data)):
        s = data[i]
        xs.append(np.concatenate([s['state'], s['env_state']]))
        ys.append((s['action'] - s['state']).ravel())
    x = torch.from_numpy(np.stack(xs).astype(np.float32))
    return x, torch.from_numpy(np.stack(ys).astype(np.float32)), list(data.action_names)


class StateOracle:
    """A backend (``spec``, ``infer``) that reads the scene state from the task's sim.

    ``noise_m``: std of Gaussian noise added at every inference; ``bias_m``: std of an offset
    drawn per episode (:meth:`reset_episode`). Both [m], per coordinate.
    """

    def __init__(
        self, model: StateMLP, joint_names: Sequence[str], horizon: int, dt: float,
        noise_m: float = 0.0, bias_m: float = 0.0, seed: int = 0,
    ) -> None:  # fmt: skip
        from vla_learning.spec import PolicySpec

        self.model = model
        self.horizon = horizon
        self.dt = dt
        self.noise_m = noise_m
        self.bias_m = bias_m
        self.rng = np.random.default_rng(seed)
        n = len(joint_names)
        # One camera at a token size: evaluate renders it (for videos); the oracle ignores it.
        self.spec = PolicySpec(
            policy_type='state_oracle', joint_names=tuple(joint_names), dt=dt, horizon=horizon,
            action_dim=n, state_dim=n, num_cameras=1, image_size=32, lang_dim=0, inputs=(),
        )  # fmt: skip
        self.task = None
        self.bias = np.zeros(0)

    def reset_episode(self, task, seed: int) -> None:
        """``task``: the :class:`~vla_sim.tasks.TabletopTask` just reset."""
        del seed
        self.task = task
        self.bias = self.rng.normal(0.0, self.bias_m, len(task.scene_state()))

    def infer(self, observation):
        from vla_core.chunk import ActionChunk

        if self.task is None:
            raise RuntimeError('reset_episode(task, seed) first: the oracle reads the task')
        scene = self.task.scene_state() + self.bias
        scene = scene + self.rng.normal(0.0, self.noise_m, len(scene))
        x = torch.from_numpy(np.concatenate([observation.state, scene]).astype(np.float32))
        with torch.no_grad():
            delta = self.model(x[None])[0].numpy().reshape(self.horizon, -1)
        return ActionChunk(
            stamp=observation.stamp, dt=self.dt, joint_names=self.spec.joint_names,
            targets=(delta + observation.state).astype(np.float64), source='state_oracle',
        )  # fmt: skip


@cli_main('vla state-oracle')
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='vla state-oracle', description=__doc__.split('\n')[0])
    p.add_argument('--dataset', required=True, help='a dataset that records the scene state')
    p.add_argument('--horizon', type=int, default=16, help='chunk length (as the policy)')
    p.add_argument('--epochs', type=float, default=100.0)
    p.add_argument('--noise-m', type=float, default=0.0, help='per-inference noise std [m]')
    p.add_argument('--bias-m', type=float, default=0.0, help='per-episode offset std [m]')
    p.add_argument('--tasks', nargs='+', default=['push_red', 'push_green', 'push_blue'])
    p.add_argument('--episodes', type=int, default=20, help='seeded episodes per task')
    p.add_argument('--seed', type=int, default=100_000, help='first seed (keep off training seeds)')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--out', type=Path, default=Path('out/eval/state_oracle'))
    p.add_argument('--no-progress', action='store_true')
    args = p.parse_args(argv)
    from vla_data.dataset import EpisodeDataset
    from vla_sim.evaluation.policy import run_episodes

    torch.set_num_threads(args.threads)
    try:
        x, y, names = load_state_samples(args.dataset, args.horizon)
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'fitting on {len(x)} frames of {args.dataset}')
    model = fit_state_mlp(x, y, epochs=args.epochs)
    dt = 1.0 / EpisodeDataset(args.dataset, cameras=[]).fps
    oracle = StateOracle(model, names, args.horizon, dt, args.noise_m, args.bias_m)
    label = f'state oracle ({args.dataset}; noise {args.noise_m} m, bias {args.bias_m} m)'
    run_episodes(
        oracle, args.tasks, args.episodes, args.seed, args.out, videos=0,
        progress=not args.no_progress, label=label,
    )  # fmt: skip
    print(f'results: {args.out / "results.json"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

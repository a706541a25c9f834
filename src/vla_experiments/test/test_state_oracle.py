"""The state oracle: fit, inputs, per-episode offsets, and a closed-loop run through evaluate."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from vla_experiments.state_oracle import StateOracle, fit_state_mlp, load_state_samples, main
from vla_policy.backends.base import Observation


def test_fit_recovers_a_linear_map() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 5, generator=gen)
    a, b = torch.randn(5, 3, generator=gen), torch.randn(3, generator=gen)
    model = fit_state_mlp(x, x @ a + b, epochs=40, hidden=64)
    x_new = torch.randn(200, 5, generator=gen)
    with torch.no_grad():
        err = (model(x_new) - (x_new @ a + b)).abs().max()
    assert err < 0.1 * (x_new @ a).abs().max()


class _SceneEcho(nn.Module):
    """Chunk offsets = the scene state it was given: shows exactly what the oracle fed it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 2:]  # x = [state (2), scene (4)] -> (H=2) x (A=2)


def _observation(stamp: float = 0.0) -> Observation:
    return Observation(stamp, np.zeros((1, 32, 32, 3), np.uint8), np.array([1.0, 2.0]))


def test_oracle_feeds_the_task_scene_state_with_a_per_episode_offset() -> None:
    truth = np.array([0.4, -0.1, 0.3, 0.2])
    task = SimpleNamespace(scene_state=lambda: truth.copy())
    oracle = StateOracle(_SceneEcho(), ('a', 'b'), horizon=2, dt=0.1, bias_m=0.02, seed=3)
    with pytest.raises(RuntimeError, match='reset_episode'):
        oracle.infer(_observation())
    oracle.reset_episode(task, seed=0)
    first = oracle.infer(_observation(0.0))
    again = oracle.infer(_observation(0.1))
    assert first.joint_names == ('a', 'b') and first.targets.shape == (2, 2)
    assert first.stamp == 0.0 and again.stamp == 0.1 and first.dt == 0.1
    seen = (first.targets - [1.0, 2.0]).ravel()  # the chunk is relative to the state
    np.testing.assert_allclose((again.targets - [1.0, 2.0]).ravel(), seen)  # fixed in an episode
    assert 0.0 < np.abs(seen - truth).max() < 0.1
    oracle.reset_episode(task, seed=1)
    redrawn = (oracle.infer(_observation()).targets - [1.0, 2.0]).ravel()
    assert np.abs(redrawn - seen).max() > 1e-4  # a new episode, a new offset


def test_oracle_noise_is_fresh_every_inference_and_unbiased() -> None:
    truth = np.array([0.4, -0.1, 0.3, 0.2])
    oracle = StateOracle(_SceneEcho(), ('a', 'b'), horizon=2, dt=0.1, noise_m=0.01, seed=0)
    oracle.reset_episode(SimpleNamespace(scene_state=lambda: truth.copy()), seed=0)
    seen = np.array([(oracle.infer(_observation()).targets - [1, 2]).ravel() for _ in range(400)])
    assert np.all(np.abs(np.diff(seen, axis=0)) > 0)
    np.testing.assert_allclose(seen.mean(0), truth, atol=2e-3)
    np.testing.assert_allclose(seen.std(0), 0.01, rtol=0.2)


@pytest.fixture(scope='module')
def scene_dataset(tmp_path_factory: pytest.TempPathFactory):
    from vla_sim.config import SimConfig
    from vla_sim.demos import SimDemoConfig, generate

    root = tmp_path_factory.mktemp('oracle') / 'ds'
    cameras = SimConfig(
        scene_camera_width=32, scene_camera_height=32, wrist_camera_width=32,
        wrist_camera_height=32,
    )  # fmt: skip
    config = SimDemoConfig(tasks=('push_red',), episodes_per_task=1, rate=10.0, noise_rad=0.0)
    return generate(root, config, sim_config=cameras, progress=False)


def test_samples_are_state_and_scene_in_chunk_offsets_out(scene_dataset) -> None:
    from vla_data.dataset import EpisodeDataset

    x, y, names = load_state_samples(scene_dataset, horizon=3)
    data = EpisodeDataset(scene_dataset, horizon=3, cameras=[])
    assert names == data.action_names and len(x) == len(data)
    s = data[5]
    np.testing.assert_allclose(x[5].numpy(), np.concatenate([s['state'], s['env_state']]))
    np.testing.assert_allclose(y[5].numpy(), (s['action'] - s['state']).ravel(), atol=1e-6)


def test_cli_runs_closed_loop_episodes_and_reports(scene_dataset, tmp_path, capsys) -> None:
    out = tmp_path / 'eval'
    argv = ['--dataset', str(scene_dataset), '--horizon', '4', '--epochs', '2', '--episodes', '1',
            '--tasks', 'push_red', '--out', str(out), '--no-progress']  # fmt: skip
    assert main(argv) == 0
    results = json.loads((out / 'results.json').read_text())
    assert results['summary']['push_red']['episodes'] == 1
    assert 'state oracle' in results['artifact']

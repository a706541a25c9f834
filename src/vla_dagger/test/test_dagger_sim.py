"""DAgger collection: the policy's targets are executed, the expert's are recorded."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vla_core.chunk import ActionChunk
from vla_dagger.dagger_sim import PolicyDriver
from vla_data.dataset import EpisodeDataset
from vla_data.dataset.format import DatasetFormatError
from vla_sim.config import SimConfig
from vla_sim.demos import SimDemoConfig, generate

_CAMS = SimConfig(
    scene_camera_width=32, scene_camera_height=32, wrist_camera_width=32, wrist_camera_height=32
)


class _HoldStill:
    """A 'policy' that keeps the arm where it is; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.spec = None

    def infer(self, obs) -> ActionChunk:
        self.calls += 1
        return ActionChunk(obs.stamp, 0.05, self.spec.joint_names, np.tile(obs.state, (4, 1)))


def _collect(tmp_path, beta: float):
    from vla_sim.scene import ARM_JOINTS

    backend = _HoldStill()
    names = (*ARM_JOINTS, 'gripper')
    backend.spec = SimpleNamespace(num_cameras=2, image_size=16, joint_names=names)
    cfg = SimDemoConfig(
        tasks=('push_red',), episodes_per_task=1, seed=1000, rate=10.0, noise_rad=0.0,
        perturb_fraction=0.0, time_limit_s=1.5, plan_ticks=5,
    )  # fmt: skip
    root = generate(
        tmp_path / f'beta{beta}', cfg, sim_config=_CAMS, progress=False,
        driver=PolicyDriver(backend, rate=10.0, beta=beta, seed=0),
    )  # fmt: skip
    data = EpisodeDataset(root, horizon=5)
    return backend, data, data.episode_arrays(data.episodes[0].episode_index)


def test_policy_acts_and_the_expert_labels(tmp_path) -> None:
    backend, data, ep = _collect(tmp_path, beta=0.0)
    assert data.episodes[0].success is False  # holding still pushes nothing
    assert backend.calls == 15  # 1.5 s at 10 Hz
    # Executed: the arm stays put. Recorded: where the expert wanted it to go.
    assert np.ptp(ep['state'], axis=0).max() < 0.01
    assert np.abs(ep['action'][-1] - ep['state'][-1]).max() > 0.05
    assert data.info['action']['executed_by'] == data.episodes[0].operator == PolicyDriver.name
    # Chunk labels are the expert's plan from each state, not the next frames' targets: those
    # are first steps of plans the arm never followed, and stay put like the arm does.
    index = data.episodes[0].episode_index
    frame = data.frame(index, 5)
    np.testing.assert_array_equal(frame['action'], ep['plan'][5])
    assert not frame['action_is_pad'].any()
    plan_travel = np.abs(frame['action'][-1] - frame['action'][0]).max()
    next_targets_travel = np.abs(ep['action'][9] - ep['action'][5]).max()
    assert plan_travel > 0.02 and plan_travel > 3 * next_targets_travel
    np.testing.assert_allclose(ep['plan'][:, 0], ep['action'], atol=0.05)  # same expert, now
    with pytest.raises(DatasetFormatError, match='plans of 5 ticks'):
        EpisodeDataset(data.root, horizon=6).frame(index, 0)


def test_beta_one_hands_every_period_to_the_expert(tmp_path) -> None:
    backend, _, ep = _collect(tmp_path, beta=1.0)
    assert backend.calls == 0 and ep['plan'].shape[1:] == (5, 7)
    assert np.ptp(ep['state'], axis=0).max() > 0.05  # the expert moved the arm


def test_beta_is_validated() -> None:
    with pytest.raises(ValueError, match='beta'):
        PolicyDriver(None, beta=1.5)


def test_labels_are_what_the_replanning_expert_goes_on_to_command(tmp_path) -> None:
    """With the expert driving and no noise, the label from every frame equals the targets it
    really commanded over the next frames: relabelled states teach what demonstrations teach."""
    cfg = SimDemoConfig(
        tasks=('push_green',), episodes_per_task=1, seed=3, rate=20.0, noise_rad=0.0,
        perturb_fraction=0.0, time_limit_s=1.5, plan_ticks=6,
    )  # fmt: skip
    root = generate(tmp_path / 'expert', cfg, sim_config=_CAMS, progress=False)
    data = EpisodeDataset(root, horizon=6)
    ep = data.episode_arrays(data.episodes[0].episode_index)
    n = len(ep['action'])
    assert n == 30 and np.ptp(ep['action'], axis=0).max() > 0.05  # the arm moved
    for f in range(n - 6):
        np.testing.assert_array_equal(ep['plan'][f], ep['action'][f : f + 6])
    # The state it labels is left as it was: the episode is the same with labelling off.
    plain = generate(
        tmp_path / 'plain', cfg.replace(plan_ticks=0), sim_config=_CAMS, progress=False
    )
    plain_data = EpisodeDataset(plain, horizon=6)
    np.testing.assert_array_equal(
        plain_data.episode_arrays(plain_data.episodes[0].episode_index)['state'], ep['state']
    )

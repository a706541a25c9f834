"""Sim demonstrations -> training data -> a policy checkpoint -> input ablation, across packages."""

from __future__ import annotations

import json
import math
import shutil
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from vla_core.chunk import ActionChunk
from vla_core.config import ConfigError
from vla_dagger.dagger_sim import PolicyDriver
from vla_data.dataset.format import ENV_STATE_COLUMN
from vla_experiments.input_ablation import input_ablation
from vla_experiments.state_oracle import load_state_samples
from vla_learning.data.recorded import RecordedConfig, make_recorded_datasets
from vla_learning.policies.configuration_policy import PolicyConfig
from vla_learning.policies.factory import make_policy
from vla_learning.training.checkpoint import save_checkpoint
from vla_sim.config import SimConfig
from vla_sim.demos import SimDemoConfig, generate
from vla_sim.scene import ARM_JOINTS

_CAMS = SimConfig(
    scene_camera_width=48, scene_camera_height=48, wrist_camera_width=32, wrist_camera_height=32
)


def test_demos_train_a_policy_whose_inputs_can_be_ablated(tmp_path) -> None:
    demos = SimDemoConfig(episodes_per_task=1, rate=10.0, perturb_fraction=0.0, slip_fraction=0.0)
    root = generate(tmp_path / 'ds', demos, sim_config=_CAMS, progress=False)
    train, val = make_recorded_datasets(
        RecordedConfig(path=str(root), image_size=32, horizon=4, val_episodes=1, language='hashed')
    )

    # One episode per task: red and green train, blue (the last) held out.
    def colours(d):
        return {d.instructions[int(i)].split()[2] for i in d.instruction_index}

    assert colours(train) == {'red', 'green'} and colours(val) == {'blue'}
    assert train.images.shape[1:] == (2, 3, 32, 32) and train.actions.shape[1:] == (4, 7)
    # Privileged scene state rides along as an auxiliary target: the instructed block, pushed
    # into the target disc, and the target, which stays put.
    assert train.features.env_state_dim == 4 and val.env_state.shape == (len(val), 4)
    block, target = val.env_state[:, :2], val.env_state[:, 2:]
    assert torch.all(target == target[0])
    assert float((block[0] - target[0]).norm()) >= 0.12  # the layout's push distance
    # The last frame is up to one frame (10 Hz, pushing at 0.1 m/s: 1 cm) before success.
    assert float((block[-1] - target[-1]).norm()) <= _CAMS.target_radius + 0.01
    config = PolicyConfig(
        type='flow', features=train.features, delta_actions=True,
        vision={'backbone': 'tiny-cnn', 'pretrained': False, 'freeze': False,
                'feature_stride': 8, 'tokens': 'keypoints', 'num_keypoints': 4},
        trunk={'d_model': 32, 'num_layers': 1, 'num_heads': 2, 'mlp_ratio': 2.0},
        flow={'expert_layers': 1, 'num_steps': 2},
    )  # fmt: skip
    torch.manual_seed(0)
    policy = make_policy(config, train.norm_stats(delta=True))
    ckpt = save_checkpoint(tmp_path / 'p.pt', policy, step=0)
    result = input_ablation(
        str(ckpt), str(root), episodes=1, stride=2, instruction_encoder='hashed'
    )
    assert set(result) == {
        'as_is', 'images_shuffled', 'instruction_shuffled', 'hold_still', 'frames'
    }  # fmt: skip
    assert result['frames'] == math.ceil(len(val) / 2)
    assert all(math.isfinite(v) and v >= 0 for v in result.values())
    # Holding the current joints: the error of the state repeated against the recorded chunks.
    expected = (val.state[::2, None, :] - val.actions[::2]).pow(2).mean().sqrt()
    assert abs(result['hold_still'] - float(expected)) < 1e-5


class _Frozen:
    """A policy that holds the arm still: its DAgger episodes fail, but are labelled."""

    spec = SimpleNamespace(num_cameras=2, image_size=16, joint_names=(*ARM_JOINTS, 'gripper'))

    def infer(self, obs) -> ActionChunk:
        return ActionChunk(obs.stamp, 0.05, self.spec.joint_names, np.tile(obs.state, (2, 1)))


def test_dagger_datasets_join_the_training_split_only(tmp_path) -> None:
    demos = SimDemoConfig(episodes_per_task=1, rate=10.0, perturb_fraction=0.0, slip_fraction=0.0)
    root = generate(tmp_path / 'demos', demos, sim_config=_CAMS, progress=False)
    relabel = SimDemoConfig(
        tasks=('push_blue',), episodes_per_task=2, seed=1000, rate=10.0, noise_rad=0.0,
        perturb_fraction=0.0, time_limit_s=1.0, plan_ticks=4,
    )  # fmt: skip
    dagger = generate(
        tmp_path / 'dagger', relabel, sim_config=_CAMS, progress=False,
        driver=PolicyDriver(_Frozen(), beta=0.0),
    )  # fmt: skip
    cfg = RecordedConfig(
        path=str(root), image_size=32, horizon=4, val_episodes=1, language='hashed',
        extra_paths=(str(dagger),),
    )  # fmt: skip
    train, val = make_recorded_datasets(cfg)
    plain, same_val = make_recorded_datasets(cfg.replace(extra_paths=()))
    # Both failed relabelled episodes (10 frames each at 10 Hz) are added, to training only.
    assert len(train) == len(plain) + 20 and len(val) == len(same_val)
    torch.testing.assert_close(val.actions, same_val.actions)
    blue = train.instructions.index(next(i for i in train.instructions if 'blue' in i))
    assert int((train.instruction_index == blue).sum()) == 20  # blue's demo is the held-out one
    # Datasets that do not line up are refused, naming the difference.
    other = generate(
        tmp_path / 'other', relabel.replace(rate=20.0, episodes_per_task=1), sim_config=_CAMS,
        progress=False,
    )  # fmt: skip
    with pytest.raises(ConfigError, match='fps'):
        make_recorded_datasets(cfg.replace(extra_paths=(str(other),)))
    # A dataset without scene state (a recorded robot's) joins with unknown (NaN) targets.
    assert torch.isfinite(train.env_state).all()
    blind = _without_scene_state(dagger, tmp_path / 'blind')
    mixed, _ = make_recorded_datasets(cfg.replace(extra_paths=(str(blind),)))
    assert torch.isnan(mixed.env_state[len(plain) :]).all()
    torch.testing.assert_close(mixed.env_state[: len(plain)], plain.env_state)
    # Demonstrations without it: the extras' scene state is not used (no auxiliary target).
    bare = _without_scene_state(root, tmp_path / 'bare')
    bare_train, _ = make_recorded_datasets(cfg.replace(path=str(bare)))
    assert bare_train.env_state is None and bare_train.features.env_state_dim == 0
    assert len(bare_train) == len(train)
    # The state oracle needs it, and says so.
    with pytest.raises(ValueError, match='records no scene state'):
        load_state_samples(bare, horizon=4)


def _without_scene_state(dataset, copy):
    """A copy of ``dataset`` as a recorded robot's would be: no environment state."""
    copy = shutil.copytree(dataset, copy)
    info = json.loads((copy / 'dataset.json').read_text())
    del info['environment_state']
    (copy / 'dataset.json').write_text(json.dumps(info))
    for episode in (copy / 'data').glob('*.parquet'):
        pq.write_table(pq.read_table(episode).drop_columns([ENV_STATE_COLUMN]), episode)
    return copy

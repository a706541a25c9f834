"""Sim demonstrations -> training data -> a policy checkpoint -> input ablation, across packages."""

from __future__ import annotations

import math

import torch

from vla_learning.data.recorded import RecordedConfig, make_recorded_datasets
from vla_learning.input_ablation import input_ablation
from vla_learning.policies.configuration_policy import PolicyConfig
from vla_learning.policies.factory import make_policy
from vla_learning.training.checkpoint import save_checkpoint
from vla_sim.config import SimConfig
from vla_teleop.dataset.sim_demos import SimDemoConfig, generate


def test_demos_train_a_policy_whose_inputs_can_be_ablated(tmp_path) -> None:
    cams = SimConfig(
        scene_camera_width=48, scene_camera_height=48, wrist_camera_width=32,
        wrist_camera_height=32,
    )  # fmt: skip
    demos = SimDemoConfig(episodes_per_task=1, rate=10.0, perturb_fraction=0.0)
    root = generate(tmp_path / 'ds', demos, sim_config=cams, progress=False)
    train, val = make_recorded_datasets(
        RecordedConfig(path=str(root), image_size=32, horizon=4, val_episodes=1, language='hashed')
    )

    # One episode per task: red and green train, blue (the last) held out.
    def colours(d):
        return {d.instructions[int(i)].split()[2] for i in d.instruction_index}

    assert colours(train) == {'red', 'green'} and colours(val) == {'blue'}
    assert train.images.shape[1:] == (2, 3, 32, 32) and train.actions.shape[1:] == (4, 7)
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

"""Tiny exported policies for tests of the code that loads and runs them (backends, the policy
node, evaluations, graphs): built in-process in a second, untrained, from synthetic data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

__all__ = ['tiny_export']


def tiny_export(
    out: Path,
    *,
    policy_type: str = 'flow',
    joint_names: Sequence[str] | None = None,
    horizon: int = 4,
    hold_still: bool = False,
    observations: int = 0,
) -> Path:
    """Write an untrained ``policy_type`` policy to ``out`` (``policy.pt``, ``model.onnx``,
    ``policy_spec.json``, and ``observations.npz`` with ``observations`` recorded ones).

    ``joint_names``: the robot's joints (their count is the policy's DoF); ``hold_still``: its
    chunks keep the arm within a milliradian of where it is (delta actions near zero), inside
    every limit, for graphs that must run a policy without it moving the arm anywhere.
    """
    import torch

    from vla_learning.data.synthetic import SyntheticConfig, make_synthetic_datasets
    from vla_learning.export.onnx_export import export_onnx
    from vla_learning.policies.configuration_policy import PolicyConfig
    from vla_learning.policies.factory import make_policy
    from vla_learning.training.checkpoint import save_checkpoint

    dof = {} if joint_names is None else {'dof': len(joint_names)}
    train, val = make_synthetic_datasets(
        SyntheticConfig(
            num_train=32, num_val=8, image_size=32, horizon=horizon, language='hashed', **dof
        )
    )
    if joint_names is not None:
        train = replace(train, features=train.features.replace(joint_names=tuple(joint_names)))
    if hold_still:
        gen = torch.Generator().manual_seed(0)
        noise = 1e-3 * torch.randn(train.actions.shape, generator=gen)
        train = replace(train, actions=train.state[:, None, :] + noise)
    config = PolicyConfig(
        type=policy_type,
        features=train.features,
        delta_actions=hold_still,
        vision={'backbone': 'tiny-cnn', 'pretrained': False, 'freeze': False},
        trunk={'d_model': 32, 'num_layers': 1, 'num_heads': 2, 'mlp_ratio': 2.0},
        flow={'expert_layers': 1, 'num_steps': 2},
        act={'latent_dim': 8, 'encoder_layers': 1, 'decoder_layers': 1},
    )
    torch.manual_seed(0)
    policy = make_policy(config, train.norm_stats(delta=hold_still))
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / 'policy.pt', policy, step=0)
    export_onnx(policy, out / 'model.onnx').save(out)
    if observations:
        val.record_observations(observations).save(out / 'observations.npz')
    return out

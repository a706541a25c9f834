"""Fixtures of the vla_policy tests: tiny exported policies (flow and ACT) made in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vla_learning.data.synthetic import SyntheticConfig, make_synthetic_datasets
from vla_learning.export.onnx_export import export_onnx
from vla_learning.policies.configuration_policy import PolicyConfig
from vla_learning.policies.factory import make_policy
from vla_learning.training.checkpoint import save_checkpoint


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # two threads on two shared cores spin-wait each other


def _export(policy_type: str, root: Path) -> Path:
    train, val = make_synthetic_datasets(
        SyntheticConfig(num_train=32, num_val=8, image_size=32, horizon=4, language='hashed')
    )
    config = PolicyConfig(
        type=policy_type,
        features=train.features,
        vision={'backbone': 'tiny-cnn', 'pretrained': False, 'freeze': False},
        trunk={'d_model': 32, 'num_layers': 1, 'num_heads': 2, 'mlp_ratio': 2.0},
        flow={'expert_layers': 1, 'num_steps': 4},
        act={'latent_dim': 8, 'encoder_layers': 1, 'decoder_layers': 1},
    )
    torch.manual_seed(0)
    policy = make_policy(config, train.norm_stats())
    out = root / policy_type
    out.mkdir(parents=True)
    save_checkpoint(out / 'policy.pt', policy, step=0)
    spec = export_onnx(policy, out / 'model.onnx')
    spec.save(out)
    val.record_observations(8).save(out / 'observations.npz')
    return out


@pytest.fixture(scope='session')
def flow_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory with policy.pt, model.onnx, policy_spec.json, observations.npz."""
    return _export('flow', tmp_path_factory.mktemp('exports'))


@pytest.fixture(scope='session')
def act_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export('act', tmp_path_factory.mktemp('exports'))

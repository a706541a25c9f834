"""Tiny policies and data for the vla_learning tests (imported by name from this directory)."""

from __future__ import annotations

from pathlib import Path

import torch

from vla_learning.data.dataset import ChunkDataset
from vla_learning.policies.base import Batch, Policy
from vla_learning.policies.configuration_policy import PolicyConfig
from vla_learning.policies.factory import make_policy

CONFIG_DIR = Path(__file__).resolve().parents[1] / 'config'
TINY_YAML = CONFIG_DIR / 'tiny_test.yaml'


def tiny_config(policy_type: str = 'flow', **vision: object) -> PolicyConfig:
    vision_cfg = {'backbone': 'tiny-cnn', 'pretrained': False, 'freeze': False, **vision}
    return PolicyConfig(
        type=policy_type,
        features={
            'num_cameras': 2, 'image_size': 32, 'horizon': 4, 'state_dim': 6, 'action_dim': 6,
        },
        vision=vision_cfg,
        trunk={'d_model': 32, 'num_layers': 1, 'num_heads': 2, 'mlp_ratio': 2.0},
        flow={'expert_layers': 1, 'num_steps': 4},
        act={'latent_dim': 8, 'encoder_layers': 1, 'decoder_layers': 1},
    )  # fmt: skip


def tiny_policy(policy_type: str, data: ChunkDataset, seed: int = 0, **vision: object) -> Policy:
    torch.manual_seed(seed)
    return make_policy(tiny_config(policy_type, **vision), data.norm_stats())


def tiny_localizing_policy(
    policy_type: str, data: ChunkDataset, seed: int = 0, **scene: object
) -> Policy:
    """A tiny policy with the scene localizer (the data need not record scene state)."""
    cfg = tiny_config(policy_type)
    cfg = cfg.replace(
        features=cfg.features.replace(env_state_dim=4),
        scene={'localizer': True, 'width': 4, **scene},
    )
    torch.manual_seed(seed)
    return make_policy(cfg, data.norm_stats())


def first_batch(data: ChunkDataset, n: int = 4) -> Batch:
    return data.batch(torch.arange(n))

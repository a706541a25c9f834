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
    policy_type: str,
    data: ChunkDataset,
    seed: int = 0,
    condition_head: bool = False,
    **scene: object,
) -> Policy:
    """A tiny policy with the scene localizer (the data need not record scene state)."""
    cfg = tiny_config(policy_type)
    cfg = cfg.replace(
        features=cfg.features.replace(env_state_dim=4),
        scene={'localizer': True, 'width': 4, **scene},
        condition_head=condition_head,
    )
    torch.manual_seed(seed)
    return make_policy(cfg, data.norm_stats())


def predict_with_scene(
    policy: Policy,
    images: torch.Tensor,
    state: torch.Tensor,
    lang_emb: torch.Tensor,
    noise: torch.Tensor | None,
    scene: torch.Tensor,
) -> torch.Tensor:
    """``predict_chunk`` with a scene localizer that returns ``scene (B, 4)`` exactly."""
    policy.localizer.forward = lambda image, lang_n: scene
    try:
        return policy.predict_chunk(images, state, lang_emb, noise)
    finally:
        del policy.localizer.forward  # the class's own forward again


def first_batch(data: ChunkDataset, n: int = 4) -> Batch:
    return data.batch(torch.arange(n))


def coloured_scenes(n: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """32 px scenes: a red and a green 4 px square, a yellow 6 px goal, anywhere; instruction
    0 names red, 1 green. Target: the named square's and the goal's centre, scaled to metres."""
    images = torch.full((n, 3, 32, 32), 0.8)
    which = torch.randint(2, (n,), generator=gen)
    target = torch.empty(n, 4)
    colours = (torch.tensor([0.9, 0.1, 0.1]), torch.tensor([0.1, 0.8, 0.1]))
    for i in range(n):
        corners = []
        while len(corners) < 3:  # non-overlapping
            c = torch.randint(0, 26, (2,), generator=gen)
            if all((c - o).abs().max() >= 7 for o in corners):
                corners.append(c)
        for k, (y, x) in enumerate(corners):
            size = 6 if k == 2 else 4
            colour = torch.tensor([0.9, 0.9, 0.1]) if k == 2 else colours[k]
            images[i, :, y : y + size, x : x + size] = colour[:, None, None]
        named, goal = corners[int(which[i])] + 2.0, corners[2] + 3.0
        target[i] = torch.cat([named.flip(0), goal.flip(0)]) * 0.01  # (x, y), 1 cm per px
    return images, which, target


def coloured_scene_data(n: int, gen: torch.Generator, like: ChunkDataset) -> ChunkDataset:
    """:func:`coloured_scenes` as a dataset shaped like ``like`` (its state, actions, cameras),
    recording the scene state; instruction 0 names red, 1 green."""
    images, which, target = coloured_scenes(n, gen)
    f = like.features
    pixels = (images * 255).round().to(torch.uint8)[:, None].repeat(1, f.num_cameras, 1, 1, 1)
    rows = torch.randint(len(like), (n,), generator=gen)
    lang = torch.zeros(2, f.lang_dim)
    lang[0, 0], lang[1, 1] = 1.0, 1.0
    return ChunkDataset(
        images=pixels,
        state=like.state[rows],
        instruction_index=which,
        instructions=('push the red block', 'push the green block'),
        lang_table=lang,
        actions=like.actions[rows],
        features=f.replace(env_state_dim=4),
        env_state=target,
    )

"""Training data from recorded demonstrations (a dataset built by ``vla dataset``).

Each control-rate tick of a successful episode is one sample: every camera resized to the model's
square input, the joint state, the instruction, and the next ``horizon`` action targets (padded
with the last target at the episode's end), plus the privileged scene state where the dataset
records one (an auxiliary training target, never an input). Episodes, not ticks, are split into
train and validation, so validation scenes are unseen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from vla_core.config import Config, ConfigError, param
from vla_learning.data.dataset import ChunkDataset
from vla_learning.language import make_instruction_encoder
from vla_learning.policies.configuration_common import FeaturesConfig
from vla_learning.preprocess import resize_square

__all__ = ['RecordedConfig', 'make_recorded_datasets']


@dataclass(frozen=True, kw_only=True)
class RecordedConfig(Config):
    path: str = param('out/dataset', description='dataset directory (vla dataset)')
    extra_paths: tuple[str, ...] = param(
        (), description='more datasets for the training split only (DAgger rounds); validation '
        'stays on the last episodes of path',
    )  # fmt: skip
    cameras: tuple[str, ...] = param((), description='cameras in model order; empty: all')
    image_size: int = param(96, description='square model input [px]', range=(16, 512))
    horizon: int = param(16, description='chunk length in dataset ticks', range=(1, 256))
    val_episodes: int = param(
        2, description='last episodes held out for validation', range=(1, 100_000)
    )
    success_only: bool = param(True, description='train on successful episodes only')
    language: str = param('minilm', description='instruction encoder', choices=('minilm', 'hashed'))


def make_recorded_datasets(
    cfg: RecordedConfig, progress: bool = False
) -> tuple[ChunkDataset, ChunkDataset]:
    """``(train, val)`` from the dataset at ``cfg.path`` (and ``cfg.extra_paths``, train only)."""
    from vla_data.dataset import EpisodeDataset  # the on-disk format's own loader

    cameras = list(cfg.cameras) or None
    data = EpisodeDataset(
        cfg.path, horizon=cfg.horizon, cameras=cameras, success_only=cfg.success_only
    )
    episodes = [e.episode_index for e in data.episodes]
    if len(episodes) <= cfg.val_episodes:
        raise ConfigError(
            'data.recorded.val_episodes',
            f'{cfg.path} has {len(episodes)} usable episodes; need more than {cfg.val_episodes}',
        )
    cams = list(data.camera_names)
    extras = [
        EpisodeDataset(path, horizon=cfg.horizon, cameras=cams, success_only=False)
        for path in cfg.extra_paths
    ]  # Their labels are the expert's on every state, whether or not the episode succeeded.
    env_dim = len(data.env_state_names)  # extras without it get NaN rows (no aux target)
    for extra in extras:
        if env_dim and extra.env_state_names not in ([], data.env_state_names):
            raise ConfigError(
                'data.recorded.extra_paths', f'{extra.root}: env_state_names differ from {cfg.path}'
            )
        for what in ('state_names', 'action_names', 'fps'):
            if getattr(extra, what) != getattr(data, what):
                raise ConfigError(
                    'data.recorded.extra_paths', f'{extra.root}: {what} differ from {cfg.path}'
                )
    instructions = sorted({e.instruction for d in (data, *extras) for e in d.episodes})
    encoder = make_instruction_encoder(cfg.language)
    lang_table = torch.from_numpy(encoder.encode_many(instructions)).float()
    features = FeaturesConfig(
        num_cameras=len(cams),
        image_size=cfg.image_size,
        state_dim=len(data.state_names),
        action_dim=len(data.action_names),
        horizon=cfg.horizon,
        dt=1.0 / data.fps,
        lang_dim=int(lang_table.shape[1]),
        env_state_dim=env_dim,
        joint_names=tuple(data.action_names),
    )
    train = [(data, e) for e in episodes[: -cfg.val_episodes]]
    train += [(extra, e.episode_index) for extra in extras for e in extra.episodes]
    split = {'train': train, 'val': [(data, e) for e in episodes[-cfg.val_episodes :]]}
    parts = []
    for name in ('train', 'val'):
        images, state, actions, instruction_index, env_state = [], [], [], [], []
        bar = tqdm(split[name], desc=f'loading {name} episodes', unit='ep', disable=not progress)
        for source, ep in bar:
            info = next(e for e in source.episodes if e.episode_index == ep)
            for k in range(info.length):
                sample = source.frame(ep, k)
                frames = [
                    resize_square(sample['images'][c], cfg.image_size).transpose(2, 0, 1)
                    for c in cams
                ]
                images.append(np.stack(frames))
                state.append(sample['state'])
                actions.append(sample['action'])
                instruction_index.append(instructions.index(sample['instruction']))
                known = sample['env_state'] is not None and env_dim
                env_state.append(sample['env_state'] if known else np.full(env_dim, np.nan))
        parts.append(
            ChunkDataset(
                images=torch.from_numpy(np.stack(images)),
                state=torch.from_numpy(np.stack(state).astype(np.float32)),
                instruction_index=torch.tensor(instruction_index, dtype=torch.int64),
                instructions=tuple(instructions),
                lang_table=lang_table,
                actions=torch.from_numpy(np.stack(actions).astype(np.float32)),
                features=features,
                env_state=(
                    torch.from_numpy(np.stack(env_state).astype(np.float32)) if env_dim else None
                ),
            )
        )
    return parts[0], parts[1]

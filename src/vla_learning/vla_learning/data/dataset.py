"""In-memory chunk dataset and recorded observations.

Images stay ``uint8`` in memory and become float ``[0, 1]`` per batch. Instructions are stored
once as strings plus an embedding table; samples index into it, so the language model runs once
per distinct instruction, as at deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import zipfile

import numpy as np
import torch

from vla_core.cli import InputError
from vla_learning.normalization import NormStats
from vla_learning.policies.base import Batch
from vla_learning.policies.configuration_common import FeaturesConfig

__all__ = ['ChunkDataset', 'RecordedObservations']


@dataclass
class ChunkDataset:
    """``N`` samples: observation (images, state, instruction) and the expert's chunk."""

    images: torch.Tensor  # (N, C, 3, H, W) uint8
    state: torch.Tensor  # (N, S) float32
    instruction_index: torch.Tensor  # (N,) int64 into ``instructions``
    instructions: tuple[str, ...]
    lang_table: torch.Tensor  # (K, L) float32, one embedding per instruction
    actions: torch.Tensor  # (N, H, A) float32
    features: FeaturesConfig
    vision_features: torch.Tensor | None = None  # (N, C, F, h, w), see cache_vision_features
    # (N, E) float32 privileged scene state, NaN rows where a source has none (aux target)
    env_state: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        f = self.features
        expected = {
            'images': (n, f.num_cameras, 3, f.image_size, f.image_size),
            'state': (n, f.state_dim),
            'instruction_index': (n,),
            'lang_table': (len(self.instructions), f.lang_dim),
            'actions': (n, f.horizon, f.action_dim),
        }
        if self.env_state is not None:
            expected['env_state'] = (n, f.env_state_dim)
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f'{name}: shape {tuple(getattr(self, name).shape)} != {shape}')
        if self.images.dtype != torch.uint8:
            raise ValueError('images must be uint8')

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(self, index: torch.Tensor) -> Batch:
        """Samples ``index (B,)`` as a float batch."""
        return Batch(
            images=self.images[index].float() / 255.0,
            state=self.state[index],
            lang_emb=self.lang_table[self.instruction_index[index]],
            actions=self.actions[index],
            vision_features=(
                None if self.vision_features is None else self.vision_features[index].float()
            ),
            env_state=None if self.env_state is None else self.env_state[index],
        )

    def scene_samples(
        self, index: torch.Tensor, camera: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(images (B, 3, S, S) in [0, 1], lang_emb, env_state)`` of one camera for
        ``index (B,)``: what the scene localizer learns from, without the rest of a batch."""
        env_state = None if self.env_state is None else self.env_state[index]
        lang_emb = self.lang_table[self.instruction_index[index]]
        return self.images[index, camera].float() / 255.0, lang_emb, env_state

    @torch.no_grad()
    def cache_vision_features(
        self,
        vision: torch.nn.Module,
        device: torch.device,
        chunk: int = 64,
        progress: bool = False,
    ) -> None:
        """Run a frozen backbone over every image once (``vision.backbone_features``)."""
        from tqdm import tqdm

        # Filled in place: collecting batches and concatenating would need twice the memory
        # (gigabytes for a few hundred episodes at stride 8). Stored as float16, half the
        # memory again; activations of a frozen ImageNet network lose nothing that matters.
        out: torch.Tensor | None = None
        starts = range(0, len(self), chunk)
        for start in tqdm(starts, desc='vision features', unit='batch', disable=not progress):
            images = self.images[start : start + chunk].to(device).float() / 255.0
            feats = vision.backbone_features(images).cpu()
            if out is None:
                out = torch.empty((len(self), *feats.shape[1:]), dtype=torch.float16)
            out[start : start + len(feats)] = feats
        self.vision_features = out

    def norm_stats(self, delta: bool = False) -> NormStats:
        return NormStats.from_data(
            self.state.numpy(), self.actions.numpy(), delta, self.lang_table.numpy()
        )

    def record_observations(self, count: int) -> RecordedObservations:
        """The first ``count`` samples as recorded observations (for parity and calibration)."""
        count = min(count, len(self))
        idx = self.instruction_index[:count]
        return RecordedObservations(
            images=self.images[:count].numpy(),
            state=self.state[:count].numpy(),
            lang_emb=self.lang_table[idx].numpy(),
            instructions=tuple(self.instructions[i] for i in idx.tolist()),
        )


@dataclass
class RecordedObservations:
    """Observations to check an export on (parity) or calibrate INT8 with; ``.npz``, no pickle."""

    images: np.ndarray  # (N, C, 3, H, W) uint8
    state: np.ndarray  # (N, S) float32
    lang_emb: np.ndarray  # (N, L) float32
    instructions: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def images_float(self) -> np.ndarray:
        """``(N, C, 3, H, W)`` float32 in [0, 1], the model's image input."""
        return self.images.astype(np.float32) / 255.0

    def save(self, path: str | Path) -> None:
        np.savez_compressed(
            path,
            images=self.images,
            state=self.state.astype(np.float32),
            lang_emb=self.lang_emb.astype(np.float32),
            instructions=np.asarray(self.instructions, dtype=str),
        )

    @classmethod
    def load(cls, path: str | Path) -> RecordedObservations:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(
                    images=data['images'],
                    state=data['state'].astype(np.float32),
                    lang_emb=data['lang_emb'].astype(np.float32),
                    instructions=tuple(str(s) for s in data['instructions']),
                )
        except OSError:
            raise
        except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise InputError(f'{path}: not a recorded-observations archive ({err})') from err

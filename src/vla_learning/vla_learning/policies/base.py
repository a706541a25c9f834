"""The policy interface every policy type implements (training loss + chunk prediction)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from vla_learning.normalization import Normalizer, NormStats
from vla_learning.policies.configuration_policy import PolicyConfig
from vla_learning.policies.observation_encoder import ObservationEncoder

__all__ = ['Batch', 'Policy']

# Typical spread of the privileged positions [m]: brings the auxiliary loss to about unit size.
_ENV_STATE_SCALE_M = 0.1


@dataclass
class Batch:
    """One training batch; raw (unnormalized) state and actions."""

    images: torch.Tensor  # (B, N, 3, H, W) float in [0, 1]
    state: torch.Tensor  # (B, S)
    lang_emb: torch.Tensor  # (B, L)
    actions: torch.Tensor  # (B, H, A)
    # (B, N, C, h, w) frozen-backbone features computed once per dataset (a training speed-up)
    vision_features: torch.Tensor | None = None
    # (B, E) privileged scene state, NaN rows where unknown (auxiliary target, training only)
    env_state: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(
            *(t.to(device, non_blocking=True) for t in self.astuple()),
            vision_features=move(self.vision_features),
            env_state=move(self.env_state),
        )

    def astuple(self) -> tuple[torch.Tensor, ...]:
        return (self.images, self.state, self.lang_emb, self.actions)

    def __len__(self) -> int:
        return int(self.state.shape[0])


class Policy(nn.Module, ABC):
    """A chunked visuomotor policy.

    ``forward`` is the deployed path (what ONNX/TensorRT run): raw inputs in, raw joint targets
    out, normalization inside. ``uses_noise`` says whether it takes the ``noise`` input.
    """

    uses_noise: ClassVar[bool] = False
    encoder: ObservationEncoder  # every policy type has the shared observation trunk

    def __init__(self, config: PolicyConfig, stats: NormStats | None = None) -> None:
        super().__init__()
        self.config = config
        f = config.features
        if config.delta_actions and f.state_dim != f.action_dim:
            raise ValueError(
                f'delta_actions needs state_dim == action_dim, got {f.state_dim} and {f.action_dim}'
            )
        self.normalizer = Normalizer(
            f.state_dim, f.action_dim, stats, config.delta_actions, f.lang_dim
        )
        d = config.trunk.d_model
        self.env_state_head = (
            nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, f.env_state_dim))
            if f.env_state_dim and config.env_state_loss_weight > 0
            else None
        )

    @property
    def chunk_shape(self) -> tuple[int, int]:
        """``(H, A)``."""
        return self.config.features.horizon, self.config.features.action_dim

    def env_state_loss(
        self, memory: torch.Tensor, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Auxiliary loss (weighted) on the trunk's ``memory (B, T, D)``: the instruction token
        predicts where the instructed block and the target are. Grounding the instruction is
        what the policies got wrong most (they pushed another block); this supervises it
        directly, through the trunk and the keypoints' FiLM. Zero without a head or labels."""
        if self.env_state_head is None or batch.env_state is None:
            return memory.new_zeros(()), {}
        pred = self.env_state_head(memory[:, self.encoder.vision.num_tokens])
        known = torch.isfinite(batch.env_state).all(-1)
        if not bool(known.any()):
            return 0.0 * pred.sum(), {}  # keeps every parameter in the graph (DDP)
        mse = ((pred[known] - batch.env_state[known]) / _ENV_STATE_SCALE_M).pow(2).mean()
        rmse_m = float(mse.detach().sqrt()) * _ENV_STATE_SCALE_M
        return self.config.env_state_loss_weight * mse, {'env_state_rmse_m': rmse_m}

    @abstractmethod
    def compute_loss(
        self, batch: Batch, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar training loss and scalar logs; all randomness drawn from ``generator``."""

    @abstractmethod
    def predict_chunk(
        self,
        images: torch.Tensor,
        state: torch.Tensor,
        lang_emb: torch.Tensor,
        noise: torch.Tensor | None = None,
        vision_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``images (B, N, 3, H, W)`` in [0, 1], raw ``state (B, S)``, ``lang_emb (B, L)``,
        ``noise (B, H, A)`` (flow only; ignored otherwise), cached backbone ``vision_features``
        (frozen backbone; then ``images`` is not read) -> raw targets ``(B, H, A)``."""

    def forward(
        self,
        images: torch.Tensor,
        state: torch.Tensor,
        lang_emb: torch.Tensor,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.predict_chunk(images, state, lang_emb, noise)

    def sample_noise(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Standard normal ``(B, H, A)`` on the CPU (the generator decides determinism)."""
        return torch.randn(batch_size, *self.chunk_shape, generator=generator)

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
from vla_learning.policies.scene_localizer import SCALE_M, SCENE_DIM, SceneLocalizer

__all__ = ['Batch', 'Policy']


@dataclass
class Batch:
    """One training batch; raw (unnormalized) state and actions."""

    images: torch.Tensor  # (B, N, 3, H, W) float in [0, 1]
    state: torch.Tensor  # (B, S)
    lang_emb: torch.Tensor  # (B, L)
    actions: torch.Tensor  # (B, H, A)
    # (B, N, C, h, w) frozen-backbone features computed once per dataset (a training speed-up)
    vision_features: torch.Tensor | None = None
    # (B, E) privileged scene state, NaN rows where unknown (localizer target, training only)
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
    # The shared observation trunk; None where the action head reads no trunk (flow mlp expert).
    encoder: ObservationEncoder | None

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
        self.localizer: SceneLocalizer | None = None
        if config.scene.localizer:
            if f.env_state_dim != SCENE_DIM:
                raise ValueError(
                    f'scene.localizer needs a scene state of {SCENE_DIM} (object xy, goal xy) '
                    f'in the data (observation.environment_state), got {f.env_state_dim}; '
                    'without it, train with policy.scene.localizer=false'
                )
            if config.scene.camera >= f.num_cameras:
                raise ValueError(f'scene.camera {config.scene.camera} >= {f.num_cameras} cameras')
            self.localizer = SceneLocalizer(config.scene, f.image_size, f.lang_dim)
            self.scene_in = nn.Sequential(nn.Linear(SCENE_DIM, d), nn.GELU(), nn.Linear(d, d))
        self.head_state: nn.Module | None = None  # built by _build_head_condition

    @property
    def num_scene_tokens(self) -> int:
        return 0 if self.localizer is None else 1

    @property
    def chunk_shape(self) -> tuple[int, int]:
        """``(H, A)``."""
        return self.config.features.horizon, self.config.features.action_dim

    def scene_tokens(
        self,
        images: torch.Tensor,
        lang_n: torch.Tensor,
        env_state: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor, dict[str, float]]:
        """The localizer's trunk token ``(B, 1, D)`` (None without a localizer), its weighted
        loss and logs. With ``env_state`` (training) the loss is taken, and rows where the
        state is recorded feed it (plus ``teacher_noise_m`` noise) to the token instead of the
        estimate; without (inference) the token is the estimate. A frozen (pretrained) localizer
        has no loss here."""
        zero = images.new_zeros(())
        if self.localizer is None:
            return None, zero, {}
        image = images[:, self.config.scene.camera]
        if env_state is None:
            return self.scene_in(self.localizer(image, lang_n) / SCALE_M)[:, None], zero, {}
        known = torch.isfinite(env_state).all(-1, keepdim=True)
        noise = torch.randn(env_state.shape, generator=generator).to(env_state.device)
        teacher = torch.nan_to_num(env_state) + self.config.scene.teacher_noise_m * noise
        if any(p.requires_grad for p in self.localizer.parameters()):
            loss, pred = self.localizer.loss(image, lang_n, env_state)
        elif bool(known.all()):  # pretrained and frozen, and every row is teacher-fed
            return self.scene_in(teacher / SCALE_M)[:, None], zero, {}
        else:  # pretrained and frozen: no loss, nor running-error updates; the estimate only
            loss, pred = zero, self.localizer(image, lang_n)
        fed = torch.where(known, teacher, pred.detach())
        logs = {}
        if bool(known.any()):
            err = (pred.detach() - env_state)[known[:, 0]]
            logs = {'scene_rmse_m': float(err.pow(2).mean().sqrt())}
        token = self.scene_in(fed / SCALE_M)[:, None]
        return token, self.config.scene.loss_weight * loss, logs

    def _build_head_condition(self) -> None:
        """``condition_head``'s state embedding. Subclasses call this last, so that switching it
        on leaves every other module's initialization as it was (comparable ablations)."""
        if self.config.condition_head:
            f, d = self.config.features, self.config.trunk.d_model
            # The trunk mixes ~50 tokens; a precise push needs the joints and the scene exactly.
            self.head_state = nn.Sequential(nn.Linear(f.state_dim, d), nn.GELU(), nn.Linear(d, d))

    def head_condition(
        self, state_n: torch.Tensor, scene: torch.Tensor | None
    ) -> torch.Tensor | None:
        """What ``condition_head`` adds to each of the action head's tokens: ``(B, 1, D)`` from
        the normalized state and the scene token (when there is one); None when it is off."""
        if self.head_state is None:
            return None
        cond = self.head_state(state_n)[:, None]
        return cond if scene is None else cond + scene

    def scene_target(self, batch: Batch) -> torch.Tensor | None:
        """``batch.env_state``; an error where the localizer would otherwise not learn."""
        if self.localizer is not None and batch.env_state is None:
            raise ValueError(
                'scene.localizer learns from observation.environment_state; the data has none'
            )
        return batch.env_state

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

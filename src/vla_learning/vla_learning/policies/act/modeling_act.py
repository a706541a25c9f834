"""ACT: a CVAE whose decoder predicts the whole chunk in one pass (Zhao et al., 2023).

The style encoder sees (state, action chunk) at training time and yields ``z``; at inference
``z = 0`` (the prior mean), so the deployed graph is deterministic and has no noise input. The
observation side is the same trunk as the flow VLA, with ``z`` as one extra token.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from vla_learning.normalization import NormStats
from vla_learning.policies.base import Batch, Policy
from vla_learning.policies.configuration_policy import PolicyConfig
from vla_learning.policies.layers import TransformerBlock
from vla_learning.policies.observation_encoder import ObservationEncoder

__all__ = ['ACTPolicy']


class StyleEncoder(nn.Module):
    """``(state (B, S), actions (B, H, A))`` normalized -> ``(mu, logvar)`` each ``(B, Z)``."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        f, trunk, d = config.features, config.trunk, config.trunk.d_model
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.state_in = nn.Linear(f.state_dim, d)
        self.action_in = nn.Linear(f.action_dim, d)
        self.pos = nn.Parameter(torch.randn(1, f.horizon + 2, d) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(d, trunk.num_heads, trunk.mlp_ratio, trunk.dropout)
            for _ in range(config.act.encoder_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 2 * config.act.latent_dim)

    def forward(self, state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b = state.shape[0]
        tokens = torch.cat(
            [self.cls.expand(b, -1, -1), self.state_in(state)[:, None], self.action_in(actions)], 1
        )
        tokens = tokens + self.pos
        for block in self.blocks:
            tokens = block(tokens)
        mu, logvar = self.head(self.norm(tokens[:, 0])).chunk(2, dim=-1)
        return mu, logvar


class ACTPolicy(Policy):
    """ACT behind the common policy interface."""

    def __init__(self, config: PolicyConfig, stats: NormStats | None = None) -> None:
        super().__init__(config, stats)
        f, d = config.features, config.trunk.d_model
        self.style_encoder = StyleEncoder(config)
        self.latent_in = nn.Linear(config.act.latent_dim, d)
        self.encoder = ObservationEncoder(
            f, config.vision, config.trunk, num_extra_tokens=1 + self.num_scene_tokens
        )
        self.queries = nn.Parameter(torch.randn(1, f.horizon, d) * 0.02)
        self.decoder = nn.ModuleList(
            TransformerBlock(
                d, config.trunk.num_heads, config.trunk.mlp_ratio, config.trunk.dropout, cross=True
            )
            for _ in range(config.act.decoder_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.action_out = nn.Linear(d, f.action_dim)
        self._build_head_condition()

    def _decode(
        self,
        images: torch.Tensor,
        state_n: torch.Tensor,
        lang_n: torch.Tensor,
        z: torch.Tensor,
        vision_features: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        env_state: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """Normalized chunk ``(B, H, A)``, the localizer's loss and logs (see
        :meth:`scene_tokens`)."""
        extra = self.latent_in(z)[:, None]
        scene, scene_loss, logs = self.scene_tokens(images, lang_n, env_state, generator)
        if scene is not None:
            extra = torch.cat([extra, scene], 1)
        memory = self.encoder(images, state_n, lang_n, extra, vision_features)
        h = self.queries.expand(state_n.shape[0], -1, -1)
        cond = self.head_condition(state_n, scene)
        if cond is not None:
            h = h + cond
        for block in self.decoder:
            h = block(h, memory)
        return self.action_out(self.norm(h)), scene_loss, logs

    def compute_loss(
        self, batch: Batch, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        actions = self.normalizer.normalize_actions(batch.actions, batch.state)
        state_n = self.normalizer.normalize_state(batch.state)
        mu, logvar = self.style_encoder(state_n, actions)
        eps = torch.randn(mu.shape, generator=generator).to(mu.device)
        z = mu + (0.5 * logvar).exp() * eps
        pred, scene_loss, logs = self._decode(
            batch.images, state_n, self.normalizer.normalize_lang(batch.lang_emb), z,
            batch.vision_features, generator, self.scene_target(batch),
        )  # fmt: skip
        l1 = F.l1_loss(pred, actions)
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(-1).mean()
        loss = l1 + self.config.act.kl_weight * kl + scene_loss
        return loss, {'l1': float(l1.detach()), 'kl': float(kl.detach()), **logs}

    def predict_chunk(
        self,
        images: torch.Tensor,
        state: torch.Tensor,
        lang_emb: torch.Tensor,
        noise: torch.Tensor | None = None,
        vision_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        del noise  # deterministic at inference: z is the prior mean
        z = torch.zeros(state.shape[0], self.config.act.latent_dim, device=state.device)
        state_n = self.normalizer.normalize_state(state)
        lang_n = self.normalizer.normalize_lang(lang_emb)
        pred, _, _ = self._decode(images, state_n, lang_n, z, vision_features)
        return self.normalizer.unnormalize_actions(pred, state)

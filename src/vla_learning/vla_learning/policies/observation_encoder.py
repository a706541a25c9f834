"""The VLA prefix: vision tokens, one language token, one state token, through a transformer."""

from __future__ import annotations

import torch
from torch import nn

from vla_learning.policies.configuration_common import FeaturesConfig, TrunkConfig, VisionConfig
from vla_learning.policies.layers import TransformerBlock
from vla_learning.policies.vision import VisionEncoder

__all__ = ['ObservationEncoder']


class ObservationEncoder(nn.Module):
    """``(images, normalized state, instruction embedding[, extra tokens]) -> (B, T, D)``."""

    def __init__(
        self,
        features: FeaturesConfig,
        vision: VisionConfig,
        trunk: TrunkConfig,
        num_extra_tokens: int = 0,
    ) -> None:
        super().__init__()
        d = trunk.d_model
        self.vision = VisionEncoder(vision, features.num_cameras, features.image_size, d)
        # The sentence embedding is frozen and precomputed; a small MLP adapts it.
        self.lang_proj = nn.Sequential(
            nn.LayerNorm(features.lang_dim), nn.Linear(features.lang_dim, d), nn.GELU(),
            nn.Linear(d, d),
        )  # fmt: skip
        self.state_proj = nn.Sequential(
            nn.Linear(features.state_dim, d), nn.GELU(), nn.Linear(d, d)
        )
        # Learned type embeddings for [language, state, extra...]; vision carries its own.
        self.type_embed = nn.Parameter(torch.randn(1, 2 + num_extra_tokens, d) * 0.02)
        self.num_extra_tokens = num_extra_tokens
        self.blocks = nn.ModuleList(
            TransformerBlock(d, trunk.num_heads, trunk.mlp_ratio, trunk.dropout)
            for _ in range(trunk.num_layers)
        )
        self.norm = nn.LayerNorm(d)

    @property
    def num_tokens(self) -> int:
        return self.vision.num_tokens + 2 + self.num_extra_tokens

    def forward(
        self,
        images: torch.Tensor,
        state: torch.Tensor,
        lang_emb: torch.Tensor,
        extra: torch.Tensor | None = None,
        vision_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``images (B, N, 3, H, W)``, ``state (B, S)`` normalized, ``lang_emb (B, L)``,
        ``extra (B, E, D)``, cached ``vision_features (B, N, C, h, w)`` -> memory ``(B, T, D)``."""
        lang = self.lang_proj(lang_emb)
        parts = [lang[:, None], self.state_proj(state)[:, None]]
        if self.num_extra_tokens:
            if extra is None:
                raise ValueError(f'expected {self.num_extra_tokens} extra tokens')
            parts.append(extra)
        vision = self.vision(images, vision_features, lang)
        tokens = torch.cat([vision, torch.cat(parts, dim=1) + self.type_embed], 1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

"""Configuration of ACT (Action Chunking with Transformers, CVAE)."""

from __future__ import annotations

from dataclasses import dataclass

from vla_core.config import Config, param

__all__ = ['ACTConfig']


@dataclass(frozen=True, kw_only=True)
class ACTConfig(Config):
    """CVAE: a style encoder over (state, actions) at training; z = 0 at inference."""

    latent_dim: int = param(32, description='CVAE latent size', range=(1, 512))
    encoder_layers: int = param(2, description='CVAE (style) encoder layers', range=(1, 24))
    decoder_layers: int = param(2, description='action decoder layers', range=(1, 24))
    kl_weight: float = param(10.0, description='weight of the KL term', range=(0.0, 1e4))

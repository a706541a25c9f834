"""Configuration of the flow-matching action expert (pi0 style)."""

from __future__ import annotations

from dataclasses import dataclass

from vla_core.config import Config, param

__all__ = ['FlowConfig']


@dataclass(frozen=True, kw_only=True)
class FlowConfig(Config):
    """Action expert: noise -> chunk by Euler-integrating a learned velocity field."""

    expert: str = param(
        'transformer',
        description="transformer: one token per chunk step, cross-attending to the trunk's "
        'memory (pi0); mlp: the whole chunk at once through an MLP on the condition_head '
        'embedding (joints and scene token), see mlp_reads_trunk',
        choices=('transformer', 'mlp'),
    )
    expert_layers: int = param(
        2, description='action-expert transformer layers, or hidden layers of the mlp expert',
        range=(1, 24),
    )  # fmt: skip
    mlp_width: int = param(512, description='hidden width of the mlp expert', range=(8, 8192))
    mlp_reads_trunk: bool = param(
        False,
        description="the mlp expert also reads an attention-pooled summary of the trunk's "
        'memory; false builds no trunk (with 100 demonstrations per task, reading it let the '
        'expert recognize training layouts: 25/60 against 52/60)',
    )
    num_steps: int = param(10, description='Euler integration steps at inference', range=(1, 100))
    time_sampling: str = param(
        'beta', description='training time distribution', choices=('beta', 'uniform')
    )
    beta_alpha: float = param(1.5, description='Beta(alpha, beta) for t (pi0)', range=(0.1, 10.0))
    beta_beta: float = param(1.0, description='Beta(alpha, beta) for t (pi0)', range=(0.1, 10.0))
    time_min: float = param(0.001, description='smallest training t', range=(0.0, 0.5))
    prediction: str = param(
        'velocity', description='what the expert network outputs: the velocity (pi0) or the '
        'clean action chunk, from which the velocity follows (x-prediction)',
        choices=('velocity', 'actions'),
    )  # fmt: skip

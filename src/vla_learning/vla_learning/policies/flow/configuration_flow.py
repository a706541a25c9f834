"""Configuration of the flow-matching action expert (pi0 style)."""

from __future__ import annotations

from dataclasses import dataclass

from vla_core.config import Config, param

__all__ = ['FlowConfig']


@dataclass(frozen=True, kw_only=True)
class FlowConfig(Config):
    """Action expert: noise -> chunk by Euler-integrating a learned velocity field."""

    expert_layers: int = param(2, description='action-expert transformer layers', range=(1, 24))
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

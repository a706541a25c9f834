"""Top-level policy configuration: which policy type, and the configs of its parts."""

from __future__ import annotations

from dataclasses import dataclass

from vla_core.config import Config, ConfigError, param
from vla_learning.policies.act.configuration_act import ACTConfig
from vla_learning.policies.configuration_common import (
    FeaturesConfig,
    SceneConfig,
    TrunkConfig,
    VisionConfig,
)
from vla_learning.policies.flow.configuration_flow import FlowConfig

__all__ = ['POLICY_TYPES', 'PolicyConfig']

POLICY_TYPES = ('flow', 'act')


@dataclass(frozen=True, kw_only=True)
class PolicyConfig(Config):
    """Everything needed to rebuild a policy; stored in every checkpoint."""

    type: str = param('flow', description='policy type', choices=POLICY_TYPES)
    features: FeaturesConfig = param(
        default_factory=FeaturesConfig, description='inputs and outputs'
    )
    vision: VisionConfig = param(default_factory=VisionConfig, description='image encoder')
    trunk: TrunkConfig = param(default_factory=TrunkConfig, description='transformer trunk')
    flow: FlowConfig = param(default_factory=FlowConfig, description='flow expert (type=flow)')
    act: ACTConfig = param(default_factory=ACTConfig, description='ACT (type=act)')
    delta_actions: bool = param(
        False,
        description='predict the chunk relative to the current joint state (targets minus '
        'state), which normalizes to a much finer scale than absolute targets; needs the '
        'state and action joints to be the same, in the same order',
    )
    condition_head: bool = param(
        False,
        description='the action head (flow expert, ACT decoder) also reads the joint state and '
        'the scene token directly, added to each of its H tokens (pi0 puts the state in the '
        "expert's tokens), not only through cross-attention to the trunk's memory",
    )
    scene: SceneConfig = param(
        default_factory=SceneConfig, description='object-centric scene localizer (optional)'
    )

    def validate(self) -> None:
        if self.type == 'flow' and self.flow.expert == 'mlp' and not self.condition_head:
            raise ConfigError(
                'flow.expert', 'mlp reads the joints and scene through condition_head: set it'
            )

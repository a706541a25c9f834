"""Build a policy from its config; each policy module is imported only when asked for."""

from __future__ import annotations

import importlib

from vla_learning.normalization import NormStats
from vla_learning.policies.base import Policy
from vla_learning.policies.configuration_policy import PolicyConfig

__all__ = ['make_policy']

_POLICY_CLASSES = {
    'flow': ('vla_learning.policies.flow.modeling_flow', 'FlowMatchingPolicy'),
    'act': ('vla_learning.policies.act.modeling_act', 'ACTPolicy'),
}


def make_policy(config: PolicyConfig, stats: NormStats | None = None) -> Policy:
    module, name = _POLICY_CLASSES[config.type]
    cls = getattr(importlib.import_module(module), name)
    return cls(config, stats)

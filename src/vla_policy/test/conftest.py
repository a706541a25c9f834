"""Fixtures of the vla_policy tests: tiny exported policies (flow and ACT) made in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vla_learning.testing import tiny_export


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # two threads on two shared cores spin-wait each other


@pytest.fixture(scope='session')
def flow_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory with policy.pt, model.onnx, policy_spec.json, observations.npz."""
    return tiny_export(tmp_path_factory.mktemp('exports') / 'flow', observations=8)


@pytest.fixture(scope='session')
def act_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_export(
        tmp_path_factory.mktemp('exports') / 'act', policy_type='act', observations=8
    )

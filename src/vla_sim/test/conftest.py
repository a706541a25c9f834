"""vla_sim picks the headless GL backend (MUJOCO_GL) on import; it must come before any test
module imports mujoco itself, or the renderer aborts the process."""

from pathlib import Path

import pytest

import vla_sim  # noqa: F401


@pytest.fixture(scope='session')
def flow_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained exported flow policy (policy.pt, model.onnx, policy_spec.json)."""
    from vla_learning.testing import tiny_export

    return tiny_export(tmp_path_factory.mktemp('exports') / 'flow', observations=8)

"""Residual training (vla_learning) -> ONNX -> the controller's runtime residual (vla_control)."""

from __future__ import annotations

import numpy as np
import pytest

from vla_control.residual_onnx import OnnxResidual
from vla_learning.train_residual import export_onnx, train

torch = pytest.importorskip('torch')


def test_an_exported_residual_runs_in_the_controllers_runtime(tmp_path) -> None:
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(64, 12))
    bound = np.array([0.5, 0.2], np.float32)
    net = train(feats, rng.normal(size=(64, 2)) * 100.0, bound, hidden=(16,), epochs=3)
    with torch.no_grad():
        out = net(torch.as_tensor(feats, dtype=torch.float32)).numpy()
    path = tmp_path / 'residual.onnx'
    export_onnx(net, path, 2, {'dof': '2'})
    residual = OnnxResidual(path, dof=2)
    assert residual.metadata['dof'] == '2'
    np.testing.assert_allclose(residual(feats[7]), out[7], atol=1e-5)
    assert np.all(np.abs(residual(feats[3])) <= bound + 1e-6)
    with pytest.raises(ValueError, match='expected 18 -> 3'):
        OnnxResidual(path, dof=3)  # a model for another arm is refused

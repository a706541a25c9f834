"""Residual training: hindsight targets, zero-initialised bounded net, ONNX export round trip."""

from __future__ import annotations

import numpy as np
import pytest

from vla_core.control import ControllerConfig, JointSample, ResidualConfig, ResidualController
from vla_learning.train_residual import export_onnx, fit_input_gain, relabel, train

torch = pytest.importorskip('torch')
pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')


def linear_log(n: int = 400, dof: int = 2, seed: int = 0) -> tuple[dict, np.ndarray]:
    """Velocity plant qd' = qd + b u dt - bias: the exact ideal command is known."""
    rng = np.random.default_rng(seed)
    b = np.array([2.0, 0.5])[:dof]
    bias = np.array([0.3, -0.1])[:dof]
    q = np.zeros((n, dof))
    qd = np.zeros((n, dof))
    u_c = rng.normal(size=(n, dof))
    u_a = u_c + 0.1 * rng.normal(size=(n, dof))
    for k in range(n - 1):
        qd[k + 1] = 0.9 * qd[k] + b * u_a[k] - bias
        q[k + 1] = q[k] + 0.01 * qd[k + 1]
    ref = rng.normal(size=(n, dof))
    log = {
        'q': q,
        'qd': qd,
        'q_ref': q + 0.0,
        'qd_ref': ref,
        'qdd_ref': np.zeros((n, dof)),
        'u_classic': u_c,
        'u_applied': u_a,
    }
    return log, b


def test_hindsight_targets_are_exact_on_a_linear_plant():
    log, b = linear_log()
    np.testing.assert_allclose(fit_input_gain(log), b, rtol=1e-6)
    feats, targets = relabel(log, position_gain=0.0)
    assert feats.shape == (399, 12) and targets.shape == (399, 2)
    # Applying u_classic + target would have produced exactly the reference velocity.
    qd, u_c = log['qd'], log['u_classic']
    qd_next = 0.9 * qd[:-1] + b * (u_c[:-1] + targets) - np.array([0.3, -0.1])
    np.testing.assert_allclose(qd_next, log['qd_ref'][1:], atol=1e-4)


def test_episode_boundaries_are_dropped():
    log, _ = linear_log()
    log['episode'] = np.repeat([0, 1], 200)
    feats, _ = relabel(log, position_gain=0.0)
    assert len(feats) == 398


def test_untrained_net_is_zero_and_trained_net_is_bounded_and_exports(tmp_path):
    log, _ = linear_log()
    feats, targets = relabel(log, position_gain=0.0)
    bound = np.array([0.5, 0.2], np.float32)
    net0 = train(feats, targets, bound, hidden=(16,), epochs=0)
    assert float(torch.max(torch.abs(net0(torch.as_tensor(feats)).detach()))) == 0.0
    net = train(feats, targets * 100.0, bound, hidden=(16,), epochs=3)
    out = net(torch.as_tensor(feats)).detach().numpy()
    assert np.all(np.abs(out) <= bound + 1e-6)
    assert np.max(np.abs(out)) > 0.0

    import onnxruntime as ort

    path = tmp_path / 'r.onnx'
    export_onnx(net, path, 2, {'dof': '2'})
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    assert session.get_modelmeta().custom_metadata_map['dof'] == '2'
    (exported,) = session.run(None, {'features': feats[:8].astype(np.float32)})
    np.testing.assert_allclose(exported, out[:8], atol=1e-5)  # dynamic batch axis

    def residual(features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, np.float32)[None]
        return session.run(None, {'features': x})[0][0]

    # Plugged into the controller (velocity mode), switchable at runtime.
    cfg = ControllerConfig(
        joint_names=('a', 'b'),
        output_mode='velocity',
        residual=ResidualConfig(enabled=True, bound=(0.5, 0.2)),
    )
    ctl = ResidualController(cfg, residual=residual)
    cmd = ctl.update(0.0, 0.002, JointSample(0.0, np.zeros(2), np.zeros(2)))
    assert cmd is not None and np.all(np.abs(cmd.u_residual) <= bound)
    assert ctl.metrics().residual_errors == 0

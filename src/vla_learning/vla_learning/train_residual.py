"""Train the learned residual ``r(state, reference)`` from logged tracking data; export to ONNX.

Log format (``.npz``, one row per control tick, joints in command order, command units):

    dt          scalar control period [s]
    q, qd       (N, DoF) measured position and velocity
    q_ref, qd_ref, qdd_ref   (N, DoF) tracked reference (``ControlCommand.reference``)
    u_classic   (N, DoF) classical command (``ControlCommand.u_classic``)
    u_applied   (N, DoF) command actually sent (``ControlCommand.values``; effort or velocity)
    episode     (N,) optional episode id: pairs across a boundary are dropped
    u_target    (N, DoF) optional: the ideal command if the logger already knows it

Target (hindsight relabelling): the command that would have produced the reference motion is
the applied command corrected by the observed shortfall, ``u* = u_applied + (v*_{k+1} -
qd_{k+1}) / b`` with ``v* = qd_ref + position_gain * (q_ref - q)`` at the next tick and ``b``
the plant's per-joint command-to-velocity gain, fitted by least squares on the same log
(``qd_{k+1} - qd_k ~ b u_k + c qd_k + d``) unless given. Everything nonlinear the plant did
(gravity, friction, servo lag) is in the observed response, not in a model. The network learns
``u* - u_classic``, clipped to the bound.

Network: input normalisation, MLP with tanh, last layer zero-initialised (so an untrained
residual is exactly zero), output ``bound * tanh(.)`` (bounded by construction; the controller
clips again). ``--synthetic`` runs a self-contained demo on a simulated 2-joint arm whose gravity
and friction the PID does not know, and prints tracking error without and with the residual.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
import io
import itertools
from pathlib import Path
import sys
import time

import numpy as np

from vla_core.cli import cli_main
from vla_core.control.residual import FEATURES_PER_JOINT, residual_features

__all__ = [
    'ResidualNet',
    'export_onnx',
    'fit_input_gain',
    'main',
    'relabel',
    'synthetic_log',
    'train',
]

LOG_KEYS = ('q', 'qd', 'q_ref', 'qd_ref', 'qdd_ref', 'u_classic', 'u_applied')


def fit_input_gain(log: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-joint gain b of ``qd_{k+1} - qd_k ~ b u_k + c qd_k + d`` (least squares)."""
    qd, u = np.asarray(log['qd']), np.asarray(log['u_applied'])
    valid = _pairs(log)
    gains = np.zeros(qd.shape[1])
    for j in range(qd.shape[1]):
        a = np.stack([u[:-1, j], qd[:-1, j], np.ones(len(u) - 1)], axis=1)[valid]
        y = (qd[1:, j] - qd[:-1, j])[valid]
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        gains[j] = coef[0]
    if np.any(gains <= 0.0):
        raise ValueError(f'fitted command gains {gains} are not positive: excite the plant more')
    return gains


def _pairs(log: Mapping[str, np.ndarray]) -> np.ndarray:
    n = len(log['q'])
    if 'episode' in log:
        ep = np.asarray(log['episode'])
        return ep[1:] == ep[:-1]
    return np.ones(n - 1, dtype=bool)


def relabel(
    log: Mapping[str, np.ndarray],
    *,
    input_gain: np.ndarray | None = None,
    position_gain: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(features (M, 6*DoF) float32, residual targets (M, DoF) float32) from a log."""
    for key in LOG_KEYS:
        if key not in log:
            raise KeyError(f'log lacks {key!r}; needs {LOG_KEYS}')
    q, qd = np.asarray(log['q'], float), np.asarray(log['qd'], float)
    q_ref, qd_ref = np.asarray(log['q_ref'], float), np.asarray(log['qd_ref'], float)
    qdd_ref = np.asarray(log['qdd_ref'], float)
    u_c, u_a = np.asarray(log['u_classic'], float), np.asarray(log['u_applied'], float)
    valid = _pairs(log)
    if 'u_target' in log:
        u_star = np.asarray(log['u_target'], float)[:-1]
    else:
        b = fit_input_gain(log) if input_gain is None else np.asarray(input_gain, float)
        v_star = qd_ref[1:] + position_gain * (q_ref[1:] - q[1:])
        u_star = u_a[:-1] + (v_star - qd[1:]) / b
    feats = residual_features(q[:-1], qd[:-1], q_ref[:-1], qd_ref[:-1], qdd_ref[:-1])
    targets = (u_star - u_c[:-1]).astype(np.float32)
    keep = valid & np.all(np.isfinite(feats), axis=1) & np.all(np.isfinite(targets), axis=1)
    return feats[keep], targets[keep]


def _torch():
    import torch  # deferred: the module's numpy helpers must not need torch

    return torch


def ResidualNet(dof: int, bound: np.ndarray, hidden: tuple[int, ...], mean, std):  # noqa: N802
    """The residual MLP as a ``torch.nn.Module`` (built lazily so importing needs no torch)."""
    torch = _torch()
    nn = torch.nn

    class _Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            dims = (FEATURES_PER_JOINT * dof, *hidden)
            layers: list = []
            for a, b in itertools.pairwise(dims):
                layers += [nn.Linear(a, b), nn.Tanh()]
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(dims[-1], dof)
            nn.init.zeros_(self.head.weight)  # untrained residual == 0 exactly
            nn.init.zeros_(self.head.bias)
            self.register_buffer('mean', torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer('inv_std', torch.as_tensor(1.0 / std, dtype=torch.float32))
            self.register_buffer('bound', torch.as_tensor(bound, dtype=torch.float32))

        def forward(self, x):
            h = self.body((x - self.mean) * self.inv_std)
            return self.bound * torch.tanh(self.head(h))

    return _Net()


def train(
    features: np.ndarray,
    targets: np.ndarray,
    bound: np.ndarray,
    *,
    hidden: tuple[int, ...] = (64, 64),
    epochs: int = 60,
    batch: int = 256,
    lr: float = 3e-3,
    seed: int = 0,
    log_every: int = 0,
):
    """Fit the residual by MSE on targets clipped inside the bound; returns the module."""
    torch = _torch()
    torch.manual_seed(seed)
    dof = targets.shape[1]
    bound = np.broadcast_to(np.asarray(bound, np.float32), (dof,))
    mean = features.mean(axis=0)
    std = np.maximum(features.std(axis=0), 1e-3)
    net = ResidualNet(dof, bound, hidden, mean, std)
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(np.clip(targets, -0.98 * bound, 0.98 * bound), dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i : i + batch]
            loss = torch.mean((net(x[idx]) - y[idx]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        if log_every and (epoch + 1) % log_every == 0:
            print(f'epoch {epoch + 1:4d}  mse {total / len(x):.5f}', file=sys.stderr)
    return net.eval()


def export_onnx(net, path: str | Path | None, dof: int, metadata: Mapping[str, str]) -> bytes:
    """Export with a dynamic batch axis; returns the model bytes (also written to ``path``)."""
    torch = _torch()
    import onnx

    buf = io.BytesIO()
    dummy = torch.zeros(1, FEATURES_PER_JOINT * dof)
    torch.onnx.export(
        net,
        (dummy,),
        buf,
        dynamo=False,  # the TorchScript exporter needs no onnxscript
        input_names=['features'],
        output_names=['residual'],
        dynamic_axes={'features': {0: 'batch'}, 'residual': {0: 'batch'}},
        opset_version=17,
    )
    model = onnx.load_from_string(buf.getvalue())
    for key, value in {
        'feature_layout': 'q,qd,q_ref-q,qd_ref-qd,qd_ref,qdd_ref',
        **metadata,
    }.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    if path is not None:
        Path(path).write_bytes(data)
    return data


# --- synthetic demo: a 2-joint arm with gravity and friction the PID does not model ---

_INERTIA = np.array([0.6, 0.3])


def _plant_accel(q: np.ndarray, qd: np.ndarray, tau: np.ndarray) -> np.ndarray:
    gravity = np.array([4.0 * np.sin(q[0]) + 1.0 * np.sin(q[0] + q[1]), 1.0 * np.sin(q[0] + q[1])])
    friction = 0.8 * qd + 0.4 * np.tanh(qd / 0.02)
    return (tau - gravity - friction) / _INERTIA


def _reference(t: np.ndarray, phase: float) -> np.ndarray:
    return np.stack(
        [0.6 * np.sin(1.3 * t + phase), 0.5 * np.sin(2.1 * t + 0.7 + phase) + 0.3], axis=-1
    )


def _controller_config():
    from vla_core.control import ControllerConfig, PidConfig, ResidualConfig, SafetyConfig

    return ControllerConfig(
        joint_names=('shoulder', 'elbow'),
        output_mode='effort',
        pid=PidConfig(
            kp=(60.0,),
            kd=(6.0,),
            ki=(0.0,),
            kff_velocity=(0.0,),
            kff_acceleration=tuple(_INERTIA),
            derivative_source='velocity',
        ),
        residual=ResidualConfig(enabled=True, bound=(6.0, 3.0)),
        safety=SafetyConfig(effort_max=(30.0,), velocity_max=(4.0,), acceleration_max=(100.0,)),
    )


def simulate(
    seconds: float, *, residual=None, phase: float = 0.0, dt: float = 0.002, seed: int = 0
) -> tuple[dict[str, np.ndarray], float]:
    """Run the effort-mode controller on the synthetic arm; returns (log, RMS tracking error)."""
    from vla_core.chunk import ActionChunk
    from vla_core.control import JointSample, ResidualController

    cfg = _controller_config()
    ctl = ResidualController(cfg, residual=residual)
    rng = np.random.default_rng(seed)
    q = _reference(np.zeros(1), phase)[0]
    qd = np.zeros(2)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in LOG_KEYS}
    err = []
    for k in range(int(seconds / dt)):
        t = k * dt
        if k % 50 == 0:  # 10 Hz chunks observed 40 ms ago
            stamp = t - 0.04
            times = stamp + 0.05 * np.arange(20)
            targets = _reference(times, phase)
            ctl.push_chunk(
                ActionChunk(stamp=stamp, dt=0.05, joint_names=cfg.joint_names, targets=targets), t
            )
        meas_qd = qd + rng.normal(0.0, 0.005, 2)
        cmd = ctl.update(t, dt, JointSample(t, q.copy(), meas_qd))
        assert cmd is not None and cmd.effort is not None
        ref = cmd.reference
        for key, value in (
            ('q', q),
            ('qd', meas_qd),
            ('q_ref', ref.position),
            ('qd_ref', ref.velocity),
            ('qdd_ref', ref.acceleration),
            ('u_classic', cmd.u_classic),
            ('u_applied', cmd.effort),
        ):
            rows[key].append(np.array(value, dtype=np.float64))
        if t > 0.5:
            err.append(ref.position - q)
        qd = qd + _plant_accel(q, qd, cmd.effort) * dt  # semi-implicit Euler
        q = q + qd * dt
    log = {k: np.stack(v) for k, v in rows.items()}
    log['dt'] = np.array(dt)
    return log, float(np.sqrt(np.mean(np.square(err))))


def synthetic_log(seconds: float = 20.0, seed: int = 0) -> tuple[dict[str, np.ndarray], float]:
    """Log of the PID alone on the synthetic arm over a few reference phases (episodes)."""
    logs = []
    rms = []
    for ep, phase in enumerate(np.linspace(0.0, 2.0, 4)):
        log, e = simulate(seconds / 4, phase=float(phase), seed=seed + ep)
        log['episode'] = np.full(len(log['q']), ep)
        logs.append(log)
        rms.append(e)
    merged = {k: np.concatenate([lg[k] for lg in logs]) for k in logs[0] if k != 'dt'}
    merged['dt'] = logs[0]['dt']
    return merged, float(np.mean(rms))


@cli_main('vla train-residual')
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='vla train-residual', description=__doc__.split('\n\n')[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--log', type=Path, help='tracking log (.npz, see module docstring)')
    src.add_argument('--synthetic', action='store_true', help='simulate a log and evaluate')
    p.add_argument('--out', type=Path, default=Path('residual.onnx'))
    p.add_argument('--bound', type=float, nargs='+', default=None, help='per joint or one value')
    p.add_argument('--hidden', type=int, nargs='+', default=[64, 64])
    p.add_argument('--epochs', type=int, default=60)
    p.add_argument('--lr', type=float, default=3e-3)
    p.add_argument('--input-gain', type=float, nargs='+', default=None)
    p.add_argument('--position-gain', type=float, default=10.0, help='[1/s]')
    p.add_argument('--seconds', type=float, default=20.0, help='synthetic log length')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    if args.synthetic:
        log, rms_before = synthetic_log(args.seconds, args.seed)
        bound = np.asarray(args.bound or _controller_config().residual.bound, float)
    else:
        log = dict(np.load(args.log))
        rms_before = float('nan')
        if args.bound is None:
            p.error('--bound is required with --log (command units, per joint or one value)')
        bound = np.asarray(args.bound, float)
    dof = np.asarray(log['q']).shape[1]
    feats, targets = relabel(log, input_gain=args.input_gain, position_gain=args.position_gain)
    bound = np.broadcast_to(bound, (dof,)).astype(np.float32)
    print(
        f'{len(feats)} samples, {dof} joints, target |r| p99 {np.percentile(abs(targets), 99):.3f}'
    )
    net = train(
        feats,
        targets,
        bound,
        hidden=tuple(args.hidden),
        epochs=args.epochs,
        lr=args.lr,
        seed=args.seed,
        log_every=max(args.epochs // 6, 1),
    )
    meta = {'dof': str(dof), 'bound': ','.join(f'{b:g}' for b in bound)}
    data = export_onnx(net, args.out, dof, meta)
    print(f'exported {args.out} ({len(data)} bytes) in {time.perf_counter() - t0:.1f} s')
    if args.synthetic:
        # The trained network itself (the export's parity with it is tested); the controller
        # node runs the ONNX file through vla_control.residual_onnx.OnnxResidual.
        torch = _torch()

        def residual(features: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return net(torch.as_tensor(features, dtype=torch.float32)[None])[0].numpy()

        _, rms_after = simulate(5.0, residual=residual, phase=0.9, seed=99)
        _, rms_pid = simulate(5.0, residual=None, phase=0.9, seed=99)
        print(
            f'held-out tracking RMS: PID {rms_pid:.4f} rad, PID + residual {rms_after:.4f} rad '
            f'(training-log RMS {rms_before:.4f})'
        )
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

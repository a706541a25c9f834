"""Learned residual on top of the classical command: ``u = u_classic + r(state, reference)``.

The network itself lives outside the pure core (an ONNX file evaluated by
``vla_control.residual_onnx.OnnxResidual``, trained by ``vla_learning.train_residual``); the core
only fixes the feature layout both sides share, and guards the output: bounded per joint, zero
when disabled, when it raises or when it returns NaN/Inf.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vla_core.config import Config, param
from vla_core.control._util import per_joint

__all__ = [
    'FEATURES_PER_JOINT',
    'ResidualConfig',
    'ResidualFn',
    'ResidualLayer',
    'residual_features',
]

# (features,) float32 -> (DoF,) residual in command units
ResidualFn = Callable[[np.ndarray], np.ndarray]

FEATURES_PER_JOINT = 6


@dataclass(frozen=True, kw_only=True)
class ResidualConfig(Config):
    enabled: bool = param(False, description='add the learned residual (switchable at runtime)')
    bound: tuple[float, ...] = param(
        (0.2,), description='|residual| bound per joint, command units', range=(0.0, 1e4)
    )
    model_path: str = param('', description='ONNX residual network (empty: none)')


def residual_features(
    q: np.ndarray, qd: np.ndarray, q_ref: np.ndarray, qd_ref: np.ndarray, qdd_ref: np.ndarray
) -> np.ndarray:
    """The network input, (6 * DoF,) float32, joint-major blocks:
    ``[q, qd, q_ref - q, qd_ref - qd, qd_ref, qdd_ref]``. Works batched on (N, DoF) too."""
    q = np.asarray(q, dtype=np.float64)
    blocks = [q, qd, q_ref - q, qd_ref - qd, qd_ref, qdd_ref]
    return np.concatenate([np.asarray(b, dtype=np.float64) for b in blocks], axis=-1).astype(
        np.float32
    )


class ResidualLayer:
    """Guards a residual function: bound, runtime switch, error and non-finite accounting."""

    def __init__(self, config: ResidualConfig, dof: int, fn: ResidualFn | None = None) -> None:
        self.dof = dof
        self.bound = per_joint(config.bound, dof, 'bound')
        self.fn = fn
        self.enabled = config.enabled
        self.errors = 0  # raised or returned the wrong shape
        self.nonfinite = 0  # returned NaN/Inf
        self.saturated = 0  # ticks where the bound clipped the output
        self.last = np.zeros(dof)

    @property
    def active(self) -> bool:
        return self.enabled and self.fn is not None

    def __call__(
        self,
        q: np.ndarray,
        qd: np.ndarray,
        q_ref: np.ndarray,
        qd_ref: np.ndarray,
        qdd_ref: np.ndarray,
    ) -> np.ndarray:
        r = np.zeros(self.dof)
        if self.active:
            assert self.fn is not None
            try:
                out = np.asarray(
                    self.fn(residual_features(q, qd, q_ref, qd_ref, qdd_ref)), dtype=np.float64
                ).reshape(-1)
                if out.shape != (self.dof,):
                    raise ValueError(f'residual shape {out.shape}, expected ({self.dof},)')
            except Exception:  # a bad model must not take the loop down
                self.errors += 1
                out = np.zeros(self.dof)
            if not np.all(np.isfinite(out)):
                self.nonfinite += 1
                out = np.zeros(self.dof)
            r = np.clip(out, -self.bound, self.bound)
            if np.any(r != out):
                self.saturated += 1
        self.last = r
        return r

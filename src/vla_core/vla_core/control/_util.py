"""Small helpers shared by the control core."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla_core.config import ConfigError

__all__ = ['per_joint', 'smoothstep5']


def per_joint(values: Sequence[float], dof: int, name: str) -> np.ndarray:
    """A per-joint float array from a config tuple of length 1 (broadcast) or ``dof``."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size not in (1, dof):
        raise ConfigError(name, f'needs 1 or {dof} values, got {arr.size}')
    return np.broadcast_to(arr, (dof,)).copy() if arr.size == 1 else arr.copy()


def smoothstep5(tau: np.ndarray | float, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quintic 0->1 ramp over ``width`` seconds and its first two time derivatives.

    ``s'(0) = s'(1) = s''(0) = s''(1) = 0``, so blending with it keeps C2 continuity.
    ``tau`` is time since the ramp started [s]; ``width <= 0`` gives a step.
    """
    tau = np.asarray(tau, dtype=np.float64)
    if width <= 0.0:
        s = (tau >= 0.0).astype(np.float64)
        return s, np.zeros_like(s), np.zeros_like(s)
    x = np.clip(tau / width, 0.0, 1.0)
    inside = (tau > 0.0) & (tau < width)
    s = x * x * x * (10.0 + x * (-15.0 + 6.0 * x))
    ds = np.where(inside, 30.0 * x * x * (1.0 - x) ** 2 / width, 0.0)
    dds = np.where(inside, 60.0 * x * (1.0 - x) * (1.0 - 2.0 * x) / width**2, 0.0)
    return s, ds, dds

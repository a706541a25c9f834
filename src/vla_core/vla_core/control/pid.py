"""Per-joint PID with anti-windup, derivative on measurement and feedforward.

The output is in the controller's command units: a velocity [rad/s] in position and velocity
output modes, an effort [Nm] in effort mode (where ``bias`` carries gravity compensation).
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from vla_core.config import Config, param
from vla_core.control._util import per_joint

__all__ = ['JointPid', 'PidConfig', 'PidTerms']


@dataclass(frozen=True, kw_only=True)
class PidConfig(Config):
    kp: tuple[float, ...] = param(
        (20.0,), description='proportional gain per joint (one value: all joints)', range=(0, 1e6)
    )
    ki: tuple[float, ...] = param((0.0,), description='integral gain per joint', range=(0, 1e6))
    kd: tuple[float, ...] = param(
        (0.0,), description='derivative gain per joint (acts on the measurement)', range=(0, 1e6)
    )
    kff_velocity: tuple[float, ...] = param(
        (1.0,), description='feedforward gain on the reference velocity', range=(0, 1e6)
    )
    kff_acceleration: tuple[float, ...] = param(
        (0.0,),
        description='feedforward gain on the reference acceleration (effort mode: inertia)',
        range=(0, 1e6),
    )
    i_limit: tuple[float, ...] = param(
        (1.0,), description='bound on the integral contribution, command units', range=(0, 1e9)
    )
    anti_windup: str = param(
        'clamp',
        description='clamp: stop integrating into saturation; back_calculation: bleed off the '
        'saturation excess',
        choices=('clamp', 'back_calculation'),
    )
    tracking_time: float = param(
        0.05, description='back-calculation time constant [s]', range=(1e-4, 100.0)
    )
    derivative_source: str = param(
        'position',
        description='position: differentiate measured position; velocity: use measured velocity',
        choices=('position', 'velocity'),
    )
    derivative_cutoff_hz: float = param(
        50.0, description='first-order low-pass on the derivative, 0 = off [Hz]', range=(0, 1e5)
    )


@dataclass(frozen=True)
class PidTerms:
    p: np.ndarray
    i: np.ndarray
    d: np.ndarray
    ff: np.ndarray
    unsaturated: np.ndarray
    output: np.ndarray


class JointPid:
    """Vectorised PID over ``dof`` joints; every call takes the explicit step ``dt``."""

    def __init__(self, config: PidConfig, dof: int) -> None:
        self.config = config
        self.dof = dof
        self.kp = per_joint(config.kp, dof, 'kp')
        self.ki = per_joint(config.ki, dof, 'ki')
        self.kd = per_joint(config.kd, dof, 'kd')
        self.kff_v = per_joint(config.kff_velocity, dof, 'kff_velocity')
        self.kff_a = per_joint(config.kff_acceleration, dof, 'kff_acceleration')
        self.i_limit = per_joint(config.i_limit, dof, 'i_limit')
        self.reset()

    def reset(self) -> None:
        self.integral = np.zeros(self.dof)  # integral contribution, command units
        self._d_filt = np.zeros(self.dof)
        self._q_prev: np.ndarray | None = None
        self.last: PidTerms | None = None

    def update(
        self,
        dt: float,
        q: np.ndarray,
        qd: np.ndarray,
        q_ref: np.ndarray,
        qd_ref: np.ndarray,
        qdd_ref: np.ndarray,
        u_min: np.ndarray,
        u_max: np.ndarray,
        *,
        bias: np.ndarray | float = 0.0,
        integrate: bool = True,
    ) -> np.ndarray:
        """Saturated command for one step of ``dt`` seconds.

        ``integrate=False`` keeps the integrator frozen (another controller is in charge) while the
        derivative filter keeps tracking the measurement, so a fallback tick starts clean.
        """
        cfg = self.config
        e = q_ref - q
        if cfg.derivative_source == 'position':
            raw = (q - self._q_prev) / dt if self._q_prev is not None else qd
        else:
            raw = qd
        self._q_prev = np.array(q, dtype=np.float64)
        if cfg.derivative_cutoff_hz > 0.0:
            alpha = dt / (dt + 1.0 / (2.0 * math.pi * cfg.derivative_cutoff_hz))
            self._d_filt = self._d_filt + alpha * (raw - self._d_filt)
        else:
            self._d_filt = np.array(raw, dtype=np.float64)
        p = self.kp * e
        d = -self.kd * self._d_filt  # on the measurement: no kick when the reference jumps
        ff = self.kff_v * qd_ref + self.kff_a * qdd_ref + bias
        unsat = p + self.integral + d + ff
        out = np.minimum(np.maximum(unsat, u_min), u_max)  # np.clip is slow on small arrays
        if integrate:
            di = self.ki * e * dt
            if cfg.anti_windup == 'clamp':
                # Conditional integration: never integrate further into the saturated side.
                winding = ((unsat > u_max) & (di > 0.0)) | ((unsat < u_min) & (di < 0.0))
                self.integral = self.integral + np.where(winding, 0.0, di)
            else:
                self.integral = self.integral + di + (out - unsat) * (dt / cfg.tracking_time)
            self.integral = np.minimum(np.maximum(self.integral, -self.i_limit), self.i_limit)
        self.last = PidTerms(p=p, i=self.integral.copy(), d=d, ff=ff, unsaturated=unsat, output=out)
        return out

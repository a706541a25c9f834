"""Orientation from gyro + accelerometer (+ optional magnetometer): a complementary filter.

The gyro rate is integrated, and each step the orientation is pulled a fraction ``gain`` towards
the attitude the accelerometer implies (roll/pitch only; a delta rotation about the horizontal
axis), in the spirit of Valenti et al., "Keeping a Good Attitude" (Sensors 2015), which ROS'
``imu_complementary_filter`` also follows. The gain shrinks while the accelerometer magnitude is
far from g (the robot is accelerating, so the accelerometer is not a tilt sensor then).

The magnetometer is off by default (``use_mag``): a node built on this filter must never sit
"waiting for data on /imu/mag" the way imu_filter_madgwick's default did. Without it yaw is the
integrated gyro yaw (drifting only with the residual bias) and reported with a large variance.

While the sensor is at rest (small rate, |a| close to g, rate steady for ``rest_time``), the gyro
bias is estimated by low-pass filtering the raw rate, so a stationary robot does not drift.

Conventions (REP 103/145): ``q`` rotates vectors from the IMU body frame into an ENU world frame;
at rest the accelerometer reads +g along world up. Quaternions are ``(w, x, y, z)`` numpy arrays
(transforms3d's order and functions);
:meth:`ImuFilter.quaternion_xyzw` gives ROS' order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from transforms3d.quaternions import axangle2quat, qconjugate, qmult, rotate_vector

from vla_core.config import Config, ConfigError, param

__all__ = [
    'ImuFilter',
    'ImuFilterConfig',
    'diagonal_covariance',
    'quat_from_rotvec',
    'tilt_error',
]

STANDARD_GRAVITY = 9.80665


@dataclass(frozen=True, kw_only=True)
class ImuFilterConfig(Config):
    gain: float = param(
        0.02, description='complementary filter accelerometer weight per update', range=(0.0, 1.0)
    )
    use_mag: bool = param(False, description='fuse the magnetometer (off: no waiting for imu/mag)')
    mag_gain: float = param(
        0.01, description='magnetometer (yaw) weight per update', range=(0.0, 1.0)
    )
    adaptive_gain: bool = param(
        True, description='reduce the accelerometer weight while |a| is far from g'
    )
    estimate_bias: bool = param(True, description='estimate the gyro bias while at rest')
    bias_gain: float = param(
        0.01, description='low-pass weight of the gyro bias update at rest', range=(0.0, 1.0)
    )
    rest_gyro_threshold: float = param(
        0.2,
        description='|rate - bias| below this (per axis) counts as rest [rad/s]',
        range=(0.0, 10.0),
    )
    rest_accel_threshold: float = param(
        0.4, description='||a| - g| below this counts as rest [m/s^2]', range=(0.0, 10.0)
    )
    rest_delta_threshold: float = param(
        0.05,
        description='rate change between updates below this counts as rest [rad/s]',
        range=(0.0, 10.0),
    )
    rest_time: float = param(
        0.5, description='rest must last this long before bias updates [s]', range=(0.0, 60.0)
    )
    gravity: float = param(STANDARD_GRAVITY, description='local gravity [m/s^2]', range=(1.0, 20.0))
    max_dt: float = param(
        0.1,
        description='a larger gap between samples re-initializes from the accelerometer [s]',
        range=(1e-4, 10.0),
    )
    orientation_stddev: float = param(
        0.01, description='reported roll/pitch standard deviation [rad]', range=(0.0, 10.0)
    )
    yaw_stddev: float = param(
        0.05,
        description='reported yaw standard deviation with the magnetometer [rad]',
        range=(0.0, 10.0),
    )
    yaw_stddev_no_mag: float = param(
        1.0,
        description='reported yaw standard deviation without the magnetometer [rad]',
        range=(0.0, 100.0),
    )

    def validate(self) -> None:
        if self.use_mag and self.mag_gain == 0.0:
            raise ConfigError(
                'mag_gain', 'is 0 while use_mag is on; the magnetometer would be ignored'
            )


def quat_from_rotvec(v: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a rotation vector (axis * angle); first order near 0."""
    v = np.asarray(v, dtype=np.float64)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        q = np.array([1.0, 0.5 * v[0], 0.5 * v[1], 0.5 * v[2]])
        return q / np.linalg.norm(q)
    return axangle2quat(v / angle, angle, is_normalized=True)


def tilt_error(q_est: np.ndarray, q_true: np.ndarray) -> float:
    """Angle between the estimated and true 'up' direction seen from the body [rad] (yaw-free)."""
    up = np.array([0.0, 0.0, 1.0])
    a = rotate_vector(up, qconjugate(q_est))
    b = rotate_vector(up, qconjugate(q_true))
    return float(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0)))


def diagonal_covariance(stddev: tuple[float, float, float] | float) -> tuple[float, ...]:
    """Row-major 3x3 covariance (sensor_msgs/Imu layout) from per-axis standard deviations."""
    sd = np.broadcast_to(np.asarray(stddev, dtype=np.float64), (3,))
    return tuple(float(v) for v in np.diag(sd**2).ravel())


def _tilt_correction(g_world: np.ndarray) -> np.ndarray:
    """Rotation vector (about a horizontal axis) turning measured 'up' ``g_world`` onto +z."""
    g = g_world / np.linalg.norm(g_world)
    axis = np.array([g[1], -g[0], 0.0])  # g x e_z
    s = float(np.linalg.norm(axis))
    if s < 1e-12:
        return np.zeros(3)
    return axis / s * float(np.arctan2(s, g[2]))


class ImuFilter:
    """Feed samples in time order with :meth:`update`; read :attr:`q` (w, x, y, z)."""

    def __init__(self, config: ImuFilterConfig | None = None) -> None:
        self.config = config or ImuFilterConfig()
        self.reset()

    def reset(self, bias: np.ndarray | None = None) -> None:
        self.q = np.array([1.0, 0.0, 0.0, 0.0])
        self.bias = np.zeros(3) if bias is None else np.asarray(bias, dtype=np.float64).copy()
        self.initialized = False
        self.at_rest = False
        self._rest_since: float | None = None
        self._last_stamp: float | None = None
        self._last_gyro: np.ndarray | None = None
        self.updates = 0
        self.reinitializations = 0  # gaps longer than max_dt
        self.rejected = 0  # non-finite or out-of-order samples

    def set_orientation(self, q: np.ndarray) -> None:
        """Force the current estimate (tests, or a known start pose); the filter then corrects."""
        q = np.asarray(q, dtype=np.float64)
        self.q = q / np.linalg.norm(q)
        self.initialized = True

    def update(
        self,
        stamp: float,
        gyro: np.ndarray,
        accel: np.ndarray,
        mag: np.ndarray | None = None,
    ) -> np.ndarray:
        """One sample: rate [rad/s], specific force [m/s^2], field (any unit) in the IMU frame."""
        cfg = self.config
        gyro = np.asarray(gyro, dtype=np.float64)
        accel = np.asarray(accel, dtype=np.float64)
        if not (np.all(np.isfinite(gyro)) and np.all(np.isfinite(accel))):
            self.rejected += 1
            return self.q
        use_mag = cfg.use_mag and mag is not None and np.all(np.isfinite(mag)) and np.any(mag)
        a_norm = float(np.linalg.norm(accel))
        if self._last_stamp is not None and stamp <= self._last_stamp:
            self.rejected += 1
            return self.q
        dt = None if self._last_stamp is None else stamp - self._last_stamp
        self._last_stamp = stamp
        if not self.initialized or (dt is not None and dt > cfg.max_dt):
            if self.initialized:
                self.reinitializations += 1
            if a_norm > 1e-6:
                self._init_from_accel(accel, mag if use_mag else None)
            self._last_gyro = gyro
            return self.q
        if dt is None:  # orientation was set by hand: nothing to integrate yet
            self._last_gyro = gyro
            return self.q

        self._update_rest(stamp, gyro, a_norm)
        rate = gyro - self.bias
        self.q = qmult(self.q, quat_from_rotvec(rate * dt))  # body-frame rate: right side

        if a_norm > 1e-6:
            alpha = cfg.gain * (self._gain_factor(a_norm) if cfg.adaptive_gain else 1.0)
            if alpha > 0.0:
                corr = _tilt_correction(rotate_vector(accel, self.q))
                self.q = qmult(quat_from_rotvec(alpha * corr), self.q)  # world frame: left
        if use_mag:
            m_w = rotate_vector(np.asarray(mag, dtype=np.float64), self.q)
            if np.hypot(m_w[0], m_w[1]) > 1e-12:
                # ENU: the horizontal field points north (+y); rotate about z to make it so.
                yaw_err = float(np.arctan2(m_w[0], m_w[1]))
                self.q = qmult(quat_from_rotvec([0.0, 0.0, cfg.mag_gain * yaw_err]), self.q)
        self.q /= np.linalg.norm(self.q)
        self.updates += 1
        return self.q

    def _gain_factor(self, a_norm: float) -> float:
        # Valenti's magnitude-error gating: full weight below 10 % deviation, none above 20 %.
        err = abs(a_norm - self.config.gravity) / self.config.gravity
        return float(np.clip((0.2 - err) / 0.1, 0.0, 1.0))

    def _update_rest(self, stamp: float, gyro: np.ndarray, a_norm: float) -> None:
        cfg = self.config
        last = self._last_gyro if self._last_gyro is not None else gyro
        self._last_gyro = gyro
        steady = (
            abs(a_norm - cfg.gravity) < cfg.rest_accel_threshold
            and bool(np.all(np.abs(gyro - self.bias) < cfg.rest_gyro_threshold))
            and bool(np.all(np.abs(gyro - last) < cfg.rest_delta_threshold))
        )
        if not steady:
            self._rest_since = None
            self.at_rest = False
            return
        if self._rest_since is None:
            self._rest_since = stamp
        self.at_rest = stamp - self._rest_since >= cfg.rest_time
        if self.at_rest and cfg.estimate_bias:
            self.bias += cfg.bias_gain * (gyro - self.bias)

    def _init_from_accel(self, accel: np.ndarray, mag: np.ndarray | None) -> None:
        # Roll/pitch from gravity alone (yaw 0), then yaw from the field if it is fused.
        self.q = quat_from_rotvec(_tilt_correction(accel))
        if mag is not None:
            m_w = rotate_vector(np.asarray(mag, dtype=np.float64), self.q)
            yaw_err = float(np.arctan2(m_w[0], m_w[1]))
            self.q = qmult(quat_from_rotvec([0.0, 0.0, yaw_err]), self.q)
        self.initialized = True

    def quaternion_xyzw(self) -> tuple[float, float, float, float]:
        w, x, y, z = (float(v) for v in self.q)
        return (x, y, z, w)

    def orientation_covariance(self) -> tuple[float, ...]:
        cfg = self.config
        yaw = cfg.yaw_stddev if cfg.use_mag else cfg.yaw_stddev_no_mag
        return diagonal_covariance((cfg.orientation_stddev, cfg.orientation_stddev, yaw))

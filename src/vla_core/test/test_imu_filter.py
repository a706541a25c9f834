import math

import numpy as np
import pytest
from transforms3d.quaternions import qconjugate, qmult, rotate_vector

from vla_core.config import ConfigError
from vla_core.imu_filter import (
    ImuFilter,
    ImuFilterConfig,
    diagonal_covariance,
    quat_from_rotvec,
    tilt_error,
)

G = 9.80665
RATE = 200.0
BIAS = np.array([0.02, -0.03, 0.015])  # rad/s, large for a MEMS gyro after warm-up


def _simulate(rates, q0, seed=0, gyro_noise=0.005, accel_noise=0.05, mag=None):
    """True orientation from body rates (N, 3); yields (t, q_true, gyro, accel, mag_body)."""
    rng = np.random.default_rng(seed)
    q = np.asarray(q0, dtype=np.float64)
    dt = 1.0 / RATE
    for i, w in enumerate(rates):
        q = qmult(q, quat_from_rotvec(w * dt))
        q /= np.linalg.norm(q)
        gyro = w + BIAS + rng.normal(0.0, gyro_noise, 3)
        accel = rotate_vector([0.0, 0.0, G], qconjugate(q)) + rng.normal(0.0, accel_noise, 3)
        m = None if mag is None else rotate_vector(mag, qconjugate(q)) + rng.normal(0, 0.01, 3)
        yield (i + 1) * dt, q.copy(), gyro, accel, m


def _tilted(roll_deg, pitch_deg):
    return qmult(
        quat_from_rotvec([math.radians(roll_deg), 0, 0]),
        quat_from_rotvec([0, math.radians(pitch_deg), 0]),
    )


def test_static_tilt_converges_within_one_degree_from_a_wrong_start():
    f = ImuFilter(ImuFilterConfig())
    f.set_orientation([1.0, 0.0, 0.0, 0.0])  # deliberately level while the truth is tilted
    q_true = _tilted(20.0, -12.0)
    errors = []
    for t, q, gyro, accel, _ in _simulate(np.zeros((int(30 * RATE), 3)), q_true):
        f.update(t, gyro, accel)
        errors.append((t, math.degrees(tilt_error(f.q, q))))
    assert errors[0][1] > 20.0
    late = [e for t, e in errors if t > 10.0]
    assert max(late) < 1.0, max(late)
    assert f.at_rest
    assert np.allclose(f.bias, BIAS, atol=0.004), f.bias


def test_tilt_tracks_through_motion_and_settles():
    n_rest, n_move = int(5 * RATE), int(10 * RATE)
    t = np.arange(n_move) / RATE
    moving = np.stack([0.6 * np.sin(2.0 * t), 0.4 * np.cos(1.3 * t), 0.3 * np.sin(0.7 * t)], axis=1)
    rates = np.concatenate([np.zeros((n_rest, 3)), moving, np.zeros((int(15 * RATE), 3))])
    f = ImuFilter()
    during, after = [], []
    for ts, q, gyro, accel, _ in _simulate(rates, _tilted(-8.0, 15.0), seed=1):
        f.update(ts, gyro, accel)
        err = math.degrees(tilt_error(f.q, q))
        if 5.0 < ts <= 15.0:
            during.append(err)
        elif ts > 20.0:
            after.append(err)
    assert max(during) < 3.0, max(during)  # pure-rotation motion: the gyro carries it
    assert max(after) < 1.0, max(after)


def test_first_sample_initializes_from_gravity():
    f = ImuFilter()
    q_true = _tilted(30.0, 5.0)
    accel = rotate_vector([0.0, 0.0, G], qconjugate(q_true))
    f.update(0.0, np.zeros(3), accel)
    assert f.initialized
    assert math.degrees(tilt_error(f.q, q_true)) < 1e-6


def test_magnetometer_is_off_by_default_and_fixes_yaw_when_on():
    assert ImuFilterConfig().use_mag is False
    north = np.array([0.0, 0.2, -0.4])  # ENU field with a downward dip
    q_true = qmult(quat_from_rotvec([0, 0, math.radians(70.0)]), _tilted(10.0, 0.0))
    rates = np.zeros((int(40 * RATE), 3))

    def yaw_error(f):
        fwd_est, fwd_true = rotate_vector([1, 0, 0], f.q), rotate_vector([1, 0, 0], q_true)
        d = math.atan2(fwd_est[1], fwd_est[0]) - math.atan2(fwd_true[1], fwd_true[0])
        return abs(math.degrees(math.atan2(math.sin(d), math.cos(d))))

    no_mag = ImuFilter()
    with_mag = ImuFilter(ImuFilterConfig(use_mag=True, mag_gain=0.02))
    for f in (no_mag, with_mag):
        f.set_orientation(_tilted(10.0, 0.0))  # yaw wrong by 70 degrees
        for t, _, gyro, accel, m in _simulate(rates, q_true, seed=2, mag=north):
            f.update(t, gyro, accel, m)
    assert yaw_error(no_mag) > 60.0  # mag samples ignored when off
    assert yaw_error(with_mag) < 1.0


def test_magnetometer_on_but_absent_still_runs():
    f = ImuFilter(ImuFilterConfig(use_mag=True))
    for t, _, gyro, accel, _ in _simulate(np.zeros((400, 3)), _tilted(5.0, 5.0)):
        f.update(t, gyro, accel, None)
    assert math.degrees(tilt_error(f.q, _tilted(5.0, 5.0))) < 1.0


def test_gap_reinitializes_and_bad_samples_are_rejected():
    f = ImuFilter()
    accel = np.array([0.0, 0.0, G])
    f.update(0.0, np.zeros(3), accel)
    f.update(0.005, np.zeros(3), accel)
    f.update(0.005, np.zeros(3), accel)  # same stamp
    f.update(0.01, np.array([np.nan, 0, 0]), accel)
    assert f.rejected == 2
    f.update(5.0, np.zeros(3), accel)
    assert f.reinitializations == 1


def test_covariances_and_config_checks():
    cov = ImuFilter().orientation_covariance()
    assert len(cov) == 9 and cov[0] == pytest.approx(1e-4) and cov[8] == pytest.approx(1.0)
    assert diagonal_covariance((1.0, 2.0, 3.0))[4] == pytest.approx(4.0)
    with pytest.raises(ConfigError, match='mag_gain'):
        ImuFilterConfig(use_mag=True, mag_gain=0.0)
    with pytest.raises(ConfigError, match='gain'):
        ImuFilterConfig(gain=2.0)

"""PID: anti-windup under saturation, derivative on measurement, feedforward, filtering."""

from __future__ import annotations

import numpy as np
import pytest

from vla_core.config import ConfigError
from vla_core.control import JointPid, PidConfig

DT = 1e-3


def run_saturated_plant(pid: JointPid | None, ki: float, steps: int) -> tuple[float, float]:
    """Velocity-commanded joint whose command saturates at 0.2 rad/s while the reference steps
    by 1 rad: saturated for ~5 s. Returns (overshoot past 1 rad, peak integral).
    ``pid=None`` runs a naive PI without anti-windup."""
    q = 0.0
    integral = 0.0
    peak_integral = 0.0
    overshoot = 0.0
    u_max = 0.2
    ref = 1.0
    for _ in range(steps):
        if pid is None:
            e = ref - q
            integral += ki * e * DT
            u = float(np.clip(2.0 * e + integral, -u_max, u_max))
        else:
            u = float(
                pid.update(
                    DT,
                    np.array([q]),
                    np.zeros(1),
                    np.array([ref]),
                    np.zeros(1),
                    np.zeros(1),
                    np.array([-u_max]),
                    np.array([u_max]),
                )[0]
            )
            integral = float(pid.integral[0])
        q += u * DT
        peak_integral = max(peak_integral, integral)  # windup is in the error's direction
        overshoot = max(overshoot, q - ref)
    return overshoot, peak_integral


@pytest.mark.parametrize('scheme', ['clamp', 'back_calculation'])
def test_anti_windup_under_saturation(scheme: str):
    cfg = PidConfig(
        kp=(2.0,),
        ki=(1.0,),
        kd=(0.0,),
        kff_velocity=(0.0,),
        i_limit=(1e6,),  # no hard bound: the scheme alone must stop the windup
        anti_windup=scheme,
        tracking_time=0.05,
    )
    pid = JointPid(cfg, 1)
    overshoot, peak = run_saturated_plant(pid, 1.0, 12000)
    naive_overshoot, naive_peak = run_saturated_plant(None, 1.0, 12000)
    # Saturated for ~5 s at 1 rad error: a naive integrator winds up to several rad/s and then
    # drives the joint far past the new setpoint.
    assert naive_peak > 2.0 and naive_overshoot > 0.2
    assert peak < 0.5
    assert overshoot < 0.02


def test_clamp_keeps_integrating_when_unsaturated():
    pid = JointPid(PidConfig(kp=(0.0,), ki=(2.0,), kff_velocity=(0.0,), i_limit=(10.0,)), 1)
    one = np.ones(1)
    for _ in range(100):
        pid.update(DT, 0 * one, 0 * one, one, 0 * one, 0 * one, -10 * one, 10 * one)
    np.testing.assert_allclose(pid.integral, 2.0 * 1.0 * 100 * DT)
    # Hard bound on the integral contribution.
    for _ in range(10000):
        pid.update(DT, 0 * one, 0 * one, 100 * one, 0 * one, 0 * one, -1e9 * one, 1e9 * one)
    np.testing.assert_allclose(pid.integral, 10.0)


def test_derivative_on_measurement_has_no_kick_and_is_filtered():
    cfg = PidConfig(kp=(0.0,), kd=(1.0,), kff_velocity=(0.0,), derivative_cutoff_hz=10.0)
    pid = JointPid(cfg, 1)
    z, one = np.zeros(1), np.ones(1)
    pid.update(DT, z, z, z, z, z, -1e3 * one, 1e3 * one)
    u = pid.update(DT, z, z, 5 * one, z, z, -1e3 * one, 1e3 * one)  # reference step
    assert u[0] == 0.0  # no derivative kick from the reference
    # A measured position step of 1 mrad in 1 ms is a 1 rad/s spike; the 10 Hz filter passes
    # only dt/(dt + 1/(2 pi 10)) ~ 6 % of it on the first tick.
    u = pid.update(DT, 1e-3 * one, z, z, z, z, -1e3 * one, 1e3 * one)
    assert -0.07 < u[0] < -0.05
    # Steady motion at 0.5 rad/s: the filtered derivative converges to it.
    q = 1e-3
    for _ in range(500):
        q += 0.5 * DT
        u = pid.update(DT, q * one, z, q * one, z, z, -1e3 * one, 1e3 * one)
    np.testing.assert_allclose(u, -0.5, rtol=1e-3)


def test_velocity_source_and_feedforward_and_bias():
    cfg = PidConfig(
        kp=(10.0, 1.0),
        kd=(2.0,),
        kff_velocity=(1.0,),
        kff_acceleration=(0.5,),
        derivative_source='velocity',
        derivative_cutoff_hz=0.0,
    )
    pid = JointPid(cfg, 2)
    u = pid.update(
        DT,
        q=np.array([0.0, 0.0]),
        qd=np.array([0.1, 0.2]),
        q_ref=np.array([0.1, 0.1]),
        qd_ref=np.array([0.3, 0.4]),
        qdd_ref=np.array([2.0, 2.0]),
        u_min=np.full(2, -100.0),
        u_max=np.full(2, 100.0),
        bias=np.array([5.0, -5.0]),
    )
    expected = np.array([10 * 0.1, 1 * 0.1]) - 2.0 * np.array([0.1, 0.2]) + [0.3, 0.4]
    expected += 0.5 * 2.0 + np.array([5.0, -5.0])
    np.testing.assert_allclose(u, expected)


def test_per_joint_lengths_checked():
    with pytest.raises(ConfigError):
        JointPid(PidConfig(kp=(1.0, 2.0)), 3)
    with pytest.raises(ConfigError):
        PidConfig(anti_windup='none')

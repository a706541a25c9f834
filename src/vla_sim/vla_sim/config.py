"""Configuration of the simulated robot: rates, actuation, cameras and model-mismatch knobs."""

from __future__ import annotations

from dataclasses import dataclass

from vla_core.config import Config, ConfigError, param

__all__ = ['MismatchConfig', 'SimConfig']


@dataclass(frozen=True, kw_only=True)
class MismatchConfig(Config):
    """Deliberate differences between the simulated plant and the nominal model a controller
    assumes (gravity compensation, gains), for evaluating controllers' robustness."""

    payload_kg: float = param(
        0.0, description='extra mass on the end effector, not gravity-compensated [kg]',
        range=(0.0, 5.0),
    )  # fmt: skip
    friction_scale: float = param(
        1.0, description='scale of joint Coulomb friction (frictionloss)', range=(0.0, 20.0)
    )
    damping_scale: float = param(
        1.0, description='scale of joint viscous damping', range=(0.0, 20.0)
    )
    gain_scale: float = param(
        1.0, description='scale of actuator gains (kp/kv, or torque per command)',
        range=(0.1, 10.0),
    )  # fmt: skip
    latency_s: float = param(
        0.0, description='delay between send_command and the actuators seeing it [s]',
        range=(0.0, 1.0),
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class SimConfig(Config):
    physics_hz: float = param(1000.0, description='physics rate [Hz]', range=(500.0, 10000.0))
    control_hz: float = param(
        50.0, description='rate at which commands reach the actuators [Hz]', range=(1.0, 1000.0)
    )
    actuation: str = param(
        'position', description='joint actuation mode',
        choices=('position', 'velocity', 'effort'),
    )  # fmt: skip
    gravity_compensation: bool = param(
        True, description='arm links are gravity-compensated, as on torque-controlled arms'
    )
    imu_mount: str = param(
        'base_link', description='body carrying the IMU (frame imu_link, axes as that body); the '
        "robot description's imu_link is the base mount, so TF is right for 'base_link' only",
        choices=('base_link', 'link6'),
    )  # fmt: skip
    scene_camera_width: int = param(224, description='scene camera width [px]', range=(16, 1920))
    scene_camera_height: int = param(224, description='scene camera height [px]', range=(16, 1080))
    scene_camera_fovy_deg: float = param(
        45.0, description='scene camera vertical field of view [deg]', range=(10.0, 120.0)
    )
    wrist_camera_width: int = param(128, description='wrist camera width [px]', range=(16, 1920))
    wrist_camera_height: int = param(128, description='wrist camera height [px]', range=(16, 1080))
    wrist_camera_fovy_deg: float = param(
        75.0, description='wrist camera vertical field of view [deg]', range=(10.0, 150.0)
    )
    target_radius: float = param(
        0.05, description='radius of the target region on the table [m]', range=(0.02, 0.2)
    )
    calibration_marker: bool = param(
        False, description='add a small magenta marker at a fixed table spot (camera tests)'
    )
    mismatch: MismatchConfig = param(
        default_factory=MismatchConfig, description='model-mismatch knobs'
    )

    @property
    def substeps(self) -> int:
        """Physics steps per control period."""
        return round(self.physics_hz / self.control_hz)

    def validate(self) -> None:
        if self.control_hz > self.physics_hz:
            raise ConfigError('control_hz', 'must not exceed physics_hz')
        ratio = self.physics_hz / self.control_hz
        if abs(ratio - round(ratio)) > 1e-6:
            raise ConfigError(
                'control_hz', f'physics_hz/control_hz must be an integer, got {ratio:.4f}'
            )

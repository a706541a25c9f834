"""Serial IMU node: an :class:`~vla_sensors.imu.ImuSerialDriver` and an orientation filter.

    ros2 run vla_sensors imu_node --ros-args -p port:=/dev/serial/by-id/usb-... -p baud:=115200

Publishes (relative names, so namespaces and remaps apply), stamped with the sample time:

* ``imu/data_raw`` (sensor_msgs/Imu): rate and specific force in ``frame_id`` (REP 145), no
  orientation (``orientation_covariance[0] = -1``), covariances from the ``*_stddev`` parameters
* ``imu/data``: the same sample with the :class:`~vla_core.imu_filter.ImuFilter` orientation
  (parameters ``filter.*``) and, by default, the at-rest gyro bias estimate subtracted
* ``/diagnostics`` about once a second: rate, latency, checksum failures, reconnects, filter state

A plain Node, not a lifecycle node: the driver already reconnects by itself, opening a serial port
is instant and holds nothing worth keeping in an 'inactive' state, so configure/activate would add
states without behaviour. A port that cannot be opened at start is a one-line error naming it
(``run_node``/the runner), or, with ``wait_for_device``, the node starts and waits for it.
Samples are filtered and published on the driver's reader thread, in order, with no queue between.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
import threading

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Imu

from vla_core.config import Config, param
from vla_core.imu_filter import ImuFilter, ImuFilterConfig, diagonal_covariance
from vla_ros_common import diagnostics, qos
from vla_ros_common.conversions import seconds_to_stamp
from vla_ros_common.node_main import run_node
from vla_ros_common.params import declare_config
from vla_sensors.diagnostics import LatencyWindow
from vla_sensors.imu import ImuDriverConfig, ImuError, ImuSample, ImuSerialDriver, ImuStats

__all__ = ['ImuNode', 'ImuNodeConfig', 'main']

# Fields of ImuDriverConfig the node reads per sample; the driver took the rest at start.
_LIVE_DRIVER_FIELDS = ('frame_id', 'angular_velocity_stddev', 'linear_acceleration_stddev')


@dataclass(frozen=True, kw_only=True)
class ImuNodeConfig(Config):
    wait_for_device: bool = param(
        False,
        description='start while the port is missing and open it when it appears '
        '(false: fail at start naming the port)',
        read_only=True,
    )
    publish_filtered: bool = param(
        True, description='also publish imu/data with the filter orientation', read_only=True
    )
    remove_gyro_bias: bool = param(
        True, description='imu/data: subtract the at-rest gyro bias estimate from the rate'
    )
    diagnostics_period: float = param(
        1.0, description='period of the /diagnostics report [s]', range=(0.05, 60.0), read_only=True
    )


class ImuNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('imu', **kwargs)
        self._driver_cfg = declare_config(self, ImuDriverConfig)
        self._filter_cfg = declare_config(self, ImuFilterConfig, prefix='filter.')
        self._node_cfg = declare_config(self, ImuNodeConfig)
        self._driver_cfg.on_change(self._on_driver_change)
        self._filter_cfg.on_change(self._on_filter_change)
        self._covariances = self._sensor_covariances(self._driver_cfg.value)
        self._filter = ImuFilter(self._filter_cfg.value)
        self._filter_lock = threading.Lock()  # reader thread vs. diagnostics timer
        self._latency = LatencyWindow(2000)
        self._last_stats: ImuStats | None = None
        self._published = 0

        self._raw_pub = self.create_publisher(
            Imu, 'imu/data_raw', qos.SENSOR_OUT, qos_overriding_options=qos.qos_overrides()
        )
        self._filtered_pub = None
        if self._node_cfg.value.publish_filtered:
            self._filtered_pub = self.create_publisher(
                Imu, 'imu/data', qos.SENSOR_OUT, qos_overriding_options=qos.qos_overrides()
            )
        self._diag_pub = self.create_publisher(
            DiagnosticArray,
            '/diagnostics',
            qos.DIAGNOSTICS,
            qos_overriding_options=qos.qos_overrides(),
        )
        self._driver = self._create_driver(self._driver_cfg.value)
        try:
            self._driver.start(wait_for_device=self._node_cfg.value.wait_for_device)
        except ImuError:
            # Port missing, busy or not permitted: run_node/the runner print the reason.
            self.destroy_node()
            raise
        self._diag_timer = self.create_timer(
            self._node_cfg.value.diagnostics_period, self._publish_diagnostics
        )
        cfg = self._driver_cfg.value
        self.get_logger().info(
            f'reading {cfg.protocol} IMU on {cfg.port} at {cfg.baud} baud -> '
            f'{self._raw_pub.topic_name}'
            + (f', {self._filtered_pub.topic_name}' if self._filtered_pub else '')
        )

    def _create_driver(self, cfg: ImuDriverConfig) -> ImuSerialDriver:
        return ImuSerialDriver(cfg, self._on_sample)

    def destroy_node(self) -> None:
        driver = getattr(self, '_driver', None)
        if driver is not None:
            driver.stop()  # no samples into destroyed publishers
        super().destroy_node()

    # --- samples (driver reader thread) -----------------------------------------------------------

    @staticmethod
    def _sensor_covariances(cfg: ImuDriverConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return (
            diagonal_covariance(cfg.angular_velocity_stddev),
            diagonal_covariance(cfg.linear_acceleration_stddev),
        )

    def _on_sample(self, sample: ImuSample) -> None:
        gyro_cov, accel_cov = self._covariances
        msg = Imu()
        msg.header.stamp = seconds_to_stamp(sample.stamp)
        msg.header.frame_id = self._driver_cfg.value.frame_id
        msg.orientation_covariance[0] = -1.0  # REP 145: no orientation estimate
        _set_vector(msg.angular_velocity, sample.angular_velocity)
        _set_vector(msg.linear_acceleration, sample.linear_acceleration)
        msg.angular_velocity_covariance = gyro_cov
        msg.linear_acceleration_covariance = accel_cov
        self._raw_pub.publish(msg)
        if self._filtered_pub is not None:
            self._publish_filtered(msg, sample)
        self._latency.add(self._driver.clock() - sample.stamp)
        self._published += 1

    def _publish_filtered(self, msg: Imu, sample: ImuSample) -> None:
        with self._filter_lock:
            f = self._filter
            f.update(
                sample.stamp,
                sample.angular_velocity,
                sample.linear_acceleration,
                sample.magnetic_field,
            )
            if not f.initialized:  # no usable accelerometer reading yet
                return
            x, y, z, w = f.quaternion_xyzw()
            msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = x, y, z, w
            msg.orientation_covariance = f.orientation_covariance()
            if self._node_cfg.value.remove_gyro_bias:
                _set_vector(msg.angular_velocity, sample.angular_velocity - f.bias)
        self._filtered_pub.publish(msg)

    # --- parameters -------------------------------------------------------------------------------

    def _on_driver_change(self, cfg: ImuDriverConfig) -> None:
        self._covariances = self._sensor_covariances(cfg)
        old = self._driver.config
        stale = [
            f.name
            for f in fields(cfg)
            if f.name not in _LIVE_DRIVER_FIELDS and getattr(cfg, f.name) != getattr(old, f.name)
        ]
        if stale:
            self.get_logger().warn(f'{", ".join(stale)}: applied when the node restarts')

    def _on_filter_change(self, cfg: ImuFilterConfig) -> None:
        with self._filter_lock:
            self._filter.config = cfg  # the filter reads its config on every update

    # --- diagnostics ------------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        s = self._driver.stats()
        window, self._latency = self._latency, LatencyWindow(2000)  # this period only
        lat = window.values() * 1e3
        prev = self._last_stats
        self._last_stats = s
        corrupted = s.checksum_errors + s.truncated_packets
        if prev is not None:
            corrupted -= prev.checksum_errors + prev.truncated_packets
        if not s.connected:
            level, message = diagnostics.ERROR, f'disconnected: {s.last_error or "not open"}'
        elif not s.receiving:
            level, message = diagnostics.ERROR, 'port open but no data'
        elif corrupted:
            level, message = diagnostics.WARN, f'{corrupted} corrupted packets skipped'
        else:
            level, message = diagnostics.OK, 'streaming'
        values = {
            'port': s.port,
            'connected': s.connected,
            'receiving': s.receiving,
            'sample_rate_hz': s.sample_rate,
            'latency_p50_ms': float(np.percentile(lat, 50)) if lat.size else float('nan'),
            'latency_p99_ms': float(np.percentile(lat, 99)) if lat.size else float('nan'),
            'samples': s.samples,
            'samples_published': self._published,
            'packets_ok': s.packets_ok,
            'checksum_errors': s.checksum_errors,
            'truncated_packets': s.truncated_packets,
            'bytes_discarded': s.bytes_discarded,
            'incomplete_samples': s.incomplete_samples,
            'disconnects': s.disconnects,
            'reconnects': s.reconnects,
            'data_timeouts': s.data_timeouts,
            'callback_errors': s.callback_errors,
            'last_error': s.last_error,
        }
        statuses = [
            diagnostics.status(
                f'{self.get_name()}: imu {s.port}', level, message, values, hardware_id=s.port
            )
        ]
        if self._filtered_pub is not None:
            with self._filter_lock:
                f = self._filter
                bias = f.bias.copy()
                filter_values = {
                    'initialized': f.initialized,
                    'at_rest': f.at_rest,
                    'gyro_bias_x': float(bias[0]),
                    'gyro_bias_y': float(bias[1]),
                    'gyro_bias_z': float(bias[2]),
                    'updates': f.updates,
                    'reinitializations': f.reinitializations,
                    'rejected': f.rejected,
                }
            statuses.append(
                diagnostics.status(
                    f'{self.get_name()}: imu filter',
                    diagnostics.OK if filter_values['initialized'] else diagnostics.WARN,
                    'at rest' if filter_values['at_rest'] else 'tracking',
                    filter_values,
                    hardware_id=s.port,
                )
            )
        self._diag_pub.publish(
            diagnostics.diagnostic_array(self.get_clock().now().to_msg(), statuses)
        )


def _set_vector(vector: object, values: np.ndarray) -> None:
    vector.x, vector.y, vector.z = (float(v) for v in values)  # type: ignore[attr-defined]


def main(args: Sequence[str] | None = None) -> int:
    return run_node(ImuNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

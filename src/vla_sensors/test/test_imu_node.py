"""The IMU node driven through a pseudo-terminal pair, observed through what it publishes."""

from __future__ import annotations

from collections.abc import Callable
import math
from pathlib import Path
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Imu
from sensor_test_utils import FakeUsbSerial, wit_sample

from vla_ros_common.conversions import stamp_to_seconds
from vla_ros_common.node_main import make_executor
from vla_sensors.imu import ImuError
from vla_sensors.imu_node import ImuNode

G = 9.80665
RAW, FILTERED = 'imu/data_raw', 'imu/data'
RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
ERROR = b'\x02'


class Harness:
    """A private ROS context with an executor thread and a probe recording every message."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = make_executor(context=self.context)
        self.probe = Node('probe', context=self.context)
        self.nodes: list[Node] = [self.probe]
        self.lock = threading.Lock()
        self.msgs: dict[str, list] = {RAW: [], FILTERED: [], '/diagnostics': []}
        for topic, msg_type in ((RAW, Imu), (FILTERED, Imu), ('/diagnostics', DiagnosticArray)):
            self.probe.create_subscription(
                msg_type, topic, lambda m, t=topic: self._add(t, m), RELIABLE
            )
        self.executor.add_node(self.probe)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _add(self, topic: str, msg: object) -> None:
        with self.lock:
            self.msgs[topic].append(msg)

    def get(self, topic: str) -> list:
        with self.lock:
            return list(self.msgs[topic])

    def imu(self, port: Path, **params: object) -> ImuNode:
        params = {'port': str(port), 'reconnect_interval': 0.05, **params}
        node = ImuNode(
            context=self.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
        )
        self.nodes.append(node)
        self.executor.add_node(node)
        for topic in (RAW, FILTERED):  # volatile topics: nothing published before matching
            wait(lambda t=topic: node.count_subscribers(t) > 0)
        return node

    def statuses(self, suffix: str) -> list:
        return [s for m in self.get('/diagnostics') for s in m.status if s.name.endswith(suffix)]

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        for node in reversed(self.nodes):
            node.destroy_node()
        rclpy.shutdown(context=self.context)


def wait(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.01)


def values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def raw_gyro_x(msg: Imu) -> int:
    return round(math.degrees(msg.angular_velocity.x) * 32768 / 2000)


@pytest.fixture
def ros():
    h = Harness()
    yield h
    h.close()


@pytest.fixture
def usb(tmp_path):
    dev = FakeUsbSerial(tmp_path / 'ttyIMU')
    yield dev
    if dev.link.is_symlink():
        dev.unplug()


def test_valid_packets_publish_si_values_raw_and_filtered(ros, usb):
    ros.imu(
        usb.link,
        axes_remap=['-y', 'x', 'z'],  # device rotated 90 degrees about z
        angular_velocity_stddev=0.1,
        linear_acceleration_stddev=0.5,
        frame_id='imu_link',
    )
    t0 = time.time()
    # Device x 1 g, y 0, z 0 (the sensor lies on its side) at 1000 counts gyro x, -16384 gyro z.
    usb.write(wit_sample(accel=(2048, 0, 0), gyro=(1000, 0, -16384)))
    wait(lambda: len(ros.get(RAW)) == 1 and len(ros.get(FILTERED)) == 1)
    [raw], [filtered] = ros.get(RAW), ros.get(FILTERED)
    assert raw.header.frame_id == 'imu_link'
    assert t0 - 0.01 < stamp_to_seconds(raw.header.stamp) < time.time()
    assert raw.header.stamp == filtered.header.stamp
    # imu_link x = -device y, y = device x, z = device z.
    acc = raw.linear_acceleration
    np.testing.assert_allclose([acc.x, acc.y, acc.z], [0.0, G, 0.0], atol=1e-9)
    w = math.radians(1000 / 32768 * 2000)
    gyro = raw.angular_velocity
    np.testing.assert_allclose([gyro.x, gyro.y, gyro.z], [0.0, w, -math.radians(1000.0)])
    assert raw.orientation_covariance[0] == -1.0  # REP 145: no orientation
    assert list(raw.angular_velocity_covariance) == pytest.approx(
        [0.01, 0, 0, 0, 0.01, 0, 0, 0, 0.01]
    )
    assert raw.linear_acceleration_covariance[8] == pytest.approx(0.25)
    # Filtered: up is imu_link +y, so the body is rolled +90 degrees about x (y -> world z).
    q = filtered.orientation
    np.testing.assert_allclose(
        [q.x, q.y, q.z, q.w], [math.sqrt(0.5), 0.0, 0.0, math.sqrt(0.5)], atol=1e-6
    )
    assert filtered.orientation_covariance[0] == pytest.approx(0.01**2)  # filter.orientation_stddev
    assert filtered.orientation_covariance[8] == pytest.approx(1.0)  # yaw without magnetometer
    assert filtered.linear_acceleration == raw.linear_acceleration


def test_garbage_is_skipped_and_counted_on_diagnostics(ros, usb):
    ros.imu(usb.link, diagnostics_period=0.1)
    good = [wit_sample(gyro=(i, 0, 0)) for i in range(1, 9)]
    corrupt = bytearray(good[3])
    corrupt[10] ^= 0xFF  # checksum of the acceleration packet
    usb.write(good[0] + good[1])
    wait(lambda: len(ros.get(RAW)) == 2)
    usb.write(bytes(range(0x60, 0x80)))  # line noise
    usb.write(good[2][:7])  # truncated: the device reset mid-packet
    usb.write(good[2] + bytes(corrupt))
    for g in good[4:]:
        usb.write(g)
    wait(lambda: len(ros.get(RAW)) == 7)
    time.sleep(0.05)
    raw = ros.get(RAW)
    assert [raw_gyro_x(m) for m in raw] == [1, 2, 3, 5, 6, 7, 8]  # only the corrupted period lost
    stamps = [stamp_to_seconds(m.header.stamp) for m in raw]
    assert np.all(np.diff(stamps) > 0)

    def reported() -> bool:
        v = [values(s) for s in ros.statuses(f'imu {usb.link}')]
        return any(x['checksum_errors'] == '1' and x['truncated_packets'] == '1' for x in v)

    wait(reported)
    last = values(ros.statuses(f'imu {usb.link}')[-1])
    assert last['bytes_discarded'] == str(32 + 7 + 11) and last['samples_published'] == '7'
    assert any('corrupted packets skipped' in s.message for s in ros.statuses(f'imu {usb.link}'))


def test_unplug_and_replug_recovers(ros, usb):
    node = ros.imu(usb.link, diagnostics_period=0.1)
    name = f'imu {usb.link}'
    for i in range(3):
        usb.write(wit_sample(gyro=(i + 1, 0, 0)))
    wait(lambda: len(ros.get(RAW)) == 3)
    usb.write(wit_sample()[:15])  # unplugged mid-sample
    time.sleep(0.05)
    usb.unplug()
    wait(lambda: any(s.level == ERROR and 'does not exist' in s.message
                     for s in ros.statuses(name)))  # fmt: skip
    usb.plug()
    wait(lambda: any(values(s)['reconnects'] == '1' for s in ros.statuses(name)))
    for i in range(3):
        usb.write(wit_sample(gyro=(10 + i, 0, 0)))
    wait(lambda: len(ros.get(RAW)) == 6)
    assert [raw_gyro_x(m) for m in ros.get(RAW)] == [1, 2, 3, 10, 11, 12]
    wait(lambda: ros.statuses(name)[-1].message == 'streaming')
    assert node.get_name() == 'imu'


def test_gyro_bias_is_estimated_at_rest(ros, usb):
    ros.imu(
        usb.link,
        diagnostics_period=0.1,
        **{'filter.rest_time': 0.1, 'filter.bias_gain': 0.1},
    )
    bias_counts = 30  # 1.83 deg/s on every axis, sensor still and level
    bias = math.radians(bias_counts / 32768 * 2000)
    for _ in range(80):
        usb.write(wit_sample(gyro=(bias_counts, bias_counts, bias_counts)))
        time.sleep(0.01)
    wait(lambda: len(ros.get(FILTERED)) == 80)
    raw, filtered = ros.get(RAW)[-1], ros.get(FILTERED)[-1]
    assert raw.angular_velocity.z == pytest.approx(bias)
    # imu/data has the estimate removed: what remains is a small part of the bias.
    rate = filtered.angular_velocity
    assert max(abs(rate.x), abs(rate.y), abs(rate.z)) < 0.2 * bias
    wait(lambda: any(values(s)['at_rest'] == 'True' for s in ros.statuses('imu filter')))
    est = values(ros.statuses('imu filter')[-1])
    assert float(est['gyro_bias_z']) == pytest.approx(bias, rel=0.2)
    # Level and still: the orientation stays at identity (the bias is not integrated as yaw).
    q = filtered.orientation
    assert abs(q.z) < 0.01 and q.w > 0.999


def test_missing_port_is_a_clear_error(ros, tmp_path):
    with pytest.raises(ImuError, match=r'IMU on .*ttyUSB9: does not exist'):
        ImuNode(
            context=ros.context,
            parameter_overrides=[Parameter('port', value=str(tmp_path / 'ttyUSB9'))],
        )


def test_wait_for_device_starts_and_reports_until_plugged(ros, tmp_path):
    link = tmp_path / 'late'
    ros.imu(link, wait_for_device=True, diagnostics_period=0.1)
    wait(lambda: any(s.level == ERROR for s in ros.statuses(f'imu {link}')))
    dev = FakeUsbSerial(link)
    try:
        wait(lambda: values(ros.statuses(f'imu {link}')[-1])['connected'] == 'True')
        dev.write(wit_sample())
        wait(lambda: len(ros.get(RAW)) == 1)
    finally:
        dev.unplug()


def test_sensors_yaml_parameters_load(ros, usb):
    root = Path(__file__).resolve().parents[3]
    node = ImuNode(
        context=ros.context,
        cli_args=['--ros-args', '-r', '__node:=imu',
                  '--params-file', str(root / 'config' / 'sensors.yaml')],
        parameter_overrides=[Parameter('port', value=str(usb.link))],
    )  # fmt: skip
    try:
        assert list(node.get_parameter('axes_remap').value) == ['x', 'y', 'z']
        assert node.get_parameter('filter.gain').value == 0.02
        assert node.get_parameter('frame_id').value == 'imu_link'
    finally:
        node.destroy_node()


def test_runtime_covariance_and_frame_changes_apply_to_the_next_sample(ros, usb):
    node = ros.imu(usb.link)
    results = node.set_parameters(
        [Parameter('angular_velocity_stddev', value=0.3), Parameter('frame_id', value='imu2')]
    )
    assert all(r.successful for r in results)
    assert not node.set_parameters([Parameter('port', value='/dev/other')])[0].successful
    usb.write(wit_sample())
    wait(lambda: len(ros.get(RAW)) == 1)
    msg = ros.get(RAW)[0]
    assert msg.angular_velocity_covariance[0] == pytest.approx(0.09)
    assert msg.header.frame_id == 'imu2'

"""The serial IMU driver against a pseudo-terminal pair, including unplug and replug."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
from sensor_test_utils import FakeUsbSerial, wit_sample

from vla_core.config import ConfigError
from vla_sensors.imu import ImuDriverConfig, ImuError, ImuSample, ImuSerialDriver, axes_remap_matrix

G = 9.80665


class Collector:
    def __init__(self) -> None:
        self.samples: list[ImuSample] = []
        self.cond = threading.Condition()

    def __call__(self, sample: ImuSample) -> None:
        with self.cond:
            self.samples.append(sample)
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[ImuSample]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.samples) >= n, timeout), (
                f'got {len(self.samples)} of {n} samples'
            )
            return list(self.samples)


@pytest.fixture
def usb(tmp_path):
    dev = FakeUsbSerial(tmp_path / 'ttyIMU')
    yield dev
    if dev.link.is_symlink():
        dev.unplug()


def _driver(usb, collector, **kw):
    cfg = ImuDriverConfig(port=str(usb.link), reconnect_interval=0.05, **kw)
    return ImuSerialDriver(cfg, collector)


def test_valid_packets_decode_to_si_in_imu_link(usb):
    got = Collector()
    # Device mounted rotated 90 degrees about z: imu_link x = -device y, y = device x.
    driver = _driver(usb, got, axes_remap=('-y', 'x', 'z'))
    driver.start()
    t0 = time.time()
    usb.write(wit_sample(accel=(2048, -1024, 2048), temp=3150, gyro=(1000, 0, -16384)))
    [s] = got.wait_for(1)
    driver.stop()
    np.testing.assert_allclose(s.linear_acceleration, [G / 2, G, G])
    w = math.radians(1000 / 32768 * 2000)
    np.testing.assert_allclose(s.angular_velocity, [0.0, w, -math.radians(1000.0)])
    assert s.temperature == pytest.approx(31.5)
    assert s.magnetic_field is None
    assert t0 - 0.01 < s.stamp < time.time()
    assert driver.stats().packets_ok == 3


def test_bad_bytes_are_counted_and_skipped_without_losing_sync(usb):
    got = Collector()
    driver = _driver(usb, got)
    driver.start()
    good = [wit_sample(gyro=(i, 0, 0)) for i in range(1, 9)]
    corrupt = bytearray(good[3])
    corrupt[10] ^= 0xFF  # accel checksum
    usb.write(good[0] + good[1])
    got.wait_for(2)
    usb.write(bytes(range(0x60, 0x80)))  # 32 bytes of line noise
    usb.write(good[2][:7])  # truncated: the device reset mid-packet
    usb.write(good[2])
    usb.write(bytes(corrupt))
    for g in good[4:]:
        usb.write(g)
    samples = got.wait_for(7)
    time.sleep(0.05)
    driver.stop()
    raw_x = [round(math.degrees(s.angular_velocity[0]) * 32768 / 2000) for s in samples]
    assert raw_x == [1, 2, 3, 5, 6, 7, 8]  # the corrupted period is gone, nothing else
    assert [s.seq for s in samples] == list(range(7))
    assert np.all(np.diff([s.stamp for s in samples]) > 0)
    st = driver.stats()
    assert (st.checksum_errors, st.truncated_packets) == (1, 1)
    assert st.bytes_discarded == 32 + 7 + 11
    assert st.incomplete_samples == 1  # the gyro of the period whose accel was corrupted
    assert st.samples == 7 and st.connected is False  # stopped


def test_unplug_and_replug_recovers(usb):
    got = Collector()
    driver = _driver(usb, got)
    driver.start()
    for i in range(3):
        usb.write(wit_sample(gyro=(i + 1, 0, 0)))
    got.wait_for(3)
    usb.write(wit_sample()[:15])  # unplugged mid-sample
    time.sleep(0.05)
    usb.unplug()
    _wait(lambda: driver.stats().disconnects == 1 and not driver.stats().connected)
    time.sleep(0.2)  # several failed reopen attempts
    assert 'does not exist' in driver.stats().last_error
    usb.plug()
    _wait(lambda: driver.stats().reconnects == 1)
    for i in range(3):
        usb.write(wit_sample(gyro=(10 + i, 0, 0)))
    samples = got.wait_for(6)
    driver.stop()
    raw_x = [round(math.degrees(s.angular_velocity[0]) * 32768 / 2000) for s in samples]
    assert raw_x == [1, 2, 3, 10, 11, 12]
    assert [s.seq for s in samples] == list(range(6))


def test_open_errors_name_the_port(tmp_path, usb):
    missing = ImuSerialDriver(ImuDriverConfig(port=str(tmp_path / 'ttyUSB9')))
    with pytest.raises(ImuError, match=r'IMU on .*ttyUSB9: does not exist'):
        missing.start()
    first = _driver(usb, None)
    first.start()
    try:
        with pytest.raises(ImuError, match=r'ttyIMU: busy: another process has the port open'):
            _driver(usb, None).start()
    finally:
        first.stop()


def test_wait_for_device_and_stale_stream(tmp_path):
    link = tmp_path / 'late'
    got = Collector()
    cfg = ImuDriverConfig(port=str(link), reconnect_interval=0.05, stale_timeout=0.1)
    driver = ImuSerialDriver(cfg, got)
    driver.start(wait_for_device=True)
    time.sleep(0.1)
    dev = FakeUsbSerial(link)
    try:
        _wait(lambda: driver.stats().connected)
        dev.write(wit_sample())
        got.wait_for(1)
        _wait(lambda: driver.stats().data_timeouts == 1)
        assert driver.stats().receiving is False
        assert driver.stats().reconnects == 0  # first connection, not a reconnect
    finally:
        driver.stop()
        dev.unplug()


def test_callback_errors_do_not_stop_the_reader(usb):
    calls = []

    def broken(sample):
        calls.append(sample)
        raise RuntimeError('consumer bug')

    driver = _driver(usb, broken)
    driver.start()
    usb.write(wit_sample() * 3)
    _wait(lambda: len(calls) == 3)
    driver.stop()
    assert driver.stats().callback_errors == 3 and 'consumer bug' in driver.stats().last_error


def test_axes_remap_rules():
    np.testing.assert_array_equal(axes_remap_matrix(('x', 'y', 'z')), np.eye(3))
    with pytest.raises(ConfigError, match='mirror'):
        ImuDriverConfig(axes_remap=('y', 'x', 'z'))
    with pytest.raises(ConfigError, match='twice'):
        ImuDriverConfig(axes_remap=('x', 'x', 'z'))
    with pytest.raises(ConfigError, match='not one of'):
        ImuDriverConfig(axes_remap=('x', 'y', 'w'))
    cov = ImuSerialDriver(ImuDriverConfig(angular_velocity_stddev=0.1)).angular_velocity_covariance
    assert cov[0] == pytest.approx(0.01) and cov[1] == 0.0


def _wait(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.01)

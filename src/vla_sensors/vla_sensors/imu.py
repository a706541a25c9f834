"""Serial IMU driver (WitMotion protocol, see :mod:`vla_sensors.witmotion`) with reconnects.

    driver = ImuSerialDriver(ImuDriverConfig(port='/dev/ttyUSB0', baud=921600), on_sample=cb)
    driver.start()   # raises ImuError naming the port and the reason
    ...              # cb(ImuSample) runs on the reader thread: keep it short (filter + publish)
    driver.stats()
    driver.stop()

Samples are in SI units in ``imu_link`` (REP 145: the sensor's own frame, right-handed; the
accelerometer reads +g up at rest), after the configured axes remap from the device's printed
axes. Orientation is not the driver's business: feed samples to
:class:`vla_core.imu_filter.ImuFilter`.

Stamps: the time the read returned, minus the line time of the bytes that followed the packet
in that read (``10 / baud`` s per byte, 8N1), minus ``time_offset`` (the sensor's internal
filter delay, if known). USB-serial adapters deliver in bursts (FTDI latency timer: 1-16 ms), so
this back-dating is what keeps samples within a burst in order and evenly spaced.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
from dataclasses import dataclass
import errno
import threading
import time
from typing import Any

import numpy as np
import serial

from vla_core.config import Config, ConfigError, param
from vla_core.imu_filter import diagonal_covariance
from vla_sensors.diagnostics import RateMeter
from vla_sensors.witmotion import WitFrameDecoder, WitImuAssembler

__all__ = [
    'ImuDriverConfig',
    'ImuError',
    'ImuSample',
    'ImuSerialDriver',
    'ImuStats',
    'axes_remap_matrix',
]

_AXES = {'x': 0, 'y': 1, 'z': 2}
_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


def axes_remap_matrix(remap: tuple[str, ...]) -> np.ndarray:
    """``M`` with ``v_imu = M @ v_device``; ``remap[i]`` is the device axis (sign allowed) that
    becomes imu_link axis i, e.g. ``('y', 'x', '-z')`` for a sensor mounted upside down."""
    if len(remap) != 3:
        raise ValueError(f'need three axes, got {list(remap)}')
    m = np.zeros((3, 3))
    for row, token in enumerate(remap):
        sign = -1.0 if token.startswith('-') else 1.0
        axis = token.lstrip('+-')
        if axis not in _AXES:
            raise ValueError(f'{token!r} is not one of x, y, z, -x, -y, -z')
        m[row, _AXES[axis]] = sign
    if sorted(np.abs(m).argmax(axis=1)) != [0, 1, 2]:
        raise ValueError(f'{list(remap)} uses an axis twice')
    if np.linalg.det(m) < 0:
        raise ValueError(f'{list(remap)} is a mirror image: REP 145 frames are right-handed')
    return m


@dataclass(frozen=True, kw_only=True)
class ImuDriverConfig(Config):
    port: str = param(
        '/dev/ttyUSB0',
        description='serial device (a udev by-id link survives replugs)',
        read_only=True,
    )
    baud: int = param(
        115200, description='serial baud rate (as set in the IMU)', choices=_BAUDS, read_only=True
    )
    protocol: str = param(
        'witmotion', description='wire protocol', choices=('witmotion',), read_only=True
    )
    frame_id: str = param('imu_link', description='header frame id (REP 145 sensor frame)')
    axes_remap: tuple[str, ...] = param(
        ('x', 'y', 'z'), description='device axis (signed) that becomes imu_link x, y, z'
    )
    accel_range_g: float = param(
        16.0, description='accelerometer full scale [g]', choices=(2.0, 4.0, 8.0, 16.0)
    )
    gyro_range_dps: float = param(
        2000.0, description='gyro full scale [deg/s]', choices=(250.0, 500.0, 1000.0, 2000.0)
    )
    mag_tesla_per_lsb: float = param(
        1e-7,
        description='magnetometer scale [T/count] (device specific; 1e-7 = 1 mG)',
        range=(0.0, 1.0),
    )
    time_offset: float = param(
        0.0, description='sensor-internal delay subtracted from stamps [s]', range=(0.0, 1.0)
    )
    reconnect_interval: float = param(
        0.5, description='retry period while the port is gone [s]', range=(0.01, 60.0)
    )
    stale_timeout: float = param(
        0.5, description='no bytes for this long counts a data timeout [s]', range=(0.01, 60.0)
    )
    angular_velocity_stddev: float = param(
        0.002, description='reported gyro noise standard deviation [rad/s]', range=(0.0, 10.0)
    )
    linear_acceleration_stddev: float = param(
        0.05,
        description='reported accelerometer noise standard deviation [m/s^2]',
        range=(0.0, 100.0),
    )

    def validate(self) -> None:
        try:
            axes_remap_matrix(self.axes_remap)
        except ValueError as err:
            raise ConfigError('axes_remap', str(err)) from None


class ImuError(RuntimeError):
    """An IMU port that cannot be used. ``port`` names it, ``reason`` says why."""

    def __init__(self, port: str, reason: str) -> None:
        self.port = port
        self.reason = reason
        super().__init__(f'IMU on {port}: {reason}')


@dataclass(frozen=True)
class ImuSample:
    stamp: float  # [s] on the driver's clock
    seq: int
    angular_velocity: np.ndarray  # (3,) [rad/s] in imu_link
    linear_acceleration: np.ndarray  # (3,) [m/s^2] in imu_link
    magnetic_field: np.ndarray | None  # (3,) [T] in imu_link, None if the device sends none
    temperature: float  # [degC]


@dataclass(frozen=True)
class ImuStats:
    port: str
    connected: bool
    receiving: bool  # bytes arrived within stale_timeout
    packets_ok: int
    checksum_errors: int
    truncated_packets: int
    bytes_discarded: int
    samples: int
    incomplete_samples: int
    disconnects: int
    reconnects: int
    data_timeouts: int
    callback_errors: int
    sample_rate: float  # [Hz] over the last 2 s
    last_stamp: float
    last_error: str


def _open_error_reason(err: Exception) -> str:
    code = getattr(err, 'errno', None)
    text = str(err)
    if code == errno.ENOENT or 'No such file' in text:
        return 'does not exist (unplugged? check `ls /dev/serial/by-id`)'
    if code == errno.EACCES or 'Permission denied' in text:
        return 'permission denied (add the user to the "dialout" group)'
    if code in (errno.EBUSY, errno.EAGAIN) or 'exclusively lock' in text:
        return 'busy: another process has the port open'
    return f'cannot be opened: {text}'


class ImuSerialDriver:
    """Reads the port on its own thread, decodes, remaps and calls ``on_sample(ImuSample)``."""

    def __init__(
        self,
        config: ImuDriverConfig,
        on_sample: Callable[[ImuSample], None] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        serial_factory: Callable[..., Any] = serial.Serial,
    ) -> None:
        self.config = config
        self.on_sample = on_sample
        self.clock = clock
        self._factory = serial_factory
        self._remap = axes_remap_matrix(config.axes_remap)
        self._byte_time = 10.0 / config.baud
        self.decoder = WitFrameDecoder()
        self.assembler = WitImuAssembler(
            config.accel_range_g, config.gyro_range_dps, config.mag_tesla_per_lsb
        )
        self.angular_velocity_covariance = diagonal_covariance(config.angular_velocity_stddev)
        self.linear_acceleration_covariance = diagonal_covariance(config.linear_acceleration_stddev)
        self._port: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._latest: ImuSample | None = None
        self._connected = False
        self._receiving = False
        self._seq = 0
        self._last_stamp = float('-inf')
        self._last_bytes = 0.0
        self._disconnects = self._reconnects = self._timeouts = self._callback_errors = 0
        self._last_error = ''
        self._rate = RateMeter()

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self, wait_for_device: bool = False) -> None:
        """Open the port and start reading; raises :class:`ImuError` unless ``wait_for_device``."""
        if self._thread is not None:
            raise RuntimeError('already started')
        self._stop.clear()
        try:
            self._open()
        except ImuError as err:
            if not wait_for_device:
                raise
            self._last_error = str(err)
        self._thread = threading.Thread(target=self._loop, name='imu-reader', daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._close()

    def __enter__(self) -> ImuSerialDriver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- consumer side ----------------------------------------------------------------------------

    def latest(self) -> ImuSample | None:
        with self._lock:
            return self._latest

    def stats(self) -> ImuStats:
        d = self.decoder.stats
        return ImuStats(
            port=self.config.port,
            connected=self._connected,
            receiving=self._receiving,
            packets_ok=d.packets_ok,
            checksum_errors=d.checksum_errors,
            truncated_packets=d.truncated_packets,
            bytes_discarded=d.bytes_discarded,
            samples=self._seq,
            incomplete_samples=self.assembler.incomplete,
            disconnects=self._disconnects,
            reconnects=self._reconnects,
            data_timeouts=self._timeouts,
            callback_errors=self._callback_errors,
            sample_rate=self._rate.rate(self.clock()),
            last_stamp=self._last_stamp,
            last_error=self._last_error,
        )

    # --- internals --------------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            self._port = self._factory(
                port=self.config.port, baudrate=self.config.baud, timeout=0.05, exclusive=True
            )
        except (serial.SerialException, OSError) as err:
            raise ImuError(self.config.port, _open_error_reason(err)) from None
        self._connected = True
        self._last_bytes = time.monotonic()
        self.decoder.reset()  # the stream restarts mid-packet
        self.assembler.reset()

    def _close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
            self._port = None
        self._connected = False

    def _loop(self) -> None:
        ever_connected = self._connected
        while not self._stop.is_set():
            if not self._connected:
                try:
                    self._open()
                except ImuError as err:
                    self._last_error = str(err)
                    self._stop.wait(self.config.reconnect_interval)
                    continue
                if ever_connected:
                    self._reconnects += 1
                ever_connected = True
            try:
                waiting = self._port.in_waiting
                data = self._port.read(waiting if waiting > 0 else 1)
            except (serial.SerialException, OSError, TypeError) as err:
                # TypeError: pyserial's read on a port closed under it
                self._last_error = f'read failed: {err}'
                self._disconnects += 1
                self._receiving = False
                self._close()
                continue
            now_mono = time.monotonic()
            if not data:
                if self._receiving and now_mono - self._last_bytes > self.config.stale_timeout:
                    self._receiving = False
                    self._timeouts += 1
                continue
            self._last_bytes = now_mono
            self._receiving = True
            self._process(data, self.clock())

    def _process(self, data: bytes, t_read: float) -> None:
        n = len(data)
        for packet in self.decoder.feed(data):
            reading = self.assembler.add(packet)
            if reading is None:
                continue
            stamp = t_read - (n - reading.end) * self._byte_time - self.config.time_offset
            stamp = max(stamp, self._last_stamp + 1e-6)  # keep stamps strictly increasing
            self._last_stamp = stamp
            m = self._remap
            mag = reading.magnetic_field
            sample = ImuSample(
                stamp=stamp,
                seq=self._seq,
                angular_velocity=m @ reading.angular_velocity,
                linear_acceleration=m @ reading.linear_acceleration,
                magnetic_field=None if mag is None else m @ mag,
                temperature=reading.temperature,
            )
            self._seq += 1
            self._rate.tick(t_read)
            with self._lock:
                self._latest = sample
            if self.on_sample is not None:
                try:
                    self.on_sample(sample)
                except Exception as err:  # a consumer bug must not stop the reader
                    self._callback_errors += 1
                    self._last_error = f'callback failed: {err!r}'

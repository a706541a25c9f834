"""WitMotion standard serial protocol (the 0x55 packet family), pure and I/O-free.

Devices: WT901 family (WT901C-TTL/-232/-485, WT901B, HWT901B), JY901, WT61C and other WitMotion
AHRS modules speaking the "WIT standard communication protocol"; reference: WitMotion,
"WT901C TTL/232 Datasheet" and "WIT Standard Communication Protocol" (wit-motion.com, support
docs), section "Data output".

Every packet is 11 bytes::

    0x55  TYPE  D0L D0H  D1L D1H  D2L D2H  D3L D3H  SUM

with four little-endian int16 values and ``SUM = (0x55 + TYPE + D0L + ... + D3H) & 0xFF``.
Types used here (full scale as in the datasheet, WT901 defaults):

* 0x50 time (YY MM DD hh mm ss, ms) - ignored
* 0x51 acceleration: a = raw / 32768 * 16 g (x, y, z), temperature = raw / 100 degC
* 0x52 angular velocity: w = raw / 32768 * 2000 deg/s (x, y, z)
* 0x53 angle: roll, pitch, yaw = raw / 32768 * 180 deg
* 0x54 magnetic field: raw counts x, y, z (scale depends on the fitted magnetometer)
* 0x59 quaternion: q0..q3 = raw / 32768

The module outputs packets in ascending type order once per output period (0x51, 0x52, 0x53, ...),
so a sample is completed by the angular-velocity packet of the period whose acceleration packet
has been seen; later packets (angle, field) of the same period update the next sample.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import struct

import numpy as np

__all__ = [
    'ACCEL',
    'ANGLE',
    'GYRO',
    'MAG',
    'QUATERNION',
    'TIME',
    'WitDecoderStats',
    'WitFrameDecoder',
    'WitImuAssembler',
    'WitPacket',
    'WitReading',
    'encode_packet',
]

HEADER = 0x55
PACKET_LEN = 11
TIME, ACCEL, GYRO, ANGLE, MAG, PORT, PRESSURE, GPS, GPS_SPEED, QUATERNION, GPS_ACCURACY = range(
    0x50, 0x5B
)
KNOWN_TYPES = frozenset(range(0x50, 0x5B))
_INT16X4 = struct.Struct('<hhhh')


def encode_packet(kind: int, values: tuple[int, int, int, int]) -> bytes:
    """One packet (for simulators and tests): four int16 values, checksum appended."""
    body = bytes((HEADER, kind)) + _INT16X4.pack(*values)
    return body + bytes((sum(body) & 0xFF,))


@dataclass(frozen=True)
class WitPacket:
    kind: int
    values: tuple[int, int, int, int]
    end: int  # offset just past the packet's last byte in the chunk that completed it


@dataclass
class WitDecoderStats:
    packets_ok: int = 0
    checksum_errors: int = 0  # a packet-sized candidate failed, next good packet >= 11 bytes on
    truncated_packets: int = 0  # a candidate failed and a good packet started inside it
    bytes_discarded: int = 0  # every byte that was not part of a good packet


class WitFrameDecoder:
    """Splits a byte stream into checksum-verified packets; resynchronises byte by byte.

    On a failed candidate only its header byte is dropped, so a good packet that starts inside a
    truncated one is still found; nothing is lost beyond the broken packet itself.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # absolute stream offset of _buf[0]
        self._fail_at: int | None = None  # first failed candidate since the last good packet
        self.stats = WitDecoderStats()

    def reset(self) -> None:
        """Forget buffered bytes (after a reconnect the stream restarts mid-packet)."""
        self.stats.bytes_discarded += len(self._buf)
        if self._fail_at is not None:
            self.stats.checksum_errors += 1
        self._pos += len(self._buf)
        self._buf.clear()
        self._fail_at = None

    def feed(self, data: bytes) -> list[WitPacket]:
        buf = self._buf
        chunk_start = len(buf)  # index in buf where this chunk begins
        buf += data
        out: list[WitPacket] = []
        stats = self.stats
        i = 0
        n = len(buf)
        while True:
            j = buf.find(HEADER, i)
            if j < 0:
                stats.bytes_discarded += n - i
                i = n
                break
            stats.bytes_discarded += j - i
            i = j
            if n - i >= 2 and buf[i + 1] not in KNOWN_TYPES:
                stats.bytes_discarded += 1  # a stray 0x55, not a packet
                i += 1
                continue
            if n - i < PACKET_LEN:
                break  # wait for the rest
            kind = buf[i + 1]
            if sum(buf[i : i + 10]) & 0xFF != buf[i + 10]:
                if self._fail_at is None:
                    self._fail_at = self._pos + i
                stats.bytes_discarded += 1
                i += 1
                continue
            if self._fail_at is not None:
                if self._pos + i - self._fail_at < PACKET_LEN:
                    stats.truncated_packets += 1
                else:
                    stats.checksum_errors += 1
                self._fail_at = None
            stats.packets_ok += 1
            out.append(
                WitPacket(kind, _INT16X4.unpack_from(buf, i + 2), i + PACKET_LEN - chunk_start)
            )
            i += PACKET_LEN
        del buf[:i]
        self._pos += i
        return out


@dataclass(frozen=True)
class WitReading:
    """One IMU sample in SI units, in the *device* frame."""

    end: int  # chunk offset just past the packet that completed it (for stamping)
    angular_velocity: np.ndarray  # [rad/s]
    linear_acceleration: np.ndarray  # [m/s^2], +g up at rest
    magnetic_field: np.ndarray | None  # [T] (latest, if the device sends 0x54)
    temperature: float  # [degC]
    euler: np.ndarray | None  # device's own roll, pitch, yaw [rad] (latest 0x53)
    quaternion: np.ndarray | None  # device's own (w, x, y, z) (latest 0x59)


class WitImuAssembler:
    """Packets -> :class:`WitReading` with unit conversion."""

    def __init__(
        self,
        accel_range_g: float = 16.0,
        gyro_range_dps: float = 2000.0,
        mag_tesla_per_lsb: float = 1e-7,
        gravity: float = 9.80665,
    ) -> None:
        self._accel_scale = accel_range_g * gravity / 32768.0
        self._gyro_scale = math.radians(gyro_range_dps) / 32768.0
        self._mag_scale = mag_tesla_per_lsb
        self._accel: np.ndarray | None = None
        self._temperature = float('nan')
        self._mag: np.ndarray | None = None
        self._euler: np.ndarray | None = None
        self._quat: np.ndarray | None = None
        self.incomplete = 0  # gyro packets without an acceleration packet in the same period

    def reset(self) -> None:
        self._accel = None

    def add(self, packet: WitPacket) -> WitReading | None:
        v = packet.values
        kind = packet.kind
        if kind == ACCEL:
            self._accel = np.array(v[:3], dtype=np.float64) * self._accel_scale
            self._temperature = v[3] / 100.0
        elif kind == GYRO:
            if self._accel is None:
                self.incomplete += 1
                return None
            reading = WitReading(
                end=packet.end,
                angular_velocity=np.array(v[:3], dtype=np.float64) * self._gyro_scale,
                linear_acceleration=self._accel,
                magnetic_field=self._mag,
                temperature=self._temperature,
                euler=self._euler,
                quaternion=self._quat,
            )
            self._accel = None  # each period's acceleration is used once
            return reading
        elif kind == ANGLE:
            self._euler = np.array(v[:3], dtype=np.float64) * (math.pi / 32768.0)
        elif kind == MAG:
            self._mag = np.array(v[:3], dtype=np.float64) * self._mag_scale
        elif kind == QUATERNION:
            self._quat = np.array(v, dtype=np.float64) / 32768.0
        return None

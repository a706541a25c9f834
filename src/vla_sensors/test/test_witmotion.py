"""WitMotion framing and unit conversion, without I/O."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sensor_test_utils import wit_sample

from vla_sensors.witmotion import (
    ACCEL,
    GYRO,
    MAG,
    QUATERNION,
    WitFrameDecoder,
    WitImuAssembler,
    WitPacket,
    encode_packet,
)

G = 9.80665


def _decode_all(data: bytes, chunk: int | None = None):
    dec, asm = WitFrameDecoder(), WitImuAssembler()
    readings = []
    step = chunk or len(data)
    for k in range(0, len(data), step):
        for p in dec.feed(data[k : k + step]):
            r = asm.add(p)
            if r is not None:
                readings.append(r)
    return dec, asm, readings


def test_packet_layout_matches_the_datasheet():
    p = encode_packet(ACCEL, (2048, -2048, 16384, 2512))
    assert len(p) == 11 and p[0] == 0x55 and p[1] == 0x51
    assert p[2:4] == (2048).to_bytes(2, 'little')
    assert p[10] == sum(p[:10]) & 0xFF


def test_si_conversion():
    data = wit_sample(accel=(2048, -1024, 16384), temp=2512, gyro=(1000, -32768, 16384))
    _, _, [r] = _decode_all(data)
    np.testing.assert_allclose(r.linear_acceleration, [G, -G / 2, 8 * G])
    np.testing.assert_allclose(
        r.angular_velocity, np.radians([1000 / 32768 * 2000, -2000.0, 1000.0])
    )
    assert r.temperature == pytest.approx(25.12)


def test_angle_mag_and_quaternion_scaling():
    asm = WitImuAssembler(mag_tesla_per_lsb=1e-7)
    asm.add(WitPacket(0x53, (16384, -8192, 32767, 0), 0))
    asm.add(WitPacket(MAG, (300, -200, 100, 0), 0))
    asm.add(WitPacket(QUATERNION, (32767, 0, 0, 0), 0))
    asm.add(WitPacket(ACCEL, (0, 0, 2048, 0), 0))
    r = asm.add(WitPacket(GYRO, (0, 0, 0, 0), 11))
    np.testing.assert_allclose(r.euler[:2], [math.pi / 2, -math.pi / 4])
    np.testing.assert_allclose(r.magnetic_field, [3e-5, -2e-5, 1e-5])
    assert r.quaternion[0] == pytest.approx(1.0, abs=1e-4)


def test_byte_by_byte_feeding_gives_the_same_samples():
    data = b''.join(wit_sample(gyro=(i, 0, 0)) for i in range(1, 20))
    _, _, whole = _decode_all(data)
    dec, _, bytewise = _decode_all(data, chunk=1)
    assert len(whole) == len(bytewise) == 19
    assert [r.angular_velocity[0] for r in whole] == [r.angular_velocity[0] for r in bytewise]
    assert all(r.end == 1 for r in bytewise)  # stamped at the byte that completed it
    assert dec.stats.bytes_discarded == 0


def test_garbage_truncation_and_corruption_are_counted_and_skipped():
    good = [wit_sample(gyro=(i, 0, 0)) for i in range(1, 7)]
    corrupt = bytearray(wit_sample(gyro=(99, 0, 0)))
    corrupt[11 + 10] ^= 0x01  # the gyro packet's checksum
    garbage = bytes(range(0x60, 0x71))  # 17 bytes, no 0x55
    stream = (
        good[0]
        + garbage
        + good[1][:6]  # truncated accel packet
        + good[2]
        + bytes(corrupt)
        + good[3]
        + b'\x55\x00\x01'  # stray header with an unknown type
        + good[4]
        + good[5]
    )
    dec, asm, readings = _decode_all(stream, chunk=7)
    assert [round(math.degrees(r.angular_velocity[0]) * 32768 / 2000) for r in readings] == [
        1,
        3,
        4,
        5,
        6,
    ]
    s = dec.stats
    assert (s.truncated_packets, s.checksum_errors) == (1, 1)
    assert s.bytes_discarded == len(garbage) + 6 + 11 + 3
    assert s.packets_ok == 3 * 5 + 2  # corrupt sample's accel and angle packets were fine
    assert asm.incomplete == 0


def test_gyro_without_accel_is_incomplete():
    asm = WitImuAssembler()
    assert asm.add(WitPacket(GYRO, (1, 2, 3, 0), 11)) is None
    assert asm.incomplete == 1


def test_random_noise_never_crashes_and_resyncs():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    dec, _, readings = _decode_all(noise + wit_sample() * 3, chunk=64)
    assert len(readings) >= 3
    assert dec.stats.bytes_discarded >= 4000

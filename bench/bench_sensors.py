"""Sensor driver figures: camera capture-to-delivery latency and IMU decode rate.

    .venv/bin/python bench/bench_sensors.py [--seconds 3]

Camera: a generated MJPG file (textured, moving) replayed by CameraDriver at its native 30 fps;
latency is callback entry minus the frame's capture stamp, i.e. everything the driver adds
(slot hand-off, thread wake-up, encoding conversion), p50/p99 over all frames. Decoding happens
before the capture instant in file replay, so it is reported separately as consumer-pace fps.

IMU: a pseudo-terminal carries a WT901-style stream (acceleration, angular velocity and angle
packets per period) written on schedule at 200 Hz and 1 kHz; the driver reads, checks and decodes
it. Reported: packets/s and samples/s decoded, stamp minus write time, and the decoder's
ceiling (bytes fed from memory).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys
import tempfile
import time
import tty

import cv2
import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
for _pkg in ('vla_core', 'vla_sensors'):
    sys.path.insert(0, str(_ROOT / 'src' / _pkg))

from vla_sensors.camera import CameraConfig, CameraDriver  # noqa: E402
from vla_sensors.imu import ImuDriverConfig, ImuSerialDriver  # noqa: E402
from vla_sensors.witmotion import ACCEL, ANGLE, GYRO, WitFrameDecoder, encode_packet  # noqa: E402


def _write_video(path: Path, size: tuple[int, int], n: int, fps: float) -> None:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) % 256)], axis=2).astype(np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, (w, h))
    for i in range(n):
        img = base.copy()
        x = (i * 13) % (w - 100)
        img[h // 3 : h // 3 + 100, x : x + 100] = 255
        writer.write(img)
    writer.release()


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000.0


def bench_camera(seconds: float, tmp: Path) -> None:
    fps = 30.0
    print(
        f'camera: file source, native {fps:g} fps, {seconds:g} s per size, latency = '
        'callback entry - capture stamp'
    )
    print(
        f'  {"size":>10} {"frames":>7} {"dropped":>8} {"p50 [ms]":>9} {"p99 [ms]":>9} '
        f'{"max [ms]":>9} {"rate [Hz]":>10} {"decode fps":>11}'
    )
    for size in ((640, 480), (1280, 720)):
        path = tmp / f'bench_{size[0]}x{size[1]}.avi'
        _write_video(path, size, int(seconds * fps), fps)
        lat: list[float] = []

        def on_frame(image: np.ndarray, stamp: float, seq: int, lat: list[float] = lat) -> None:
            lat.append(time.time() - stamp)

        driver = CameraDriver(CameraConfig(source='file', file_path=str(path)), on_frame)
        driver.start()
        driver.finished.wait(seconds * 3 + 10)
        time.sleep(0.1)
        driver.stop()
        s = driver.stats()
        rate = (len(lat) - 1) / (seconds - 1.0 / fps) if len(lat) > 1 else 0.0

        count = [0]
        consumer = CameraDriver(
            CameraConfig(source='file', file_path=str(path), file_pace='consumer'),
            lambda i, st, q, c=count: c.__setitem__(0, c[0] + 1),
        )
        t0 = time.perf_counter()
        consumer.start()
        consumer.finished.wait(60)
        while consumer.stats().frames_delivered < consumer.stats().frames_captured:
            time.sleep(0.001)
        decode_fps = count[0] / (time.perf_counter() - t0)
        consumer.stop()
        print(
            f'  {size[0]:>5}x{size[1]:<4} {len(lat):>7} {s.frames_dropped:>8} '
            f'{_pct(lat, 50):>9.2f} {_pct(lat, 99):>9.2f} {max(lat) * 1000:>9.2f} '
            f'{rate:>10.1f} {decode_fps:>11.0f}'
        )


def _period_bytes(i: int) -> bytes:
    return (
        encode_packet(ACCEL, (i % 200, -(i % 300), 2048, 2500))
        + encode_packet(GYRO, ((i * 7) % 1000, 0, -(i % 500), 0))
        + encode_packet(ANGLE, (0, 0, i % 30000, 0))
    )


def bench_imu(seconds: float, tmp: Path) -> None:
    print(f'imu: WitMotion stream over a pty, 3 packets (33 bytes) per period, {seconds:g} s each')
    print(
        f'  {"rate":>7} {"packets/s":>10} {"samples/s":>10} {"errors":>7} '
        f'{"stamp-write p50 [ms]":>21} {"p99 [ms]":>9}'
    )
    for rate, baud in ((200, 115200), (1000, 460800)):
        master, slave = os.openpty()
        tty.setraw(slave)
        link = tmp / f'imu_{rate}'
        link.symlink_to(os.ttyname(slave))
        stamps: dict[int, float] = {}
        driver = ImuSerialDriver(
            ImuDriverConfig(port=str(link), baud=baud),
            lambda s, d=stamps: d.__setitem__(s.seq, s.stamp),
        )
        driver.start()
        n = int(seconds * rate)
        written: list[float] = []
        t0 = time.time() + 0.05
        i = 0
        while i < n:  # write every period that is due; sleep ~1 ms between checks
            now = time.time()
            while i < n and t0 + i / rate <= now:
                os.write(master, _period_bytes(i))
                written.append(time.time())
                i += 1
            time.sleep(0.0005)
        time.sleep(0.2)
        s = driver.stats()
        driver.stop()
        os.close(master)
        os.close(slave)
        elapsed = written[-1] - written[0]
        lag = [stamps[k] - written[k] for k in range(min(len(stamps), len(written)))]
        errors = s.checksum_errors + s.truncated_packets
        print(
            f'  {rate:>5}Hz {s.packets_ok / elapsed:>10.0f} {s.samples / elapsed:>10.0f} '
            f'{errors:>7} {_pct(lag, 50):>21.3f} {_pct(lag, 99):>9.3f}'
        )

    blob = b''.join(_period_bytes(i) for i in range(20000))
    dec = WitFrameDecoder()
    t0 = time.perf_counter()
    for k in range(0, len(blob), 4096):
        dec.feed(blob[k : k + 4096])
    dt = time.perf_counter() - t0
    print(
        f'  decoder ceiling (4 KiB reads from memory): {dec.stats.packets_ok / dt:,.0f} packets/s'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=3.0)
    args = parser.parse_args()
    print(f'python {sys.version.split()[0]}, opencv {cv2.__version__}, {os.cpu_count()} CPUs')
    with tempfile.TemporaryDirectory() as tmp:
        bench_camera(args.seconds, Path(tmp))
        bench_imu(args.seconds, Path(tmp))


if __name__ == '__main__':
    main()

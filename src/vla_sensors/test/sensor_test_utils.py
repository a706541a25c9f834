"""Test helpers: synthetic video files and WitMotion byte streams (a unique module name, so
it never collides with other packages' conftest modules when suites run together)."""

from __future__ import annotations

import os
from pathlib import Path
import tty

import cv2
import numpy as np

from vla_sensors.witmotion import ACCEL, ANGLE, GYRO, encode_packet


def write_video(path: Path, n: int, fps: float, size: tuple[int, int] = (160, 120)) -> Path:
    """MJPG AVI whose frame i is uniformly grey at level frame_level(i)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, (w, h))
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.full((h, w, 3), frame_level(i), np.uint8))
    writer.release()
    return path


def frame_level(i: int) -> int:
    return 10 + 4 * i


def decode_level(image: np.ndarray) -> int:
    return round((float(image.mean()) - 10) / 4)


def wit_sample(accel=(0, 0, 2048), temp=2512, gyro=(0, 0, 0), angle=(0, 0, 0)) -> bytes:
    """One output period of a WT901: acceleration, angular velocity, angle packets."""
    data = (
        encode_packet(ACCEL, (*accel, temp))
        + encode_packet(GYRO, (*gyro, 0))
        + encode_packet(ANGLE, (*angle, 0))
    )
    # Tests count discarded bytes exactly; keep 0x55 to headers so no stray candidate appears.
    assert sum(1 for b in data if b == 0x55) == 3, 'choose values without 0x55 bytes'
    return data


class FakeUsbSerial:
    """A pty whose slave is reached through a stable symlink, like /dev/serial/by-id/... ."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = self.slave = -1
        self.plug()

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo or CR/LF translation before the driver configures it
        if self.link.is_symlink():
            self.link.unlink()
        self.link.symlink_to(os.ttyname(self.slave))

    def unplug(self) -> None:
        self.link.unlink()
        os.close(self.master)
        os.close(self.slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

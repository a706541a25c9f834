"""Live-device behaviour with a scripted cv2.VideoCapture double: errors, stamps, reconnects."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from vla_sensors import camera_sources
from vla_sensors.camera import CameraConfig, CameraDriver
from vla_sensors.camera_sources import (
    CameraError,
    GStreamerSource,
    V4L2Source,
    diagnose_v4l2_device,
    jetson_csi_pipeline,
)


class FakeDevice:
    """A camera node: formats and sizes it accepts, plugged or not, optional buffer stamps."""

    def __init__(self, path: str, formats=('YUYV', 'MJPG'), sizes=((640, 480), (1280, 720))):
        self.path = path
        self.formats, self.sizes = formats, sizes
        self.fps = 100.0
        self.buffer_clock = None  # None: backend gives no timestamp; else a callable -> seconds
        self.plug()

    def plug(self) -> None:
        open(self.path, 'w').close()  # the node reappears

    def unplug(self) -> None:
        os.remove(self.path)

    @property
    def plugged(self) -> bool:
        return os.path.exists(self.path)

    def factory(self, path, api=None):
        return FakeCapture(self)


class FakeCapture:
    def __init__(self, dev: FakeDevice) -> None:
        self.dev = dev
        self.props = {
            cv2.CAP_PROP_FOURCC: float(cv2.VideoWriter_fourcc(*dev.formats[0])),
            cv2.CAP_PROP_FRAME_WIDTH: 640.0,
            cv2.CAP_PROP_FRAME_HEIGHT: 480.0,
            cv2.CAP_PROP_FPS: dev.fps,
        }
        self.opened = dev.plugged
        self.stamp_ms = 0.0

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return self.opened

    def set(self, prop, value):
        if prop == cv2.CAP_PROP_FOURCC:
            code = ''.join(chr((int(value) >> 8 * i) & 0xFF) for i in range(4))
            if code not in self.dev.formats:
                return False
        if prop == cv2.CAP_PROP_FRAME_WIDTH and value not in [s[0] for s in self.dev.sizes]:
            return False
        if prop == cv2.CAP_PROP_FRAME_HEIGHT and value not in [s[1] for s in self.dev.sizes]:
            return False
        if prop in (cv2.CAP_PROP_AUTO_EXPOSURE, cv2.CAP_PROP_EXPOSURE):
            return False  # a camera without exposure control
        self.props[prop] = float(value)
        return True

    def get(self, prop):
        if prop == cv2.CAP_PROP_POS_MSEC:
            return self.stamp_ms
        return self.props.get(prop, 0.0)

    def grab(self):
        if not self.dev.plugged:
            return False
        time.sleep(1.0 / self.dev.fps)
        if self.dev.buffer_clock is not None:
            self.stamp_ms = self.dev.buffer_clock() * 1000.0
        return True

    def retrieve(self):
        w = int(self.props[cv2.CAP_PROP_FRAME_WIDTH])
        h = int(self.props[cv2.CAP_PROP_FRAME_HEIGHT])
        return True, np.zeros((h, w, 3), np.uint8)

    def release(self):
        self.opened = False


@pytest.fixture
def dev(tmp_path):
    return FakeDevice(str(tmp_path / 'video0'))


def test_unsupported_pixel_format_names_device_and_format(dev):
    src = V4L2Source(dev.path, pixel_format='H264', capture_factory=dev.factory)
    with pytest.raises(CameraError) as err:
        src.open()
    msg = str(err.value)
    assert dev.path in msg and "pixel format 'H264' is not supported" in msg and 'YUYV' in msg


def test_unsupported_resolution_names_device_and_size(dev):
    src = V4L2Source(dev.path, width=1920, height=1080, capture_factory=dev.factory)
    with pytest.raises(
        CameraError, match=r'video0: resolution 1920x1080 is not supported.*640x480'
    ):
        src.open()


def test_missing_device_is_reported_as_such(tmp_path):
    src = V4L2Source(str(tmp_path / 'video7'))
    with pytest.raises(CameraError, match=r'camera .*video7: does not exist'):
        src.open()
    assert V4L2Source('3').path == '/dev/video3'


def test_busy_device_names_the_holder(monkeypatch):
    # /dev/null is a character device every machine has; pretend it is a held capture node.
    monkeypatch.setattr(camera_sources, '_query_capabilities', lambda p: 0x1)
    monkeypatch.setattr(camera_sources, '_device_holders', lambda p: ['4242 (usb_cam_node)'])
    closed = type('Closed', (), {'isOpened': lambda s: False, 'release': lambda s: None})
    src = V4L2Source('/dev/null', capture_factory=lambda *a: closed())
    with pytest.raises(CameraError, match=r'/dev/null: device busy: already in use by 4242'):
        src.open()


def test_diagnosis_of_non_v4l2_nodes(tmp_path):
    assert diagnose_v4l2_device('/dev/null') == 'is not a V4L2 device'
    f = tmp_path / 'plain'
    f.write_text('')
    assert diagnose_v4l2_device(str(f)) == 'is not a character device'


def test_device_holders_finds_another_process(tmp_path):
    target = tmp_path / 'held'
    target.write_text('')
    code = f'f = open({str(target)!r}); print("ready", flush=True); import time; time.sleep(30)'
    proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'ready'
        holders = camera_sources._device_holders(str(target))
        assert any(h.startswith(f'{proc.pid} ') for h in holders), holders
    finally:
        proc.kill()
        proc.wait()


def test_driver_buffer_timestamps_are_used_and_host_time_is_the_fallback(dev):
    src = V4L2Source(dev.path, capture_factory=dev.factory, latency_offset=0.004)
    src.open()
    raw = src.read()
    assert raw.stamp_source == 'host'
    # The kernel stamps CLOCK_MONOTONIC 30 ms before the read returns.
    dev.buffer_clock = lambda: time.monotonic() - 0.030
    before = time.time()
    raw = src.read()
    after = time.time()
    assert raw.stamp_source == 'driver'
    # The buffer stamp is taken during the read: 30 ms before some instant in [before, after].
    assert before - 0.030 - 0.005 < raw.stamp < after - 0.030 + 0.005
    dev.buffer_clock = lambda: 12.0  # implausible: not monotonic now nor wall time
    assert src.read().stamp_source == 'host'
    src.close()


def test_unplug_and_replug_reconnects(dev):
    seqs = []
    cfg = CameraConfig(source='v4l2', device=dev.path, reconnect_interval=0.05)
    source = V4L2Source(dev.path, capture_factory=dev.factory)
    driver = CameraDriver(cfg, lambda i, s, q: seqs.append(q), source=source)
    driver.start()
    _wait(lambda: len(seqs) >= 5)
    dev.unplug()
    _wait(lambda: not driver.stats().connected)
    n_gone = len(seqs)
    time.sleep(0.2)
    s = driver.stats()
    assert s.disconnects == 1 and 'does not exist' in s.last_error and '/video0' in s.last_error
    assert len(seqs) == n_gone  # nothing delivered while unplugged
    dev.plug()
    _wait(lambda: driver.stats().reconnects == 1 and len(seqs) >= n_gone + 5)
    driver.stop()
    assert seqs == sorted(seqs) and driver.stats().connected is False


def test_start_can_wait_for_a_device_that_is_not_there_yet(dev):
    dev.unplug()
    got = []
    cfg = CameraConfig(source='v4l2', device=dev.path, reconnect_interval=0.05)
    driver = CameraDriver(
        cfg, lambda i, s, q: got.append(q), source=V4L2Source(dev.path, capture_factory=dev.factory)
    )
    with pytest.raises(CameraError):
        driver.start()
    driver.start(wait_for_device=True)
    time.sleep(0.1)
    dev.plug()
    _wait(lambda: len(got) >= 3)
    driver.stop()


def test_gstreamer_without_backend_says_so():
    src = GStreamerSource(jetson_csi_pipeline())
    if camera_sources.gstreamer_available():
        pytest.skip('this OpenCV has GStreamer')
    with pytest.raises(
        CameraError, match=r"GStreamer pipeline 'nvarguscamerasrc.*no GStreamer backend"
    ):
        src.open()


def test_gstreamer_pts_are_mapped_with_the_minimum_offset():
    class Pipeline:
        def __init__(self):
            self.n = 0

        def isOpened(self):  # noqa: N802
            return True

        def grab(self):
            self.n += 1
            return True

        def retrieve(self):
            return True, np.zeros((4, 4, 3), np.uint8)

        def get(self, prop):
            return self.n * 10.0 if prop == cv2.CAP_PROP_POS_MSEC else 4.0

        def release(self):
            pass

    arrivals = iter([100.0, 100.030, 100.021, 100.050, 100.043])  # 1 ms min delay, jitter
    src = GStreamerSource(
        'videotestsrc ! appsink',
        capture_factory=lambda *a: Pipeline(),
        check_backend=False,
        clock=lambda: next(arrivals),
    )
    src.open()
    stamps = [src.read().stamp for _ in range(4)]
    assert np.allclose(
        np.diff(stamps[1:]), 0.010, atol=1e-5
    )  # jitter removed once the minimum is seen
    assert 'appsink' in jetson_csi_pipeline() and 'nvarguscamerasrc' in jetson_csi_pipeline()


def _wait(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.01)

"""Frame sources behind one small interface: V4L2/USB, GStreamer, video file, test pattern.

A source opens (raising :class:`CameraError` that names the device and the reason), then
``read()`` returns a :class:`RawFrame` (BGR or mono image, capture stamp, where the stamp came
from) or ``None`` at the end of a file, and raises :class:`CameraDisconnectedError` when a live
device goes away. Sources do no threading; :class:`vla_sensors.camera.CameraDriver` runs them.

Capture stamps (seconds on the driver's ``clock``, normally ``time.time`` like ROS' system time):

* V4L2: the kernel buffer timestamp (``CAP_PROP_POS_MSEC``; uvcvideo stamps CLOCK_MONOTONIC when
  the first USB packet of the frame arrives), moved onto ``clock``. This is what usb_cam gets wrong
  (it stamps at publish, 100-900 ms late, different at every start). When the value is missing or
  implausible (not within 2 s of now on either the monotonic or the real-time clock) the stamp is
  the time ``grab()`` returned (the frame was complete then; decoding happens after) minus
  ``latency_offset``; :attr:`RawFrame.stamp_source` says which was used.
* GStreamer: buffer PTS (pipeline running time, unknown epoch) mapped with a
  :class:`~vla_sensors.diagnostics.ClockOffsetTracker` (minimum arrival-minus-PTS), minus
  ``latency_offset``; without PTS the grab-return time minus ``latency_offset``.
* Video file: the frame's presentation time on a timeline that starts when replay starts:
  ``stamp = t0 + pts``. At ``native`` pace the source sleeps until that time, so stamps and
  delivery follow the file's frame rate; at ``consumer`` pace frames come as fast as they are taken
  (stamps still follow the file, so they may run ahead of the clock).
* Test pattern: the scheduled frame time ``t0 + n / fps``.
"""

from __future__ import annotations

from collections.abc import Callable
import errno
import fcntl
import math
import os
from pathlib import Path
import stat
import struct
import time
from typing import Any, NamedTuple

import cv2
import numpy as np

from vla_sensors.diagnostics import ClockOffsetTracker

__all__ = [
    'ENCODINGS',
    'CameraDisconnectedError',
    'CameraError',
    'FrameSource',
    'GStreamerSource',
    'RawFrame',
    'TestPatternSource',
    'V4L2Source',
    'VideoFileSource',
    'convert_encoding',
    'diagnose_v4l2_device',
    'gstreamer_available',
    'jetson_csi_pipeline',
]

Clock = Callable[[], float]
CaptureFactory = Callable[..., Any]  # cv2.VideoCapture or a test double

# ROS image encodings the driver can emit: channels, dtype.
ENCODINGS: dict[str, tuple[int, type]] = {
    'bgr8': (3, np.uint8),
    'rgb8': (3, np.uint8),
    'mono8': (1, np.uint8),
    'mono16': (1, np.uint16),
}


class CameraError(RuntimeError):
    """A camera that cannot be used. ``device`` names it, ``reason`` says why."""

    def __init__(self, device: str, reason: str) -> None:
        self.device = device
        self.reason = reason
        super().__init__(f'camera {device}: {reason}')


class CameraDisconnectedError(CameraError):
    """A live device stopped delivering frames (unplugged, driver error); the driver reconnects."""


class RawFrame(NamedTuple):
    image: np.ndarray  # BGR (H, W, 3) uint8 or mono (H, W)
    stamp: float  # capture time on the driver's clock [s]
    stamp_source: str  # 'driver', 'host', 'file' or 'synthetic'


class FrameSource:
    """Interface of a frame source; see the module docstring for the stamping rules."""

    description: str = 'camera'
    live: bool = True  # reconnect on failure (False: a file, which just ends)
    lossless: bool = False  # the driver waits for the consumer instead of dropping frames
    width: int = 0
    height: int = 0
    fps: float = 0.0

    def open(self) -> None:
        raise NotImplementedError

    def read(self) -> RawFrame | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device; safe to call twice."""


def convert_encoding(image: np.ndarray, encoding: str) -> np.ndarray:
    """BGR or mono uint8 image to a ROS encoding (no copy when it already matches)."""
    mono = image.ndim == 2 or image.shape[2] == 1
    if encoding == 'bgr8':
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if mono else image
    if encoding == 'rgb8':
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if mono else cv2.COLOR_BGR2RGB)
    gray = image.reshape(image.shape[:2]) if mono else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if encoding == 'mono8':
        return gray
    if encoding == 'mono16':
        return gray.astype(np.uint16) * np.uint16(257)  # full-scale 8 -> 16 bit
    raise ValueError(f'unsupported encoding {encoding!r}; supported: {sorted(ENCODINGS)}')


def _fourcc_str(value: float) -> str:
    code = int(value)
    return ''.join(chr((code >> (8 * i)) & 0xFF) for i in range(4)) if code > 0 else ''


# --- V4L2 diagnosis -------------------------------------------------------------------------------

_VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability), sizeof == 104
_V4L2_CAP_VIDEO_CAPTURE = 0x00000001
_V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
_V4L2_CAP_DEVICE_CAPS = 0x80000000


def _device_holders(path: str) -> list[str]:
    """Other processes that have ``path`` open, as 'pid (name)' (best effort; needs /proc)."""
    target = os.path.realpath(path)
    holders = []
    me = os.getpid()
    for pid_dir in Path('/proc').glob('[0-9]*'):
        if int(pid_dir.name) == me:
            continue
        try:
            for fd in (pid_dir / 'fd').iterdir():
                if os.readlink(fd) == target:
                    name = (pid_dir / 'comm').read_text().strip()
                    holders.append(f'{pid_dir.name} ({name})')
                    break
        except OSError:
            continue  # other users' processes, or exited meanwhile
    return holders


def _query_capabilities(path: str) -> int | None:
    """V4L2 device capabilities, or None when ``path`` is no V4L2 device."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        buf = bytearray(104)
        fcntl.ioctl(fd, _VIDIOC_QUERYCAP, buf)
    except OSError as err:
        if err.errno in (errno.ENOTTY, errno.EINVAL):
            return None
        raise
    finally:
        os.close(fd)
    caps, device_caps = struct.unpack_from('<II', buf, 84)
    return device_caps if caps & _V4L2_CAP_DEVICE_CAPS else caps


def diagnose_v4l2_device(path: str) -> str:
    """Why a V4L2 device cannot be streamed from, in words (for the error message)."""
    if not os.path.exists(path):
        return 'does not exist (unplugged, or another index? see `v4l2-ctl --list-devices`)'
    if not stat.S_ISCHR(os.stat(path).st_mode):
        return 'is not a character device'
    if not os.access(path, os.R_OK | os.W_OK):
        return 'permission denied (add the user to the "video" group)'
    try:
        caps = _query_capabilities(path)
    except OSError as err:
        return f'cannot be queried: {os.strerror(err.errno or 0)}'
    if caps is None:
        return 'is not a V4L2 device'
    if not caps & (_V4L2_CAP_VIDEO_CAPTURE | _V4L2_CAP_VIDEO_CAPTURE_MPLANE):
        return 'is not a capture node (UVC cameras also expose a metadata node; try the other one)'
    holders = _device_holders(path)
    if holders:
        return f'device busy: already in use by {", ".join(holders)}'
    return 'the driver refused to stream (device busy, or the requested format is unsupported)'


# --- sources --------------------------------------------------------------------------------------


class V4L2Source(FrameSource):
    """A USB/V4L2 camera through OpenCV's V4L2 backend."""

    def __init__(
        self,
        device: str,
        *,
        width: int = 0,
        height: int = 0,
        fps: float = 0.0,
        pixel_format: str = '',
        auto_exposure: bool = True,
        exposure: float = 0.0,
        latency_offset: float = 0.0,
        open_timeout: float = 5.0,
        clock: Clock = time.time,
        capture_factory: CaptureFactory = cv2.VideoCapture,
    ) -> None:
        self.path = f'/dev/video{device}' if device.isdigit() else device
        self.description = self.path
        self.req_width, self.req_height, self.req_fps = width, height, fps
        self.pixel_format = pixel_format.upper()
        self.auto_exposure, self.exposure = auto_exposure, exposure
        self.latency_offset = latency_offset
        self.open_timeout = open_timeout
        self.clock = clock
        self._factory = capture_factory
        self._cap: Any = None
        self.warnings: list[str] = []

    def open(self) -> None:
        self.close()
        if not os.path.exists(self.path):
            raise CameraError(self.path, diagnose_v4l2_device(self.path))
        cap = self._factory(self.path, cv2.CAP_V4L2)
        if not cap.isOpened():
            raise CameraError(self.path, diagnose_v4l2_device(self.path))
        try:
            self._configure(cap)
            self._cap = cap
            self._first_frame()
        except CameraError:
            cap.release()
            self._cap = None
            raise

    def _configure(self, cap: Any) -> None:
        # V4L2 wants the pixel format before the size, the size before the rate.
        if self.pixel_format:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.pixel_format))
            got = _fourcc_str(cap.get(cv2.CAP_PROP_FOURCC))
            if got and got.upper() != self.pixel_format:
                raise CameraError(
                    self.path,
                    f'pixel format {self.pixel_format!r} is not supported (the device switched to '
                    f'{got!r}; list formats with `v4l2-ctl -d {self.path} --list-formats-ext`)',
                )
        if self.req_width and self.req_height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.req_width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.req_height)
        if self.req_fps:
            cap.set(cv2.CAP_PROP_FPS, self.req_fps)
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or self.req_fps)
        if self.req_width and (self.width, self.height) != (self.req_width, self.req_height):
            raise CameraError(
                self.path,
                f'resolution {self.req_width}x{self.req_height} is not supported'
                f'{" in " + self.pixel_format if self.pixel_format else ""} (the device offers '
                f'{self.width}x{self.height}; see `v4l2-ctl -d {self.path} --list-formats-ext`)',
            )
        if self.req_fps and abs(self.fps - self.req_fps) > 0.5:
            self.warnings.append(f'asked for {self.req_fps} fps, the device runs {self.fps} fps')
        # V4L2_CID_EXPOSURE_AUTO: 1 manual, 3 aperture priority; EXPOSURE_ABSOLUTE in 100 us.
        if not self.auto_exposure:
            manual = cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)
            if not (manual and cap.set(cv2.CAP_PROP_EXPOSURE, self.exposure)):
                self.warnings.append('manual exposure is not supported by the device; left on auto')
        if hasattr(cv2, 'CAP_PROP_READ_TIMEOUT_MSEC'):
            cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.open_timeout * 1000.0)

    def _first_frame(self) -> None:
        if not self._cap.grab():
            reason = diagnose_v4l2_device(self.path)
            raise CameraError(self.path, f'opened, but no frame arrived: {reason}')

    def read(self) -> RawFrame | None:
        if self._cap is None:
            raise CameraDisconnectedError(self.path, 'not open')
        ok = self._cap.grab()
        arrival = self.clock()
        if not ok:
            raise CameraDisconnectedError(self.path, 'grab failed (unplugged or driver error)')
        ok, image = self._cap.retrieve()
        if not ok or image is None:
            raise CameraDisconnectedError(self.path, 'frame could not be decoded')
        stamp, source = self._stamp(arrival)
        return RawFrame(image, stamp, source)

    def _stamp(self, arrival: float) -> tuple[float, str]:
        ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
        if ms > 0.0:
            t = ms / 1000.0
            # The buffer clock is CLOCK_MONOTONIC on current kernels, real time on very old ones.
            for offset in (arrival - time.monotonic(), arrival - time.time()):
                stamp = t + offset
                if arrival - 2.0 < stamp <= arrival + 1e-3:
                    return stamp, 'driver'
        return arrival - self.latency_offset, 'host'

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def gstreamer_available() -> bool:
    return cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER)


def jetson_csi_pipeline(
    sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30, flip_method: int = 0
) -> str:
    """A Jetson CSI camera (``nvarguscamerasrc``) pipeline ending in a BGR appsink for OpenCV.

    NVMM NV12 from the ISP is converted on the VIC (``nvvidconv``) to BGRx, then to BGR on the
    CPU (``videoconvert``; OpenCV needs 3 channels). ``drop=true max-buffers=1`` keeps only the
    newest frame so a slow reader sees fresh images, and ``sync=false`` hands buffers over at once.
    """
    return (
        f'nvarguscamerasrc sensor-id={sensor_id} ! '
        f'video/x-raw(memory:NVMM),width={width},height={height},framerate={fps}/1,format=NV12 ! '
        f'nvvidconv flip-method={flip_method} ! video/x-raw,format=BGRx ! '
        'videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false'
    )


class GStreamerSource(FrameSource):
    """A GStreamer pipeline ending in ``appsink`` (e.g. :func:`jetson_csi_pipeline`)."""

    def __init__(
        self,
        pipeline: str,
        *,
        latency_offset: float = 0.0,
        clock: Clock = time.time,
        capture_factory: CaptureFactory = cv2.VideoCapture,
        check_backend: bool = True,
    ) -> None:
        self.pipeline = pipeline
        first = pipeline.split('!')[0].strip() or 'pipeline'
        self.description = f"GStreamer pipeline '{first} ! ...'"
        self.latency_offset = latency_offset
        self.clock = clock
        self._factory = capture_factory
        self._check_backend = check_backend
        self._cap: Any = None
        self._offset = ClockOffsetTracker()

    def open(self) -> None:
        self.close()
        if self._check_backend and not gstreamer_available():
            raise CameraError(
                self.description,
                'this OpenCV build has no GStreamer backend (cv2.getBuildInformation() shows '
                '"GStreamer: NO"); use the distribution OpenCV (python3-opencv) on the robot',
            )
        if 'appsink' not in self.pipeline:
            raise CameraError(self.description, 'the pipeline must end in an appsink')
        cap = self._factory(self.pipeline, cv2.CAP_GSTREAMER)
        if not cap.isOpened() or not cap.grab():
            cap.release()
            raise CameraError(
                self.description,
                'failed to start (camera busy or missing: is nvargus-daemon running and no other '
                'process using the sensor? try the pipeline with gst-launch-1.0 and fakesink)',
            )
        self._cap = cap
        self._offset.reset()
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)

    def read(self) -> RawFrame | None:
        if self._cap is None:
            raise CameraDisconnectedError(self.description, 'not open')
        ok = self._cap.grab()
        arrival = self.clock()
        if not ok:
            raise CameraDisconnectedError(
                self.description, 'the pipeline stopped delivering buffers'
            )
        ok, image = self._cap.retrieve()
        if not ok or image is None:
            raise CameraDisconnectedError(self.description, 'buffer could not be converted')
        pts_ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
        if pts_ms > 0.0:
            stamp = self._offset.to_host(pts_ms / 1000.0, arrival) - self.latency_offset
            return RawFrame(image, stamp, 'driver')
        return RawFrame(image, arrival - self.latency_offset, 'host')

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoFileSource(FrameSource):
    """Replays a video file at its native rate (``pace='native'``) or as fast as consumed."""

    live = False

    def __init__(
        self,
        path: str,
        *,
        pace: str = 'native',
        loop: bool = False,
        clock: Clock = time.time,
        sleep: Callable[[float], None] = time.sleep,
        capture_factory: CaptureFactory = cv2.VideoCapture,
    ) -> None:
        if pace not in ('native', 'consumer'):
            raise ValueError(f"pace must be 'native' or 'consumer', got {pace!r}")
        self.path = path
        self.description = f"video file '{path}'"
        self.pace, self.loop = pace, loop
        self.lossless = pace == 'consumer'
        self.clock, self.sleep = clock, sleep
        self._factory = capture_factory
        self._cap: Any = None
        self._t0: float | None = None
        self._base = 0.0  # timeline offset of the current pass (loops)
        self._index = 0
        self._last_pts = -1.0
        self.frame_count = 0

    def open(self) -> None:
        self._t0 = None  # a new replay starts a new timeline
        self._base = 0.0
        self._reopen()

    def _reopen(self) -> None:
        self.close()
        if not os.path.isfile(self.path):
            reason = 'does not exist' if not os.path.exists(self.path) else 'is not a regular file'
            raise CameraError(self.description, reason)
        if not os.access(self.path, os.R_OK):
            raise CameraError(self.description, 'permission denied')
        cap = self._factory(self.path)
        if not cap.isOpened():
            cap.release()
            raise CameraError(self.description, 'cannot be opened: not a video, or no decoder')
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if math.isfinite(fps) and 0.0 < fps < 1000.0 else 30.0
        self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if self.width <= 0 or self.height <= 0:
            cap.release()
            raise CameraError(self.description, 'has no decodable video stream')
        self._cap = cap
        self._index = 0
        self._last_pts = -1.0

    def read(self) -> RawFrame | None:
        if self._cap is None:
            raise CameraDisconnectedError(self.description, 'not open')
        ok, image = self._cap.read()
        if not ok:
            if not self.loop or self._index == 0:
                return None
            self._base += self._last_pts + 1.0 / self.fps
            self._reopen()
            ok, image = self._cap.read()
            if not ok:
                return None
        pts = float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0
        if pts <= self._last_pts:  # containers without timestamps: fall back to the frame rate
            pts = self._index / self.fps
        self._last_pts = pts
        self._index += 1
        if self._t0 is None:
            self._t0 = self.clock()
        stamp = self._t0 + self._base + pts
        if self.pace == 'native':
            delay = stamp - self.clock()
            if delay > 0.0:
                self.sleep(delay)
        return RawFrame(image, stamp, 'file')

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# SMPTE-like bars, BGR: white, yellow, cyan, green, magenta, red, blue, black.
PATTERN_BARS_BGR = (
    (255, 255, 255),
    (0, 255, 255),
    (255, 255, 0),
    (0, 255, 0),
    (255, 0, 255),
    (0, 0, 255),
    (255, 0, 0),
    (0, 0, 0),
)


class TestPatternSource(FrameSource):
    """Synthetic frames at ``fps``: colour bars, a gradient or a checkerboard.

    A 2-pixel grey line sweeps the top eighth two columns per frame, and the bottom-left 16 pixels
    carry the frame index in binary (LSB first, white = 1), so tests can check motion and order.
    """

    __test__ = False  # not a pytest class despite the name

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        pattern: str = 'bars',
        *,
        clock: Clock = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if pattern not in ('bars', 'gradient', 'checkerboard'):
            raise ValueError(f'unknown test pattern {pattern!r}')
        self.width, self.height, self.fps = width, height, fps
        self.pattern = pattern
        self.description = f'test pattern {pattern!r} {width}x{height}@{fps:g}'
        self.clock, self.sleep = clock, sleep
        self._base: np.ndarray | None = None
        self._t0 = 0.0
        self._n = 0  # frames since the schedule started
        self._total = 0  # frames since construction (survives reopening)

    def open(self) -> None:
        w, h = self.width, self.height
        if self.pattern == 'bars':
            img = np.zeros((h, w, 3), np.uint8)
            for i, colour in enumerate(PATTERN_BARS_BGR):
                img[:, i * w // 8 : (i + 1) * w // 8] = colour
        elif self.pattern == 'gradient':
            ramp = np.linspace(0, 255, w, dtype=np.float64).astype(np.uint8)
            img = np.repeat(np.repeat(ramp[None, :, None], h, axis=0), 3, axis=2)
        else:
            yy, xx = np.mgrid[0:h, 0:w]
            img = np.where(((yy // 40 + xx // 40) % 2 == 0)[..., None], 255, 0).astype(np.uint8)
            img = np.repeat(img, 3, axis=2)
        self._base = img
        self._t0 = self.clock()
        self._n = 0

    def read(self) -> RawFrame | None:
        if self._base is None:
            raise CameraDisconnectedError(self.description, 'not open')
        due = self._t0 + self._n / self.fps
        delay = due - self.clock()
        if delay > 0.0:
            self.sleep(delay)
        elif delay < -2.0 / self.fps:  # fell behind (a stalled machine): restart the schedule
            self._t0, self._n = self.clock(), 0
            due = self._t0
        img = self._base.copy()
        x = (self._total * 2) % self.width
        img[: max(1, self.height // 8), x : x + 2] = 128
        bits = (self._total >> np.arange(16)) & 1
        img[-1, :16] = (bits * 255).astype(np.uint8)[:, None]
        self._n += 1
        self._total += 1
        return RawFrame(img, due, 'synthetic')

    def close(self) -> None:
        self._base = None

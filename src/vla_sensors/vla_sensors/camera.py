"""Camera driver: a capture thread, a delivery thread and a short frame queue between them.

    driver = CameraDriver(CameraConfig(source='v4l2', device='/dev/video0'), on_frame=publish)
    driver.start()            # raises CameraError naming the device and the reason
    ...
    driver.stats()            # counters for /diagnostics
    driver.stop()

The capture thread only grabs and stamps (one blocking ``grab()`` per frame, no timers: usb_cam's
two timers on one thread halved its rate). Each frame goes into a queue of ``delivery_queue``
frames (enough to ride out a brief consumer stall; when full, the oldest frame goes); the delivery
thread converts the encoding, calls ``on_frame(image, stamp, seq)`` and, when the policy output is
on, ``on_policy_frame(image, stamp, seq)`` with the cropped/resized copy. A consumer slower than
the camera therefore loses frames (counted in ``frames_dropped``, visible as gaps in ``seq``)
but never delays capture, so stamps stay true. A file replayed at ``consumer`` pace is the
exception: there the capture thread waits for room in the queue, so no frame is lost.

Live devices that vanish are reopened every ``reconnect_interval`` seconds (``reconnects``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
import threading
import time
from typing import NamedTuple

import cv2
import numpy as np

from vla_core.config import Config, ConfigError, param
from vla_sensors.camera_info import (
    CalibrationError,
    CameraInfo,
    load_camera_info,
    optical_frame_id,
    uncalibrated_camera_info,
)
from vla_sensors.camera_sources import (
    ENCODINGS,
    CameraDisconnectedError,
    CameraError,
    FrameSource,
    GStreamerSource,
    TestPatternSource,
    V4L2Source,
    VideoFileSource,
    convert_encoding,
)
from vla_sensors.diagnostics import LatencyWindow, RateMeter

__all__ = [
    'CameraConfig',
    'CameraDriver',
    'CameraStats',
    'Frame',
    'FrameCallback',
    'PolicyImageConfig',
    'PolicyImageTransform',
    'make_source',
]

FrameCallback = Callable[[np.ndarray, float, int], None]

_INTERPOLATION = {
    'area': cv2.INTER_AREA,
    'linear': cv2.INTER_LINEAR,
    'nearest': cv2.INTER_NEAREST,
    'cubic': cv2.INTER_CUBIC,
}


@dataclass(frozen=True, kw_only=True)
class PolicyImageConfig(Config):
    enabled: bool = param(False, description='also emit a cropped/resized copy for the policy')
    crop: tuple[int, ...] = param(
        (0, 0, 0, 0),
        description='x, y, width, height of the crop in raw pixels (0 size: to the edge)',
    )
    width: int = param(224, description='policy image width [px]', range=(1, 16384))
    height: int = param(224, description='policy image height [px]', range=(1, 16384))
    interpolation: str = param('area', description='resize filter', choices=tuple(_INTERPOLATION))

    def validate(self) -> None:
        if len(self.crop) != 4 or min(self.crop) < 0:
            raise ConfigError('crop', f'needs 4 non-negative values (x, y, w, h), got {self.crop}')


@dataclass(frozen=True, kw_only=True)
class CameraConfig(Config):
    source: str = param(
        'v4l2',
        description='frame source',
        choices=('v4l2', 'gstreamer', 'file', 'test_pattern'),
        read_only=True,
    )
    device: str = param('/dev/video0', description='v4l2: device path or index', read_only=True)
    pipeline: str = param('', description='gstreamer: pipeline ending in appsink', read_only=True)
    file_path: str = param('', description='file: video to replay', read_only=True)
    file_pace: str = param(
        'native',
        description='file: native frame rate, or as fast as consumed (lossless)',
        choices=('native', 'consumer'),
    )
    file_loop: bool = param(False, description='file: start over at the end')
    pattern: str = param(
        'bars', description='test_pattern: image', choices=('bars', 'gradient', 'checkerboard')
    )
    width: int = param(
        640, description='requested width [px] (0: device default)', range=(0, 16384)
    )
    height: int = param(
        480, description='requested height [px] (0: device default)', range=(0, 16384)
    )
    fps: float = param(
        30.0, description='requested frame rate (0: device default)', range=(0, 1000)
    )
    pixel_format: str = param('', description='v4l2: FOURCC such as MJPG or YUYV (empty: default)')
    auto_exposure: bool = param(True, description='v4l2: automatic exposure')
    exposure: float = param(
        100.0, description='v4l2: manual exposure when auto is off [100 us units]', range=(0, 1e6)
    )
    encoding: str = param('bgr8', description='output image encoding', choices=tuple(ENCODINGS))
    camera_name: str = param('camera', description='camera name (camera_info, default frame id)')
    frame_id: str = param('', description='header frame id (empty: <camera_name>_optical_frame)')
    calibration_file: str = param('', description='camera_info YAML (empty: uncalibrated)')
    latency_offset: float = param(
        0.0,
        description='subtracted from host-estimated stamps (exposure + transfer) [s]',
        range=(0.0, 1.0),
    )
    reconnect_interval: float = param(
        1.0, description='retry period while the device is gone [s]', range=(0.01, 60.0)
    )
    delivery_queue: int = param(
        3,
        description='frames buffered between capture and delivery: rides out brief consumer '
        'stalls; a consumer slower on average still loses frames, oldest first',
        range=(1, 64),
        read_only=True,
    )
    open_timeout: float = param(
        5.0,
        description='the first frame must arrive within this after opening [s]',
        range=(0.1, 60),
    )
    policy: PolicyImageConfig = field(default_factory=PolicyImageConfig)  # policy-input copy

    def validate(self) -> None:
        if self.source == 'file' and not self.file_path:
            raise ConfigError('file_path', "is required when source is 'file'")
        if self.source == 'gstreamer' and not self.pipeline:
            raise ConfigError('pipeline', "is required when source is 'gstreamer'")
        if self.source == 'test_pattern' and not (self.width and self.height and self.fps):
            raise ConfigError('width', 'test_pattern needs width, height and fps')
        if self.pixel_format and len(self.pixel_format) != 4:
            raise ConfigError(
                'pixel_format', f'must be a 4-character FOURCC, got {self.pixel_format!r}'
            )
        if bool(self.width) != bool(self.height):
            raise ConfigError('width', 'give both width and height, or neither')
        if self.frame_id and not self.frame_id.endswith('_optical_frame'):
            raise ConfigError('frame_id', f'{self.frame_id!r} must end in _optical_frame (REP 103)')
        if not self.camera_name:
            raise ConfigError('camera_name', 'must not be empty')

    @property
    def resolved_frame_id(self) -> str:
        return self.frame_id or optical_frame_id(self.camera_name)


class Frame(NamedTuple):
    image: np.ndarray
    stamp: float  # capture time [s]
    seq: int  # capture counter since start (gaps = dropped frames)


@dataclass(frozen=True)
class CameraStats:
    device: str
    connected: bool
    finished: bool  # a file source reached its end
    width: int
    height: int
    fps: float  # nominal rate of the source
    frames_captured: int
    frames_delivered: int
    frames_dropped: int  # dropped from the full delivery queue because the consumer was behind
    frame_gaps: int  # frames missing at the source (stamp gap > 1.5 periods)
    disconnects: int
    reconnects: int
    callback_errors: int
    capture_rate: float  # [Hz] over the last 2 s
    delivery_rate: float  # [Hz]
    latency_p50: float  # capture stamp -> callback entry [s]
    latency_p99: float
    latency_max: float
    stamp_source: str  # 'driver', 'host', 'file', 'synthetic' (see camera_sources)
    last_stamp: float
    last_error: str


def make_source(config: CameraConfig, clock: Callable[[], float] = time.time) -> FrameSource:
    c = config
    if c.source == 'v4l2':
        return V4L2Source(
            c.device,
            width=c.width,
            height=c.height,
            fps=c.fps,
            pixel_format=c.pixel_format,
            auto_exposure=c.auto_exposure,
            exposure=c.exposure,
            latency_offset=c.latency_offset,
            open_timeout=c.open_timeout,
            clock=clock,
        )
    if c.source == 'gstreamer':
        return GStreamerSource(c.pipeline, latency_offset=c.latency_offset, clock=clock)
    if c.source == 'file':
        return VideoFileSource(c.file_path, pace=c.file_pace, loop=c.file_loop, clock=clock)
    return TestPatternSource(c.width, c.height, c.fps, c.pattern, clock=clock)


class PolicyImageTransform:
    """Crop then resize; computes the matching camera_info once the raw size is known."""

    def __init__(self, config: PolicyImageConfig, raw_width: int, raw_height: int) -> None:
        x, y, w, h = config.crop
        w = w or raw_width - x
        h = h or raw_height - y
        if x + w > raw_width or y + h > raw_height or w <= 0 or h <= 0:
            raise ConfigError(
                'policy.crop', f'{config.crop} does not fit in the {raw_width}x{raw_height} image'
            )
        self.box = (x, y, w, h)
        self.size = (config.width, config.height)
        self.interpolation = _INTERPOLATION[config.interpolation]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        x, y, w, h = self.box
        crop = image[y : y + h, x : x + w]
        if (w, h) == self.size:
            return np.ascontiguousarray(crop)
        return cv2.resize(crop, self.size, interpolation=self.interpolation)

    def camera_info(self, info: CameraInfo) -> CameraInfo:
        return info.cropped_scaled(*self.box, *self.size)


class CameraDriver:
    """Runs a :class:`FrameSource` on its own thread; see the module docstring."""

    def __init__(
        self,
        config: CameraConfig,
        on_frame: FrameCallback | None = None,
        on_policy_frame: FrameCallback | None = None,
        *,
        clock: Callable[[], float] = time.time,
        source: FrameSource | None = None,
    ) -> None:
        self.config = config
        self.on_frame = on_frame
        self.on_policy_frame = on_policy_frame
        self.clock = clock
        self.source = source or make_source(config, clock)
        self.frame_id = config.resolved_frame_id
        self._calibration: CameraInfo | None = None
        if config.calibration_file:
            try:
                self._calibration = load_camera_info(config.calibration_file)
            except CalibrationError as err:
                raise CameraError(self.source.description, f'bad calibration: {err}') from None
        self.camera_info: CameraInfo | None = None  # set by start() once the size is known
        self.policy_camera_info: CameraInfo | None = None
        self._policy: PolicyImageTransform | None = None

        self._cond = threading.Condition()
        self._pending: deque[Frame] = deque()  # at most config.delivery_queue frames
        self._delivering = False
        self._latest: Frame | None = None
        self._stop = threading.Event()
        self.finished = threading.Event()  # set when a file source ends
        self._threads: list[threading.Thread] = []
        self._connected = False
        self._seq = 0
        self._prev_stamp: float | None = None
        self._captured = self._delivered = self._dropped = self._gaps = 0
        self._disconnects = self._reconnects = self._callback_errors = 0
        self._stamp_source = ''
        self._last_error = ''
        self._capture_rate = RateMeter()
        self._delivery_rate = RateMeter()
        self.latency = LatencyWindow(2000)

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self, wait_for_device: bool = False) -> None:
        """Open the source and start the threads.

        Raises :class:`CameraError` when the source cannot be opened, unless ``wait_for_device``
        (then it keeps retrying in the background, as after an unplug).
        """
        if self._threads:
            raise RuntimeError('already started')
        self._stop.clear()
        self.finished.clear()
        try:
            self._open()
        except CameraError as err:
            if not (wait_for_device and self.source.live):
                raise
            self._last_error = str(err)
        self._threads = [
            threading.Thread(target=self._capture_loop, name='camera-capture', daemon=True),
            threading.Thread(target=self._delivery_loop, name='camera-delivery', daemon=True),
        ]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._threads = []
        self.source.close()
        self._connected = False

    def __enter__(self) -> CameraDriver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- consumer side ----------------------------------------------------------------------------

    def latest(self) -> Frame | None:
        """The newest delivered frame (in the output encoding), or None."""
        with self._cond:
            return self._latest

    def wait_for_frame(self, after_seq: int = -1, timeout: float | None = None) -> Frame | None:
        """Block until a frame newer than ``after_seq`` has been delivered; None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._latest is None or self._latest.seq <= after_seq:
                remaining = None if deadline is None else deadline - time.monotonic()
                if (remaining is not None and remaining <= 0) or self._stop.is_set():
                    return None
                if self.finished.is_set() and not self._pending and not self._delivering:
                    return None
                self._cond.wait(remaining if remaining is not None else 0.1)
            return self._latest

    def stats(self) -> CameraStats:
        now = self.clock()
        lat = self.latency.values()
        return CameraStats(
            device=self.source.description,
            connected=self._connected,
            finished=self.finished.is_set(),
            width=self.source.width,
            height=self.source.height,
            fps=self.source.fps,
            frames_captured=self._captured,
            frames_delivered=self._delivered,
            frames_dropped=self._dropped,
            frame_gaps=self._gaps,
            disconnects=self._disconnects,
            reconnects=self._reconnects,
            callback_errors=self._callback_errors,
            capture_rate=self._capture_rate.rate(now),
            delivery_rate=self._delivery_rate.rate(now),
            latency_p50=float(np.percentile(lat, 50)) if lat.size else float('nan'),
            latency_p99=float(np.percentile(lat, 99)) if lat.size else float('nan'),
            latency_max=float(lat.max()) if lat.size else float('nan'),
            stamp_source=self._stamp_source,
            last_stamp=self._prev_stamp if self._prev_stamp is not None else float('nan'),
            last_error=self._last_error,
        )

    # --- internals --------------------------------------------------------------------------------

    def _open(self) -> None:
        self.source.open()
        w, h = self.source.width, self.source.height
        if self._calibration is not None and (
            self._calibration.width,
            self._calibration.height,
        ) != (
            w,
            h,
        ):
            self.source.close()
            raise CameraError(
                self.source.description,
                f'calibration {self.config.calibration_file!r} is for '
                f'{self._calibration.width}x{self._calibration.height} but frames are {w}x{h}',
            )
        info = self._calibration or uncalibrated_camera_info(w, h, self.config.camera_name)
        self.camera_info = info
        if self.config.policy.enabled:
            try:
                self._policy = PolicyImageTransform(self.config.policy, w, h)
            except ConfigError as err:
                self.source.close()
                raise CameraError(self.source.description, str(err)) from None
            self.policy_camera_info = self._policy.camera_info(info)
        self._connected = True

    def _capture_loop(self) -> None:
        src = self.source
        ever_connected = self._connected
        while not self._stop.is_set():
            if not self._connected:
                try:
                    self._open()
                except CameraError as err:
                    self._last_error = str(err)
                    self._stop.wait(self.config.reconnect_interval)
                    continue
                if ever_connected:
                    self._reconnects += 1
                ever_connected = True
                self._prev_stamp = None  # no gap accounting across the outage
            try:
                raw = src.read()
            except (CameraDisconnectedError, cv2.error, OSError) as err:
                self._last_error = str(err)
                src.close()
                self._connected = False
                if not src.live:
                    self.finished.set()
                    break
                self._disconnects += 1
                continue
            if raw is None:
                self.finished.set()
                break
            self._account(raw.stamp)
            self._stamp_source = raw.stamp_source
            frame = Frame(raw.image, raw.stamp, self._seq)
            self._seq += 1
            with self._cond:
                depth = self.config.delivery_queue
                if src.lossless:
                    while len(self._pending) >= depth and not self._stop.is_set():
                        self._cond.wait(0.1)
                if len(self._pending) >= depth:
                    self._pending.popleft()  # the consumer is behind: drop the oldest frame
                    self._dropped += 1
                self._pending.append(frame)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _account(self, stamp: float) -> None:
        self._captured += 1
        self._capture_rate.tick(self.clock())
        fps = self.source.fps
        if self._prev_stamp is not None and fps > 0.0:
            missing = round((stamp - self._prev_stamp) * fps) - 1
            if missing > 0 and stamp - self._prev_stamp > 1.5 / fps:
                self._gaps += missing
        self._prev_stamp = stamp

    def _delivery_loop(self) -> None:
        encoding = self.config.encoding
        while True:
            with self._cond:
                while not self._pending and not self._stop.is_set():
                    if self.finished.is_set():
                        return
                    self._cond.wait(0.1)
                if self._stop.is_set():
                    return
                raw = self._pending.popleft()
                self._delivering = True
                self._cond.notify_all()  # a lossless source may go on
            assert raw is not None
            frame = Frame(convert_encoding(raw.image, encoding), raw.stamp, raw.seq)
            with self._cond:
                self._latest = frame
                self._delivered += 1
                self._delivering = False
                self._cond.notify_all()
            now = self.clock()
            self.latency.add(now - raw.stamp)
            self._delivery_rate.tick(now)
            self._call(self.on_frame, frame)
            if self._policy is not None and self.on_policy_frame is not None:
                small = convert_encoding(self._policy(raw.image), encoding)
                self._call(self.on_policy_frame, Frame(small, raw.stamp, raw.seq))

    def _call(self, callback: FrameCallback | None, frame: Frame) -> None:
        if callback is None:
            return
        try:
            callback(frame.image, frame.stamp, frame.seq)
        except Exception as err:  # a consumer bug must not kill capture
            self._callback_errors += 1
            self._last_error = f'callback failed: {err!r}'

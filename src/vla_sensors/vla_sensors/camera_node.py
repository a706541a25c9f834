"""Camera lifecycle node: a :class:`~vla_sensors.camera.CameraDriver` on ROS topics.

    ros2 run vla_sensors camera_node --ros-args -p source:=v4l2 -p device:=/dev/video0 \\
        -p camera_name:=scene_camera -p calibration_file:=/path/to/ost.yaml

Publishes (relative names, so namespaces and remaps apply), all stamped with the capture time:

* ``camera/<camera_name>/image_raw`` + ``camera/<camera_name>/camera_info``
* ``camera/<camera_name>/policy/image_raw`` + ``.../policy/camera_info`` when ``policy.enabled``:
  the cropped/resized copy for the policy, with intrinsics for that image
* ``/diagnostics`` about once a second: rates, capture-to-publish latency, drops, reconnects

Transitions: configure opens the source once (and closes it) so a missing device, file or bad
calibration fails the transition with the driver's reason in the log; activate starts capture;
deactivate stops it; cleanup/shutdown release everything. Frames are published from the driver's
delivery thread, so a slow subscriber can only make the driver drop frames, never delay capture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import threading

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.timer import Timer
from sensor_msgs.msg import CameraInfo as CameraInfoMsg
from sensor_msgs.msg import Image

from vla_core.config import Config, ConfigError, param
from vla_ros_common import diagnostics, qos
from vla_ros_common.conversions import camera_info_msg as ros_camera_info_msg
from vla_ros_common.conversions import seconds_to_stamp
from vla_ros_common.image import numpy_to_image
from vla_ros_common.node_main import run_node
from vla_ros_common.package_url import resolve_package_url
from vla_ros_common.params import declare_config
from vla_sensors.camera import CameraConfig, CameraDriver, CameraStats, PolicyImageTransform
from vla_sensors.camera_info import CalibrationError, CameraInfo, load_camera_info
from vla_sensors.camera_sources import CameraError
from vla_sensors.diagnostics import LatencyWindow, RateMeter

__all__ = ['CameraNode', 'CameraNodeConfig', 'camera_info_msg', 'main', 'resolve_calibration_url']


@dataclass(frozen=True, kw_only=True)
class CameraNodeConfig(Config):
    wait_for_device: bool = param(
        False,
        description='live devices: configure succeeds while the device is missing and capture '
        'starts when it appears (false: configure fails naming the device)',
        read_only=True,
    )
    diagnostics_period: float = param(
        1.0, description='period of the /diagnostics report [s]', range=(0.05, 60.0), read_only=True
    )


def resolve_calibration_url(url: str) -> str:
    """``package://pkg/path`` (camera_info_manager's URL form) -> a file path; others unchanged."""
    try:
        return resolve_package_url(url)
    except FileNotFoundError as err:
        raise CalibrationError(str(err)) from None


def camera_info_msg(info: CameraInfo, frame_id: str) -> CameraInfoMsg:
    """sensor_msgs/CameraInfo of the image that ``info`` describes (stamp left for the caller).

    The ROI is not copied: for the policy image K and P already describe the cropped, resized
    image, and a ROI would make image_geometry apply the crop a second time.
    """
    return ros_camera_info_msg(
        info.width, info.height, info.k, info.p, frame_id=frame_id, d=info.d, r=info.r,
        distortion_model=info.distortion_model,
    )  # fmt: skip


class _Stream:
    """One image + camera_info pair of topics and its publish counters."""

    def __init__(self, node: LifecycleNode, base: str, encoding: str, frame_id: str) -> None:
        self.image_pub: Publisher = node.create_lifecycle_publisher(
            Image, f'{base}/image_raw', qos.SENSOR_OUT, qos_overriding_options=qos.qos_overrides()
        )
        self.info_pub: Publisher = node.create_lifecycle_publisher(
            CameraInfoMsg,
            f'{base}/camera_info',
            qos.SENSOR_OUT,
            qos_overriding_options=qos.qos_overrides(),
        )
        self.encoding = encoding
        self.frame_id = frame_id
        self._info_src: CameraInfo | None = None
        self._info_msg = CameraInfoMsg()
        self.published = 0

    def publish(self, image: np.ndarray, stamp: float, info: CameraInfo | None) -> None:
        t = seconds_to_stamp(stamp)
        msg = numpy_to_image(
            np.ascontiguousarray(image), self.encoding, frame_id=self.frame_id, stamp=t
        )
        self.image_pub.publish(msg)
        if info is not None:
            if info is not self._info_src:  # the driver sets it on (re)open; build once per object
                self._info_msg = camera_info_msg(info, self.frame_id)
                self._info_src = info
            self._info_msg.header.stamp = t  # only the delivery thread touches this message
            self.info_pub.publish(self._info_msg)
        self.published += 1

    def destroy(self, node: LifecycleNode) -> None:
        node.destroy_lifecycle_publisher(self.image_pub)
        node.destroy_lifecycle_publisher(self.info_pub)


class CameraNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__('camera', **kwargs)
        self._camera_cfg = declare_config(self, CameraConfig)
        self._node_cfg = declare_config(self, CameraNodeConfig)
        self._camera_cfg.on_change(self._on_param_change)
        self._lock = threading.Lock()  # releasing vs. the diagnostics timer
        self._driver: CameraDriver | None = None
        self._raw: _Stream | None = None
        self._policy: _Stream | None = None
        self._diag_pub: Publisher | None = None
        # Created once and only cancelled/reset: destroying a timer the executor may be about to
        # run makes rclpy report an InvalidHandle from its task.
        self._diag_timer: Timer = self.create_timer(
            self._node_cfg.value.diagnostics_period, self._publish_diagnostics
        )
        self._diag_timer.cancel()
        self._latency = LatencyWindow(1000)
        self._publish_rate = RateMeter()
        self._last_stats: CameraStats | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg = self._camera_cfg.value
        log = self.get_logger()
        try:
            cfg = cfg.replace(calibration_file=resolve_calibration_url(cfg.calibration_file))
            driver = self._create_driver(cfg)
            self._probe(driver, cfg)
        except CameraError as err:
            log.error(f'configure failed: camera {err.device}: {err.reason}')
            return TransitionCallbackReturn.FAILURE
        except (CalibrationError, ConfigError) as err:
            log.error(f'configure failed: camera {cfg.camera_name}: {err}')
            return TransitionCallbackReturn.FAILURE
        base = f'camera/{cfg.camera_name}'
        self._driver = driver
        self._raw = _Stream(self, base, cfg.encoding, driver.frame_id)
        if cfg.policy.enabled:
            self._policy = _Stream(self, f'{base}/policy', cfg.encoding, driver.frame_id)
        self._diag_pub = self.create_publisher(
            DiagnosticArray,
            '/diagnostics',
            qos.DIAGNOSTICS,
            qos_overriding_options=qos.qos_overrides(),
        )
        policy = f' (+ {self._policy.image_pub.topic_name})' if self._policy else ''
        calibration = cfg.calibration_file or 'none (uncalibrated)'
        log.info(
            f'configured {driver.source.description} -> {self._raw.image_pub.topic_name}{policy}'
            f', frame {driver.frame_id}, {cfg.encoding}, calibration {calibration}'
        )
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self._driver is not None
        ret = super().on_activate(state)  # enables the lifecycle publishers before frames flow
        if ret != TransitionCallbackReturn.SUCCESS:
            return ret
        try:
            self._driver.start(wait_for_device=self._node_cfg.value.wait_for_device)
        except CameraError as err:  # unplugged since configure
            self.get_logger().error(f'activate failed: camera {err.device}: {err.reason}')
            super().on_deactivate(state)
            return TransitionCallbackReturn.FAILURE
        self._diag_timer.reset()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_capture()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_error(state)

    def destroy_node(self) -> None:
        self._release()  # stop the driver threads before their publishers go away
        super().destroy_node()

    # --- driver -----------------------------------------------------------------------------------

    def _create_driver(self, cfg: CameraConfig) -> CameraDriver:
        """The driver publishing into this node (tests override this to inject a source)."""
        return CameraDriver(cfg, self._on_frame, self._on_policy_frame)

    def _probe(self, driver: CameraDriver, cfg: CameraConfig) -> None:
        """Open the source once and check calibration size and crop against it.

        The driver only opens on start(), which belongs to activate; configure must still fail
        on a missing device or file, with the driver's own reason.
        """
        source = driver.source
        try:
            source.open()
            width, height = source.width, source.height
        except CameraError as err:
            if not (self._node_cfg.value.wait_for_device and source.live):
                raise
            self.get_logger().warn(f'{err}; capture starts when the device appears')
            return
        finally:
            source.close()
        if cfg.calibration_file:
            calibration = load_camera_info(cfg.calibration_file)
            if (calibration.width, calibration.height) != (width, height):
                raise CameraError(
                    source.description,
                    f'calibration {cfg.calibration_file!r} is for {calibration.width}x'
                    f'{calibration.height} but frames are {width}x{height}',
                )
        if cfg.policy.enabled:
            try:
                PolicyImageTransform(cfg.policy, width, height)
            except ConfigError as err:
                raise CameraError(source.description, str(err)) from None

    def _on_frame(self, image: np.ndarray, stamp: float, seq: int) -> None:
        # Runs on the driver's delivery thread; rclpy publish is thread-safe.
        driver, stream = self._driver, self._raw
        if driver is None or stream is None:
            return
        stream.publish(image, stamp, driver.camera_info)
        now = driver.clock()
        self._latency.add(now - stamp)
        self._publish_rate.tick(now)

    def _on_policy_frame(self, image: np.ndarray, stamp: float, seq: int) -> None:
        driver, stream = self._driver, self._policy
        if driver is not None and stream is not None:
            stream.publish(image, stamp, driver.policy_camera_info)

    def _stop_capture(self) -> None:
        self._diag_timer.cancel()
        if self._driver is not None:
            self._driver.stop()

    def _release(self) -> None:
        with self._lock:
            self._stop_capture()
            self._driver = None
            self._last_stats = None  # counters restart with the next driver
            for stream in (self._raw, self._policy):
                if stream is not None:
                    stream.destroy(self)
            self._raw = self._policy = None
            if self._diag_pub is not None:
                self.destroy_publisher(self._diag_pub)
                self._diag_pub = None

    def _on_param_change(self, _cfg: CameraConfig) -> None:
        self.get_logger().info('camera parameters changed: applied at the next configure')

    # --- diagnostics ------------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        with self._lock:  # a transition must not destroy the publisher under this callback
            self._report()

    def _report(self) -> None:
        driver, pub = self._driver, self._diag_pub
        if driver is None or pub is None or self._raw is None:
            return
        s = driver.stats()
        window, self._latency = self._latency, LatencyWindow(1000)  # latency of this period only
        lat = window.values() * 1e3
        prev = self._last_stats
        self._last_stats = s
        dropped = s.frames_dropped - (prev.frames_dropped if prev else 0)
        errors = s.callback_errors - (prev.callback_errors if prev else 0)
        if s.finished:
            level, message = diagnostics.WARN, 'file replay finished'
        elif not s.connected:
            level, message = diagnostics.ERROR, f'no frames: {s.last_error or "not connected"}'
        elif errors:
            level, message = diagnostics.ERROR, f'{errors} publish errors: {s.last_error}'
        elif dropped:
            level, message = diagnostics.WARN, f'{dropped} frames dropped (publishing too slow)'
        else:
            level, message = diagnostics.OK, 'streaming'
        values = {
            'device': s.device,
            'stamp_source': s.stamp_source,
            'resolution': f'{s.width}x{s.height}',
            'nominal_fps': s.fps,
            'capture_rate_hz': s.capture_rate,
            'publish_rate_hz': self._publish_rate.rate(driver.clock()),
            'latency_p50_ms': float(np.percentile(lat, 50)) if lat.size else float('nan'),
            'latency_p99_ms': float(np.percentile(lat, 99)) if lat.size else float('nan'),
            'latency_max_ms': float(lat.max()) if lat.size else float('nan'),
            'frames_captured': s.frames_captured,
            'frames_published': self._raw.published,
            'frames_dropped': s.frames_dropped,
            'frame_gaps': s.frame_gaps,
            'disconnects': s.disconnects,
            'reconnects': s.reconnects,
            'callback_errors': s.callback_errors,
            'last_error': s.last_error,
        }
        status = diagnostics.status(
            f'{self.get_name()}: camera {driver.config.camera_name}',
            level,
            message,
            values,
            hardware_id=s.device,
        )
        pub.publish(diagnostics.diagnostic_array(self.get_clock().now().to_msg(), [status]))


def main(args: Sequence[str] | None = None) -> int:
    return run_node(CameraNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

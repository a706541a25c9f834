"""The browser view of the graph, for machines without rviz (rerun-sdk, optional; issue 25).

    python -m vla_ros_common.runner config/graphs/deploy.yaml --view    # or: make demo VIEW=1
    python -m vla_viz.web_view_node                                    # join a running graph

then open the URL it logs (http://127.0.0.1:9090/?url=...). Shows the cameras
(``camera/<name>/image_raw`` for each of ``cameras``), the arm from ``robot_description`` moving
with ``joint_states``, the policy's and the expert's action chunks as end-effector paths, the
executed path, joint plots and the episode/instruction text: the same picture as the rviz markers
(:mod:`vla_viz.scene`), drawn by :mod:`vla_viz.web_view`.

Serves on ``bind`` (127.0.0.1: this machine only; 0.0.0.0: other machines too, at
``http://<this host>:<web_port>``), ``grpc_port`` for the data, ``web_port`` for the viewer; the
server keeps at most ``memory_limit`` of history and drops the oldest. The arm and joint plots are
drawn at most ``arm_rate_hz`` times per second of joint_states stamps, the executed path
``path_rate_hz`` times, camera frames as they come. ``save_path`` also records it all to an
.rrd file (``rerun FILE`` or the web viewer opens it later).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math

from rclpy.node import Node
from sensor_msgs.msg import Image, JointState

from vla_core.config import Config, param
from vla_ros_common import qos
from vla_ros_common.conversions import stamp_to_seconds
from vla_ros_common.image import ImageEncodingError, image_to_numpy
from vla_ros_common.node_main import run_node
from vla_ros_common.params import declare_config
from vla_viz.inputs import SceneInputs
from vla_viz.scene import ChunkPath, VizConfig, VizState

__all__ = ['WebViewConfig', 'WebViewNode', 'main']

_MISSING = "the browser view needs rerun-sdk: pip install 'rerun-sdk>=0.41'"


@dataclass(frozen=True, kw_only=True)
class WebViewConfig(Config):
    bind: str = param(
        '127.0.0.1', description='address to serve on: 127.0.0.1 this machine only, 0.0.0.0 all',
        read_only=True,
    )  # fmt: skip
    grpc_port: int = param(9876, description='port of the data (gRPC)', range=(1, 65535),
                           read_only=True)  # fmt: skip
    web_port: int = param(9090, description='port of the web viewer (HTTP)', range=(1, 65535),
                          read_only=True)  # fmt: skip
    memory_limit: str = param(
        '512MB', description='history the server keeps for late browsers; the oldest goes first',
        read_only=True,
    )  # fmt: skip
    cameras: tuple[str, ...] = param(
        ('scene_camera', 'wrist_camera'), description='cameras shown (camera/<name>/image_raw)',
        read_only=True,
    )  # fmt: skip
    arm_rate_hz: float = param(20.0, description='arm pose and joint plot updates per second',
                               range=(0.1, 1000.0))  # fmt: skip
    path_rate_hz: float = param(2.0, description='executed path redraws per second',
                                range=(0.1, 100.0))  # fmt: skip
    save_path: str = param(
        '', description='also record everything shown to this .rrd file (rerun FILE opens it)',
        read_only=True,
    )  # fmt: skip
    jpeg_quality: int = param(
        0, description='camera images JPEG-compressed at this quality (0: raw, 1-100)',
        range=(0, 100),
    )  # fmt: skip


class WebViewNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('web_view', **kwargs)
        cfg = self._cfg = declare_config(self, WebViewConfig).value
        viz = declare_config(self, VizConfig).value
        try:
            import rerun as rr

            from vla_viz.web_view import RerunScene, RerunServer
        except ImportError:
            raise RuntimeError(_MISSING) from None
        self._state = VizState(viz)
        self._server = RerunServer(cfg.bind, cfg.grpc_port, cfg.web_port, cfg.memory_limit)
        self._rec = rr.RecordingStream('vla_view', make_default=False)
        self.scene = RerunScene(self._rec, cfg.cameras)
        sinks = [rr.GrpcSink(self._server.grpc_url)]
        if cfg.save_path:
            sinks.append(rr.FileSink(cfg.save_path))
        self._rec.set_sinks(*sinks, default_blueprint=self.scene.blueprint())
        self._last_arm = -math.inf
        self._last_path = -math.inf
        self.images = self.joint_states = 0  # messages drawn (for benchmarks)
        self.inputs = SceneInputs(
            self, self._state, on_chunk=self._on_chunk, on_joint_state=self._on_joint_state,
            on_description=lambda _urdf: self.scene.set_robot(self._state.model),
        )  # fmt: skip
        for camera in cfg.cameras:
            self.create_subscription(
                Image, f'camera/{camera}/image_raw', lambda m, c=camera: self._on_image(c, m),
                qos.SENSOR_IN,
            )  # fmt: skip
        self.get_logger().info(f'browser view: {self._server.url}')

    @property
    def url(self) -> str:
        return self._server.url

    def _on_chunk(self, path: ChunkPath) -> None:
        self.scene.log_chunk(path, path.role, path.stamp)

    def _on_joint_state(self, msg: JointState) -> None:
        self.joint_states += 1
        t = stamp_to_seconds(msg.header.stamp)
        if t < self._last_arm:  # time went back: a restarted simulator or bag
            self._last_arm = self._last_path = -math.inf
        if t - self._last_arm >= 1.0 / self._cfg.arm_rate_hz:
            self._last_arm = t
            self.scene.log_arm(t, self._state.joint_positions)
            for role, path in self._state.chunk_paths().items():
                if path is None:
                    self.scene.log_chunk(None, role, t)
            self.scene.log_text(t, self._state.text())
        if t - self._last_path >= 1.0 / self._cfg.path_rate_hz:
            self._last_path = t
            self.scene.log_executed(t, self._state.executed.points)

    def _on_image(self, camera: str, msg: Image) -> None:
        try:
            image = image_to_numpy(msg)
        except ImageEncodingError as err:
            self.get_logger().warn(f'camera/{camera}: {err}', throttle_duration_sec=5.0)
            return
        if msg.encoding == 'bgr8':
            image = image[..., ::-1]
        self.scene.log_image(camera, stamp_to_seconds(msg.header.stamp), image,
                             self._cfg.jpeg_quality)  # fmt: skip
        self.images += 1

    def destroy_node(self) -> None:
        rec = getattr(self, '_rec', None)
        if rec is not None:
            rec.flush()
            rec.disconnect()
        server = getattr(self, '_server', None)
        if server is not None:
            server.stop()
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    return run_node(WebViewNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

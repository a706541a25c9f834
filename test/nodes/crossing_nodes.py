"""Test-only nodes for cross-process checks: a deterministic publisher and a recording probe."""

from __future__ import annotations

import hashlib
import json
import threading

from builtin_interfaces.msg import Time
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import Image
from tf2_msgs.msg import TFMessage

from vla_ros_common import qos
from vla_ros_common.image import image_to_numpy, numpy_to_image
from vla_ros_common.tf import to_transform_msg

WIDTH, HEIGHT, PAD = 641, 37, 7  # odd width, rows padded to a non-multiple of the pixel size


def pattern(seq: int) -> np.ndarray:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    return np.stack([(x + seq) % 256, (y * 3 + seq) % 256, (x ^ y) % 256], axis=-1).astype(np.uint8)


def pattern_tf(seq: int) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    angle = 0.01 * seq
    return (0.1 * seq, -0.5, 1.25), (float(np.cos(angle)), 0.0, 0.0, float(np.sin(angle)))


class PatternPublisher(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('pattern', **kwargs)
        self._seq = 0
        self._image_pub = self.create_publisher(Image, 'camera/test/image_raw', qos.SENSOR_OUT)
        self._tf_pub = self.create_publisher(TFMessage, '/tf', qos.TF)
        self.create_timer(1.0 / 30.0, self._tick)

    def _tick(self) -> None:
        self._seq += 1
        stamp = Time(sec=self._seq, nanosec=123)
        msg = numpy_to_image(
            pattern(self._seq),
            'rgb8',
            frame_id='test_optical_frame',
            stamp=stamp,
            step=WIDTH * 3 + PAD,
        )
        self._image_pub.publish(msg)
        xyz, quat = pattern_tf(self._seq)
        self._tf_pub.publish(
            TFMessage(transforms=[to_transform_msg('world', 'probe', xyz, quat, stamp)])
        )


class Probe(Node):
    """Writes one JSON line per received message to the file in parameter ``output``."""

    def __init__(self, **kwargs) -> None:
        super().__init__('probe', **kwargs)
        path = self.declare_parameter('output', '', ParameterDescriptor(read_only=True)).value
        self._out = open(path, 'w')  # noqa: SIM115 - closed in destroy_node
        self._lock = threading.Lock()
        self.create_subscription(Image, 'camera/test/image_raw', self._on_image, qos.SENSOR_IN)
        self.create_subscription(TFMessage, '/tf', self._on_tf('tf'), qos.TF)
        self.create_subscription(
            TFMessage, '/tf_static', self._on_tf('tf_static'), qos.TF_STATIC_IN
        )

    def _write(self, record: dict) -> None:
        with self._lock:
            self._out.write(json.dumps(record) + '\n')
            self._out.flush()

    def _on_image(self, msg: Image) -> None:
        pixels = image_to_numpy(msg)
        self._write({
            'topic': 'image', 'sec': msg.header.stamp.sec, 'nanosec': msg.header.stamp.nanosec,
            'frame_id': msg.header.frame_id, 'encoding': msg.encoding, 'width': msg.width,
            'height': msg.height, 'step': msg.step, 'is_bigendian': msg.is_bigendian,
            'raw_sha256': hashlib.sha256(bytes(msg.data)).hexdigest(),
            'pixels_sha256': hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest(),
        })  # fmt: skip

    def _on_tf(self, topic: str):
        def callback(msg: TFMessage) -> None:
            for t in msg.transforms:
                tr, rot = t.transform.translation, t.transform.rotation
                self._write({
                    'topic': topic, 'parent': t.header.frame_id, 'child': t.child_frame_id,
                    'sec': t.header.stamp.sec, 'xyz': [tr.x, tr.y, tr.z],
                    'quat_wxyz': [rot.w, rot.x, rot.y, rot.z],
                })  # fmt: skip

        return callback

    def destroy_node(self) -> None:
        with self._lock:
            self._out.close()
        super().destroy_node()

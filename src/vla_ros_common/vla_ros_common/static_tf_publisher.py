"""Publishes static extrinsics from parameters on /tf_static (reliable + transient-local).

Parameters (a standard ROS params YAML, see config/extrinsics.yaml):

    static_tf:
      ros__parameters:
        child_frames: [camera_link, camera_optical_frame]
        camera_link: {parent: base_link, xyz: [0.5, 0.0, 0.6], rpy: [0.0, 0.6, 3.1416]}
        camera_optical_frame: {parent: camera_link, rpy: [-1.5708, 0.0, -1.5708]}

Each child takes ``rpy`` (roll, pitch, yaw about fixed axes, REP 103) or ``quat_wxyz``.
"""

from __future__ import annotations

from collections.abc import Sequence

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter
from tf2_msgs.msg import TFMessage

from vla_core.config import ConfigError
from vla_ros_common import qos
from vla_ros_common.node_main import run_node
from vla_ros_common.tf import StaticTransform, tf_message


class StaticTfPublisher(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('static_tf', **kwargs)
        self.transforms = self._read_transforms()
        self._pub = self.create_publisher(
            TFMessage, '/tf_static', qos.TF_STATIC_OUT, qos_overriding_options=qos.qos_overrides()
        )
        self._pub.publish(tf_message(self.transforms, self.get_clock().now().to_msg()))
        self.get_logger().info(
            'static transforms: ' + ', '.join(f'{t.parent}->{t.child}' for t in self.transforms)
        )

    def _read_transforms(self) -> list[StaticTransform]:
        children = self.declare_parameter(
            'child_frames',
            Parameter.Type.STRING_ARRAY,
            ParameterDescriptor(description='child frames to publish', read_only=True),
        ).value
        transforms = []
        for child in children or []:
            parent = self._declare(f'{child}.parent', Parameter.Type.STRING, 'parent frame')
            xyz = self._declare(f'{child}.xyz', [0.0, 0.0, 0.0], 'translation [m]')
            rpy = self._declare(f'{child}.rpy', Parameter.Type.DOUBLE_ARRAY, 'roll pitch yaw [rad]')
            quat = self._declare(
                f'{child}.quat_wxyz', Parameter.Type.DOUBLE_ARRAY, 'rotation quaternion (w x y z)'
            )
            if not parent:
                raise ConfigError(f'{child}.parent', 'is required for every child frame')
            try:
                if quat:
                    transforms.append(StaticTransform(parent, child, tuple(xyz), tuple(quat)))
                else:
                    transforms.append(
                        StaticTransform.from_rpy(parent, child, list(xyz), list(rpy or (0, 0, 0)))
                    )
            except ValueError as err:
                raise ConfigError(child, str(err)) from None
        return transforms

    def _declare(self, name: str, default: object, description: str) -> Sequence | str | None:
        descriptor = ParameterDescriptor(description=description, read_only=True)
        value = self.declare_parameter(name, default, descriptor).value
        return value


def main(args: Sequence[str] | None = None) -> int:
    return run_node(StaticTfPublisher, args)


if __name__ == '__main__':
    raise SystemExit(main())

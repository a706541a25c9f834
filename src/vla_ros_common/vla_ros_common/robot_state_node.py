"""The arm's TF from joint_states and its URDF: robot_state_publisher's job, on any install.

Publishes ``robot_description`` (std_msgs/String, reliable + transient-local, as
robot_state_publisher does), the URDF's fixed joints on ``/tf_static`` once, and for every
``joint_states`` message the moving joints it names (mimic joints with their leader) on ``/tf``,
stamped with the message's stamp, at most ``publish_frequency`` times per second of those stamps.
Joints the URDF lacks are ignored; non-finite positions are dropped and counted. The kinematics are
vla_core's (:class:`~vla_core.kinematics.KinematicTree`); this node only translates.

On a real ROS 2 install the launch files start robot_state_publisher in its place (same topics);
on the wheels path this node is the one owner of the arm's TF.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

from vla_core.config import Config, ConfigError, param
from vla_core.kinematics import KinematicTree, UrdfError, UrdfJoint
from vla_core.robot import Pose
from vla_ros_common import diagnostics, qos
from vla_ros_common.description import load_robot_description
from vla_ros_common.node_main import run_node
from vla_ros_common.params import declare_config
from vla_ros_common.tf import to_transform_msg

__all__ = ['RobotStateConfig', 'RobotStateNode', 'main', 'tf_message_of']


@dataclass(frozen=True, kw_only=True)
class RobotStateConfig(Config):
    urdf_file: str = param(
        'package://vla_description/urdf/vla_arm.urdf',
        description='URDF: package://<pkg>/<path>, file:// or a path (unless robot_description)',
        read_only=True,
    )  # fmt: skip
    robot_description: str = param(
        '', description="URDF text (robot_state_publisher's parameter); overrides urdf_file",
        read_only=True,
    )  # fmt: skip
    frame_prefix: str = param(
        '', description='prefix of every published frame id (several robots in one TF tree)',
        read_only=True,
    )  # fmt: skip
    publish_frequency: float = param(
        20.0, description='most /tf messages per second of joint_states stamps (as '
        'robot_state_publisher); 0: one per joint_states message', range=(0.0, 1000.0),
    )  # fmt: skip
    diagnostics_period: float = param(1.0, description='[s]', range=(0.1, 60.0))


def tf_message_of(
    edges: Sequence[tuple[UrdfJoint, np.ndarray]], stamp: Time, prefix: str = ''
) -> TFMessage:
    """TF edges (parent -> child transforms) as one message."""
    transforms = []
    for joint, t in edges:
        pose = Pose.from_matrix(t[:3, 3], t[:3, :3])
        transforms.append(to_transform_msg(
            prefix + joint.parent, prefix + joint.child, pose.position, pose.quat_wxyz, stamp
        ))  # fmt: skip
    return TFMessage(transforms=transforms)


class RobotStateNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('robot_state', **kwargs)
        cfg = declare_config(self, RobotStateConfig).value
        self._cfg = cfg
        self._urdf = load_robot_description(cfg.urdf_file, cfg.robot_description)
        try:
            self.tree = KinematicTree.from_urdf(self._urdf)
        except UrdfError as err:
            source = 'robot_description' if cfg.robot_description.strip() else cfg.urdf_file
            raise ConfigError('urdf_file', f'{source}: {err}') from None
        # Integer nanoseconds: 0.1 s after 100.0 s is 100.1 s exactly, not 0.0999... later.
        self._interval_ns = round(1e9 / cfg.publish_frequency) if cfg.publish_frequency else 0
        self._last_published: int | None = None
        self._counts = {'joint_states': 0, 'tf_published': 0, 'malformed': 0, 'non_finite': 0}

        self._description_pub = self.create_publisher(String, 'robot_description', qos.LATCHED)
        self._tf_pub = self.create_publisher(TFMessage, '/tf', qos.TF)
        self._tf_static_pub = self.create_publisher(TFMessage, '/tf_static', qos.TF_STATIC_OUT)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS)
        self.create_subscription(JointState, 'joint_states', self._on_joint_states, qos.SENSOR_IN)
        self.create_timer(cfg.diagnostics_period, self._publish_diagnostics)

        self._description_pub.publish(String(data=self._urdf))
        static = self.tree.edges()
        self._tf_static_pub.publish(
            tf_message_of(static, self.get_clock().now().to_msg(), cfg.frame_prefix)
        )
        self.get_logger().info(
            f"robot '{self.tree.name}' (root {self.tree.root}): {len(static)} fixed joints on "
            f'/tf_static, joints {list(self.tree.actuated_joints)} from joint_states on /tf'
        )

    def _on_joint_states(self, msg: JointState) -> None:
        self._counts['joint_states'] += 1
        if len(msg.position) != len(msg.name):
            self._counts['malformed'] += 1
            self.get_logger().warn(
                f'joint_states: {len(msg.name)} names but {len(msg.position)} positions',
                throttle_duration_sec=5.0,
            )
            return
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        last = self._last_published
        if last is not None and last <= stamp < last + self._interval_ns:
            return  # (a stamp before the last: time went back, a restarted bag or sim)
        positions = {}
        for name, value in zip(msg.name, msg.position, strict=True):
            if math.isfinite(value):
                positions[name] = value
            else:
                self._counts['non_finite'] += 1
        edges = self.tree.edges(positions)
        if not edges:
            return
        self._last_published = stamp
        self._tf_pub.publish(tf_message_of(edges, msg.header.stamp, self._cfg.frame_prefix))
        self._counts['tf_published'] += 1

    def _publish_diagnostics(self) -> None:
        bad = self._counts['malformed'] + self._counts['non_finite']
        level = diagnostics.WARN if bad else diagnostics.OK
        message = 'publishing' if self._counts['tf_published'] else 'waiting for joint_states'
        if bad:
            message = f'{bad} malformed or non-finite joint_states values dropped'
        self._diag_pub.publish(diagnostics.diagnostic_array(
            self.get_clock().now().to_msg(),
            [diagnostics.status('robot_state: tf', level, message, dict(self._counts))],
        ))  # fmt: skip


def main(args: Sequence[str] | None = None) -> int:
    return run_node(RobotStateNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

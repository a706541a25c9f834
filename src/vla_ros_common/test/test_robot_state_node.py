"""robot_state_node: the robot description and the arm's TF, observed through what it publishes."""

from __future__ import annotations

from collections.abc import Callable
import math
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

from vla_core.config import ConfigError
from vla_core.kinematics import KinematicTree
from vla_core.robot import Pose
from vla_ros_common import qos
from vla_ros_common.conversions import seconds_to_stamp, stamp_to_seconds
from vla_ros_common.description import resolve_uri
from vla_ros_common.node_main import make_executor
from vla_ros_common.robot_state_node import RobotStateNode

ARM_URDF = 'package://vla_description/urdf/vla_arm.urdf'
ARM = [f'joint{i}' for i in range(1, 7)]
RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)


def wait(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.01)


class Harness:
    """A private context, an executor thread, a probe recording the node's topics."""

    def __init__(self, **params: object) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = make_executor(context=self.context)
        self.node = RobotStateNode(
            context=self.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
        )
        self.probe = Node('probe', context=self.context)
        self.lock = threading.Lock()
        self.msgs: dict[str, list] = {'/tf': [], '/tf_static': [], 'robot_description': []}
        subscriptions = (
            ('/tf', TFMessage, RELIABLE),
            ('/tf_static', TFMessage, qos.TF_STATIC_IN),
            ('robot_description', String, qos.LATCHED),
        )
        for topic, msg_type, profile in subscriptions:
            self.probe.create_subscription(
                msg_type, topic, lambda m, t=topic: self._add(t, m), profile
            )
        self.joints = self.probe.create_publisher(JointState, 'joint_states', qos.SENSOR_OUT)
        for node in (self.node, self.probe):
            self.executor.add_node(node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        wait(lambda: self.node.count_publishers('joint_states') > 0)
        wait(lambda: self.get('robot_description') and self.get('/tf_static'))

    def _add(self, topic: str, msg: object) -> None:
        with self.lock:
            self.msgs[topic].append(msg)

    def get(self, topic: str) -> list:
        with self.lock:
            return list(self.msgs[topic])

    def send(self, stamp: float, names: list[str], positions: list[float]) -> None:
        """Publish one joint state and wait until the node has taken it."""
        before = self.node._counts['joint_states']
        msg = JointState(name=names, position=positions)
        msg.header.stamp = seconds_to_stamp(stamp)
        self.joints.publish(msg)
        wait(lambda: self.node._counts['joint_states'] > before)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def ros():
    harnesses: list[Harness] = []

    def start(**params: object) -> Harness:
        harnesses.append(Harness(**params))
        return harnesses[-1]

    yield start
    for h in harnesses:
        h.close()


def _pose(t) -> Pose:
    tr, r = t.transform.translation, t.transform.rotation
    return Pose(np.array([tr.x, tr.y, tr.z]), np.array([r.w, r.x, r.y, r.z]))


def _chain(edges: dict, frame: str, root: str) -> Pose:
    """Compose the published edges from ``root`` down to ``frame``."""
    pose = Pose(np.zeros(3), np.array([1.0, 0.0, 0.0, 0.0]))
    while frame != root:
        pose = _pose(edges[frame]) * pose
        frame = edges[frame].header.frame_id
    return pose


def test_description_static_and_moving_frames(ros):
    h = ros()  # the default description: vla_description's arm
    urdf = resolve_uri(ARM_URDF).read_text()
    assert h.get('robot_description')[-1].data == urdf
    statics = {t.child_frame_id: t for t in h.get('/tf_static')[-1].transforms}
    assert {c: t.header.frame_id for c, t in statics.items()} == {
        'ee_link': 'link6',
        'wrist_camera_link': 'link6',
        'wrist_camera_optical_frame': 'wrist_camera_link',
    }
    q = [0.3, -0.4, 0.9, -1.2, 0.5, 2.0]
    h.send(12.5, [*ARM, 'gripper', 'not_in_urdf'], [*q, 0.02, 7.0])
    wait(lambda: h.get('/tf'))
    tf = h.get('/tf')[-1]
    edges = {t.child_frame_id: t for t in tf.transforms}
    assert {c: t.header.frame_id for c, t in edges.items()} == {
        'link1': 'base_link', 'link2': 'link1', 'link3': 'link2', 'link4': 'link3',
        'link5': 'link4', 'link6': 'link5', 'left_finger': 'link6', 'right_finger': 'link6',
    }  # fmt: skip
    assert all(stamp_to_seconds(t.header.stamp) == 12.5 for t in tf.transforms)
    # ee_link through the published TF = forward kinematics of the URDF.
    ee = _chain({**statics, **edges}, 'ee_link', 'base_link')
    expected = KinematicTree.from_urdf(urdf).link_pose('ee_link', dict(zip(ARM, q, strict=True)))
    np.testing.assert_allclose(ee.matrix, expected, atol=1e-9)
    # The fingers open symmetrically (right_finger mimics the gripper joint).
    np.testing.assert_allclose(_pose(edges['left_finger']).position, [0, 0.007 + 0.02, -0.074])
    np.testing.assert_allclose(_pose(edges['right_finger']).position, [0, -0.007 - 0.02, -0.074])


def test_zero_configuration_puts_the_tool_down_in_front(ros):
    h = ros(publish_frequency=0.0)
    h.send(1.0, ARM, [0.0] * 6)
    wait(lambda: h.get('/tf'))
    statics = {t.child_frame_id: t for t in h.get('/tf_static')[-1].transforms}
    edges = {t.child_frame_id: t for t in h.get('/tf')[-1].transforms}
    ee = _chain({**statics, **edges}, 'ee_link', 'base_link')
    # Heights 0.05 + 0.1 + 0.32 up, then 0.06 + 0.04 + 0.094 down, 0.3 forward; z points down.
    np.testing.assert_allclose(ee.position, [0.3, 0.0, 0.276], atol=1e-12)
    np.testing.assert_allclose(ee.rotation[:, 2], [0.0, 0.0, -1.0], atol=1e-12)


def test_publish_frequency_counts_joint_state_stamps(ros):
    h = ros(publish_frequency=10.0)
    for stamp in (100.0, 100.05, 100.1, 100.12, 100.2, 50.0):  # the last: time went back
        h.send(stamp, ARM, [0.0] * 6)
    wait(lambda: len(h.get('/tf')) >= 4)
    stamps = [stamp_to_seconds(m.transforms[0].header.stamp) for m in h.get('/tf')]
    assert stamps == pytest.approx([100.0, 100.1, 100.2, 50.0])


def test_bad_values_are_dropped_and_counted(ros):
    h = ros(publish_frequency=0.0, frame_prefix='left/')
    h.send(1.0, ARM, [0.0] * 5)  # 6 names, 5 positions
    h.send(2.0, ARM, [0.0, math.nan, 0.0, 0.0, 0.0, 0.0])
    wait(lambda: h.get('/tf'))
    (tf,) = h.get('/tf')
    children = [t.child_frame_id for t in tf.transforms]
    assert 'left/link2' not in children and 'left/link1' in children
    assert tf.transforms[0].header.frame_id == 'left/base_link'
    assert h.node._counts['malformed'] == 1 and h.node._counts['non_finite'] == 1
    assert all(t.child_frame_id.startswith('left/') for t in h.get('/tf_static')[-1].transforms)


def test_robot_description_text_overrides_the_file(ros):
    urdf = (
        '<robot name="one"><link name="a"/><link name="b"/><joint name="j" type="prismatic">'
        '<parent link="a"/><child link="b"/><axis xyz="0 0 1"/>'
        '<limit lower="0" upper="1" velocity="1" effort="1"/></joint></robot>'
    )
    h = ros(robot_description=urdf, urdf_file='/nonexistent.urdf', publish_frequency=0.0)
    assert h.get('robot_description')[-1].data == urdf
    h.send(1.0, ['j'], [0.25])
    wait(lambda: h.get('/tf'))
    assert _pose(h.get('/tf')[-1].transforms[0]).position[2] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ('params', 'message'),
    [
        ({'urdf_file': '/nonexistent.urdf'}, 'no such file'),
        ({'urdf_file': 'package://no_such_package/x.urdf'}, "package 'no_such_package'"),
        ({'robot_description': '<robot name="r"><joint name="j" type="planar"/></robot>'},
         "type 'planar'"),
    ],
)  # fmt: skip
def test_bad_descriptions_are_one_line_errors(params, message):
    context = Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(ConfigError, match=message):
            RobotStateNode(
                context=context,
                parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
            )
    finally:
        rclpy.shutdown(context=context)

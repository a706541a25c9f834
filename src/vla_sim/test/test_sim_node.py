"""The sim node publishes what hardware would, consistently, and refuses bad commands.

The sim node runs (fast, headless) on a private context with robot_state_node, which owns the TF
of the arm, cameras and IMU (from joint_states and vla_description's vla_tabletop.urdf), as in the
graphs; a probe node records every topic. All checks use the received messages, and the sim's
privileged state only as the reference.
"""

from __future__ import annotations

import itertools
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState
from tf2_msgs.msg import TFMessage

from vla_core.robot import Pose
from vla_interfaces.msg import ActionChunk, EpisodeStatus
from vla_interfaces.srv import ResetEpisode
from vla_ros_common import qos
from vla_ros_common.conversions import stamp_to_seconds
from vla_ros_common.image import image_to_numpy
from vla_ros_common.node_main import make_executor
from vla_ros_common.robot_state_node import RobotStateNode
from vla_sim.scene import MARKER_POS
from vla_sim.sim_node import SimNode

RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
TOPICS = {
    'joint_states': JointState,
    'applied_joint_commands': JointState,
    'imu/data_raw': Imu,
    'camera/scene_camera/image_raw': Image,
    'camera/scene_camera/camera_info': CameraInfo,
    '/tf': TFMessage,
    '/clock': Clock,
    'expert/action_chunk': ActionChunk,
    '/diagnostics': DiagnosticArray,
}


class Probe(Node):
    def __init__(self, context: Context) -> None:
        super().__init__('probe', context=context)
        self.lock = threading.Lock()
        self.received: dict[str, list] = {t: [] for t in [*TOPICS, '/tf_static', 'episode/status']}
        for topic, cls in TOPICS.items():
            self.create_subscription(cls, topic, self._store(topic), RELIABLE)
        self.create_subscription(
            TFMessage, '/tf_static', self._store('/tf_static'), qos.TF_STATIC_IN
        )
        self.create_subscription(
            EpisodeStatus, 'episode/status', self._store('episode/status'), qos.LATCHED
        )
        self.commands = self.create_publisher(JointState, 'joint_commands', qos.COMMAND)

    def _store(self, topic: str):
        def callback(msg) -> None:
            with self.lock:
                self.received[topic].append(msg)

        return callback

    def messages(self, topic: str) -> list:
        with self.lock:
            return list(self.received[topic])

    def wait_for(self, topic: str, count: int, timeout: float = 30.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages(topic)) >= count:
                return self.messages(topic)
            time.sleep(0.02)
        raise AssertionError(f'{topic}: {len(self.messages(topic))} of {count} messages')

    def wait_for_latest(self, topic: str, predicate, timeout: float = 10.0):
        """The newest message on ``topic`` once it satisfies ``predicate`` (messages of earlier
        tests and events, e.g. the abort a reset publishes first, may still be the newest)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages(topic)
            if messages and predicate(messages[-1]):
                return messages[-1]
            time.sleep(0.02)
        latest = self.messages(topic)[-1:] or None
        raise AssertionError(f'{topic}: newest message {latest} never matched')


@pytest.fixture(scope='module')
def graph():
    context = Context()
    rclpy.init(context=context)
    overrides = {
        'real_time_factor': 2.0,
        'camera_rate_hz': 10.0,
        'expert_rate_hz': 2.0,
        'auto_reset': False,
        'sim.calibration_marker': True,
        'sim.control_hz': 100.0,
    }
    node = SimNode(
        context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()]
    )
    robot_state = RobotStateNode(
        context=context,
        parameter_overrides=[
            Parameter('urdf_file', value='package://vla_description/urdf/vla_tabletop.urdf')
        ],
    )
    probe = Probe(context)
    executor = make_executor(context=context)
    for n in (node, robot_state, probe):
        executor.add_node(n)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    probe.wait_for('camera/scene_camera/image_raw', 3)
    probe.wait_for('joint_states', 100)
    probe.wait_for('/tf', 10)
    yield node, probe
    executor.shutdown(timeout_sec=2.0)
    for n in (node, robot_state, probe):
        n.destroy_node()
    rclpy.shutdown(context=context)


def test_message_types_and_frames(graph):
    _, probe = graph
    state = probe.messages('joint_states')[-1]
    assert list(state.name) == [*(f'joint{i}' for i in range(1, 7)), 'gripper']
    assert len(state.position) == len(state.velocity) == len(state.effort) == 7
    image = probe.messages('camera/scene_camera/image_raw')[-1]
    assert (image.encoding, image.header.frame_id) == ('rgb8', 'scene_camera_optical_frame')
    info = probe.messages('camera/scene_camera/camera_info')[-1]
    assert (info.width, info.height) == (image.width, image.height)
    assert info.header.stamp == image.header.stamp
    imu = probe.messages('imu/data_raw')[-1]
    assert imu.header.frame_id == 'imu_link' and imu.orientation_covariance[0] == -1.0
    chunk = probe.wait_for('expert/action_chunk', 1)[-1]
    assert chunk.source == 'expert' and list(chunk.joint_names) == list(state.name)
    assert len(chunk.targets) == chunk.horizon * 7


def test_stamps_are_monotone_and_clock_times(graph):
    _, probe = graph
    states = [stamp_to_seconds(m.header.stamp) for m in probe.messages('joint_states')]
    assert all(b > a for a, b in itertools.pairwise(states))
    clock = {stamp_to_seconds(m.clock) for m in probe.messages('/clock')}
    first, last = min(clock), max(clock)  # what the probe saw of /clock (it matched late or early)

    def seen(times: list[float]) -> list[float]:
        return [t for t in times if first <= t <= last]

    assert len(seen(states)) >= 50
    assert all(t in clock for t in seen(states))
    topics = ('camera/scene_camera/image_raw', 'imu/data_raw', 'expert/action_chunk')
    for topic in topics:
        stamps = seen([stamp_to_seconds(m.header.stamp) for m in probe.messages(topic)])
        assert stamps and all(t in clock for t in stamps), topic


def test_camera_info_projects_the_marker_within_2px(graph):
    _, probe = graph
    statics = {t.child_frame_id: t for m in probe.messages('/tf_static') for t in m.transforms}
    # world -> scene_camera_link -> scene_camera_optical_frame, from the published TF only
    link = _pose(statics['scene_camera_link'])
    optical = _pose(statics['scene_camera_optical_frame'])
    assert statics['scene_camera_link'].header.frame_id == 'world'
    point = (link * optical).inverse().transform_points(np.array(MARKER_POS))
    info = probe.messages('camera/scene_camera/camera_info')[-1]
    k = np.array(info.k).reshape(3, 3)
    uv = (k @ point)[:2] / point[2]
    image = image_to_numpy(probe.messages('camera/scene_camera/image_raw')[-1])
    r, g, b = (image[..., i].astype(int) for i in range(3))
    v, u = np.nonzero((r > 180) & (b > 180) & (g < 90))
    assert u.size >= 3, 'marker not visible'
    assert np.linalg.norm(uv - [u.mean(), v.mean()]) < 2.0


def test_tf_chain_matches_mujoco(graph):
    node, probe = graph
    statics = {t.child_frame_id: t for m in probe.messages('/tf_static') for t in m.transforms}
    tf = probe.messages('/tf')[-1]
    dynamic = {t.child_frame_id: t for t in tf.transforms}
    edges = {**statics, **dynamic}
    chain = []
    frame = 'ee_link'
    while frame != 'world':
        chain.append(edges[frame])
        frame = edges[frame].header.frame_id
    assert [t.child_frame_id for t in reversed(chain)][:3] == ['base_link', 'link1', 'link2']
    pose = Pose(np.zeros(3), np.array([1.0, 0.0, 0.0, 0.0]))
    for t in reversed(chain):
        pose = pose * _pose(t)
    # The arm holds still (no commands): MuJoCo's pose now equals the published one.
    state = probe.messages('joint_states')
    assert np.max(np.abs(state[-1].velocity[:6])) < 1e-3
    ee = node.sim.ee_pose()
    np.testing.assert_allclose(pose.position, ee.position, atol=1e-6)
    assert min(np.abs(pose.quat_wxyz - ee.quat_wxyz).max(),
               np.abs(pose.quat_wxyz + ee.quat_wxyz).max()) < 1e-6  # fmt: skip


def test_imu_reads_plus_g_at_rest(graph):
    _, probe = graph
    imu = probe.messages('imu/data_raw')[-1]
    a = imu.linear_acceleration
    assert a.z == pytest.approx(9.81, abs=0.05)
    assert abs(a.x) < 0.05 and abs(a.y) < 0.05
    w = imu.angular_velocity
    assert max(abs(w.x), abs(w.y), abs(w.z)) < 1e-3


@pytest.mark.parametrize(
    ('names', 'positions', 'reason'),
    [
        (None, [0.0, float('nan'), 0, 0, 0, 0, 0], 'NaN or Inf'),
        (None, [0.0] * 6, '7 joint names but 6 values'),
        ([f'joint{i}' for i in range(1, 7)], [0.0] * 6, "missing joints ['gripper']"),
        (['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'claw'], [0.0] * 7,
         "unknown joint names ['claw']"),
        (None, [float('inf')] * 7, 'NaN or Inf'),
    ],
)  # fmt: skip
def test_bad_commands_are_refused_and_never_applied(graph, names, positions, reason):
    node, probe = graph
    names = names or [f'joint{i}' for i in range(1, 7)] + ['gripper']
    applied_before = len(probe.messages('applied_joint_commands'))
    before = node._counters['rejected_commands']
    probe.commands.publish(JointState(name=names, position=positions))
    deadline = time.monotonic() + 10.0
    while node._counters['rejected_commands'] == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert node._counters['rejected_commands'] == before + 1
    assert reason in node._last_rejection
    diags = _wait_for_diagnostic(probe, reason)
    assert diags.level == b'\x01'
    assert len(probe.messages('applied_joint_commands')) == applied_before
    assert np.all(np.isfinite(node.sim.applied_ctrl))


def test_valid_command_is_applied_with_clipping(graph):
    node, probe = graph
    names = [f'joint{i}' for i in range(1, 7)] + ['gripper']
    before = len(probe.messages('applied_joint_commands'))
    probe.commands.publish(JointState(name=names[::-1], position=[10.0] + [0.0] * 6))
    applied = probe.wait_for('applied_joint_commands', before + 1)[-1]
    assert list(applied.name) == names
    upper = node.sim.limits.position_upper[-1]
    assert applied.position[-1] == pytest.approx(upper)  # gripper 10 m clipped to its limit


def _wait_for_diagnostic(probe: Probe, fragment: str):
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        for msg in reversed(probe.messages('/diagnostics')):
            for status in msg.status:
                if status.name == 'sim: robot' and fragment in status.message:
                    return status
        time.sleep(0.05)
    raise AssertionError(f'no diagnostic mentioning {fragment!r}')


def _pose(t) -> Pose:
    tr, r = t.transform.translation, t.transform.rotation
    return Pose(np.array([tr.x, tr.y, tr.z]), np.array([r.w, r.x, r.y, r.z]))


def test_reset_without_a_task_moves_to_the_next_task_of_the_cycle(graph):
    node, probe = graph
    first = node.task.name
    response = node._on_reset(ResetEpisode.Request(task='', seed=5), ResetEpisode.Response())
    assert response.success and response.seed == 5
    assert node.task.name != first and node.task.name in ('push_green', 'push_blue', 'push_red')
    assert node.task.block in response.instruction
    status = probe.wait_for_latest('episode/status', lambda m: m.seed == 5)
    assert (status.task, status.seed, status.state) == (node.task.name, 5, EpisodeStatus.RUNNING)
    bad = node._on_reset(ResetEpisode.Request(task='juggle', seed=1), ResetEpisode.Response())
    assert not bad.success and "unknown task 'juggle'" in bad.message

"""Command output modes for ros2_control (vla_control.command_output), then the controller node
publishing them from the shipped example configs (config/ros2_control/)."""

from __future__ import annotations

import math
from pathlib import Path
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from vla_control.command_output import CommandOutput, OutputConfig
from vla_control.controller_node import ControllerNode
from vla_core.chunk import ActionChunk
from vla_core.config import ConfigError
from vla_core.control import ChunkTracker, ControlCommand, Reference, TrackerConfig
from vla_interfaces.msg import ActionChunk as ActionChunkMsg
from vla_ros_common import qos
from vla_ros_common.conversions import chunk_to_msg, stamp_to_seconds
from vla_ros_common.node_main import make_executor

NAMES = ('j1', 'j2')
CONFIG = Path(__file__).resolve().parents[3] / 'config'


def _command(t: float, mode: str = 'position', status: str = 'track') -> ControlCommand:
    p, v = np.array([0.1, -0.2]), np.array([0.5, 0.0])
    ref = Reference(t, p, v, np.zeros(2), 0.0)
    effort = np.array([3.0, -4.0]) if mode == 'effort' else None
    return ControlCommand(t, mode, status, 'pid', p, v, effort, ref, v, np.zeros(2))


def _tracker(stamp: float = 10.0) -> ChunkTracker:
    """A tracker on a chunk whose targets ramp at 1 rad/s (j1) and -0.5 rad/s (j2)."""
    tracker = ChunkTracker(TrackerConfig(blend_time=0.0), NAMES)
    times = np.arange(20) * 0.05
    chunk = ActionChunk(stamp, 0.05, NAMES, np.stack([times, -0.5 * times], axis=1))
    assert tracker.push(chunk, stamp)
    tracker.update(stamp)
    return tracker


def _output(tracker: ChunkTracker | None = None, **config) -> CommandOutput:
    tracker = tracker or _tracker()
    return CommandOutput(
        OutputConfig(**config), NAMES, tracker.preview, np.full(2, -5.0), np.full(2, 0.28)
    )


@pytest.mark.parametrize('mode', ['position', 'velocity', 'effort'])
def test_joint_state_carries_the_output_mode_field_in_joint_order(mode):
    cmd = _command(12.5, mode)
    msg = _output().message(cmd)
    assert isinstance(msg, JointState) and list(msg.name) == list(NAMES)
    assert stamp_to_seconds(msg.header.stamp) == pytest.approx(12.5)
    assert list(getattr(msg, mode)) == cmd.values.tolist()
    assert all(len(getattr(msg, f)) == 0 for f in ('position', 'velocity', 'effort') if f != mode)


@pytest.mark.parametrize('mode', ['position', 'velocity', 'effort'])
def test_forward_command_is_the_values_in_joint_order_every_tick(mode):
    out = _output(message='forward_command')
    for t in (1.0, 1.002, 1.004):
        msg = out.message(_command(t, mode))
        assert isinstance(msg, Float64MultiArray)
        assert list(msg.data) == _command(t, mode).values.tolist()
        assert msg.layout.dim[0].size == 2


def test_joint_trajectory_is_the_reference_ahead_stamped_with_the_control_time():
    tracker = _tracker(stamp=10.0)
    out = _output(tracker, message='joint_trajectory', trajectory_points=4, trajectory_dt=0.05)
    msg = out.message(_command(10.2))
    assert isinstance(msg, JointTrajectory) and list(msg.joint_names) == list(NAMES)
    assert stamp_to_seconds(msg.header.stamp) == pytest.approx(10.2)
    offsets = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
    np.testing.assert_allclose(offsets, [0.05, 0.1, 0.15, 0.2], atol=1e-9)
    # The chunk's ramp at 10.25 ... 10.4: positions and velocities of the spline, not the command.
    positions = np.array([p.positions for p in msg.points])
    np.testing.assert_allclose(positions[:, 0], [0.25, 0.28, 0.28, 0.28], atol=1e-3)  # q_max 0.28
    np.testing.assert_allclose(positions[:, 1], [-0.125, -0.15, -0.175, -0.2], atol=1e-3)
    velocities = np.array([p.velocities for p in msg.points])
    np.testing.assert_allclose(velocities[0], [1.0, -0.5], atol=1e-2)
    np.testing.assert_allclose(velocities[1:, 0], 0.0)  # held at the limit: not moving on
    assert all(len(p.accelerations) == 2 for p in msg.points)


def test_joint_trajectory_every_n_ticks_and_at_once_on_a_status_change():
    out = _output(message='joint_trajectory', trajectory_every=3)
    sent = [out.message(_command(10.0 + 0.002 * i)) is not None for i in range(7)]
    assert sent == [True, False, False, True, False, False, True]
    assert out.message(_command(10.016, status='estop')) is not None
    assert out.message(_command(10.018, status='estop')) is None


def test_bad_output_config_is_refused():
    with pytest.raises(ConfigError, match='message'):
        OutputConfig(message='float64')


# --- the node, configured by the shipped files --------------------------------------------------

ARM = ['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper']
RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)


def _wait(cond, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.01)


@pytest.mark.parametrize(
    ('config_file', 'msg_type', 'topic'),
    [
        ('controller_forward_command.yaml', Float64MultiArray,
         '/forward_position_controller/commands'),
        ('controller_joint_trajectory.yaml', JointTrajectory,
         '/joint_trajectory_controller/joint_trajectory'),
    ],
)  # fmt: skip
def test_node_feeds_ros2_control_from_the_example_configs(config_file, msg_type, topic):
    context = Context()
    rclpy.init(context=context)
    executor = make_executor(context=context)
    probe = Node('probe', context=context)
    received: list = []
    lock = threading.Lock()

    def add(msg):
        with lock:
            received.append(msg)

    probe.create_subscription(msg_type, topic, add, RELIABLE)
    states = probe.create_publisher(JointState, 'joint_states', qos.SENSOR_OUT)
    chunks = probe.create_publisher(ActionChunkMsg, 'policy/action_chunk', qos.ACTION_CHUNK)
    args = ['--ros-args', '-r', 'control/reference:=policy/action_chunk']
    for f in (CONFIG / 'controller.yaml', CONFIG / 'ros2_control' / config_file):
        args += ['--params-file', str(f)]
    node = ControllerNode(context=context, cli_args=args, use_global_arguments=False)
    for n in (probe, node):
        executor.add_node(n)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        _wait(lambda: node.count_subscribers(topic) > 0 and states.get_subscription_count() > 0)
        q = np.array([0.0, 0.3, -0.5, 0.0, 0.4, 0.0, 0.02])
        now = probe.get_clock().now().nanoseconds * 1e-9
        ramp = np.linspace(0.0, 0.1, 20)[:, None] * np.eye(7)[0]  # joint1 turns 0.1 rad
        chunk = ActionChunk(now, 0.05, tuple(ARM), q + ramp, source='policy')
        chunks.publish(chunk_to_msg(chunk))
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            msg = JointState(name=ARM, position=q.tolist())
            msg.header.stamp = probe.get_clock().now().to_msg()
            states.publish(msg)
            with lock:
                if len(received) >= 5:
                    break
            time.sleep(0.01)
        with lock:
            got = list(received)
        assert len(got) >= 5
        last = got[-1]
        if msg_type is Float64MultiArray:
            assert len(last.data) == 7 and all(math.isfinite(v) for v in last.data)
            assert max(abs(a - b) for a, b in zip(last.data, q, strict=True)) < 0.15
        else:
            assert list(last.joint_names) == ARM and len(last.points) == 5
            t = stamp_to_seconds(last.header.stamp)
            assert now - 1.0 < t < now + 30.0
            # While tracking, the points follow the chunk's joint1 ramp (2 rad/s at most), joint2
            # stays at the chunk's 0.3.
            positions = np.array([p.positions for p in last.points])
            np.testing.assert_allclose(positions[:, 1], 0.3, atol=1e-6)
            assert np.all(np.diff(positions[:, 0]) >= -1e-9)
    finally:
        executor.shutdown()
        node.destroy_node()
        probe.destroy_node()
        rclpy.shutdown(context=context)
        thread.join(timeout=5.0)

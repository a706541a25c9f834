"""teleop_node on a private context: deadman off -> no chunks; held -> chunks following the input;
released -> one hold chunk and intervention false."""

import os
import time

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool

from vla_interfaces.msg import ActionChunk as ActionChunkMsg
from vla_ros_common import qos
from vla_ros_common.conversions import chunk_from_msg, seconds_to_stamp
from vla_teleop.teleop.gamepad import JS_EVENT_AXIS, JS_EVENT_BUTTON, pack_event
from vla_teleop.teleop_node import TeleopNode

NAMES = ['joint1', 'joint2', 'gripper']


@pytest.fixture
def context():
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


class Rig:
    """The robot's joint_states, a leader arm and its deadman; records the teleop's output."""

    def __init__(self, context: Context, teleop: TeleopNode) -> None:
        self.node = Node('teleop_test_rig', context=context)
        self.teleop = teleop
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(teleop)
        self.executor.add_node(self.node)
        self.state_pub = self.node.create_publisher(JointState, 'joint_states', qos.SENSOR_OUT)
        self.leader_pub = self.node.create_publisher(JointState, 'leader/joint_states', 10)
        self.deadman_pub = self.node.create_publisher(Bool, 'leader/deadman', 10)
        self.chunks = []
        self.flags = []
        self.node.create_subscription(
            ActionChunkMsg, 'expert/action_chunk', lambda m: self.chunks.append(chunk_from_msg(m)),
            qos.ACTION_CHUNK,
        )  # fmt: skip
        self.node.create_subscription(
            Bool, 'teleop/intervention', lambda m: self.flags.append(m.data), 10
        )
        self.q = np.zeros(3)
        self.stamp = 1000.0
        self.leader = None
        self.deadman = None

    def run(self, seconds: float, until=None) -> None:
        end = time.monotonic() + seconds
        next_pub = 0.0
        while time.monotonic() < end:
            if time.monotonic() >= next_pub:
                next_pub = time.monotonic() + 0.01
                self.stamp += 0.01
                msg = JointState(name=NAMES, position=self.q.tolist())
                msg.header.stamp = seconds_to_stamp(self.stamp)
                self.state_pub.publish(msg)
                if self.leader is not None:
                    self.leader_pub.publish(JointState(name=NAMES, position=list(self.leader)))
                if self.deadman is not None:
                    self.deadman_pub.publish(Bool(data=self.deadman))
            self.executor.spin_once(timeout_sec=0.005)
            if until is not None and until():
                return

    def clear(self) -> None:
        self.chunks.clear()
        self.flags.clear()

    def close(self) -> None:
        self.executor.shutdown()
        self.teleop.destroy_node()
        self.node.destroy_node()


def _assert_held_then_silent(rig: Rig) -> None:
    """After a release: the newest chunk holds still, intervention is false, then silence
    (chunks published just before the release may still arrive in the first window)."""
    hold = max(rig.chunks, key=lambda c: c.sequence)
    assert np.ptp(hold.targets, axis=0).max() == 0.0
    assert rig.flags[-1] is False
    assert rig.teleop._counts['hold_chunks'] == 1
    published = rig.teleop._counts['chunks']
    rig.clear()
    rig.run(0.3)
    assert not rig.chunks and rig.flags and not any(rig.flags)
    assert rig.teleop._counts['chunks'] == published


def _teleop(context, **params) -> TeleopNode:
    base = {
        'rate_hz': 50.0,
        'kinematics': 'none',
        'jog.joint_names': NAMES,
        'jog.ee_joints': ['joint1', 'joint2'],
        'jog.velocity_max': [1.0, 1.0, 0.05],
        'jog.position_min': [-2.0, -2.0, 0.0],
        'jog.position_max': [2.0, 2.0, 0.04],
    }
    base.update(params)
    overrides = [Parameter(k, value=v) for k, v in base.items()]
    return TeleopNode(context=context, parameter_overrides=overrides)


def test_leader_arm_deadman_gates_the_expert_stream(context):
    teleop = _teleop(
        context, device='leader_arm', **{'leader.deadman': 'topic', 'leader.deadman_timeout': 0.0}
    )
    rig = Rig(context, teleop)
    try:
        rig.leader = [0.3, -0.2, 0.04]
        rig.deadman = False
        rig.run(0.5, until=lambda: len(rig.flags) >= 10)
        assert rig.flags and not any(rig.flags) and not rig.chunks

        rig.deadman = True
        rig.run(2.0, until=lambda: len(rig.chunks) >= 5)
        assert len(rig.chunks) >= 5 and rig.flags[-1]
        chunk = rig.chunks[-1]
        assert chunk.source == 'teleop_leader_arm' and list(chunk.joint_names) == NAMES
        assert chunk.horizon == 5 and chunk.dt == pytest.approx(0.05)
        assert 1000.0 < chunk.stamp <= rig.stamp + 1e-6  # from joint_states' header
        assert chunk.targets[-1, 0] > chunk.targets[0, 0]  # heading for the leader
        assert chunk.targets[-1, 1] < chunk.targets[0, 1]

        rig.q = np.array([0.3, -0.2, 0.04])  # the follower got there; the leader moves on
        rig.leader = [0.25, -0.2, 0.04]
        rig.clear()
        goal = [0.25, -0.2, 0.04]
        rig.run(3.0, until=lambda: rig.chunks and np.allclose(rig.chunks[-1].targets[-1], goal))
        np.testing.assert_allclose(rig.chunks[-1].targets[-1], goal, atol=1e-6)

        rig.deadman = False
        rig.clear()
        rig.run(0.4)
        _assert_held_then_silent(rig)
        assert not teleop._core.engaged
    finally:
        rig.close()


def test_gamepad_through_a_fifo(context, tmp_path):
    path = tmp_path / 'js0'
    os.mkfifo(path)
    teleop = _teleop(
        context, device='gamepad',
        **{'gamepad.device': str(path), 'gamepad.axis_channels': ['joint2'],
           'gamepad.button_channels': [''], 'gamepad.deadman_button': 1, 'gamepad.speed': 1.0},
    )  # fmt: skip
    rig = Rig(context, teleop)
    writer = os.open(path, os.O_RDWR)  # Linux: no wait for the node to open its end
    try:
        os.write(writer, pack_event(0, JS_EVENT_BUTTON, 1))  # released first: arms the deadman
        rig.run(0.3)
        assert not rig.chunks and not any(rig.flags)
        os.write(writer, pack_event(1, JS_EVENT_BUTTON, 1) + pack_event(32767, JS_EVENT_AXIS, 0))
        rig.run(2.0, until=lambda: len(rig.chunks) >= 3)
        chunk = rig.chunks[-1]
        assert chunk.source == 'teleop_gamepad' and rig.flags[-1]
        np.testing.assert_allclose(np.diff(chunk.targets[:, 1]), 0.05)  # 1 rad/s, 0.05 s steps
        np.testing.assert_allclose(np.diff(chunk.targets[:, 0]), 0.0)
        os.write(writer, pack_event(0, JS_EVENT_BUTTON, 1))
        rig.clear()
        rig.run(0.4)
        _assert_held_then_silent(rig)
    finally:
        os.close(writer)
        rig.close()


def test_keyboard_without_a_terminal_is_disabled_but_alive(context, monkeypatch):
    r, w = os.pipe()
    monkeypatch.setattr('sys.stdin', os.fdopen(r))
    try:
        teleop = _teleop(context, device='keyboard')
        rig = Rig(context, teleop)
        rig.run(0.3)
        assert rig.flags and not any(rig.flags) and not rig.chunks
        assert 'not a terminal' in teleop._device_note
        rig.close()
    finally:
        os.close(w)

"""Publishers the recorder tests record (in-process and through the embedded runner)."""

from __future__ import annotations

from dataclasses import dataclass
import time

from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

from vla_core.config import Config, param
from vla_interfaces.msg import ActionChunk
from vla_ros_common import qos
from vla_ros_common.params import declare_config


@dataclass(frozen=True, kw_only=True)
class DemoPublisherConfig(Config):
    rate_hz: float = param(100.0, description='joint_states/joint_commands rate', range=(1, 2000))
    chunk_every: int = param(5, description='an action chunk every n ticks', range=(1, 1000))
    stamp_lag: float = param(0.0, description='header stamps this much in the past [s]')
    skip_every: int = param(
        0, description='skip two ticks in every n (0: never); stamps then lie on the tick grid',
    )  # fmt: skip


class DemoPublisher(Node):
    """joint_states and joint_commands (position[0] = tick), expert/action_chunk (sequence =
    tick), a latched /tf_static and /robot_description. Stamps are wall time, as on a robot;
    with ``skip_every`` they are start + tick / rate, so the holes are exact stamp gaps whatever
    the timer's jitter on a loaded machine (wall stamps let it blur them: 7 of ~12 seen)."""

    def __init__(self, **kwargs) -> None:
        super().__init__('demo_publisher', **kwargs)
        self.cfg = declare_config(self, DemoPublisherConfig).value
        self.tick = 0
        self._start_ns = time.time_ns()
        # Deep reliable queues: the tests check the recorder, not DDS on a CPU-starved host (a
        # depth-5 sensor queue drops under a 50 ms stall, which the recorder would then report).
        deep = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self.states = self.create_publisher(JointState, '/joint_states', deep)
        self.commands = self.create_publisher(JointState, '/joint_commands', deep)
        self.chunks = self.create_publisher(ActionChunk, '/expert/action_chunk', qos.ACTION_CHUNK)
        self.static = self.create_publisher(TFMessage, '/tf_static', qos.TF_STATIC_OUT)
        self.description = self.create_publisher(String, '/robot_description', qos.LATCHED)
        tf = TransformStamped()
        tf.header.frame_id, tf.child_frame_id = 'world', 'base_link'
        tf.transform.rotation.w = 1.0
        self.static.publish(TFMessage(transforms=[tf]))
        self.description.publish(String(data='<robot name="demo"/>'))
        self.create_timer(1.0 / self.cfg.rate_hz, self._tick)

    def _tick(self) -> None:
        i = self.tick
        self.tick += 1
        if self.cfg.skip_every and i % self.cfg.skip_every >= self.cfg.skip_every - 2:
            return  # a hole in the stream, as a dropped sample upstream would leave
        now_ns = (
            self._start_ns + round(i * 1e9 / self.cfg.rate_hz)
            if self.cfg.skip_every
            else time.time_ns()
        )
        stamp_ns = now_ns - int(self.cfg.stamp_lag * 1e9)
        msg = JointState(name=['j1'], position=[float(i)])
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        self.states.publish(msg)
        self.commands.publish(msg)
        if i % self.cfg.chunk_every == 0:
            chunk = ActionChunk(joint_names=['j1'], step_dt=0.02, horizon=1, targets=[0.0])
            chunk.header.stamp = msg.header.stamp
            chunk.sequence = i // self.cfg.chunk_every
            chunk.source = 'expert'
            self.chunks.publish(chunk)

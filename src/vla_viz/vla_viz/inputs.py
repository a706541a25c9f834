"""The subscriptions both views share: what the graph publishes -> :class:`~vla_viz.scene.VizState`.

``robot_description`` (latched, as rviz's RobotModel reads it), the chunk roles of
:data:`~vla_viz.scene.ROLES`, ``joint_states``, ``instruction`` and ``episode/status``. Malformed
messages are counted and logged, never raised: a view must not stop the graph.
"""

from __future__ import annotations

from collections.abc import Callable

from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from vla_interfaces.msg import ActionChunk as ActionChunkMsg
from vla_interfaces.msg import EpisodeStatus
from vla_ros_common import qos
from vla_ros_common.conversions import chunk_from_msg, stamp_to_seconds
from vla_viz.scene import ROLES, ChunkPath, EpisodeInfo, VizState

__all__ = ['SceneInputs', 'episode_info']


def episode_info(msg: EpisodeStatus) -> EpisodeInfo:
    return EpisodeInfo(
        stamp_to_seconds(msg.header.stamp), int(msg.state), int(msg.episode), msg.task,
        msg.instruction, float(msg.elapsed),
    )  # fmt: skip


class SceneInputs:
    """Subscribes ``node`` to the scene's topics and feeds ``state``. The optional hooks let a view
    react to one input (the browser view logs joint plots and chunk paths as they come)."""

    def __init__(
        self,
        node: Node,
        state: VizState,
        *,
        on_chunk: Callable[[ChunkPath], None] | None = None,
        on_joint_state: Callable[[JointState], None] | None = None,
        on_description: Callable[[str], None] | None = None,
    ) -> None:
        self.node = node
        self.state = state
        self.errors = 0
        self._hooks = (on_chunk, on_joint_state, on_description)
        node.create_subscription(String, 'robot_description', self._on_description, qos.LATCHED)
        for role, topic in ROLES.items():
            node.create_subscription(
                ActionChunkMsg, topic, lambda m, r=role: self._on_chunk(r, m), qos.ACTION_CHUNK
            )
        node.create_subscription(JointState, 'joint_states', self._on_joint_state, qos.SENSOR_IN)
        node.create_subscription(String, 'instruction', self._on_instruction, qos.LATCHED)
        node.create_subscription(EpisodeStatus, 'episode/status', self._on_status, qos.LATCHED)

    def _error(self, what: str, err: Exception) -> None:
        self.errors += 1
        self.node.get_logger().warn(f'{what}: {err}', throttle_duration_sec=5.0)

    def _on_description(self, msg: String) -> None:
        try:
            self.state.set_model(msg.data)
        except Exception as err:  # ValueError, ParseError: a URDF we cannot draw
            self._error('robot_description not usable', err)
            return
        self.node.get_logger().info(
            f"robot '{self.state.model.tree.name}': drawing {self.state.config.ee_link} in "  # type: ignore[union-attr]
            f'{self.state.model.root}'  # type: ignore[union-attr]
        )
        if self._hooks[2] is not None:
            self._hooks[2](msg.data)

    def _on_chunk(self, role: str, msg: ActionChunkMsg) -> None:
        try:
            path = self.state.on_chunk(role, chunk_from_msg(msg))
        except ValueError as err:
            self._error(f'{ROLES[role]} refused', err)
            return
        if path is not None and self._hooks[0] is not None:
            self._hooks[0](path)

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            self.state.on_joint_state(stamp_to_seconds(msg.header.stamp), msg.name, msg.position)
        except ValueError as err:  # names and positions of different lengths
            self._error('joint_states refused', err)
            return
        if self._hooks[1] is not None:
            self._hooks[1](msg)

    def _on_instruction(self, msg: String) -> None:
        self.state.on_instruction(msg.data)

    def _on_status(self, msg: EpisodeStatus) -> None:
        self.state.on_episode(episode_info(msg))

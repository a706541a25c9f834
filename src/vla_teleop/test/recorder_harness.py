"""A recorder and a demo publisher in one private ROS context, and bag-reading helpers."""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import json
from pathlib import Path
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosbags.rosbag2 import Reader

from vla_data.dataset.bag_reader import typestore_of
from vla_ros_common.node_main import make_executor
from vla_teleop.recorder_node import RecorderNode

TOPICS = [
    '/joint_states=sensor_msgs/msg/JointState',
    '/joint_commands=sensor_msgs/msg/JointState',
    '/expert/action_chunk=vla_interfaces/msg/ActionChunk',
    '/tf_static=tf2_msgs/msg/TFMessage',
    '/robot_description=std_msgs/msg/String',
]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = '') -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what or predicate}')
        time.sleep(0.02)


class Harness:
    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = make_executor(context=self.context)
        self.nodes: list[Node] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.probe = Node('probe', context=self.context)
        self.probe.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append, 50)
        self.add(self.probe)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        with contextlib.suppress(ExternalShutdownException, RuntimeError):  # close() stops it
            self.executor.spin()

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def node(self, cls: type, **params: Any) -> Any:
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        return self.add(cls(context=self.context, parameter_overrides=overrides))

    def recorder(
        self, root: Path, node_class: type[RecorderNode] = RecorderNode, **params: Any
    ) -> RecorderNode:
        params.setdefault('topics', TOPICS)
        params.setdefault('min_free_mb', 0.0)
        params.setdefault('graph_period', 0.1)
        params.setdefault('diagnostics_period', 0.2)
        return self.node(node_class, output_dir=str(root), **params)

    def remove(self, node: Node) -> None:
        self.executor.remove_node(node)
        self.nodes.remove(node)
        node.destroy_node()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=2.0)
        for node in reversed(self.nodes):
            node.destroy_node()
        rclpy.shutdown(context=self.context)


def statuses(harness: Harness, name: str) -> list[Any]:
    return [s for a in list(harness.diagnostics) for s in a.status if s.name == name]


def read_bag(path: Path) -> dict[str, Any]:
    """Every message of a bag through rosbags, deserialized with the definitions stored in it."""
    out: dict[str, Any] = {'topics': {}, 'log_times': [], 'counts': {}, 'msgs': {}}
    with Reader(path) as reader:
        store = typestore_of(reader)
        out['counts'] = {c.topic: c.msgcount for c in reader.connections}
        out['message_count'] = reader.message_count
        for conn, log_time, raw in reader.messages():
            out['log_times'].append(log_time)
            out['msgs'].setdefault(conn.topic, []).append(
                (log_time, store.deserialize_cdr(raw, conn.msgtype))
            )
    return out


def episode_json(root: Path, index: int) -> dict[str, Any]:
    return json.loads((root / f'episode_{index:06d}' / 'episode.json').read_text())

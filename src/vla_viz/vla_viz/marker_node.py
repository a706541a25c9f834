"""rviz markers of what the policy, the expert and the arm do (issue 25).

    ros2 run vla_viz marker_node          # or rviz:=true on robot.launch.py / sim.launch.py

Subscribes to ``robot_description``, ``policy/action_chunk``, ``expert/action_chunk``,
``joint_states``, ``instruction`` and ``episode/status`` (:mod:`vla_viz.inputs`); publishes
``viz/markers`` (visualization_msgs/MarkerArray, reliable + transient-local, so an rviz started
later gets the picture) at most ``rate_hz`` times a second, when something changed and at least
once a second. The geometry is :mod:`vla_viz.scene`'s, the messages :mod:`vla_viz.markers`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import time

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from visualization_msgs.msg import MarkerArray

from vla_core.config import Config, param
from vla_ros_common import qos
from vla_ros_common.node_main import run_node
from vla_ros_common.params import declare_config
from vla_viz.inputs import SceneInputs
from vla_viz.markers import MarkerStyle, marker_array
from vla_viz.scene import VizConfig, VizState

__all__ = ['MarkerNode', 'MarkerNodeConfig', 'main']


@dataclass(frozen=True, kw_only=True)
class MarkerNodeConfig(Config):
    rate_hz: float = param(10.0, description='most marker arrays per second', range=(0.1, 100.0))


class MarkerNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('viz_markers', **kwargs)
        self._state = VizState(declare_config(self, VizConfig).value)
        self._style = declare_config(self, MarkerStyle, prefix='style.').value
        rate = declare_config(self, MarkerNodeConfig).value.rate_hz
        self.inputs = SceneInputs(self, self._state)
        self._pub = self.create_publisher(MarkerArray, 'viz/markers', qos.LATCHED)
        self._published_version = -1
        self._published_at = 0.0
        self.published = 0
        # Wall-clock timer: markers keep coming while a simulation is paused.
        self.create_timer(1.0 / rate, self._publish, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _publish(self) -> None:
        now = time.monotonic()
        if self._state.version == self._published_version and now - self._published_at < 1.0:
            return
        msg = marker_array(self._state, self._style)
        if not msg.markers:
            return
        self._pub.publish(msg)
        self._published_version = self._state.version
        self._published_at = now
        self.published += 1


def main(args: Sequence[str] | None = None) -> int:
    return run_node(MarkerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

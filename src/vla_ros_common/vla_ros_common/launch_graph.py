"""Turn a graph YAML into a launch description (real ROS 2 installs; ``launch_ros`` needed).

Every launch file of the suite is two lines around :func:`graph_launch_description`, so launch and
the embedded runner read the same graph. Lifecycle nodes configure and activate themselves
(``autostart`` parameter, default true; set it false to drive them with ``ros2 lifecycle``).
Where robot_state_publisher is installed it replaces our ``robot_state_node`` (same topics, the same
URDF passed as its ``robot_description`` parameter).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
import os
from typing import Any

import yaml

from vla_ros_common.graph import NodeSpec, load_graph

__all__ = ['LaunchEntry', 'graph_launch_description', 'launch_entry']

# Parameters robot_state_publisher shares with robot_state_node (the rest are ours).
_RSP_PARAMETERS = ('publish_frequency', 'frame_prefix', 'use_sim_time')


@dataclass(frozen=True)
class LaunchEntry:
    """What launch_ros' ``Node`` gets for one graph node."""

    package: str
    executable: str
    parameters: list[Any]


def _file_parameters(spec: NodeSpec) -> dict[str, Any]:
    """The top-level parameters the node's YAML files give it (its name's section or ``/**``)."""
    out: dict[str, Any] = {}
    keys = ('/**', spec.name, f'/{spec.name}', spec.fully_qualified_name)
    for path in spec.param_files:
        data = yaml.safe_load(path.read_text()) or {}
        for key in keys:
            section = data.get(key)
            if isinstance(section, Mapping):
                out.update(section.get('ros__parameters') or {})
    return out


def launch_entry(spec: NodeSpec, has_package: Callable[[str], bool]) -> LaunchEntry:
    """``spec`` as launched: itself, or robot_state_publisher for our robot_state_node when
    ``has_package('robot_state_publisher')``."""
    files = [str(p) for p in spec.param_files]
    own = LaunchEntry(spec.package, spec.executable, [*files, dict(spec.inline_params)])
    if spec.executable != 'robot_state_node' or not has_package('robot_state_publisher'):
        return own
    from vla_ros_common.description import load_robot_description
    from vla_ros_common.robot_state_node import RobotStateConfig

    values = {**_file_parameters(spec), **spec.inline_params}
    defaults = RobotStateConfig()
    text = load_robot_description(
        str(values.get('urdf_file', defaults.urdf_file)), str(values.get('robot_description', ''))
    )
    params = {k: values[k] for k in _RSP_PARAMETERS if k in values}
    return LaunchEntry('robot_state_publisher', 'robot_state_publisher',
                       [{'robot_description': text, **params}])  # fmt: skip


def graph_launch_description(default_graph: str):  # -> launch.LaunchDescription
    # Imported here: launch/launch_ros exist only on a real ROS 2 install, and this module must
    # stay importable (and testable) without them.
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    def has_package(name: str) -> bool:
        try:
            get_package_share_directory(name)
        except PackageNotFoundError:
            return False
        return True

    def nodes(context):
        share = get_package_share_directory('vla_bringup')
        config_dir = os.path.join(share, 'config')
        graph_file = LaunchConfiguration('graph').perform(context)
        if not os.path.isabs(graph_file):
            graph_file = os.path.join(config_dir, 'graphs', graph_file)
        namespace = LaunchConfiguration('namespace').perform(context)
        graph = load_graph(graph_file, config_dir)
        entries = [(spec, launch_entry(spec, has_package)) for spec in graph.nodes]
        return [
            Node(
                package=entry.package,
                executable=entry.executable,
                name=spec.name,
                namespace=spec.namespace or namespace,
                parameters=entry.parameters,
                remappings=list(spec.remappings),
                arguments=list(spec.arguments),
                output='screen',
                emulate_tty=True,
            )
            for spec, entry in entries
        ]

    return LaunchDescription(
        [
            DeclareLaunchArgument(
                'graph',
                default_value=default_graph,
                description='graph YAML: a file in share/vla_bringup/config/graphs or a path',
            ),
            DeclareLaunchArgument(
                'namespace',
                default_value='',
                description='namespace of every node whose graph entry sets none',
            ),
            OpaqueFunction(function=nodes),
        ]
    )

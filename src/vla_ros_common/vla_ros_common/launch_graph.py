"""Turn a graph YAML into a launch description (real ROS 2 installs; ``launch_ros`` needed).

Every launch file of the suite is two lines around :func:`graph_launch_description`, so launch and
the embedded runner read the same graph. Lifecycle nodes configure and activate themselves
(``autostart`` parameter, default true; set it false to drive them with ``ros2 lifecycle``).
"""

from __future__ import annotations

import os

__all__ = ['graph_launch_description']


def graph_launch_description(default_graph: str):  # -> launch.LaunchDescription
    # Imported here: launch/launch_ros exist only on a real ROS 2 install, and this module must
    # stay importable (and testable) without them.
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription
    from vla_ros_common.graph import load_graph

    def nodes(context):
        share = get_package_share_directory('vla_bringup')
        config_dir = os.path.join(share, 'config')
        graph_file = LaunchConfiguration('graph').perform(context)
        if not os.path.isabs(graph_file):
            graph_file = os.path.join(config_dir, 'graphs', graph_file)
        namespace = LaunchConfiguration('namespace').perform(context)
        graph = load_graph(graph_file, config_dir)
        return [
            Node(
                package=spec.package,
                executable=spec.executable,
                name=spec.name,
                namespace=spec.namespace or namespace,
                parameters=[*(str(p) for p in spec.param_files), dict(spec.inline_params)],
                remappings=list(spec.remappings),
                arguments=list(spec.arguments),
                output='screen',
                emulate_tty=True,
            )
            for spec in graph.nodes
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

"""The loop in simulation.

    ros2 launch vla_bringup sim.launch.py [graph:=deploy.yaml] [namespace:=...]

The nodes, parameters and remappings are those of config/graphs/deploy.yaml, the graph `make demo`
runs with the embedded runner.
"""

from vla_ros_common.launch_graph import graph_launch_description


def generate_launch_description():
    return graph_launch_description(default_graph='deploy.yaml')

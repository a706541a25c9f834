"""The loop in simulation.

    ros2 launch vla_bringup sim.launch.py [graph:=deploy.yaml] [namespace:=...] [rviz:=true]
                                          [view:=true]

The nodes, parameters and remappings are those of config/graphs/deploy.yaml, the graph `make demo`
runs with the embedded runner. rviz:=true adds rviz2 (config/rviz/vla.rviz) and its markers,
view:=true the browser view (rerun-sdk), as `make demo VIEW=1` does without ROS 2 installed.
"""

from vla_ros_common.launch_graph import graph_launch_description


def generate_launch_description():
    return graph_launch_description(default_graph='deploy.yaml')

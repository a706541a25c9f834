"""The robot graph on hardware.

    ros2 launch vla_bringup robot.launch.py [graph:=robot.yaml] [namespace:=...] [rviz:=true]
                                            [view:=true]

The nodes, parameters and remappings are those of config/graphs/robot.yaml, the same file the
embedded runner (vla run) reads. rviz:=true adds rviz2 (config/rviz/vla.rviz) and its
markers, view:=true the browser view (rerun-sdk).
"""

from vla_ros_common.launch_graph import graph_launch_description


def generate_launch_description():
    return graph_launch_description(default_graph='robot.yaml')

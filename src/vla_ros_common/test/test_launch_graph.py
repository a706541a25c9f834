"""What launch would start for a graph node (launch_ros itself is not installable here)."""

from __future__ import annotations

from pathlib import Path

from vla_ros_common.graph import load_graph
from vla_ros_common.launch_graph import launch_entry

URDF = (
    '<robot name="one"><link name="a"/><link name="b"/>'
    '<joint name="j" type="fixed"><parent link="a"/><child link="b"/></joint></robot>'
)


def _graph(tmp_path: Path):
    (tmp_path / 'graphs').mkdir()
    (tmp_path / 'one.urdf').write_text(URDF)
    (tmp_path / 'robot_state.yaml').write_text(
        'robot_state:\n  ros__parameters:\n'
        f'    urdf_file: {tmp_path / "one.urdf"}\n    publish_frequency: 30.0\n'
        '    diagnostics_period: 2.0\n'
    )
    path = tmp_path / 'graphs' / 'g.yaml'
    path.write_text(
        'nodes:\n'
        '  - {name: robot_state, package: vla_ros_common, executable: robot_state_node,\n'
        '     plugin: "vla_ros_common.robot_state_node:RobotStateNode",\n'
        '     parameters: [robot_state.yaml, {use_sim_time: true, frame_prefix: r/}]}\n'
        '  - {name: mon, package: vla_ros_common, executable: graph_monitor,\n'
        '     plugin: "vla_ros_common.graph_monitor:GraphMonitor", parameters: [{period_s: 3.0}]}\n'
    )
    return load_graph(path)


def test_robot_state_publisher_replaces_our_node_where_installed(tmp_path):
    graph = _graph(tmp_path)
    entry = launch_entry(graph.node('robot_state'), lambda name: name == 'robot_state_publisher')
    assert (entry.package, entry.executable) == ('robot_state_publisher', 'robot_state_publisher')
    # The URDF as text (its parameter), and only the parameters robot_state_publisher has.
    assert entry.parameters == [
        {'robot_description': URDF, 'publish_frequency': 30.0, 'frame_prefix': 'r/',
         'use_sim_time': True}
    ]  # fmt: skip


def test_our_nodes_launch_as_themselves_without_it(tmp_path):
    graph = _graph(tmp_path)
    spec = graph.node('robot_state')
    entry = launch_entry(spec, lambda name: False)
    assert (entry.package, entry.executable) == ('vla_ros_common', 'robot_state_node')
    assert entry.parameters == [
        str(tmp_path / 'robot_state.yaml'), {'use_sim_time': True, 'frame_prefix': 'r/'}
    ]  # fmt: skip
    monitor = launch_entry(graph.node('mon'), lambda name: True)
    assert (monitor.package, monitor.executable) == ('vla_ros_common', 'graph_monitor')

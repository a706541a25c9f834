"""The launch files, graph YAMLs, installed tree and node code agree with each other.

launch_ros is not installable here, so the launch files cannot be executed; instead every graph
they name is checked against what `ros2 launch` would need: the executable installed where
`ros2 run` looks, its parameter files installed in share/vla_bringup/config, and the node class
the embedded runner uses being the one the executable's main() runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

from console_scripts import console_scripts
import pytest
from rclpy.lifecycle import LifecycleNode
from rclpy.node import Node

from vla_ros_common.graph import load_graph, resolve_plugin

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / 'install'
SHARE = INSTALL / 'vla_bringup' / 'share' / 'vla_bringup'
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))
GRAPHS = sorted((ROOT / 'config' / 'graphs').glob('*.yaml'))


def _default_graph(launch_file: Path) -> str:
    tree = ast.parse(launch_file.read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, 'id', '') == 'graph_launch_description'
        ):
            for kw in node.keywords:
                if kw.arg == 'default_graph':
                    return ast.literal_eval(kw.value)
    raise AssertionError(f'{launch_file.name} does not call graph_launch_description')


def test_robot_launch_exists_and_names_a_graph():
    names = {f.name for f in LAUNCH_FILES}
    assert {'robot.launch.py', 'sim.launch.py'} <= names
    for launch_file in LAUNCH_FILES:
        assert (ROOT / 'config' / 'graphs' / _default_graph(launch_file)).is_file()
        compile(launch_file.read_text(), str(launch_file), 'exec')


@pytest.mark.parametrize('launch_file', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_files_are_installed(launch_file):
    installed = SHARE / 'launch' / launch_file.name
    assert installed.is_file(), f'{installed} missing: run colcon build'
    assert installed.read_text() == launch_file.read_text()


@pytest.mark.parametrize('graph_file', GRAPHS, ids=lambda p: p.name)
def test_every_graph_node_is_runnable_both_ways(graph_file):
    installed_graph = SHARE / 'config' / 'graphs' / graph_file.name
    assert installed_graph.is_file(), f'{installed_graph} missing: run colcon build'
    graph = load_graph(installed_graph, SHARE / 'config')  # params resolve in the install tree
    assert graph.nodes
    for spec in graph.nodes:
        for params in spec.param_files:
            assert params.is_file() and SHARE in params.parents
        executable = INSTALL / spec.package / 'lib' / spec.package / spec.executable
        assert executable.is_file(), f'{spec.name}: ros2 run would not find {executable}'
        target = console_scripts(spec.package).get(spec.executable)
        assert target, f'{spec.executable} is not a console script of {spec.package}'
        module, _, function = target.partition(':')
        assert function == 'main'
        assert spec.plugin.split(':')[0] == module, (
            f'{spec.name}: runner uses {spec.plugin}, ros2 run uses {target}'
        )
        cls = resolve_plugin(spec.plugin)
        assert issubclass(cls, Node)
        assert issubclass(cls, LifecycleNode) == spec.lifecycle, (
            f"{spec.name}: 'lifecycle' in the graph must say whether {cls.__name__} is one"
        )


@pytest.mark.parametrize(
    ('graph_name', 'robot'),
    [('expert', 'vla_tabletop'), ('deploy', 'vla_tabletop'), ('collect', 'vla_tabletop'),
     ('robot', 'vla_arm')],
)  # fmt: skip
def test_arm_tf_has_one_owner_and_the_right_description(graph_name, robot):
    """robot_state (or robot_state_publisher in its place) publishes the description the graph
    needs, and no other node of the graph publishes the frames it owns."""
    from vla_core.kinematics import KinematicTree
    from vla_description import urdf_path
    from vla_ros_common.launch_graph import launch_entry

    graph = load_graph(SHARE / 'config' / 'graphs' / f'{graph_name}.yaml', SHARE / 'config')
    owners = [s for s in graph.nodes if s.executable == 'robot_state_node']
    assert len(owners) == 1
    entry = launch_entry(owners[0], lambda name: name == 'robot_state_publisher')
    text = entry.parameters[0]['robot_description']
    assert text == urdf_path(robot).read_text()
    static = [s for s in graph.nodes if s.executable == 'static_tf_publisher']
    if static:  # the cell's extrinsics: frames the description must not also claim
        import yaml

        params = yaml.safe_load(static[0].param_files[0].read_text())['static_tf']
        described = set(KinematicTree.from_urdf(text).links) - {KinematicTree.from_urdf(text).root}
        assert described.isdisjoint(params['ros__parameters']['child_frames'])

"""config/rviz/vla.rviz against the graphs `rviz:=true` starts it with (rviz cannot run here).

Every node of the graph, plus the marker node rviz:=true adds, is created in-process (hardware
drivers on their stand-ins: the camera's test pattern, an IMU that waits for its port); the topics
their publishers have, with types, and the frames they put in TF (the robot description's links,
static extrinsics) are what rviz would find. Every display's topic must be published with the type
the display reads, and every frame the config names must exist. The policy node is left out: it
needs a trained artifact, and rviz shows none of its topics.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import rclpy
from rclpy.context import Context
from rclpy.lifecycle import LifecycleNode
from rclpy.parameter import Parameter
import yaml

from vla_ros_common.graph import load_graph, resolve_plugin, with_views

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / 'config'
RVIZ = CONFIG / 'rviz' / 'vla.rviz'
# What each rviz display reads from its topic.
DISPLAY_TYPES = {
    'rviz_default_plugins/RobotModel': 'std_msgs/msg/String',
    'rviz_default_plugins/Image': 'sensor_msgs/msg/Image',
    'rviz_default_plugins/MarkerArray': 'visualization_msgs/msg/MarkerArray',
}
# Stand-ins for hardware, so the drivers' nodes can be created here.
STAND_INS = {
    'camera_node': {'source': 'test_pattern'},
    'imu_node': {'wait_for_device': True},
}
SKIPPED = {'policy_node'}


def _displays() -> tuple[list[dict], str]:
    manager = yaml.safe_load(RVIZ.read_text())['Visualization Manager']
    return manager['Displays'], manager['Global Options']['Fixed Frame']


def _type_name(msg_type: type) -> str:
    package = msg_type.__module__.split('.')[0]
    return f'{package}/msg/{msg_type.__name__}'


def _graph_offer(graph_name: str) -> tuple[dict[str, set[str]], set[str]]:
    """Topics published (with their types) and TF frames of the graph, as its nodes create them."""
    graph = with_views(load_graph(CONFIG / 'graphs' / f'{graph_name}.yaml'), ['viz_markers'])
    context = Context()
    rclpy.init(context=context)
    nodes = []
    topics: dict[str, set[str]] = {}
    frames: set[str] = set()
    try:
        for spec in graph.nodes:
            if spec.executable in SKIPPED:
                continue
            params = {**spec.inline_params, **STAND_INS.get(spec.executable, {})}
            if spec.lifecycle:
                params['autostart'] = False
            node = resolve_plugin(spec.plugin)(
                context=context,
                cli_args=[*spec.arguments, *spec.ros_arguments()],
                use_global_arguments=False,
                parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
            )
            nodes.append(node)
            if isinstance(node, LifecycleNode):
                node.trigger_configure()  # lifecycle nodes create their publishers here
            for pub in node.publishers:
                topics.setdefault(pub.topic_name, set()).add(_type_name(pub.msg_type))
            if spec.executable == 'robot_state_node':
                frames.update(node.tree.links)
            if spec.executable == 'static_tf_publisher':
                frames.update(f for t in node.transforms for f in (t.parent, t.child))
    finally:
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.shutdown(context=context)
    return topics, frames


@pytest.mark.parametrize(
    ('graph_name', 'absent'),
    [
        ('deploy', set()),  # sim.launch.py's default: the simulated cell has both cameras
        # robot.launch.py's default: robot.yaml has no wrist camera node yet (rviz shows
        # "no image" there until one is added).
        ('robot', {'/camera/wrist_camera/image_raw'}),
    ],
)
def test_every_display_topic_and_frame_exists_in_the_graph(graph_name, absent):
    displays, fixed_frame = _displays()
    topics, frames = _graph_offer(graph_name)
    assert fixed_frame in frames, f'fixed frame {fixed_frame} not in {sorted(frames)}'
    missing = set()
    shown = set()
    for display in displays:
        cls = display['Class']
        topic = (display.get('Topic') or display.get('Description Topic') or {}).get('Value')
        for key in ('Reference Frame', 'Target Frame'):
            frame = display.get(key, '<Fixed Frame>')
            assert frame == '<Fixed Frame>' or frame in frames, f'{display["Name"]}: {frame}'
        if topic is None:
            assert cls in ('rviz_default_plugins/Grid', 'rviz_default_plugins/TF'), cls
            continue
        shown.add(topic)
        if topic not in topics:
            missing.add(topic)
            continue
        assert DISPLAY_TYPES[cls] in topics[topic], f'{topic}: {topics[topic]} for {cls}'
    assert missing == absent
    # What the issue asks rviz to show: the model, TF, both cameras and the markers.
    assert {'/robot_description', '/viz/markers', '/camera/scene_camera/image_raw',
            '/camera/wrist_camera/image_raw'} <= shown  # fmt: skip
    assert '/tf' in topics and '/tf_static' in topics
    classes = {d['Class'] for d in displays}
    assert {'rviz_default_plugins/RobotModel', 'rviz_default_plugins/TF'} <= classes

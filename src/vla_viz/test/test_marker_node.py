"""marker_node in-process: what it publishes on viz/markers for what the graph publishes."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

from vla_core.chunk import ActionChunk
from vla_description import urdf_path
from vla_interfaces.msg import ActionChunk as ActionChunkMsg
from vla_interfaces.msg import EpisodeStatus
from vla_ros_common import qos
from vla_ros_common.conversions import chunk_to_msg, seconds_to_stamp, stamp_to_seconds
from vla_ros_common.node_main import make_executor
from vla_viz.marker_node import MarkerNode
from vla_viz.scene import ArmModel

URDF = urdf_path('vla_tabletop').read_text()
JOINTS = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper')


@pytest.fixture
def graph():
    context = Context()
    rclpy.init(context=context)
    executor = make_executor(context=context)
    probe = Node('probe', context=context)
    node = MarkerNode(context=context)
    for n in (probe, node):
        executor.add_node(n)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield probe, node
    executor.shutdown()
    node.destroy_node()
    probe.destroy_node()
    rclpy.shutdown(context=context)
    thread.join(timeout=5.0)


def test_markers_show_both_chunks_the_executed_path_and_the_episode(graph, wait):
    probe, node = graph
    arrays: list[MarkerArray] = []
    lock = threading.Lock()

    def add(msg: MarkerArray) -> None:
        with lock:
            arrays.append(msg)

    probe.create_subscription(MarkerArray, 'viz/markers', add, qos.LATCHED)
    pubs = {
        'description': probe.create_publisher(String, 'robot_description', qos.LATCHED),
        'policy': probe.create_publisher(ActionChunkMsg, 'policy/action_chunk', qos.ACTION_CHUNK),
        'expert': probe.create_publisher(ActionChunkMsg, 'expert/action_chunk', qos.ACTION_CHUNK),
        'joints': probe.create_publisher(JointState, 'joint_states', qos.SENSOR_OUT),
        'instruction': probe.create_publisher(String, 'instruction', qos.LATCHED),
        'status': probe.create_publisher(EpisodeStatus, 'episode/status', qos.LATCHED),
    }
    wait(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()))
    pubs['description'].publish(String(data=URDF))
    wait(lambda: node._state.model is not None)
    pubs['status'].publish(
        EpisodeStatus(header=_header(9.5), state=0, episode=4, task='push_blue',
                      instruction='push the blue block')
    )  # fmt: skip
    pubs['instruction'].publish(String(data='push the blue block'))
    wait(lambda: node._state.episode is not None and node._state.instruction)
    rng = np.random.default_rng(0)
    policy = ActionChunk(10.0, 0.1, JOINTS, rng.uniform(-1, 1, (6, 7)), 'policy', 3)
    expert = ActionChunk(10.05, 0.1, JOINTS, rng.uniform(-1, 1, (6, 7)), 'expert', 8)
    pubs['policy'].publish(chunk_to_msg(policy))
    pubs['expert'].publish(chunk_to_msg(expert))
    qs = rng.uniform(-1, 1, (3, 7))
    for i, q in enumerate(qs):
        msg = JointState(name=list(JOINTS), position=q.tolist())
        msg.header = _header(10.0 + 0.1 * i)
        pubs['joints'].publish(msg)
        wait(lambda i=i: len(node._state.executed) == i + 1)

    def complete() -> dict[tuple[str, int], Marker] | None:
        with lock:
            last = arrays[-1] if arrays else None
        if last is None:
            return None
        markers = {(m.ns, m.id): m for m in last.markers if m.action == Marker.ADD}
        want = {('policy_chunk', 0), ('expert_chunk', 0), ('executed', 0), ('episode', 0)}
        ok = want <= set(markers) and len(markers[('executed', 0)].points) == 3
        return markers if ok and 'episode 4' in markers[('episode', 0)].text else None

    wait(lambda: complete() is not None)
    markers = complete()
    model = ArmModel(URDF)
    for role, chunk in (('policy', policy), ('expert', expert)):
        line = markers[(f'{role}_chunk', 0)]
        assert line.header.frame_id == 'world'
        assert stamp_to_seconds(line.header.stamp) == pytest.approx(chunk.stamp)
        got = np.array([[p.x, p.y, p.z] for p in line.points])
        np.testing.assert_allclose(got, model.ee_points(JOINTS, chunk.targets), atol=1e-9)
        assert line.text == f'{role} #{chunk.sequence}'
    executed = markers[('executed', 0)]
    assert stamp_to_seconds(executed.header.stamp) == pytest.approx(10.2)
    got = np.array([[p.x, p.y, p.z] for p in executed.points])
    np.testing.assert_allclose(got, [model.ee_point(dict(zip(JOINTS, q, strict=True))) for q in qs])
    text = markers[('episode', 0)]
    assert text.text == 'episode 4 · push_blue · running\n"push the blue block"'
    assert stamp_to_seconds(text.header.stamp) == pytest.approx(9.5)
    assert node.inputs.errors == 0


def test_malformed_inputs_are_counted_not_raised(graph, wait):
    probe, node = graph
    chunk_pub = probe.create_publisher(ActionChunkMsg, 'policy/action_chunk', qos.ACTION_CHUNK)
    desc_pub = probe.create_publisher(String, 'robot_description', qos.LATCHED)
    wait(lambda: chunk_pub.get_subscription_count() > 0 and desc_pub.get_subscription_count() > 0)
    desc_pub.publish(String(data='<robot name="x"><link name="a"/></robot>'))  # no ee_link
    bad = ActionChunkMsg(joint_names=['joint1'], horizon=2, step_dt=0.1, targets=[0.0])
    chunk_pub.publish(bad)
    wait(lambda: node.inputs.errors == 2)
    assert node._state.model is None


def _header(t: float):
    from std_msgs.msg import Header

    return Header(stamp=seconds_to_stamp(t))

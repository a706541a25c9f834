"""web_view node in-process (rerun-sdk optional): the graph's messages end up in the recording the
browser is served, read back from the copy it saves (save_path)."""

from __future__ import annotations

import subprocess
import threading
import time

import numpy as np
import pytest

rr = pytest.importorskip('rerun')

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from vla_core.chunk import ActionChunk  # noqa: E402
from vla_description import urdf_path  # noqa: E402
from vla_interfaces.msg import ActionChunk as ActionChunkMsg  # noqa: E402
from vla_ros_common import qos  # noqa: E402
from vla_ros_common.conversions import chunk_to_msg, seconds_to_stamp  # noqa: E402
from vla_ros_common.image import numpy_to_image  # noqa: E402
from vla_ros_common.node_main import make_executor  # noqa: E402
from vla_viz.web_view import rerun_binary  # noqa: E402
from vla_viz.web_view_node import WebViewNode  # noqa: E402

JOINTS = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper')


def test_graph_messages_reach_the_served_recording(tmp_path, ports, listening, wait):
    context = Context()
    rclpy.init(context=context)
    executor = make_executor(context=context)
    grpc_port, web_port = ports(), ports()
    params = {'grpc_port': grpc_port, 'web_port': web_port, 'memory_limit': '64MB',
              'save_path': str(tmp_path / 'view.rrd'), 'cameras': ['scene_camera']}  # fmt: skip
    node = WebViewNode(
        context=context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
    )
    probe = Node('probe', context=context)
    for n in (probe, node):
        executor.add_node(n)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        assert listening(web_port) == {'127.0.0.1'}
        assert node.url.startswith(f'http://127.0.0.1:{web_port}/?url=')
        desc = probe.create_publisher(String, 'robot_description', qos.LATCHED)
        joints = probe.create_publisher(JointState, 'joint_states', qos.SENSOR_OUT)
        chunks = probe.create_publisher(ActionChunkMsg, 'expert/action_chunk', qos.ACTION_CHUNK)
        camera = probe.create_publisher(Image, 'camera/scene_camera/image_raw', qos.SENSOR_OUT)
        wait(lambda: all(p.get_subscription_count() > 0 for p in (desc, joints, chunks, camera)))
        desc.publish(String(data=urdf_path('vla_tabletop').read_text()))
        wait(lambda: node.scene.model is not None)
        chunks.publish(chunk_to_msg(ActionChunk(1.0, 0.1, JOINTS, np.zeros((8, 7)), 'expert')))
        for i in range(10):
            msg = JointState(name=list(JOINTS), position=[0.05 * i] * 7)
            msg.header.stamp = seconds_to_stamp(1.0 + 0.1 * i)
            joints.publish(msg)
            time.sleep(0.02)
        image = numpy_to_image(np.full((32, 32, 3), 200, np.uint8), 'rgb8')
        image.header.stamp = seconds_to_stamp(1.5)
        camera.publish(image)
        wait(lambda: node.images == 1)
    finally:
        executor.shutdown()
        node.destroy_node()  # flushes the recording and stops the server
        probe.destroy_node()
        rclpy.shutdown(context=context)
        thread.join(timeout=5.0)
    assert not listening(web_port)
    printed = subprocess.run(
        [rerun_binary(), 'rrd', 'print', str(tmp_path / 'view.rrd')],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    for entity, column in (
        ('/world/robot/link3', 'Transform3D'),
        ('/world/chunks/expert/path', 'LineStrips3D:strips'),
        ('/world/executed', 'LineStrips3D:strips'),
        ('/joints', 'Scalars:scalars'),
        ('/camera/scene_camera', 'Image:buffer'),
        ('/episode', 'TextDocument:text'),
    ):
        assert any(f' - {entity} - ' in line and column in line for line in printed.splitlines()), (
            entity
        )

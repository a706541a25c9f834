"""The camera lifecycle node, observed only through what it publishes and logs."""

from __future__ import annotations

from collections.abc import Callable
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo as CameraInfoMsg
from sensor_msgs.msg import Image
from sensor_test_utils import decode_level, write_video
import yaml

from vla_ros_common.conversions import stamp_to_seconds
from vla_ros_common.image import image_to_numpy
from vla_ros_common.node_main import make_executor
from vla_sensors.camera import CameraDriver
from vla_sensors.camera_info import CameraInfo, dump_camera_info
from vla_sensors.camera_node import CameraNode
from vla_sensors.camera_sources import (
    ENCODINGS,
    PATTERN_BARS_BGR,
    CameraDisconnectedError,
    CameraError,
    FrameSource,
    RawFrame,
)

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
ROOT = Path(__file__).resolve().parents[3]
# Every message must arrive in these tests: a reliable reader with room for a whole clip.
RUNNER = [sys.executable, '-m', 'vla_ros_common.runner']
RELIABLE = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)


class Probe:
    """Records every message of the topics it subscribes to, with its arrival time."""

    def __init__(self, context: Context) -> None:
        self.node = Node('probe', context=context)
        self.lock = threading.Lock()
        self.msgs: dict[str, list[tuple[object, float]]] = {}

    def listen(self, msg_type: type, topic: str) -> None:
        self.msgs[topic] = []
        self.node.create_subscription(msg_type, topic, lambda m, t=topic: self._add(t, m), RELIABLE)

    def _add(self, topic: str, msg: object) -> None:
        with self.lock:
            self.msgs[topic].append((msg, time.time()))

    def get(self, topic: str) -> list[tuple[object, float]]:
        with self.lock:
            return list(self.msgs[topic])

    def wait(self, cond: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, 'timed out'
            time.sleep(0.01)


class Ros:
    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = make_executor(context=self.context)
        self.nodes: list[Node] = []
        self.probe = Probe(self.context)
        self.add(self.probe.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def camera(self, cls: type[CameraNode] = CameraNode, **params: object) -> CameraNode:
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        node = cls(context=self.context, parameter_overrides=overrides)
        return self.add(node)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        for node in reversed(self.nodes):
            node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def ros():
    r = Ros()
    yield r
    r.close()


def _state(node: CameraNode) -> str:
    return node._state_machine.current_state[1]  # rclpy has no public accessor


def _matched(node: Node, topic: str) -> Callable[[], bool]:
    return lambda: node.count_subscribers(topic) > 0


def _statuses(probe: Probe, name: str) -> list:
    return [s for m, _ in probe.get('/diagnostics') for s in m.status if s.name == name]


def _calibration(path: Path, width: int, height: int) -> Path:
    info = CameraInfo(
        width=width,
        height=height,
        camera_name='scene',
        d=(0.1, -0.2, 0.0, 0.0, 0.0),
        k=(100.0, 0.0, 80.0, 0.0, 100.0, 60.0, 0.0, 0.0, 1.0),
        r=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
        p=(100.0, 0.0, 80.0, 0.0, 0.0, 100.0, 60.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    )
    path.write_text(dump_camera_info(info))
    return path


def test_video_file_count_order_stamps_pacing_and_camera_info(ros, tmp_path):
    clip = write_video(tmp_path / 'clip.avi', 30, 30.0)  # 160x120, frame i has level i
    calibration = _calibration(tmp_path / 'scene.yaml', 160, 120)
    probe = ros.probe
    topics = {
        'camera/scene/image_raw': Image,
        'camera/scene/camera_info': CameraInfoMsg,
        'camera/scene/policy/image_raw': Image,
        'camera/scene/policy/camera_info': CameraInfoMsg,
        '/diagnostics': DiagnosticArray,
    }
    for topic, msg_type in topics.items():
        probe.listen(msg_type, topic)
    node = ros.camera(
        source='file',
        file_path=str(clip),
        camera_name='scene',
        calibration_file=f'file://{calibration}',
        diagnostics_period=0.2,
        **{
            'policy.enabled': True,
            'policy.crop': [20, 0, 120, 120],
            'policy.width': 60,
            'policy.height': 60,
        },
    )
    assert node.trigger_configure() == SUCCESS
    for topic in list(topics)[:4]:
        probe.wait(_matched(node, topic))  # volatile topics: nothing published before matching
    t_start = time.time()
    assert node.trigger_activate() == SUCCESS
    probe.wait(lambda: len(probe.get('camera/scene/policy/camera_info')) == 30)
    name = 'camera: camera scene'
    probe.wait(lambda: any(s.message == 'file replay finished' for s in _statuses(probe, name)))

    images = probe.get('camera/scene/image_raw')
    assert len(images) == 30
    assert [decode_level(image_to_numpy(m)) for m, _ in images] == list(range(30))  # in order
    msg = images[0][0]
    assert (msg.width, msg.height, msg.encoding) == (160, 120, 'bgr8')
    assert msg.header.frame_id == 'scene_optical_frame'
    stamps = np.array([stamp_to_seconds(m.header.stamp) for m, _ in images])
    arrivals = np.array([t for _, t in images])
    # Header stamps are capture times on the file's timeline, not publish times.
    assert np.allclose(np.diff(stamps), 1 / 30, atol=1e-3)
    assert abs(stamps[0] - t_start) < 0.5
    assert np.all(arrivals - stamps > -0.002) and np.median(arrivals - stamps) < 0.05
    # Paced like a camera: 29 periods take ~0.97 s (generous bounds for a shared CPU).
    assert 0.85 < arrivals[-1] - arrivals[0] < 1.5
    assert np.median(np.diff(arrivals)) == pytest.approx(1 / 30, abs=0.01)

    infos = [m for m, _ in probe.get('camera/scene/camera_info')]
    assert [stamp_to_seconds(m.header.stamp) for m in infos] == pytest.approx(list(stamps))
    info = infos[0]
    assert info.header.frame_id == 'scene_optical_frame' and (info.width, info.height) == (160, 120)
    assert list(info.k) == [100.0, 0.0, 80.0, 0.0, 100.0, 60.0, 0.0, 0.0, 1.0]
    assert list(info.d) == [0.1, -0.2, 0.0, 0.0, 0.0] and info.distortion_model == 'plumb_bob'

    policy = probe.get('camera/scene/policy/image_raw')
    assert [(m.width, m.height) for m, _ in policy] == [(60, 60)] * 30
    assert [stamp_to_seconds(m.header.stamp) for m, _ in policy] == pytest.approx(list(stamps))
    assert [decode_level(image_to_numpy(m)) for m, _ in policy] == list(range(30))
    pinfo = probe.get('camera/scene/policy/camera_info')[-1][0]
    # Crop x 20..140 then scale 0.5: fx 50, cx (80 - 20) * 0.5, fy 50, cy 60 * 0.5.
    assert list(pinfo.k) == pytest.approx([50.0, 0.0, 30.0, 0.0, 50.0, 30.0, 0.0, 0.0, 1.0])
    assert list(pinfo.p)[:4] == pytest.approx([50.0, 0.0, 30.0, 0.0])
    assert (pinfo.width, pinfo.height, pinfo.roi.width) == (60, 60, 0)

    last = _statuses(probe, name)[-1]
    values = {kv.key: kv.value for kv in last.values}
    assert last.level == b'\x01' and last.hardware_id == f"video file '{clip}'"
    assert values['frames_published'] == '30' and values['frames_dropped'] == '0'
    assert {'capture_rate_hz', 'publish_rate_hz', 'latency_p50_ms', 'latency_p99_ms'} <= set(values)
    assert {'reconnects', 'disconnects', 'frame_gaps', 'stamp_source'} <= set(values)
    early = [s for s in _statuses(probe, name) if s.message == 'streaming']
    assert early, 'no report while streaming'
    p50 = [float({kv.key: kv.value for kv in s.values}['latency_p50_ms']) for s in early]
    assert 0.0 <= min(p50) < 50.0  # capture -> published

    assert node.trigger_deactivate() == SUCCESS
    assert node.trigger_cleanup() == SUCCESS
    assert _state(node) == 'unconfigured'
    probe.wait(lambda: node.count_publishers('camera/scene/image_raw') == 0)  # released


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_test_pattern_encodings(ros, encoding):
    w, h = 64, 48
    topic = 'camera/pattern/image_raw'
    ros.probe.listen(Image, topic)
    node = ros.camera(
        source='test_pattern', width=w, height=h, fps=60.0, encoding=encoding, camera_name='pattern'
    )
    assert node.trigger_configure() == SUCCESS
    ros.probe.wait(_matched(node, topic))
    assert node.trigger_activate() == SUCCESS
    ros.probe.wait(lambda: len(ros.probe.get(topic)) >= 3)
    msg = ros.probe.get(topic)[0][0]
    channels, dtype = ENCODINGS[encoding]
    assert msg.encoding == encoding and msg.is_bigendian == 0
    assert msg.step == w * channels * np.dtype(dtype).itemsize
    image = image_to_numpy(msg)
    assert image.dtype == dtype and image.shape == ((h, w, 3) if channels == 3 else (h, w))
    red = PATTERN_BARS_BGR[5]  # the sixth bar, pure red
    expected = {'bgr8': red, 'rgb8': red[::-1], 'mono8': 76, 'mono16': 76 * 257}[encoding]
    pixel = image[h // 2, 5 * w // 8 + w // 16]
    np.testing.assert_allclose(pixel, expected, atol=1 if 'mono' in encoding else 0)
    assert node.trigger_deactivate() == SUCCESS


def test_deactivate_stops_and_activate_resumes(ros):
    topic = 'camera/pattern/image_raw'
    ros.probe.listen(Image, topic)
    node = ros.camera(source='test_pattern', width=32, height=24, fps=50.0, camera_name='pattern')
    assert node.trigger_configure() == SUCCESS
    ros.probe.wait(_matched(node, topic))
    assert node.trigger_activate() == SUCCESS
    ros.probe.wait(lambda: len(ros.probe.get(topic)) >= 3)
    assert node.trigger_deactivate() == SUCCESS
    time.sleep(0.1)
    paused = len(ros.probe.get(topic))
    time.sleep(0.2)
    assert len(ros.probe.get(topic)) == paused  # nothing while inactive
    assert node.trigger_activate() == SUCCESS
    ros.probe.wait(lambda: len(ros.probe.get(topic)) >= paused + 3)
    stamps = [stamp_to_seconds(m.header.stamp) for m, _ in ros.probe.get(topic)]
    assert stamps == sorted(stamps)


class FlakyUsbCamera(FrameSource):
    """A live 100 Hz source that can be unplugged: reads fail, reopening fails until replugged."""

    def __init__(self) -> None:
        self.description = '/dev/video7'
        self.width, self.height, self.fps = 32, 24, 100.0
        self.plugged = True
        self._open = False

    def open(self) -> None:
        if not self.plugged:
            raise CameraError(self.description, 'does not exist (unplugged?)')
        self._open = True

    def read(self) -> RawFrame:
        time.sleep(0.01)
        if not (self.plugged and self._open):
            raise CameraDisconnectedError(self.description, 'grab failed (unplugged)')
        return RawFrame(np.zeros((24, 32, 3), np.uint8), time.time(), 'host')

    def close(self) -> None:
        self._open = False


def test_unplug_and_replug_recovers_and_is_diagnosed(ros):
    device = FlakyUsbCamera()

    class FlakyCameraNode(CameraNode):
        def _create_driver(self, cfg):
            return CameraDriver(cfg, self._on_frame, self._on_policy_frame, source=device)

    topic = 'camera/usb/image_raw'
    probe = ros.probe
    probe.listen(Image, topic)
    probe.listen(DiagnosticArray, '/diagnostics')
    node = ros.camera(
        FlakyCameraNode, camera_name='usb', reconnect_interval=0.05, diagnostics_period=0.1
    )
    assert node.trigger_configure() == SUCCESS
    probe.wait(_matched(node, topic))
    assert node.trigger_activate() == SUCCESS
    probe.wait(lambda: len(probe.get(topic)) >= 5)
    name = 'camera: camera usb'
    probe.wait(lambda: any(s.message == 'streaming' for s in _statuses(probe, name)))

    device.plugged = False
    probe.wait(lambda: any(s.level == b'\x02' for s in _statuses(probe, name)))
    down = [s for s in _statuses(probe, name) if s.level == b'\x02'][-1]
    assert 'does not exist' in down.message and down.hardware_id == '/dev/video7'
    before = len(probe.get(topic))
    time.sleep(0.2)
    assert len(probe.get(topic)) == before

    device.plugged = True
    probe.wait(lambda: len(probe.get(topic)) >= before + 5)

    def reconnected() -> bool:
        values = [{kv.key: kv.value for kv in s.values} for s in _statuses(probe, name)]
        return any(v['reconnects'] == '1' and v['disconnects'] == '1' for v in values)

    probe.wait(reconnected)
    assert node.trigger_deactivate() == SUCCESS


def test_wait_for_device_configures_without_the_camera_and_streams_once_plugged(ros):
    device = FlakyUsbCamera()
    device.plugged = False

    class LateCameraNode(CameraNode):
        def _create_driver(self, cfg):
            return CameraDriver(cfg, self._on_frame, self._on_policy_frame, source=device)

    topic = 'camera/usb/image_raw'
    ros.probe.listen(Image, topic)
    node = ros.camera(
        LateCameraNode, camera_name='usb', reconnect_interval=0.05, wait_for_device=True
    )
    assert node.trigger_configure() == SUCCESS
    ros.probe.wait(_matched(node, topic))
    assert node.trigger_activate() == SUCCESS
    time.sleep(0.2)
    assert ros.probe.get(topic) == []
    device.plugged = True
    ros.probe.wait(lambda: len(ros.probe.get(topic)) >= 3)
    assert node.trigger_deactivate() == SUCCESS


@pytest.mark.parametrize(
    'case',
    ['file_missing', 'v4l2_missing', 'calibration_missing', 'calibration_size', 'crop', 'package'],
)
def test_bad_input_fails_configure_naming_device_and_reason(ros, tmp_path, capfd, case):
    missing_video = tmp_path / 'nope.avi'
    pattern = {'source': 'test_pattern', 'width': 64, 'height': 48}
    params, expected = {
        'file_missing': (
            {'source': 'file', 'file_path': str(missing_video)},
            [f"camera video file '{missing_video}': does not exist"],
        ),
        'v4l2_missing': (
            {'source': 'v4l2', 'device': str(tmp_path / 'video9')},
            [f'camera {tmp_path}/video9: does not exist'],
        ),
        'calibration_missing': (
            {**pattern, 'calibration_file': str(tmp_path / 'none.yaml')},
            ["camera test pattern 'bars'", 'bad calibration', 'none.yaml', 'does not exist'],
        ),
        'calibration_size': (
            {**pattern, 'calibration_file': str(_calibration(tmp_path / 'c.yaml', 160, 120))},
            ["camera test pattern 'bars'", 'is for 160x120 but frames are 64x48'],
        ),
        'crop': (
            {**pattern, 'policy.enabled': True, 'policy.crop': [0, 0, 100, 48]},
            ["camera test pattern 'bars'", 'does not fit in the 64x48 image'],
        ),
        'package': (
            {**pattern, 'calibration_file': 'package://no_such_pkg/calibration/cam.yaml'},
            ["package 'no_such_pkg' is not installed"],
        ),
    }[case]
    node = ros.camera(**params)
    assert node.trigger_configure() == FAILURE
    assert _state(node) == 'unconfigured'
    assert not {p.topic_name for p in node.publishers} & {'/camera/camera/image_raw'}
    logged = capfd.readouterr().err
    line = next(ln for ln in logged.splitlines() if 'configure failed' in ln)
    assert '[ERROR]' in line
    for fragment in expected:
        assert fragment in line, line


def test_robot_graph_entries_run_under_the_runner(tmp_path):
    """The robot.yaml camera entry (lifecycle, autostarted) with test-pattern parameters."""
    graph = yaml.safe_load((ROOT / 'config' / 'graphs' / 'robot.yaml').read_text())
    entry = next(n for n in graph['nodes'] if n['package'] == 'vla_sensors' and n['lifecycle'])
    good = {**entry, 'parameters': [{'source': 'test_pattern', 'camera_name': 'scene'}]}
    bad = {
        **entry,
        'name': 'broken',
        'parameters': [{'source': 'file', 'file_path': str(tmp_path / 'gone.mp4')}],
    }
    env = dict(os.environ)
    sources = [str(ROOT / 'src' / p) for p in ('vla_sensors', 'vla_ros_common', 'vla_core')]
    env['PYTHONPATH'] = os.pathsep.join([*sources, env.get('PYTHONPATH', '')])
    outputs = []
    for name, node in (('good', good), ('bad', bad)):
        path = tmp_path / f'{name}.yaml'
        path.write_text(yaml.safe_dump({'name': name, 'nodes': [node]}))
        outputs.append(
            subprocess.run(
                [*RUNNER, str(path), '--config-dir', str(ROOT / 'config'), '--duration', '1.5'],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
        )
    ok, failed = outputs
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert '/camera/scene/image_raw' in ok.stdout and '/camera/scene/camera_info' in ok.stdout
    assert failed.returncode == 1
    text = failed.stdout + failed.stderr
    assert 'failed to configure (FAILURE)' in text
    assert f"camera video file '{tmp_path}/gone.mp4': does not exist" in text


def test_sensors_yaml_configures_the_scene_camera(ros):
    """config/sensors.yaml + the sample calibration: consistent sizes, crop and topics."""
    topic = 'camera/scene_camera/policy/image_raw'
    ros.probe.listen(Image, topic)
    ros.probe.listen(CameraInfoMsg, 'camera/scene_camera/policy/camera_info')
    calibration = ROOT / 'config' / 'calibration' / 'scene_camera.yaml'
    # The device is swapped for a same-sized test pattern; the file's calibration URL needs the
    # install tree, so the source-tree file is given directly.
    overrides = {'source': 'test_pattern', 'calibration_file': str(calibration)}
    node = CameraNode(
        context=ros.context,
        cli_args=['--ros-args', '-r', '__node:=scene_camera',
                  '--params-file', str(ROOT / 'config' / 'sensors.yaml')],
        parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
    )  # fmt: skip
    ros.add(node)
    assert node.get_parameter('calibration_file').value == str(calibration)
    assert node.get_parameter('camera_name').value == 'scene_camera'
    assert node.trigger_configure() == SUCCESS
    ros.probe.wait(_matched(node, topic))
    assert node.trigger_activate() == SUCCESS
    ros.probe.wait(lambda: len(ros.probe.get('camera/scene_camera/policy/camera_info')) >= 1)
    image = ros.probe.get(topic)[0][0]
    assert (image.width, image.height, image.encoding) == (224, 224, 'rgb8')
    assert image.header.frame_id == 'scene_camera_optical_frame'  # as in config/extrinsics.yaml
    info = ros.probe.get('camera/scene_camera/policy/camera_info')[0][0]
    assert info.k[0] == pytest.approx(554.3 * 224 / 480)
    assert node.trigger_deactivate() == SUCCESS

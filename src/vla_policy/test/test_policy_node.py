"""The policy node: configure fails clearly on bad models, chunks carry the observation stamp,
bad observations are refused with the reason."""

from __future__ import annotations

import shutil
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
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from vla_interfaces.msg import ActionChunk
from vla_policy.policy_node import PolicyNode
from vla_ros_common import diagnostics, qos
from vla_ros_common.conversions import seconds_to_stamp, stamp_to_seconds
from vla_ros_common.image import numpy_to_image
from vla_ros_common.node_main import make_executor

JOINTS = [f'joint_{i}' for i in range(1, 7)]


class Rig:
    """A private context, the policy node, and a probe that feeds and records."""

    def __init__(self, **params) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        overrides = {'instruction_encoder': 'hashed', 'rate_hz': 20.0, 'num_threads': 1, **params}
        self.node = PolicyNode(
            context=self.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        )
        self.probe = Node('probe', context=self.context)
        self.chunks: list[ActionChunk] = []
        self.diags: list[DiagnosticArray] = []
        self.probe.create_subscription(
            ActionChunk, 'policy/action_chunk', self.chunks.append, qos.ACTION_CHUNK
        )
        self.probe.create_subscription(DiagnosticArray, '/diagnostics', self.diags.append, 10)
        self.images = [
            self.probe.create_publisher(Image, f'camera/{c}/image_raw', qos.SENSOR_OUT)
            for c in ('scene_camera', 'wrist_camera')
        ]
        self.joints = self.probe.create_publisher(JointState, 'joint_states', qos.SENSOR_OUT)
        self.instruction = self.probe.create_publisher(String, 'instruction', qos.LATCHED)
        self.executor = make_executor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def feed(
        self,
        stamp: float,
        names=JOINTS,
        encoding: str = 'rgb8',
        position: float = 0.1,
        size: tuple[int, int] = (64, 48),
    ) -> None:
        channels = (*size, 3) if encoding != 'mono8' else size
        pixels = np.random.default_rng(int(stamp * 10) % 1000).integers(0, 255, channels, np.uint8)
        for pub in self.images:
            pub.publish(numpy_to_image(pixels, encoding, stamp=seconds_to_stamp(stamp)))
        msg = JointState(name=list(names), position=[position] * len(names))
        msg.header.stamp = seconds_to_stamp(stamp)
        self.joints.publish(msg)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def wait(self, predicate, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, 'timed out'
            time.sleep(0.02)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def active(flow_export):
    rig = Rig(artifact=str(flow_export))
    assert rig.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert rig.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    yield rig
    rig.close()


def test_chunks_are_stamped_with_the_observation_time(active):
    active.instruction.publish(String(data='reach the red square'))
    stamp = active.now()
    active.wait(lambda: active.feed(stamp) or bool(active.chunks))
    chunk = active.chunks[-1]
    # Float seconds near the 2026 epoch (1.8e9 s) resolve 2.4e-7 s: 1 us is the exact-match bound.
    assert stamp_to_seconds(chunk.header.stamp) == pytest.approx(stamp, abs=1e-6)
    assert list(chunk.joint_names) == JOINTS
    assert chunk.source == 'policy' and chunk.horizon == 4
    assert len(chunk.targets) == 4 * 6 and np.all(np.isfinite(chunk.targets))
    count = len(active.chunks)
    time.sleep(0.3)
    assert len(active.chunks) == count  # the same observation is not inferred twice


def test_a_new_frame_is_inferred_on_arrival_and_rate_hz_caps_the_rate(flow_export):
    rig = Rig(artifact=str(flow_export), rate_hz=0.5)  # at most one chunk per 2 s
    try:
        assert rig.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert rig.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        rig.instruction.publish(String(data='reach the red square'))
        rig.wait(lambda: rig.feed(rig.now()) or bool(rig.chunks))
        # Past the 2 s period one frame arrives: a timer would infer it at its next tick, near
        # 4 s after the first chunk; it is inferred on arrival.
        time.sleep(2.1)
        arrived = time.monotonic()
        rig.feed(rig.now())
        rig.wait(lambda: len(rig.chunks) == 2, timeout=5.0)
        assert time.monotonic() - arrived < 1.0
        # Frames at 20 Hz for 3 s: the cap allows one chunk per 2 s.
        start = time.monotonic()
        while time.monotonic() < start + 3.0:
            rig.feed(rig.now())
            time.sleep(0.05)
        assert 1 <= len(rig.chunks) - 2 <= 2
    finally:
        rig.close()


def _status(rig: Rig):
    for msg in reversed(rig.diags):
        for status in msg.status:
            if status.name == 'policy: inference':
                return status
    return None


def _level(rig: Rig) -> bytes | None:
    status = _status(rig)
    return status.level if status is not None else None


def _reason(rig: Rig) -> str:
    for msg in reversed(rig.diags):
        for status in msg.status:
            if status.name == 'policy: inference' and status.message != 'ok':
                return status.message
    return ''


@pytest.mark.parametrize(
    ('bad', 'reason'),
    [
        ({'position': float('nan')}, 'joint state has NaN or Inf'),
        ({'size': (0, 0)}, 'empty'),
    ],
)
def test_a_bad_input_is_refused_and_inference_goes_on(flow_export, bad, reason):
    # One NaN joint state or one 0x0 image killed the inference thread: no chunk ever after, and
    # /diagnostics said OK. Refused with the reason, the next good observation is inferred; fed
    # nothing but bad ones, the node reports ERROR: it stopped producing what it exists for.
    rig = Rig(artifact=str(flow_export), diagnostics_period=0.2, max_chunk_gap=0.5)
    try:
        assert rig.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert rig.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        rig.instruction.publish(String(data='reach the red square'))
        rig.wait(lambda: rig.feed(rig.now(), **bad) or reason in _reason(rig))
        rig.wait(lambda: rig.feed(rig.now(), **bad) or _level(rig) == diagnostics.ERROR)
        assert reason in _status(rig).message and not rig.chunks
        rig.wait(lambda: rig.feed(rig.now()) or bool(rig.chunks))
        rig.wait(lambda: rig.feed(rig.now()) or _level(rig) == diagnostics.OK)
    finally:
        rig.close()


def test_an_inference_error_is_counted_and_inference_goes_on(active):
    backend = active.node._backend
    real = backend.infer
    calls = []

    def failing_once(obs):
        calls.append(obs)
        if len(calls) == 1:
            raise RuntimeError('CUDA error: an illegal memory access was encountered')
        return real(obs)

    backend.infer = failing_once
    active.instruction.publish(String(data='reach the red square'))
    active.wait(lambda: active.feed(active.now()) or len(active.chunks) >= 1)
    assert len(calls) >= 2
    active.wait(lambda: 'illegal memory access' in str(getattr(_status(active), 'values', '')))


def test_waiting_for_an_instruction_is_no_error(active):
    active.wait(lambda: active.feed(active.now()) or 'no instruction' in _reason(active))
    time.sleep(2.5)  # longer than max_chunk_gap (2 s): still only waiting
    assert _level(active) == diagnostics.OK


@pytest.mark.parametrize(
    ('age', 'names', 'encoding', 'reason'),
    [
        (2.0, JOINTS, 'rgb8', 's old (max_observation_age 0.5)'),
        (0.0, [*JOINTS[:5], 'elbow'], 'rgb8', "lacks the model joints ['joint_6']"),
        (0.0, JOINTS, 'mono8', "encoding 'mono8'"),
    ],
)
def test_bad_observations_are_refused_with_the_reason(active, age, names, encoding, reason):
    active.instruction.publish(String(data='reach the red square'))
    active.wait(
        lambda: active.feed(active.now() - age, names, encoding) or reason in _reason(active)
    )
    assert not active.chunks


def test_no_instruction_no_chunk(active):
    active.wait(lambda: active.feed(active.now()) or 'no instruction' in _reason(active))
    assert not active.chunks


def test_corrupted_model_fails_configure(flow_export, tmp_path):
    broken = tmp_path / 'broken'
    shutil.copytree(flow_export, broken)
    (broken / 'model.onnx').write_bytes(b'not an onnx model')
    rig = Rig(artifact=str(broken))
    try:
        assert rig.node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert rig.node._backend is None
    finally:
        rig.close()


def test_camera_count_must_match_the_model(flow_export):
    rig = Rig(artifact=str(flow_export), cameras=['scene_camera'])
    try:
        assert rig.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    finally:
        rig.close()

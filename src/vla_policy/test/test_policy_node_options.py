"""Policy node options for evaluations and operators: a slower model (inference_delay), the
timing log, the operator's instruction overriding the task's, and chunks of a superseded
instruction dropped."""

from __future__ import annotations

import json
import time

from rclpy.lifecycle import TransitionCallbackReturn
from std_msgs.msg import String
from test_policy_node import Rig

from vla_ros_common import qos


def _start(rig: Rig) -> list[str]:
    """Activate, and record the instruction of every inference."""
    assert rig.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    seen: list[str] = []
    backend = rig.node._backend
    infer = backend.infer
    backend.infer = lambda obs: seen.append(obs.instruction) or infer(obs)
    assert rig.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    return seen


def test_inference_delay_slows_every_chunk_and_the_timing_log_says_so(flow_export, tmp_path):
    log = tmp_path / 'timing.jsonl'
    rig = Rig(artifact=str(flow_export), inference_delay=0.4, timing_log=str(log))
    try:
        _start(rig)
        rig.instruction.publish(String(data='reach the red square'))
        fed = time.monotonic()
        stamp = rig.now()
        rig.wait(lambda: rig.feed(stamp) or bool(rig.chunks))
        assert time.monotonic() - fed >= 0.4  # never sooner than the delay
        rig.node._publish_diagnostics()  # flushes the log
        record = json.loads(log.read_text().splitlines()[0])
        assert abs(record['stamp'] - stamp) < 1e-6
        assert record['inference'] >= 0.4 and record['observation_age'] >= 0.0
    finally:
        rig.close()


def test_an_operator_instruction_overrides_the_task_until_cleared(flow_export):
    rig = Rig(artifact=str(flow_export))
    operator = rig.probe.create_publisher(String, 'instruction/operator', qos.LATCHED)
    try:
        seen = _start(rig)
        rig.instruction.publish(String(data='reach the red square'))
        rig.wait(lambda: rig.feed(rig.now()) or bool(seen))
        assert seen[-1] == 'reach the red square'
        operator.publish(String(data='reach the blue square'))
        rig.wait(lambda: rig.feed(rig.now()) or seen[-1] == 'reach the blue square')
        rig.instruction.publish(String(data='reach the green square'))  # a new episode's task
        time.sleep(0.3)
        rig.wait(lambda: rig.feed(rig.now()) or len(seen) > 3)
        assert seen[-1] == 'reach the blue square'  # the operator's still holds
        operator.publish(String(data=''))
        rig.wait(lambda: rig.feed(rig.now()) or seen[-1] == 'reach the green square')
    finally:
        rig.close()


def test_a_chunk_computed_while_the_instruction_changed_is_dropped(flow_export):
    rig = Rig(artifact=str(flow_export), inference_delay=1.0)
    try:
        seen = _start(rig)
        rig.instruction.publish(String(data='reach the red square'))
        stamp = rig.now()
        rig.wait(lambda: rig.feed(stamp) or bool(seen))  # inference under way (1 s)
        rig.instruction.publish(String(data='reach the green square'))  # the episode ends
        time.sleep(1.5)
        assert not rig.chunks
        rig.feed(stamp)  # a frame from before the change is not the new episode's either
        time.sleep(0.5)
        assert len(seen) == 1
        rig.wait(lambda: rig.feed(rig.now()) or bool(rig.chunks))
        assert seen[-1] == 'reach the green square'
    finally:
        rig.close()

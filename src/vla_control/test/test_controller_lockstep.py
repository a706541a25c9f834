"""The controller ticking on joint states (lockstep evaluation) and its injected chunk delay: one
command per joint state, stamped with it, and a chunk that acts exactly ``chunk_delay`` after its
stamp, whatever the machine's load."""

from __future__ import annotations

import time

import numpy as np
from sensor_msgs.msg import JointState
from test_controller_node import NAMES, RELAXED, Harness, wait

from vla_core.chunk import ActionChunk
from vla_ros_common.conversions import chunk_to_msg, seconds_to_stamp

T0 = 1000.0
TICK = 0.01


def _state(ros: Harness, t: float) -> None:
    """A joint state stamped ``t``, sent until the command of its tick comes (as the simulator
    does: the first tick waits for the controller's chunk source)."""
    msg = JointState(name=list(NAMES), position=[0.0, 0.0], velocity=[0.0, 0.0])
    msg.header.stamp = seconds_to_stamp(t)

    def answered() -> bool:
        if not any(abs(c.t - t) < 1e-6 for c in ros.get_commands()):
            ros.state_pub.publish(msg)
            time.sleep(0.05)
            return False
        return True

    wait(answered, what=f'command at {t}')


def test_one_command_per_joint_state_and_the_chunk_acts_after_its_delay():
    ros = Harness()
    try:
        ros.controller(
            **RELAXED, output_mode='position', tick_source='joint_states', chunk_delay=0.05,
            **{'tracker.blend_time': 0.0},
        )  # fmt: skip
        _state(ros, T0)
        targets = np.linspace(0.0, 0.5, 20)[:, None] * [1.0, -1.0]
        ros.chunk_pub.publish(chunk_to_msg(ActionChunk(T0, 0.05, NAMES, targets + 0.1)))
        ticks = [T0 + k * TICK for k in range(1, 9)]
        for t in ticks:
            _state(ros, t)
        commands = ros.get_commands()
        assert [round(c.t, 6) for c in commands] == [round(t, 6) for t in [T0, *ticks]]
        moved = [c.t for c in commands if np.any(c.position != 0.0)]
        assert round(moved[0], 6) == round(T0 + 0.05, 6)  # not a tick earlier, nor later
    finally:
        ros.close()

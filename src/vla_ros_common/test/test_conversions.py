import numpy as np
import pytest

from vla_core.chunk import ActionChunk
from vla_interfaces.msg import ActionChunk as ActionChunkMsg
from vla_ros_common.conversions import (
    chunk_from_msg,
    chunk_to_msg,
    seconds_to_stamp,
    stamp_to_seconds,
)


def test_chunk_round_trip_preserves_everything():
    chunk = ActionChunk(
        stamp=1234.5678901,
        dt=0.02,
        joint_names=('j1', 'j2', 'j3'),
        targets=np.arange(12.0).reshape(4, 3) / 7,
        source='policy',
        sequence=42,
    )
    msg = chunk_to_msg(chunk)
    assert msg.horizon == 4 and len(msg.targets) == 12
    back = chunk_from_msg(msg)
    assert back.joint_names == chunk.joint_names
    assert (back.source, back.sequence, back.dt) == ('policy', 42, 0.02)
    assert back.stamp == pytest.approx(chunk.stamp, abs=1e-9)
    np.testing.assert_array_equal(back.targets, chunk.targets)


def test_inconsistent_message_is_refused():
    msg = ActionChunkMsg(joint_names=['a', 'b'], horizon=3, step_dt=0.1, targets=[0.0] * 5)
    with pytest.raises(ValueError, match='5 targets for horizon 3 x 2 joints'):
        chunk_from_msg(msg)
    msg = ActionChunkMsg(joint_names=['a'], horizon=1, step_dt=0.0, targets=[0.0])
    with pytest.raises(ValueError, match='dt'):
        chunk_from_msg(msg)


@pytest.mark.parametrize('seconds', [0.0, 1.9999999999, 1795286257.714488037, 3.5])
def test_stamp_round_trip(seconds):
    stamp = seconds_to_stamp(seconds)
    assert 0 <= stamp.nanosec < 1_000_000_000
    assert stamp_to_seconds(stamp) == pytest.approx(seconds, abs=1e-9)

"""Message <-> pure-core conversions (testable without rclpy.init)."""

from __future__ import annotations

from collections.abc import Sequence

from builtin_interfaces.msg import Time
import numpy as np
from sensor_msgs.msg import CameraInfo

from vla_core.chunk import ActionChunk
from vla_interfaces.msg import ActionChunk as ActionChunkMsg

__all__ = ['chunk_from_msg', 'chunk_to_msg', 'seconds_to_stamp', 'stamp_to_seconds']


def stamp_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_stamp(seconds: float) -> Time:
    # Round to whole nanoseconds first so 1.9999999999 does not become sec=1, nanosec=1e9.
    total_ns = round(seconds * 1e9)
    return Time(sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000)


def chunk_to_msg(chunk: ActionChunk) -> ActionChunkMsg:
    msg = ActionChunkMsg()
    msg.header.stamp = seconds_to_stamp(chunk.stamp)
    msg.joint_names = list(chunk.joint_names)
    msg.step_dt = chunk.dt
    msg.horizon = chunk.horizon
    msg.targets = chunk.targets.ravel().tolist()
    msg.source = chunk.source
    msg.sequence = chunk.sequence
    return msg


def chunk_from_msg(msg: ActionChunkMsg) -> ActionChunk:
    """The pure chunk; raises ValueError with the reason for an inconsistent message."""
    dof = len(msg.joint_names)
    targets = np.asarray(msg.targets, dtype=np.float64)
    if dof == 0 or msg.horizon == 0 or targets.size != msg.horizon * dof:
        raise ValueError(
            f'action chunk has {targets.size} targets for horizon {msg.horizon} x {dof} joints'
        )
    return ActionChunk(
        stamp=stamp_to_seconds(msg.header.stamp),
        dt=msg.step_dt,
        joint_names=tuple(msg.joint_names),
        targets=targets.reshape(msg.horizon, dof),
        source=msg.source,
        sequence=msg.sequence,
    )


def camera_info_msg(
    width: int,
    height: int,
    k: Sequence[float] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    *,
    frame_id: str,
    d: Sequence[float] = (0.0,) * 5,
    r: Sequence[float] | np.ndarray = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
    distortion_model: str = 'plumb_bob',
) -> CameraInfo:
    """sensor_msgs/CameraInfo (stamp left for the caller); K, R as 9, P as 12 row-major values."""
    k, r, p = (np.asarray(m, dtype=float).ravel() for m in (k, r, p))
    if k.size != 9 or r.size != 9 or p.size != 12:
        raise ValueError(f'camera matrices: K has {k.size}, R {r.size}, P {p.size} values')
    msg = CameraInfo()
    msg.header.frame_id = frame_id
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = distortion_model
    msg.d = [float(v) for v in d]
    msg.k, msg.r, msg.p = k.tolist(), r.tolist(), p.tolist()
    return msg

"""Transforms as messages: static extrinsics from config, poses to TransformStamped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math

from builtin_interfaces.msg import Time
from geometry_msgs.msg import TransformStamped
import numpy as np
from tf2_msgs.msg import TFMessage
import transforms3d

__all__ = ['StaticTransform', 'tf_message', 'to_transform_msg']


@dataclass(frozen=True)
class StaticTransform:
    """A fixed transform ``parent -> child``: translation [m], rotation quaternion (w, x, y, z)."""

    parent: str
    child: str
    xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat_wxyz: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if not self.parent or not self.child or self.parent == self.child:
            raise ValueError(f"bad frames '{self.parent}' -> '{self.child}'")
        if len(self.xyz) != 3 or not all(math.isfinite(v) for v in self.xyz):
            raise ValueError(f'{self.child}: xyz must be 3 finite numbers, got {self.xyz}')
        q = np.asarray(self.quat_wxyz, dtype=float)
        if q.shape != (4,) or not np.all(np.isfinite(q)) or abs(np.linalg.norm(q) - 1.0) > 1e-3:
            raise ValueError(f'{self.child}: quaternion must be 4 numbers of norm 1, got {q}')
        object.__setattr__(self, 'xyz', tuple(float(v) for v in self.xyz))
        object.__setattr__(self, 'quat_wxyz', tuple(float(v) for v in q / np.linalg.norm(q)))

    @classmethod
    def from_rpy(
        cls, parent: str, child: str, xyz: Sequence[float], rpy: Sequence[float]
    ) -> StaticTransform:
        """Roll, pitch, yaw [rad] about fixed x, y, z axes (REP 103)."""
        if len(rpy) != 3:
            raise ValueError(f'{child}: rpy must be 3 numbers, got {list(rpy)}')
        quat = transforms3d.euler.euler2quat(rpy[0], rpy[1], rpy[2], axes='sxyz')
        return cls(parent, child, tuple(xyz), tuple(quat))  # type: ignore[arg-type]


def to_transform_msg(
    parent: str,
    child: str,
    xyz: Sequence[float],
    quat_wxyz: Sequence[float],
    stamp: Time,
) -> TransformStamped:
    msg = TransformStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = parent
    msg.child_frame_id = child
    t = msg.transform.translation
    t.x, t.y, t.z = (float(v) for v in xyz)
    r = msg.transform.rotation
    r.w, r.x, r.y, r.z = (float(v) for v in quat_wxyz)
    return msg


def tf_message(transforms: Sequence[StaticTransform], stamp: Time) -> TFMessage:
    return TFMessage(
        transforms=[
            to_transform_msg(t.parent, t.child, t.xyz, t.quat_wxyz, stamp) for t in transforms
        ]
    )

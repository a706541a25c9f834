"""The scene as visualization_msgs/MarkerArray for rviz (testable without rclpy.init).

One array carries the whole picture, so a late subscriber of the latched topic gets all of it:
per chunk role a LINE_STRIP through the end-effector path and a SPHERE_LIST at its targets (stamp:
the chunk's), the executed path as a LINE_STRIP (stamp: the newest joint state's), and the
episode/instruction text (stamp: the episode status'). What is not there (no chunk yet, a chunk
gone stale) is sent as DELETE, so rviz drops what it showed.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
import numpy as np
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from vla_core.config import Config, ConfigError, param
from vla_ros_common.conversions import seconds_to_stamp
from vla_viz.scene import VizState

__all__ = ['COLORS', 'MarkerStyle', 'marker_array']

# RGBA per path: the policy blue, the expert orange, what the arm did green.
COLORS = {
    'policy': (0.15, 0.45, 1.0, 1.0),
    'expert': (1.0, 0.55, 0.1, 1.0),
    'executed': (0.2, 0.8, 0.3, 1.0),
    'text': (1.0, 1.0, 1.0, 1.0),
}


@dataclass(frozen=True, kw_only=True)
class MarkerStyle(Config):
    frame_prefix: str = param(
        '', description="prefix of the markers' frame id (as robot_state's)", read_only=True
    )
    line_width: float = param(0.006, description='path line width [m]', range=(1e-4, 1.0))
    point_size: float = param(
        0.015, description='chunk target sphere diameter [m]', range=(1e-4, 1.0)
    )
    text_height: float = param(0.05, description='episode text height [m]', range=(1e-3, 1.0))
    text_xyz: tuple[float, ...] = param(
        (0.0, 0.0, 0.85), description='episode text position in the root frame [m]'
    )

    def validate(self) -> None:
        if len(self.text_xyz) != 3:
            raise ConfigError('text_xyz', f'needs 3 values, got {list(self.text_xyz)}')


def _stamp(t: float) -> Time:
    return seconds_to_stamp(t) if math.isfinite(t) and t >= 0.0 else Time()


def _marker(ns: str, mid: int, frame: str, stamp: Time) -> Marker:
    m = Marker(ns=ns, id=mid, action=Marker.ADD)
    m.header.frame_id = frame
    m.header.stamp = stamp
    m.pose.orientation.w = 1.0
    return m


def _points(marker: Marker, points: np.ndarray, color: tuple[float, ...]) -> Marker:
    marker.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in points]
    marker.color = ColorRGBA(r=color[0], g=color[1], b=color[2], a=color[3])
    return marker


def _delete(ns: str, mid: int, frame: str) -> Marker:
    m = Marker(ns=ns, id=mid, action=Marker.DELETE)
    m.header.frame_id = frame
    return m


def marker_array(state: VizState, style: MarkerStyle) -> MarkerArray:
    """The whole scene; empty until the robot description is known (no frame to draw in)."""
    if state.model is None:
        return MarkerArray()
    frame = style.frame_prefix + state.model.root
    out: list[Marker] = []
    for role, path in state.chunk_paths().items():
        ns = f'{role}_chunk'
        if path is None:
            out += [_delete(ns, 0, frame), _delete(ns, 1, frame)]
            continue
        stamp = _stamp(path.stamp)
        line = _points(_marker(ns, 0, frame, stamp), path.points, COLORS[role])
        line.type = Marker.LINE_STRIP
        line.scale.x = style.line_width
        spheres = _points(_marker(ns, 1, frame, stamp), path.points, COLORS[role])
        spheres.type = Marker.SPHERE_LIST
        spheres.scale.x = spheres.scale.y = spheres.scale.z = style.point_size
        line.text = spheres.text = f'{path.source or role} #{path.sequence}'
        out += [line, spheres]
    executed = state.executed
    if len(executed) >= 2:
        line = _points(
            _marker('executed', 0, frame, _stamp(state.joint_stamp)), executed.points,
            COLORS['executed'],
        )  # fmt: skip
        line.type = Marker.LINE_STRIP
        line.scale.x = style.line_width
        out.append(line)
    else:
        out.append(_delete('executed', 0, frame))
    episode = state.episode
    text = _marker(
        'episode', 0, frame, _stamp(episode.stamp if episode is not None else state.joint_stamp)
    )
    text.type = Marker.TEXT_VIEW_FACING
    text.text = state.text()
    text.pose.position = Point(x=style.text_xyz[0], y=style.text_xyz[1], z=style.text_xyz[2])
    text.scale.z = style.text_height
    c = COLORS['text']
    text.color = ColorRGBA(r=c[0], g=c[1], b=c[2], a=c[3])
    out.append(text)
    return MarkerArray(markers=out)

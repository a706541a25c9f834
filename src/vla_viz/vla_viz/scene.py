"""What the views show, computed once for rviz (markers) and the browser view (rerun).

Pure: numpy and vla_core, no rclpy, no message types. :class:`VizState` takes what the graph
publishes as arrays (action chunks, joint states, the instruction, the episode status) and keeps:

* each chunk role's newest path: the end-effector position of every target through forward
  kinematics of the robot description (:class:`ArmModel`), at the chunk's target times;
* the executed end-effector path from joint states, a bounded history (:class:`PathHistory`);
* the episode and instruction text.

Times are the robot's (message stamps), so a paused or replayed clock shows what it should.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
import math
import xml.etree.ElementTree as ET

import numpy as np
import transforms3d

from vla_core.chunk import ActionChunk
from vla_core.config import Config, param
from vla_core.kinematics import KinematicTree

__all__ = [
    'ROLES',
    'ArmModel',
    'ChunkPath',
    'EpisodeInfo',
    'LinkVisual',
    'PathHistory',
    'VizConfig',
    'VizState',
    'episode_text',
    'link_visuals',
]

# Chunk roles and their topics: the policy's proposal and the expert's label (both live in DAgger).
ROLES = {'policy': 'policy/action_chunk', 'expert': 'expert/action_chunk'}
EPISODE_STATES = ('running', 'succeeded', 'timed out', 'aborted')  # EpisodeStatus.state order


@dataclass(frozen=True, kw_only=True)
class VizConfig(Config):
    ee_link: str = param(
        'ee_link', description='link whose path is drawn (the tool centre point)', read_only=True
    )
    history_s: float = param(
        10.0, description='executed path: seconds of joint_states stamps kept', range=(0.1, 3600.0)
    )
    history_min_interval: float = param(
        0.02, description='executed path: least time between kept points [s]', range=(0.0, 10.0)
    )
    history_max_points: int = param(
        2000, description='executed path: most points kept', range=(2, 1000000)
    )
    chunk_stale_s: float = param(
        1.0,
        description='a chunk leaves the view this long after its last target time (judged on the '
        'newest joint_states stamp) [s]',
        range=(0.0, 3600.0),
    )


@dataclass(frozen=True)
class ChunkPath:
    """A chunk's end-effector path: ``points`` (H, 3) in the root frame at ``times`` (H,)."""

    role: str
    stamp: float
    times: np.ndarray
    points: np.ndarray
    source: str = ''
    sequence: int = 0

    @property
    def end_time(self) -> float:
        return float(self.times[-1])


@dataclass(frozen=True)
class EpisodeInfo:
    """vla_interfaces/EpisodeStatus as plain values (``state`` indexes :data:`EPISODE_STATES`)."""

    stamp: float
    state: int
    episode: int
    task: str = ''
    instruction: str = ''
    elapsed: float = 0.0


@dataclass(frozen=True)
class LinkVisual:
    """One ``<visual>`` of a URDF link: ``origin`` (4, 4) in the link frame; ``size`` is the box's
    full extents (3,), (radius, length) of a cylinder along z, or (radius,) of a sphere."""

    link: str
    shape: str  # 'box' | 'cylinder' | 'sphere'
    size: tuple[float, ...]
    origin: np.ndarray
    rgba: tuple[float, float, float, float]


def _numbers(text: str | None, default: str) -> list[float]:
    return [float(v) for v in (text if text is not None else default).split()]


def link_visuals(urdf: str) -> list[LinkVisual]:
    """The box, cylinder and sphere visuals of a URDF (meshes are skipped: none in ours).
    Colours come from the visual's material or the robot's named materials (default grey)."""
    root = ET.fromstring(urdf)
    named = {}
    for material in root.findall('material'):
        color = material.find('color')
        if color is not None:
            named[material.get('name')] = tuple(_numbers(color.get('rgba'), '0.7 0.7 0.7 1'))
    out = []
    for link in root.findall('link'):
        for visual in link.findall('visual'):
            geometry = visual.find('geometry')
            shape = next(iter(geometry), None) if geometry is not None else None
            if shape is None or shape.tag not in ('box', 'cylinder', 'sphere'):
                continue
            if shape.tag == 'box':
                size = tuple(_numbers(shape.get('size'), '0 0 0'))
            elif shape.tag == 'cylinder':
                size = (float(shape.get('radius', 0)), float(shape.get('length', 0)))
            else:
                size = (float(shape.get('radius', 0)),)
            origin_el = visual.find('origin')
            get = origin_el.get if origin_el is not None else (lambda _k, d=None: d)
            origin = np.eye(4)
            origin[:3, :3] = transforms3d.euler.euler2mat(*_numbers(get('rpy'), '0 0 0'), 'sxyz')
            origin[:3, 3] = _numbers(get('xyz'), '0 0 0')
            rgba = (0.7, 0.7, 0.7, 1.0)
            material = visual.find('material')
            if material is not None:
                color = material.find('color')
                if color is not None:
                    rgba = tuple(_numbers(color.get('rgba'), '0.7 0.7 0.7 1'))
                else:
                    rgba = named.get(material.get('name'), rgba)
            out.append(LinkVisual(link.get('name', ''), shape.tag, size, origin, rgba))  # type: ignore[arg-type]
    return out


class ArmModel:
    """Forward kinematics of a robot description for the views: end-effector paths, link poses."""

    def __init__(self, urdf: str, ee_link: str = 'ee_link') -> None:
        self.urdf = urdf
        self.tree = KinematicTree.from_urdf(urdf)
        if ee_link not in self.tree.links:
            raise ValueError(f"robot '{self.tree.name}' has no link '{ee_link}'")
        self.ee_link = ee_link
        self.root = self.tree.root

    def ee_point(self, positions: Mapping[str, float]) -> np.ndarray:
        """(3,) end-effector position in the root frame."""
        return self.tree.link_pose(self.ee_link, positions)[:3, 3]

    def ee_points(self, joint_names: Sequence[str], targets: np.ndarray) -> np.ndarray:
        """(H, 3) end-effector positions of ``targets`` (H, DoF); names the URDF lacks are
        ignored (a joint it has but the rows do not name stays at 0)."""
        names = list(joint_names)
        return np.array([self.ee_point(dict(zip(names, row, strict=True))) for row in targets])

    def link_poses(self, positions: Mapping[str, float]) -> dict[str, np.ndarray]:
        """Every link's (4, 4) pose in the root frame."""
        return self.tree.forward(positions)


class PathHistory:
    """The newest points of a path by time: at most ``window`` seconds behind the newest, at least
    ``min_interval`` apart, at most ``max_points``. Time going back (a restarted simulator or bag)
    starts a new path."""

    def __init__(self, window: float, min_interval: float, max_points: int) -> None:
        self.window = window
        self.min_interval = min_interval
        self._items: deque[tuple[float, np.ndarray]] = deque(maxlen=max_points)

    def add(self, t: float, point: np.ndarray) -> bool:
        """Keep ``point`` at ``t``; False when it is closer than ``min_interval`` to the last."""
        if self._items:
            last = self._items[-1][0]
            if t < last:
                self._items.clear()
            elif t - last < self.min_interval:
                return False
        self._items.append((t, np.asarray(point, dtype=np.float64)))
        while self._items and self._items[0][0] < t - self.window:
            self._items.popleft()
        return True

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def times(self) -> np.ndarray:
        return np.array([t for t, _ in self._items])

    @property
    def points(self) -> np.ndarray:
        """(N, 3) oldest first."""
        return np.array([p for _, p in self._items]).reshape(-1, 3)


def episode_text(info: EpisodeInfo | None, instruction: str) -> str:
    """Two lines: the episode and its state, then the instruction."""
    instruction = instruction or (info.instruction if info is not None else '')
    if info is None:
        head = 'no episode status'
    else:
        state = EPISODE_STATES[info.state] if 0 <= info.state < len(EPISODE_STATES) else '?'
        head = f'episode {info.episode}'
        if info.task:
            head += f' · {info.task}'
        head += f' · {state}'
        if info.state != 0:
            head += f' after {info.elapsed:.1f} s'
    return f'{head}\n"{instruction}"' if instruction else head


class VizState:
    """The current picture: the views call the ``on_*`` methods with message contents and read
    :meth:`chunk_paths`, :attr:`executed` and :meth:`text`. Without a robot description
    (:meth:`set_model` not yet called) chunks and joint states are ignored."""

    def __init__(self, config: VizConfig | None = None) -> None:
        self.config = config or VizConfig()
        self.model: ArmModel | None = None
        c = self.config
        self.executed = PathHistory(c.history_s, c.history_min_interval, c.history_max_points)
        self._chunks: dict[str, ChunkPath] = {}
        self.joint_positions: dict[str, float] = {}
        self.joint_stamp = -math.inf
        self.instruction = ''
        self.episode: EpisodeInfo | None = None
        self.version = 0  # bumped by every change a view should redraw

    def set_model(self, urdf: str) -> None:
        """Use this robot description (ValueError if it is not one or lacks the ee link)."""
        self.model = ArmModel(urdf, self.config.ee_link)
        self._chunks.clear()
        self.executed.clear()
        self.version += 1

    def on_chunk(self, role: str, chunk: ActionChunk) -> ChunkPath | None:
        if self.model is None:
            return None
        path = ChunkPath(
            role, chunk.stamp, chunk.times, self.model.ee_points(chunk.joint_names, chunk.targets),
            chunk.source, chunk.sequence,
        )  # fmt: skip
        self._chunks[role] = path
        self.version += 1
        return path

    def on_joint_state(self, t: float, names: Sequence[str], positions: Sequence[float]) -> bool:
        """A joint state stamped ``t``; True when it added a point to the executed path.
        Non-finite positions are left out (the previous value of that joint stays)."""
        for name, value in zip(names, positions, strict=True):
            if math.isfinite(value):
                self.joint_positions[name] = float(value)
        self.joint_stamp = t
        if self.model is None:
            return False
        added = self.executed.add(t, self.model.ee_point(self.joint_positions))
        if added:
            self.version += 1
        return added

    def on_instruction(self, text: str) -> None:
        self.instruction = text
        self.version += 1

    def on_episode(self, info: EpisodeInfo) -> None:
        """A new episode (running, another number) starts a new executed path."""
        previous = self.episode
        if info.state == 0 and (previous is None or previous.episode != info.episode):
            self.executed.clear()
        self.episode = info
        self.version += 1

    def chunk_paths(self) -> dict[str, ChunkPath | None]:
        """Each role's newest path, None once it ended ``chunk_stale_s`` before the newest joint
        state (or when none came)."""
        out: dict[str, ChunkPath | None] = {}
        for role in ROLES:
            path = self._chunks.get(role)
            gone = path is not None and path.end_time + self.config.chunk_stale_s < self.joint_stamp
            out[role] = None if gone else path
        return out

    def text(self) -> str:
        return episode_text(self.episode, self.instruction)

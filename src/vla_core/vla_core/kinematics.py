"""Forward kinematics and geometric Jacobians of a URDF's kinematic tree (numpy + transforms3d).

What robot_state_publisher and a jog controller need from a robot description, without ROS:
:meth:`KinematicTree.from_urdf` parses the joints of a URDF (``xml.etree``; visuals, inertials and
collisions are ignored), :meth:`~KinematicTree.joint_transform` gives one TF edge,
:meth:`~KinematicTree.forward` every link's pose in the root frame, and
:meth:`~KinematicTree.jacobian` a link's 6 x n geometric Jacobian in the root frame.

Joint types: revolute, continuous, prismatic, fixed (floating and planar joints are refused).
Mimic joints follow ``multiplier * q + offset`` of their leader. Positions are given by joint name;
joints not given are at 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
import math
from pathlib import Path
import xml.etree.ElementTree as ET

import numpy as np
import transforms3d

__all__ = ['KinematicTree', 'UrdfError', 'UrdfJoint', 'UrdfLimit']

_TYPES = ('revolute', 'continuous', 'prismatic', 'fixed')


class UrdfError(ValueError):
    """The URDF is not a tree of supported joints; the message names the element."""


@dataclass(frozen=True)
class UrdfLimit:
    lower: float
    upper: float
    velocity: float
    effort: float


@dataclass(frozen=True)
class UrdfJoint:
    """One ``<joint>``: ``origin`` (4, 4) is the child frame in the parent at zero motion."""

    name: str
    type: str
    parent: str
    child: str
    origin: np.ndarray
    axis: np.ndarray  # unit vector in the joint (child) frame
    limit: UrdfLimit | None = None
    mimic: tuple[str, float, float] | None = None  # (leader, multiplier, offset)

    @property
    def moving(self) -> bool:
        return self.type != 'fixed'

    def motion(self, position: float) -> np.ndarray:
        """(4, 4) transform of the joint's motion at ``position`` (identity if fixed)."""
        t = np.eye(4)
        if self.type in ('revolute', 'continuous'):
            t[:3, :3] = transforms3d.axangles.axangle2mat(self.axis, position, is_normalized=True)
        elif self.type == 'prismatic':
            t[:3, 3] = self.axis * position
        return t


def _floats(text: str | None, n: int, default: Sequence[float], where: str) -> np.ndarray:
    if text is None:
        return np.array(default, dtype=np.float64)
    try:
        values = np.array([float(v) for v in text.split()])
    except ValueError:
        raise UrdfError(f'{where}: {text!r} is not {n} numbers') from None
    if values.shape != (n,) or not np.all(np.isfinite(values)):
        raise UrdfError(f'{where}: {text!r} is not {n} finite numbers')
    return values


def _parse_joint(element: ET.Element) -> UrdfJoint:
    name = element.get('name') or ''
    kind = element.get('type') or ''
    where = f"joint '{name}'"
    if not name:
        raise UrdfError('a <joint> has no name')
    if kind not in _TYPES:
        raise UrdfError(f'{where}: type {kind!r} is not supported (one of {list(_TYPES)})')
    ends = {}
    for tag in ('parent', 'child'):
        node = element.find(tag)
        if node is None or not node.get('link'):
            raise UrdfError(f'{where}: no <{tag} link=...>')
        ends[tag] = node.get('link')
    origin_el = element.find('origin')
    xyz = _floats(None if origin_el is None else origin_el.get('xyz'), 3, (0, 0, 0), where)
    rpy = _floats(None if origin_el is None else origin_el.get('rpy'), 3, (0, 0, 0), where)
    origin = np.eye(4)
    origin[:3, :3] = transforms3d.euler.euler2mat(*rpy, axes='sxyz')
    origin[:3, 3] = xyz
    axis_el = element.find('axis')
    axis = _floats(None if axis_el is None else axis_el.get('xyz'), 3, (1, 0, 0), where)
    norm = float(np.linalg.norm(axis))
    if kind != 'fixed' and norm < 1e-9:
        raise UrdfError(f'{where}: zero axis')
    limit = None
    limit_el = element.find('limit')
    if limit_el is not None:
        get = limit_el.get
        try:
            limit = UrdfLimit(
                float(get('lower', 0.0)),
                float(get('upper', 0.0)),
                float(get('velocity', 'nan')),
                float(get('effort', 'nan')),
            )
        except ValueError:
            raise UrdfError(f'{where}: <limit> has a value that is not a number') from None
    elif kind in ('revolute', 'prismatic'):
        raise UrdfError(f'{where}: a {kind} joint needs <limit> (URDF spec)')
    mimic = None
    mimic_el = element.find('mimic')
    if mimic_el is not None:
        if not mimic_el.get('joint'):
            raise UrdfError(f'{where}: <mimic> names no joint')
        try:
            multiplier = float(mimic_el.get('multiplier', 1.0))
            offset = float(mimic_el.get('offset', 0.0))
        except ValueError:
            raise UrdfError(f'{where}: <mimic> multiplier/offset must be numbers') from None
        mimic = (str(mimic_el.get('joint')), multiplier, offset)
    return UrdfJoint(
        name, kind, ends['parent'], ends['child'], origin, axis / max(norm, 1e-300), limit, mimic
    )


class KinematicTree:
    """The joints of a robot description as a tree rooted at :attr:`root`."""

    def __init__(self, name: str, joints: Iterable[UrdfJoint], links: Iterable[str] = ()) -> None:
        self.name = name
        self.joints: dict[str, UrdfJoint] = {}
        self._parent_joint: dict[str, UrdfJoint] = {}
        for joint in joints:
            if joint.name in self.joints:
                raise UrdfError(f"joint '{joint.name}' is defined twice")
            if joint.child in self._parent_joint:
                raise UrdfError(f"link '{joint.child}' has two parent joints")
            self.joints[joint.name] = joint
            self._parent_joint[joint.child] = joint
        all_links = dict.fromkeys([*links, *(j.parent for j in self.joints.values())])
        all_links.update(dict.fromkeys(self._parent_joint))
        roots = [link for link in all_links if link not in self._parent_joint]
        if len(roots) != 1:
            raise UrdfError(f'{name}: expected one root link, found {roots}')
        self.root: str = roots[0]
        self._paths: dict[str, tuple[UrdfJoint, ...]] = {}
        for link in all_links:
            self._paths[link] = self._walk(link)
        self.links: tuple[str, ...] = tuple(all_links)
        self._topological = sorted(self.links, key=lambda link: len(self._paths[link]))
        for joint in self.joints.values():
            if joint.mimic is not None:
                leader = self.joints.get(joint.mimic[0])
                if leader is None or leader.mimic is not None:
                    raise UrdfError(f"joint '{joint.name}' mimics '{joint.mimic[0]}', which is "
                                    'not a joint of its own')  # fmt: skip

    def _walk(self, link: str) -> tuple[UrdfJoint, ...]:
        path: list[UrdfJoint] = []
        while link != self.root:
            joint = self._parent_joint[link]
            if len(path) > len(self.joints):
                raise UrdfError(f"{self.name}: the joints around '{link}' form a cycle")
            path.append(joint)
            link = joint.parent
        return tuple(reversed(path))

    @classmethod
    def from_urdf(cls, text: str) -> KinematicTree:
        """Parse URDF text (``<robot>`` with ``<link>`` and ``<joint>`` children)."""
        try:
            root = ET.fromstring(text)
        except ET.ParseError as err:
            raise UrdfError(f'not valid XML: {err}') from None
        if root.tag != 'robot':
            raise UrdfError(f'the root element is <{root.tag}>, not <robot>')
        links = [el.get('name') or '' for el in root.findall('link')]
        return cls(root.get('name', ''), [_parse_joint(el) for el in root.findall('joint')], links)

    @classmethod
    def from_file(cls, path: str | Path) -> KinematicTree:
        return cls.from_urdf(Path(path).read_text())

    # --- structure ------------------------------------------------------------------------------

    @property
    def actuated_joints(self) -> tuple[str, ...]:
        """Moving joints that are not mimics, in file order: what joint_states carries."""
        return tuple(n for n, j in self.joints.items() if j.moving and j.mimic is None)

    def path(self, link: str) -> tuple[UrdfJoint, ...]:
        """The joints from the root to ``link``."""
        try:
            return self._paths[link]
        except KeyError:
            raise KeyError(f"{self.name} has no link '{link}'") from None

    def positions(self, given: Mapping[str, float]) -> dict[str, float]:
        """Every moving joint's position: ``given`` ones, mimics from their leaders, others 0."""
        out = {}
        for name, joint in self.joints.items():
            if not joint.moving:
                continue
            if joint.mimic is not None:
                leader, multiplier, offset = joint.mimic
                out[name] = multiplier * float(given.get(leader, 0.0)) + offset
            else:
                out[name] = float(given.get(name, 0.0))
        return out

    # --- kinematics -----------------------------------------------------------------------------

    def joint_transform(self, joint: str, position: float = 0.0) -> np.ndarray:
        """(4, 4) pose of the joint's child link in its parent link (one TF edge)."""
        j = self.joints[joint]
        return j.origin @ j.motion(position) if j.moving else j.origin.copy()

    def edges(
        self, positions: Mapping[str, float] | None = None
    ) -> list[tuple[UrdfJoint, np.ndarray]]:
        """TF edges (joint, child-in-parent (4, 4)): with ``positions`` None the fixed joints
        (/tf_static), else the moving joints that ``positions`` drives, mimics of a given leader
        included (/tf). A joint whose position is not given is left out, as robot_state_publisher
        does, rather than published at a made-up 0."""
        if positions is None:
            return [(j, j.origin.copy()) for j in self.joints.values() if not j.moving]
        q = self.positions(positions)
        out = []
        for name, joint in self.joints.items():
            driver = joint.mimic[0] if joint.mimic is not None else name
            if joint.moving and driver in positions:
                out.append((joint, joint.origin @ joint.motion(q[name])))
        return out

    def forward(
        self, positions: Mapping[str, float], links: Iterable[str] | None = None
    ) -> dict[str, np.ndarray]:
        """(4, 4) pose in the root frame of each of ``links`` (default: every link)."""
        q = self.positions(positions)
        poses: dict[str, np.ndarray] = {self.root: np.eye(4)}
        for link in self._topological[1:]:  # parents before children
            joint = self._parent_joint[link]
            poses[link] = poses[joint.parent] @ joint.origin @ joint.motion(q.get(joint.name, 0.0))
        return {link: poses[link] for link in (self.links if links is None else links)}

    def link_pose(self, link: str, positions: Mapping[str, float]) -> np.ndarray:
        """(4, 4) pose of ``link`` in the root frame."""
        t = np.eye(4)
        q = self.positions(positions)
        for joint in self.path(link):
            t = t @ joint.origin @ joint.motion(q.get(joint.name, 0.0))
        return t

    def jacobian(
        self, link: str, positions: Mapping[str, float], joint_names: Sequence[str]
    ) -> np.ndarray:
        """(6, n) geometric Jacobian of ``link``'s origin in the root frame: rows linear velocity
        then angular velocity, one column per name in ``joint_names`` (a mimic joint moves with
        its leader's column; joints off the path give zero columns)."""
        column = {name: i for i, name in enumerate(joint_names)}
        for name in joint_names:
            joint = self.joints.get(name)
            if joint is None or not joint.moving or joint.mimic is not None:
                raise ValueError(f"{self.name} has no actuated joint '{name}'")
        q = self.positions(positions)
        path = self.path(link)
        frames = []  # (joint, its frame in the root at the joint's origin)
        t = np.eye(4)
        for joint in path:
            t = t @ joint.origin
            frames.append((joint, t))
            t = t @ joint.motion(q.get(joint.name, 0.0))
        tip = t[:3, 3]
        jac = np.zeros((6, len(joint_names)))
        for joint, frame in frames:
            if not joint.moving:
                continue
            leader, multiplier = joint.name, 1.0
            if joint.mimic is not None:
                leader, multiplier = joint.mimic[0], joint.mimic[1]
            i = column.get(leader)
            if i is None:
                continue
            axis = frame[:3, :3] @ joint.axis
            if joint.type == 'prismatic':
                jac[:3, i] += multiplier * axis
            else:
                jac[:3, i] += multiplier * np.cross(axis, tip - frame[:3, 3])
                jac[3:, i] += multiplier * axis
        return jac

    def limits(self, joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper position limits (continuous joints and joints without: +-inf)."""
        lower, upper = [], []
        for name in joint_names:
            joint = self.joints[name]
            has = joint.limit is not None and joint.type != 'continuous'
            lower.append(joint.limit.lower if has else -math.inf)  # type: ignore[union-attr]
            upper.append(joint.limit.upper if has else math.inf)  # type: ignore[union-attr]
        return np.array(lower), np.array(upper)

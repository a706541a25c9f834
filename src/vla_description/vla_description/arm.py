"""The tabletop arm as data: one table of frames, joints, limits and visual geometry.

Two generators read it, so the robot description and the simulation agree by construction:
:mod:`vla_description.generate_urdf` writes ``urdf/*.urdf`` and ``vla_sim.scene`` builds the
MuJoCo model's arm from it (adding what only physics needs: masses from geom density, gains,
damping, friction).

A 6-joint arm with a parallel gripper. Every link frame is aligned with its parent at the zero
configuration (upper arm up, forearm forward, tool pointing down), so joint axes read directly off
this table. ``ee_link`` is the tool centre point between the fingertips, z out of the gripper.
Cameras follow REP 103/105: ``<camera>_link`` x forward, y left, z up; ``<camera>_optical_frame``
z forward, x right, y down.

Two robots: :data:`ARM` (root ``base_link``: the arm, its gripper, tool frame and wrist camera;
what a real arm's driver stack describes) and :data:`TABLETOP` (root ``world``: the simulated cell,
i.e. the arm on its base plus the cell's fixed scene camera and base-mounted IMU). On hardware the
cell's frames are calibrated extrinsics (config/extrinsics.yaml), so they stay out of ARM.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import math

import numpy as np
import transforms3d

__all__ = [
    'ARM',
    'ARM_JOINTS',
    'CAMERAS',
    'GRIPPER_JOINT',
    'GRIPPER_MAX',
    'IMU_LINK',
    'LINK_CHAIN',
    'MATERIALS',
    'TABLETOP',
    'Joint',
    'Limits',
    'Robot',
    'Visual',
    'look_at_rpy',
]

Vec3 = tuple[float, float, float]

ARM_JOINTS = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6')
GRIPPER_JOINT = 'gripper'  # per-finger opening [m], 0 = closed; right_finger mimics it
GRIPPER_MAX = 0.04
# The TF chain world -> base_link -> link1 ... link6 -> ee_link.
LINK_CHAIN = ('base_link', 'link1', 'link2', 'link3', 'link4', 'link5', 'link6', 'ee_link')
CAMERAS = ('scene_camera', 'wrist_camera')
IMU_LINK = 'imu_link'
MATERIALS = {'arm': (0.82, 0.82, 0.85, 1.0), 'dark': (0.25, 0.25, 0.28, 1.0)}

_DEG = math.pi / 180.0
# Optical frame in its camera_link (REP 103 body frame -> z forward, x right, y down).
_OPTICAL_RPY = (-0.5 * math.pi, 0.0, -0.5 * math.pi)


@dataclass(frozen=True)
class Limits:
    """Position [rad or m], velocity [rad/s or m/s] and effort [N m or N] limits of a joint."""

    lower: float
    upper: float
    velocity: float
    effort: float

    def __post_init__(self) -> None:
        if not self.lower < self.upper or self.velocity <= 0.0 or self.effort <= 0.0:
            raise ValueError(f'bad limits {self}')


@dataclass(frozen=True)
class Joint:
    """``child``'s frame in ``parent``'s: translation ``xyz``, then fixed-axis ``rpy`` (as URDF's
    ``<origin>``), then the joint's motion along/about ``axis``. ``mimic``: follows that joint."""

    name: str
    type: str  # 'revolute' | 'prismatic' | 'fixed'
    parent: str
    child: str
    xyz: Vec3 = (0.0, 0.0, 0.0)
    rpy: Vec3 = (0.0, 0.0, 0.0)
    axis: Vec3 = (0.0, 0.0, 1.0)
    limits: Limits | None = None
    mimic: str = ''

    def __post_init__(self) -> None:
        if self.type not in ('revolute', 'prismatic', 'fixed'):
            raise ValueError(f'joint {self.name}: unknown type {self.type!r}')
        if (self.type == 'fixed') != (self.limits is None):
            raise ValueError(f'joint {self.name}: moving joints have limits, fixed ones none')

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) rotation of the origin (child in parent at zero motion)."""
        return transforms3d.euler.euler2mat(*self.rpy, axes='sxyz')


@dataclass(frozen=True)
class Visual:
    """A primitive in a link's frame. Cylinders and capsules span ``fromto`` (two end points);
    boxes (``size``: half extents) and spheres (``size``: radius) sit at ``xyz``."""

    shape: str  # 'cylinder' | 'capsule' | 'box' | 'sphere'
    size: tuple[float, ...]
    material: str
    fromto: tuple[float, ...] = ()
    xyz: Vec3 = (0.0, 0.0, 0.0)
    name: str = ''

    def __post_init__(self) -> None:
        spans = self.shape in ('cylinder', 'capsule')
        if self.shape not in ('cylinder', 'capsule', 'box', 'sphere'):
            raise ValueError(f'unknown visual shape {self.shape!r}')
        if spans != (len(self.fromto) == 6) or self.material not in MATERIALS:
            raise ValueError(f'bad visual {self}')


@dataclass(frozen=True)
class Robot:
    name: str
    root: str
    joints: tuple[Joint, ...]  # parents before children
    visuals: dict[str, tuple[Visual, ...]]

    def __post_init__(self) -> None:
        known = {self.root}
        for joint in self.joints:
            if joint.parent not in known or joint.child in known:
                raise ValueError(f'{self.name}: joint {joint.name} breaks the tree')
            known.add(joint.child)
        if set(self.visuals) - known:
            raise ValueError(f'{self.name}: visuals of unknown links {set(self.visuals) - known}')

    @property
    def links(self) -> tuple[str, ...]:
        return (self.root, *(j.child for j in self.joints))

    def joint(self, name: str) -> Joint:
        for joint in self.joints:
            if joint.name == name:
                return joint
        raise KeyError(name)

    def joint_to(self, child: str) -> Joint:
        """The joint whose child is ``child``."""
        for joint in self.joints:
            if joint.child == child:
                return joint
        raise KeyError(child)

    def children(self, parent: str) -> tuple[Joint, ...]:
        return tuple(j for j in self.joints if j.parent == parent)


def look_at_rpy(position: Vec3, target: Vec3) -> Vec3:
    """rpy of a REP 103 camera body frame at ``position`` looking at ``target``, level (y
    horizontal, z up in the image)."""
    forward = np.subtract(target, position, dtype=np.float64)
    forward /= np.linalg.norm(forward)
    left = np.cross([0.0, 0.0, 1.0], forward)
    left /= np.linalg.norm(left)
    up = np.cross(forward, left)
    r = np.column_stack([forward, left, up])
    return tuple(float(a) for a in transforms3d.euler.mat2euler(r, axes='sxyz'))  # type: ignore[return-value]


def _revolute(name: str, parent: str, child: str, xyz: Vec3, axis: Vec3, deg: float, v: float,
              effort: float) -> Joint:  # fmt: skip
    return Joint(name, 'revolute', parent, child, xyz, axis=axis,
                 limits=Limits(-deg * _DEG, deg * _DEG, v, effort))  # fmt: skip


def _camera(name: str, parent: str, xyz: Vec3, rpy: Vec3) -> tuple[Joint, Joint]:
    return (
        Joint(f'{name}_joint', 'fixed', parent, f'{name}_link', xyz, rpy),
        Joint(f'{name}_optical_joint', 'fixed', f'{name}_link', f'{name}_optical_frame',
              rpy=_OPTICAL_RPY),
    )  # fmt: skip


_FINGER_LIMITS = Limits(0.0, GRIPPER_MAX, 0.2, 30.0)
# Shoulder yaw, shoulder/elbow/wrist pitch, wrist roll, tool yaw; limits: +-range [deg],
# velocity [rad/s], effort [N m].
_ARM_JOINTS = (
    _revolute('joint1', 'base_link', 'link1', (0.0, 0.0, 0.05), (0.0, 0.0, 1.0), 170, 2.0, 80.0),
    _revolute('joint2', 'link1', 'link2', (0.0, 0.0, 0.1), (0.0, 1.0, 0.0), 110, 2.0, 80.0),
    _revolute('joint3', 'link2', 'link3', (0.0, 0.0, 0.32), (0.0, 1.0, 0.0), 150, 2.5, 60.0),
    _revolute('joint4', 'link3', 'link4', (0.3, 0.0, 0.0), (0.0, 1.0, 0.0), 170, 3.0, 25.0),
    _revolute('joint5', 'link4', 'link5', (0.0, 0.0, -0.06), (1.0, 0.0, 0.0), 170, 3.0, 20.0),
    _revolute('joint6', 'link5', 'link6', (0.0, 0.0, -0.04), (0.0, 0.0, 1.0), 175, 3.0, 15.0),
    Joint(GRIPPER_JOINT, 'prismatic', 'link6', 'left_finger', (0.0, 0.007, -0.074),
          axis=(0.0, 1.0, 0.0), limits=_FINGER_LIMITS),
    Joint('right_finger', 'prismatic', 'link6', 'right_finger', (0.0, -0.007, -0.074),
          axis=(0.0, -1.0, 0.0), limits=_FINGER_LIMITS, mimic=GRIPPER_JOINT),
    Joint('ee_joint', 'fixed', 'link6', 'ee_link', (0.0, 0.0, -0.094), rpy=(math.pi, 0.0, 0.0)),
    # Beside the palm, looking along the tool (link6 -z) with image up = link6 +x.
    *_camera('wrist_camera', 'link6', (0.055, 0.0, -0.03), (0.0, 0.5 * math.pi, 0.0)),
)  # fmt: skip

_FINGER = Visual('box', (0.012, 0.006, 0.03), 'dark')
_VISUALS = {
    'base_link': (Visual('cylinder', (0.08,), 'dark', fromto=(0, 0, 0, 0, 0, 0.05)),),
    'link1': (Visual('cylinder', (0.06,), 'arm', fromto=(0, 0, 0, 0, 0, 0.1)),),
    'link2': (Visual('capsule', (0.045,), 'arm', fromto=(0, 0, 0, 0, 0, 0.32)),),
    'link3': (Visual('capsule', (0.038,), 'arm', fromto=(0, 0, 0, 0.3, 0, 0)),),
    'link4': (Visual('capsule', (0.032,), 'dark', fromto=(0, 0, 0, 0, 0, -0.05)),),
    'link5': (Visual('cylinder', (0.028,), 'arm', fromto=(-0.03, 0, 0, 0.03, 0, 0)),),
    'link6': (
        Visual('cylinder', (0.03,), 'dark', fromto=(0, 0, 0, 0, 0, -0.02)),
        Visual('box', (0.02, 0.045, 0.012), 'arm', xyz=(0.0, 0.0, -0.032), name='palm'),
    ),
    'left_finger': (replace(_FINGER, name='left_finger'),),
    'right_finger': (replace(_FINGER, name='right_finger'),),
}

ARM = Robot('vla_arm', 'base_link', _ARM_JOINTS, _VISUALS)

SCENE_CAMERA_POSITION = (0.78, 0.0, 0.62)
SCENE_CAMERA_TARGET = (0.43, 0.0, 0.0)  # on the table, in front of the arm
TABLETOP = Robot(
    'vla_tabletop',
    'world',
    (
        Joint('base_joint', 'fixed', 'world', 'base_link'),
        *_ARM_JOINTS,
        Joint('imu_joint', 'fixed', 'base_link', IMU_LINK, (0.0, 0.0, 0.03)),  # inside the base
        *_camera('scene_camera', 'world', SCENE_CAMERA_POSITION,
                 look_at_rpy(SCENE_CAMERA_POSITION, SCENE_CAMERA_TARGET)),
    ),
    _VISUALS,
)  # fmt: skip

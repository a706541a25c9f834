"""MJCF of the tabletop scene, generated from a :class:`SimConfig`.

A 6-joint arm with a parallel gripper, all primitive geoms so llvmpipe renders it in milliseconds,
on a table with three coloured blocks, a target region (a mocap disc, moved per episode), a fixed
scene camera, a wrist camera and a base-mounted IMU site.

The arm (frames, joints, limits, shapes, cameras, the base IMU) is generated from the robot
description's table (:mod:`vla_description.arm`), the same one the URDF is written from; this module
adds what only physics needs (gains, damping, friction, gravity compensation, contacts) and the
scene (table, blocks, target, lights).
"""

from __future__ import annotations

import numpy as np
import transforms3d

from vla_description.arm import (
    ARM_JOINTS,
    CAMERAS,
    GRIPPER_JOINT,
    GRIPPER_MAX,
    IMU_LINK,
    LINK_CHAIN,
    MATERIALS,
    TABLETOP,
    Joint,
    Visual,
)
from vla_sim.config import SimConfig

__all__ = [
    'ARM_JOINTS',
    'BLOCK_COLORS',
    'BLOCK_HALF_SIZE',
    'CAMERAS',
    'CAM_TO_LINK',
    'GRIPPER_JOINT',
    'GRIPPER_MAX',
    'IMU_SITE',
    'JOINT_EFFORT_LIMITS',
    'JOINT_VELOCITY_LIMITS',
    'LINK_BODIES',
    'MARKER_POS',
    'build_mjcf',
]

# The arm's frames, joints, limits and shapes come from the robot description (one table for the
# URDF and this MJCF); MuJoCo bodies, cameras and sites carry the description's frame names.
LINK_BODIES = LINK_CHAIN  # TF chain world -> base_link -> link1 ... link6 -> ee_link
IMU_SITE = IMU_LINK
BLOCK_COLORS = {'red': (0.9, 0.1, 0.1), 'green': (0.1, 0.75, 0.15), 'blue': (0.1, 0.25, 0.9)}
BLOCK_HALF_SIZE = 0.02
MARKER_POS = (0.62, -0.22, 0.004)  # calibration marker on the table, in view of the scene camera

_LIMITS = {j.name: j.limits for j in TABLETOP.joints if j.limits is not None}
JOINT_VELOCITY_LIMITS = {n: lim.velocity for n, lim in _LIMITS.items()}
JOINT_EFFORT_LIMITS = {n: lim.effort for n, lim in _LIMITS.items()}
# What only physics needs, per joint: position kp/kv, velocity kv, armature, damping,
# frictionloss. Gains are stiff enough to track a 0.3 m/s tool path with ~kv/kp = 0.1 s lag.
# A mimic joint (right_finger) takes its leader's.
_SIM_JOINT = {
    'joint1': (400.0, 40.0, 80.0, 0.1, 0.5, 0.2),
    'joint2': (400.0, 40.0, 80.0, 0.1, 0.5, 0.2),
    'joint3': (300.0, 30.0, 60.0, 0.08, 0.4, 0.15),
    'joint4': (120.0, 12.0, 20.0, 0.03, 0.2, 0.05),
    'joint5': (80.0, 8.0, 15.0, 0.02, 0.1, 0.05),
    'joint6': (60.0, 6.0, 10.0, 0.02, 0.1, 0.05),
    'gripper': (800.0, 40.0, 100.0, 0.0, 2.0, 0.0),
}
_GEOM_EXTRA = {name: 'friction="1 0.005 0.0001"' for name in ('left_finger', 'right_finger')}
# A MuJoCo camera looks along -z with y up; columns give the REP 103 camera body frame (x forward,
# y left, z up) in camera axes: R_link = cam_xmat @ CAM_TO_LINK.
CAM_TO_LINK = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]])


def _fmt(values: tuple[float, ...] | np.ndarray) -> str:
    return ' '.join(f'{float(v):.6g}' for v in values)


def _exact(values: tuple[float, ...] | np.ndarray) -> str:
    """Shortest round-trip text: the MJCF reads back the description's floats exactly."""
    return ' '.join(repr(float(v) + 0.0) for v in values)


def _frame(joint: Joint) -> str:
    """``pos`` (and ``quat`` unless identity) of a joint's child in its parent."""
    attrs = f'pos="{_exact(joint.xyz)}"'
    if any(joint.rpy):
        attrs += f' quat="{_exact(transforms3d.euler.euler2quat(*joint.rpy, axes="sxyz"))}"'
    return attrs


def _geom(v: Visual) -> str:
    name = f'name="{v.name}" ' if v.name else ''
    rgba = _fmt(MATERIALS[v.material])
    if v.shape in ('cylinder', 'capsule'):
        where = f'fromto="{_fmt(v.fromto)}" size="{v.size[0]:g}"'
    else:
        where = f'pos="{_fmt(v.xyz)}" size="{_fmt(v.size)}"'
    extra = f' {_GEOM_EXTRA[v.name]}' if v.name in _GEOM_EXTRA else ''
    return f'<geom {name}type="{v.shape}" {where} rgba="{rgba}"{extra}/>'


def _camera(joint: Joint, fovy_deg: float) -> str:
    cam_xmat = joint.rotation @ CAM_TO_LINK.T
    xyaxes = _exact(np.concatenate([cam_xmat[:, 0], cam_xmat[:, 1]]))
    name = joint.child.removesuffix('_link')
    return (
        f'<camera name="{name}" pos="{_exact(joint.xyz)}" xyaxes="{xyaxes}" fovy="{fovy_deg:g}"/>'
    )


def _actuator(joint: str, cfg: SimConfig) -> str:
    limits = _LIMITS[joint]
    lo, hi, vmax, tau = limits.lower, limits.upper, limits.velocity, limits.effort
    kp, kv, kv_vel, *_ = _SIM_JOINT[joint]
    g = cfg.mismatch.gain_scale
    force = f'forcelimited="true" forcerange="{-tau:g} {tau:g}"'
    if cfg.actuation == 'position':
        # A PD servo as on position-controlled arms: tau = kp (u - q) - kv qdot.
        return (
            f'<general name="{joint}" joint="{joint}" ctrllimited="true" '
            f'ctrlrange="{_exact((lo, hi))}" gainprm="{kp * g:g}" biastype="affine" '
            f'biasprm="0 {-kp * g:g} {-kv * g:g}" {force}/>'
        )
    if cfg.actuation == 'velocity':
        return (
            f'<general name="{joint}" joint="{joint}" ctrllimited="true" ctrlrange="{-vmax:g} '
            f'{vmax:g}" gainprm="{kv_vel * g:g}" biastype="affine" '
            f'biasprm="0 0 {-kv_vel * g:g}" {force}/>'
        )
    # Effort: the command is the joint torque (force for the gripper), added to gravity comp.
    return (
        f'<general name="{joint}" joint="{joint}" ctrllimited="true" ctrlrange="{-tau:g} {tau:g}" '
        f'gainprm="{g:g}" {force}/>'
    )


def _joint(joint: Joint, cfg: SimConfig) -> str:
    *_, armature, damping, friction = _SIM_JOINT[joint.mimic or joint.name]
    m = cfg.mismatch
    kind = 'hinge' if joint.type == 'revolute' else 'slide'
    assert joint.limits is not None
    return (
        f'<joint name="{joint.name}" type="{kind}" axis="{_exact(joint.axis)}" '
        f'range="{_exact((joint.limits.lower, joint.limits.upper))}" armature="{armature:g}" '
        f'damping="{damping * m.damping_scale:g}" frictionloss="{friction * m.friction_scale:g}"/>'
    )


def _body(link: str, cfg: SimConfig, extras: dict[str, str]) -> str:
    """The MJCF body of ``link`` and its subtree: moving links and ee_link are bodies, camera
    links MuJoCo cameras, the IMU a site (at the description's frame when base-mounted)."""
    joint = TABLETOP.joint_to(link)
    parts = []
    if joint.type != 'fixed':
        parts.append(_joint(joint, cfg))
    parts += [_geom(v) for v in TABLETOP.visuals.get(link, ())]
    parts.append(extras.get(link, ''))
    for child in TABLETOP.children(link):
        camera = child.child.removesuffix('_link')
        if camera in CAMERAS:
            fovy = {
                'scene_camera': cfg.scene_camera_fovy_deg,
                'wrist_camera': cfg.wrist_camera_fovy_deg,
            }
            parts.append(_camera(child, fovy[camera]))
        elif child.child == IMU_SITE:
            if cfg.imu_mount == 'base_link':
                parts.append(f'<site name="{IMU_SITE}" {_frame(child)} size="0.005"/>')
        else:
            parts.append(_body(child.child, cfg, extras))
    # gravcomp 1 on the moving links: gravity-compensated as torque-controlled arms are.
    gc = ' gravcomp="1"' if joint.type != 'fixed' and cfg.gravity_compensation else ''
    inner = '\n'.join(p for p in parts if p)
    return f'<body name="{link}" {_frame(joint)}{gc}>\n{inner}\n</body>'


def build_mjcf(cfg: SimConfig) -> str:
    """The scene's MJCF text for ``cfg``."""
    off_w = max(cfg.scene_camera_width, cfg.wrist_camera_width)
    off_h = max(cfg.scene_camera_height, cfg.wrist_camera_height)
    payload = ''
    if cfg.mismatch.payload_kg > 0.0:
        # gravcomp 0: the payload's weight is exactly what a nominal controller does not expect.
        payload = (
            f'<body name="payload" pos="0 0 -0.02"><geom type="sphere" size="0.015" '
            f'mass="{cfg.mismatch.payload_kg:g}" contype="0" conaffinity="0" group="3"/></body>'
        )
    extras = {
        # A wrist IMU inside the flange (an experiment: the description's imu_link is the base's).
        'link6': f'<site name="{IMU_SITE}" pos="0 0 -0.01" size="0.005"/>'
        if cfg.imu_mount == 'link6' else '',
        'ee_link': f'<site name="ee_site" size="0.004" rgba="1 1 0 0"/>{payload}',
    }  # fmt: skip
    blocks = []
    for color, rgb in BLOCK_COLORS.items():
        blocks.append(
            f'<body name="block_{color}" pos="0.4 0 {BLOCK_HALF_SIZE}">'
            f'<freejoint name="block_{color}"/>'
            f'<geom name="block_{color}" type="box" size="{_fmt((BLOCK_HALF_SIZE,) * 3)}" '
            f'mass="0.1" rgba="{_fmt(rgb)} 1" friction="0.6 0.005 0.0001" condim="4"/></body>'
        )
    marker = ''
    if cfg.calibration_marker:
        marker = (
            f'<geom name="calibration_marker" type="sphere" size="0.006" pos="{_fmt(MARKER_POS)}"'
            ' rgba="1 0 1 1" contype="0" conaffinity="0"/>'
        )
    scene_camera = _camera(TABLETOP.joint('scene_camera_joint'), cfg.scene_camera_fovy_deg)
    return f"""<mujoco model="vla_tabletop">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{1.0 / cfg.physics_hz:.9g}" integrator="implicitfast" cone="elliptic"/>
  <visual>
    <global offwidth="{off_w}" offheight="{off_h}"/>
    <quality shadowsize="0"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5" specular="0.1 0.1 0.1"/>
  </visual>
  <default>
    <geom density="600" solref="0.005 1"/>
  </default>
  <worldbody>
    <light name="sun" pos="0.4 0 2" dir="0 0 -1" directional="true" castshadow="false"
           diffuse="0.5 0.5 0.5"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1" rgba="0.35 0.35 0.38 1"/>
    <geom name="table" type="box" pos="0.3 0 -0.02" size="0.55 0.6 0.02"
          rgba="0.72 0.6 0.45 1" friction="0.5 0.005 0.0001"/>
    {marker}
    {scene_camera}
    <body name="target" mocap="true" pos="0.45 0 0">
      <geom name="target" type="cylinder" size="{cfg.target_radius:g} 0.0005" pos="0 0 0.0006"
            rgba="1 0.85 0.1 0.7" contype="0" conaffinity="0"/>
    </body>
    {_body('base_link', cfg, extras)}
    {''.join(blocks)}
  </worldbody>
  <contact>
    <!-- Parent-child pairs are filtered by MuJoCo; these are the compact wrist's neighbours. -->
    <exclude body1="link3" body2="link5"/>
    <exclude body1="link4" body2="link6"/>
    <exclude body1="left_finger" body2="right_finger"/>
  </contact>
  <equality>
    <joint joint1="right_finger" joint2="{GRIPPER_JOINT}" polycoef="0 1 0 0 0"
           solref="0.005 1"/>
  </equality>
  <actuator>
    {''.join(_actuator(name, cfg) for name in (*ARM_JOINTS, GRIPPER_JOINT))}
  </actuator>
  <sensor>
    <accelerometer name="imu_accel" site="{IMU_SITE}"/>
    <gyro name="imu_gyro" site="{IMU_SITE}"/>
  </sensor>
</mujoco>
"""

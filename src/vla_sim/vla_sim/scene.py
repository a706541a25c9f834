"""MJCF of the tabletop scene, generated from a :class:`SimConfig`.

A 6-joint arm with a parallel gripper, all primitive geoms so llvmpipe renders it in milliseconds,
on a table with three coloured blocks, a target region (a mocap disc, moved per episode), a fixed
scene camera, a wrist camera and a base-mounted IMU site.

Every body frame is aligned with the world at the zero configuration (upper arm up, forearm
forward, tool pointing down), so joint axes read directly off this file. ``ee_link`` is the tool
centre point between the fingertips, z pointing out of the gripper (down at zero configuration).
"""

from __future__ import annotations

import math

import numpy as np

from vla_sim.config import SimConfig

__all__ = [
    'ARM_JOINTS',
    'BLOCK_COLORS',
    'BLOCK_HALF_SIZE',
    'CAMERAS',
    'GRIPPER_JOINT',
    'GRIPPER_MAX',
    'IMU_SITE',
    'JOINT_EFFORT_LIMITS',
    'JOINT_VELOCITY_LIMITS',
    'LINK_BODIES',
    'MARKER_POS',
    'build_mjcf',
]

ARM_JOINTS = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6')
GRIPPER_JOINT = 'gripper'  # per-finger opening [m], 0 = closed; the other finger is coupled
GRIPPER_MAX = 0.04
# TF chain world -> base_link -> link1 ... link6 -> ee_link (parents follow the body tree).
LINK_BODIES = ('base_link', 'link1', 'link2', 'link3', 'link4', 'link5', 'link6', 'ee_link')
CAMERAS = ('scene_camera', 'wrist_camera')
IMU_SITE = 'imu_link'
BLOCK_COLORS = {'red': (0.9, 0.1, 0.1), 'green': (0.1, 0.75, 0.15), 'blue': (0.1, 0.25, 0.9)}
BLOCK_HALF_SIZE = 0.02
MARKER_POS = (0.62, -0.22, 0.004)  # calibration marker on the table, in view of the scene camera

_DEG = math.pi / 180.0
# Per joint: range, velocity limit, effort limit, position kp/kv, velocity kv, armature, damping,
# frictionloss. Gains are stiff enough to track a 0.3 m/s tool path with ~kv/kp = 0.1 s lag.
_JOINT_PARAMS = {
    'joint1': ((-170 * _DEG, 170 * _DEG), 2.0, 80.0, 400.0, 40.0, 80.0, 0.1, 0.5, 0.2),
    'joint2': ((-110 * _DEG, 110 * _DEG), 2.0, 80.0, 400.0, 40.0, 80.0, 0.1, 0.5, 0.2),
    'joint3': ((-150 * _DEG, 150 * _DEG), 2.5, 60.0, 300.0, 30.0, 60.0, 0.08, 0.4, 0.15),
    'joint4': ((-170 * _DEG, 170 * _DEG), 3.0, 25.0, 120.0, 12.0, 20.0, 0.03, 0.2, 0.05),
    'joint5': ((-170 * _DEG, 170 * _DEG), 3.0, 20.0, 80.0, 8.0, 15.0, 0.02, 0.1, 0.05),
    'joint6': ((-175 * _DEG, 175 * _DEG), 3.0, 15.0, 60.0, 6.0, 10.0, 0.02, 0.1, 0.05),
    'gripper': ((0.0, GRIPPER_MAX), 0.2, 30.0, 800.0, 40.0, 100.0, 0.0, 2.0, 0.0),
}
JOINT_VELOCITY_LIMITS = {k: v[1] for k, v in _JOINT_PARAMS.items()}
JOINT_EFFORT_LIMITS = {k: v[2] for k, v in _JOINT_PARAMS.items()}

_ARM_RGBA = '0.82 0.82 0.85 1'
_DARK_RGBA = '0.25 0.25 0.28 1'


def _fmt(values: tuple[float, ...] | np.ndarray) -> str:
    return ' '.join(f'{float(v):.6g}' for v in values)


def _look_at_xyaxes(pos: np.ndarray, target: np.ndarray) -> str:
    """MuJoCo camera ``xyaxes`` looking from ``pos`` at ``target`` with world z up in the image."""
    forward = target - pos
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return _fmt(np.concatenate([right, up]))


def _actuator(joint: str, cfg: SimConfig) -> str:
    _, vmax, tau, kp, kv, kv_vel, *_ = _JOINT_PARAMS[joint]
    g = cfg.mismatch.gain_scale
    (lo, hi) = _JOINT_PARAMS[joint][0]
    force = f'forcelimited="true" forcerange="{-tau:g} {tau:g}"'
    if cfg.actuation == 'position':
        # A PD servo as on position-controlled arms: tau = kp (u - q) - kv qdot.
        return (
            f'<general name="{joint}" joint="{joint}" ctrllimited="true" ctrlrange="{lo:.6g} '
            f'{hi:.6g}" gainprm="{kp * g:g}" biastype="affine" '
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


def _joint(name: str, axis: str, cfg: SimConfig, kind: str = 'hinge') -> str:
    (lo, hi), _, _, _, _, _, armature, damping, friction = _JOINT_PARAMS[name]
    m = cfg.mismatch
    return (
        f'<joint name="{name}" type="{kind}" axis="{axis}" range="{lo:.6g} {hi:.6g}" '
        f'armature="{armature:g}" damping="{damping * m.damping_scale:g}" '
        f'frictionloss="{friction * m.friction_scale:g}"/>'
    )


def build_mjcf(cfg: SimConfig) -> str:
    """The scene's MJCF text for ``cfg``."""
    gc = '1' if cfg.gravity_compensation else '0'
    off_w = max(cfg.scene_camera_width, cfg.wrist_camera_width)
    off_h = max(cfg.scene_camera_height, cfg.wrist_camera_height)
    scene_cam_pos = np.array([0.78, 0.0, 0.62])
    scene_cam_axes = _look_at_xyaxes(scene_cam_pos, np.array([0.43, 0.0, 0.0]))
    j = {name: _joint(name, axis, cfg) for name, axis in zip(ARM_JOINTS, _ARM_AXES, strict=True)}

    imu_z = 0.03 if cfg.imu_mount == 'base_link' else -0.01  # inside the base / wrist flange
    imu_site = f'<site name="{IMU_SITE}" pos="0 0 {imu_z:g}" size="0.005"/>'
    payload = ''
    if cfg.mismatch.payload_kg > 0.0:
        # gravcomp 0: the payload's weight is exactly what a nominal controller does not expect.
        payload = (
            f'<body name="payload" pos="0 0 -0.02"><geom type="sphere" size="0.015" '
            f'mass="{cfg.mismatch.payload_kg:g}" contype="0" conaffinity="0" group="3"/></body>'
        )
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
    finger_geom = (
        'type="box" size="0.012 0.006 0.03" rgba="' + _DARK_RGBA + '" friction="1 0.005 0.0001"'
    )
    gripper_joint = _joint(GRIPPER_JOINT, '0 1 0', cfg, kind='slide')
    lo, hi = _JOINT_PARAMS[GRIPPER_JOINT][0]
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
    <camera name="scene_camera" pos="{_fmt(scene_cam_pos)}" xyaxes="{scene_cam_axes}"
            fovy="{cfg.scene_camera_fovy_deg:g}"/>
    <body name="target" mocap="true" pos="0.45 0 0">
      <geom name="target" type="cylinder" size="{cfg.target_radius:g} 0.0005" pos="0 0 0.0006"
            rgba="1 0.85 0.1 0.7" contype="0" conaffinity="0"/>
    </body>
    <body name="base_link" pos="0 0 0">
      <geom type="cylinder" fromto="0 0 0 0 0 0.05" size="0.08" rgba="{_DARK_RGBA}"/>
      {imu_site if cfg.imu_mount == 'base_link' else ''}
      <body name="link1" pos="0 0 0.05" gravcomp="{gc}">
        {j['joint1']}
        <geom type="cylinder" fromto="0 0 0 0 0 0.1" size="0.06" rgba="{_ARM_RGBA}"/>
        <body name="link2" pos="0 0 0.1" gravcomp="{gc}">
          {j['joint2']}
          <geom type="capsule" fromto="0 0 0 0 0 0.32" size="0.045" rgba="{_ARM_RGBA}"/>
          <body name="link3" pos="0 0 0.32" gravcomp="{gc}">
            {j['joint3']}
            <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.038" rgba="{_ARM_RGBA}"/>
            <body name="link4" pos="0.3 0 0" gravcomp="{gc}">
              {j['joint4']}
              <geom type="capsule" fromto="0 0 0 0 0 -0.05" size="0.032" rgba="{_DARK_RGBA}"/>
              <body name="link5" pos="0 0 -0.06" gravcomp="{gc}">
                {j['joint5']}
                <geom type="cylinder" fromto="-0.03 0 0 0.03 0 0" size="0.028"
                      rgba="{_ARM_RGBA}"/>
                <body name="link6" pos="0 0 -0.04" gravcomp="{gc}">
                  {j['joint6']}
                  <geom type="cylinder" fromto="0 0 0 0 0 -0.02" size="0.03" rgba="{_DARK_RGBA}"/>
                  {imu_site if cfg.imu_mount == 'link6' else ''}
                  <geom name="palm" type="box" pos="0 0 -0.032" size="0.02 0.045 0.012"
                        rgba="{_ARM_RGBA}"/>
                  <camera name="wrist_camera" pos="0.055 0 -0.03" xyaxes="0 -1 0 1 0 0"
                          fovy="{cfg.wrist_camera_fovy_deg:g}"/>
                  <body name="left_finger" pos="0 0.007 -0.074" gravcomp="{gc}">
                    {gripper_joint}
                    <geom name="left_finger" {finger_geom}/>
                  </body>
                  <body name="right_finger" pos="0 -0.007 -0.074" gravcomp="{gc}">
                    <joint name="right_finger" type="slide" axis="0 -1 0" range="{lo:g} {hi:g}"
                           armature="0" damping="{2.0 * cfg.mismatch.damping_scale:g}"/>
                    <geom name="right_finger" {finger_geom}/>
                  </body>
                  <body name="ee_link" pos="0 0 -0.094" quat="0 1 0 0">
                    <site name="ee_site" size="0.004" rgba="1 1 0 0"/>
                    {payload}
                  </body>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>
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


# Shoulder yaw, shoulder/elbow/wrist pitch, wrist roll, tool yaw.
_ARM_AXES = ('0 0 1', '0 1 0', '0 1 0', '0 1 0', '1 0 0', '0 0 1')

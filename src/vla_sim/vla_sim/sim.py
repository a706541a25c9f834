"""The MuJoCo tabletop arm behind the hardware-agnostic :class:`RobotInterface`.

Physics steps at ``physics_hz``; :meth:`MujocoSim.step` advances whole control periods, so a
caller that sends one command per step drives the actuators at ``control_hz``. A command reaches
the actuators ``mismatch.latency_s`` after :meth:`send_command` (at physics resolution).

Besides the robot interface it exposes what a hardware robot's drivers would publish (camera
images, intrinsics and poses, link poses for TF, raw IMU, sim time) and privileged state for
tasks and the scripted expert (block poses, target, teleporting the arm).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import math

# vla_sim/__init__.py has already chosen MUJOCO_GL by the time this module is imported.
import mujoco
import numpy as np
import transforms3d

from vla_core.robot import (
    CameraIntrinsics,
    ImuSample,
    JointLimits,
    JointStateSample,
    Pose,
    RobotInterface,
)
from vla_sim.config import SimConfig
from vla_sim.scene import (
    ARM_JOINTS,
    BLOCK_COLORS,
    CAM_TO_LINK,
    CAMERAS,
    GRIPPER_JOINT,
    IMU_SITE,
    JOINT_EFFORT_LIMITS,
    JOINT_VELOCITY_LIMITS,
    LINK_BODIES,
    build_mjcf,
)

__all__ = ['HOME_QPOS', 'MujocoSim', 'SimSnapshot']

# Tool pointing down 0.15 m above the table at x = 0.35 m, elbow up; gripper closed.
HOME_QPOS = np.array([0.0, 0.2331, 0.1688, -0.4019, 0.0, 0.0, 0.0])

# MuJoCo cameras look along -z with y up; columns give the optical frame (z forward, x right,
# y down) in camera axes (CAM_TO_LINK: the REP 103 body frame).
_CAM_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])


def _pose(pos: np.ndarray, mat9: np.ndarray) -> Pose:
    return Pose.from_matrix(np.array(pos), np.array(mat9).reshape(3, 3))


@dataclass(frozen=True)
class SimSnapshot:
    """Everything stepping the sim depends on: MuJoCo's state and the commands still in flight."""

    data: mujoco.MjData
    pending: tuple[tuple[float, np.ndarray], ...]


class MujocoSim(RobotInterface):
    """Simulated 6-joint arm + gripper on a table with three blocks.

    ``joint_names`` are ``joint1..joint6, gripper``; the gripper value is the per-finger opening
    in metres (0 closed, 0.04 open). Not thread-safe: one caller steps, reads and renders.
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config if config is not None else SimConfig()
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(self.config))
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._names = (*ARM_JOINTS, GRIPPER_JOINT)
        jids = [m.joint(n).id for n in self._names]
        self._qadr = np.array([m.jnt_qposadr[j] for j in jids])
        self._dadr = np.array([m.jnt_dofadr[j] for j in jids])
        self._act = np.array([m.actuator(n).id for n in self._names])
        self._finger2_qadr = m.jnt_qposadr[m.joint('right_finger').id]
        ranges = np.array([m.jnt_range[j] for j in jids])
        self._limits = JointLimits(
            joint_names=self._names,
            position_lower=ranges[:, 0],
            position_upper=ranges[:, 1],
            velocity=[JOINT_VELOCITY_LIMITS[n] for n in self._names],
            effort=[JOINT_EFFORT_LIMITS[n] for n in self._names],
        )
        self._block_qadr = {c: m.jnt_qposadr[m.joint(f'block_{c}').id] for c in BLOCK_COLORS}
        self._block_dadr = {c: m.jnt_dofadr[m.joint(f'block_{c}').id] for c in BLOCK_COLORS}
        self._target_mocap = m.body_mocapid[m.body('target').id]
        self._ee_site = m.site('ee_site').id
        self._imu_site = m.site(IMU_SITE).id
        self._accel_adr = m.sensor_adr[m.sensor('imu_accel').id]
        self._gyro_adr = m.sensor_adr[m.sensor('imu_gyro').id]
        robot_bodies = {m.body(n).id for n in (*LINK_BODIES[1:], 'left_finger', 'right_finger')}
        self._robot_geom = np.isin(m.geom_bodyid, list(robot_bodies))
        self._dt = float(m.opt.timestep)
        self._pending: deque[tuple[float, np.ndarray]] = deque()
        self._renderers: dict[str, mujoco.Renderer] = {}
        self._connected = False
        self.reset()

    # --- RobotInterface ----------------------------------------------------------------------

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def limits(self) -> JointLimits:
        return self._limits

    @property
    def actuation_mode(self) -> str:
        return self.config.actuation

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    def now(self) -> float:
        return float(self.data.time)

    def read_state(self) -> JointStateSample:
        d = self.data
        return JointStateSample(
            stamp=self.now(),
            joint_names=self._names,
            position=d.qpos[self._qadr],
            velocity=d.qvel[self._dadr],
            effort=d.actuator_force[self._act],
        )

    def _apply(self, values: np.ndarray, stamp: float) -> None:
        if self.config.mismatch.latency_s <= 0.0:
            self.data.ctrl[self._act] = values
        else:
            self._pending.append((self.now() + self.config.mismatch.latency_s, values.copy()))

    @property
    def applied_ctrl(self) -> np.ndarray:
        """What the actuators currently hold (after latency), in ``joint_names`` order."""
        return self.data.ctrl[self._act].copy()

    # --- time ---------------------------------------------------------------------------------

    @property
    def control_period(self) -> float:
        return self._dt * self.config.substeps

    @property
    def physics_dt(self) -> float:
        return self._dt

    def step(self, n: int = 1) -> None:
        """Advance ``n`` control periods of physics."""
        remaining = int(n) * self.config.substeps
        while remaining > 0:
            self._release_due()
            k = remaining
            if self._pending:
                wait = (self._pending[0][0] - self.data.time) / self._dt
                k = min(k, max(1, math.ceil(wait - 1e-6)))
            mujoco.mj_step(self.model, self.data, nstep=k)
            remaining -= k
        self._release_due()

    def _release_due(self) -> None:
        while self._pending and self._pending[0][0] <= self.data.time + 0.5 * self._dt:
            self.data.ctrl[self._act] = self._pending.popleft()[1]

    def snapshot(self) -> SimSnapshot:
        """A copy of the current state, for :meth:`restore` (what-if rollouts from a state)."""
        data = mujoco.MjData(self.model)
        mujoco.mj_copyData(data, self.model, self.data)
        return SimSnapshot(data, tuple((t, v.copy()) for t, v in self._pending))

    def restore(self, snapshot: SimSnapshot) -> None:
        """Back to ``snapshot``: stepping on gives what it would have given from there."""
        mujoco.mj_copyData(self.data, self.model, snapshot.data)
        self._pending = deque((t, v.copy()) for t, v in snapshot.pending)

    # --- episode set-up (privileged) ------------------------------------------------------------

    def reset(self, qpos: np.ndarray | None = None) -> None:
        """Back to time 0: arm at ``qpos`` (default HOME_QPOS) holding still, blocks in a row."""
        mujoco.mj_resetData(self.model, self.data)
        self._pending.clear()
        for i, color in enumerate(BLOCK_COLORS):
            self.set_block_pose(color, (0.45, -0.15 + 0.15 * i), 0.0, forward=False)
        self.set_joint_positions(HOME_QPOS if qpos is None else qpos)

    def set_joint_positions(self, q: np.ndarray) -> None:
        """Teleport the arm and gripper to ``q`` at rest, actuators holding it (privileged)."""
        q = np.clip(np.asarray(q, dtype=np.float64), *self._limits.bounds('position'))
        d = self.data
        d.qpos[self._qadr] = q
        d.qpos[self._finger2_qadr] = q[-1]
        d.qvel[self._dadr] = 0.0
        d.qvel[self.model.jnt_dofadr[self.model.joint('right_finger').id]] = 0.0
        d.ctrl[self._act] = q if self.actuation_mode == 'position' else 0.0
        self._pending.clear()
        mujoco.mj_forward(self.model, d)

    def set_block_pose(
        self, color: str, xy: tuple[float, float], yaw: float, forward: bool = True
    ) -> None:
        """Place a block on the table at rest."""
        a, v = self._block_qadr[color], self._block_dadr[color]
        half = self.model.geom(f'block_{color}').size[2]
        self.data.qpos[a : a + 3] = (xy[0], xy[1], half)
        self.data.qpos[a + 3 : a + 7] = transforms3d.euler.euler2quat(0.0, 0.0, yaw)
        self.data.qvel[v : v + 6] = 0.0
        if forward:
            mujoco.mj_forward(self.model, self.data)

    def move_block(self, color: str, xy: np.ndarray) -> None:
        """Teleport a block to ``xy`` on the table, keeping its orientation, at rest."""
        a, v = self._block_qadr[color], self._block_dadr[color]
        self.data.qpos[a : a + 2] = xy
        self.data.qvel[v : v + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def block_pose(self, color: str) -> Pose:
        a = self._block_qadr[color]
        return Pose(self.data.qpos[a : a + 3], self.data.qpos[a + 3 : a + 7])

    def block_velocity(self, color: str) -> np.ndarray:
        """(6,) linear (world) and angular (body) velocity of a block."""
        v = self._block_dadr[color]
        return self.data.qvel[v : v + 6].copy()

    @property
    def target_xy(self) -> np.ndarray:
        return self.data.mocap_pos[self._target_mocap, :2].copy()

    def set_target(self, xy: tuple[float, float]) -> None:
        self.data.mocap_pos[self._target_mocap] = (xy[0], xy[1], 0.0)
        mujoco.mj_forward(self.model, self.data)

    def ee_pose(self) -> Pose:
        """World pose of ``ee_link`` (tool centre point between the fingertips, z out of tool)."""
        return _pose(self.data.site_xpos[self._ee_site], self.data.site_xmat[self._ee_site])

    @property
    def ee_site_id(self) -> int:
        return self._ee_site

    @property
    def qpos_addresses(self) -> np.ndarray:
        """qpos indices of ``joint_names`` (for kinematics on a scratch MjData)."""
        return self._qadr.copy()

    @property
    def dof_addresses(self) -> np.ndarray:
        return self._dadr.copy()

    def robot_in_contact(self, include_table: bool = True) -> bool:
        """Whether any arm/gripper geom touches something (for rejecting teleports)."""
        table = self.model.geom('table').id
        for c in self.data.contact[: self.data.ncon]:
            g1, g2 = c.geom1, c.geom2
            robot = self._robot_geom[g1] or self._robot_geom[g2]
            if robot and (include_table or table not in (g1, g2)):
                return True
        return False

    # --- sensors ------------------------------------------------------------------------------

    def imu(self) -> ImuSample:
        """Raw IMU in ``imu_link`` (REP 145): specific force (+g on z at rest) and body rate."""
        s = self.data.sensordata
        return ImuSample(
            stamp=self.now(),
            frame_id=IMU_SITE,
            linear_acceleration=s[self._accel_adr : self._accel_adr + 3],
            angular_velocity=s[self._gyro_adr : self._gyro_adr + 3],
        )

    @property
    def camera_names(self) -> tuple[str, ...]:
        return CAMERAS

    def _camera_size(self, camera: str) -> tuple[int, int]:
        c = self.config
        if camera == 'scene_camera':
            return c.scene_camera_width, c.scene_camera_height
        if camera == 'wrist_camera':
            return c.wrist_camera_width, c.wrist_camera_height
        raise KeyError(f'unknown camera {camera!r}; known: {list(CAMERAS)}')

    def camera_intrinsics(self, camera: str) -> CameraIntrinsics:
        """Pinhole model of a MuJoCo camera: square pixels, vertical fov ``fovy``, centred.

        OpenGL puts the optical axis at the image centre, i.e. between pixels for even sizes;
        in ROS pixel coordinates (centres at integers) that is ((w - 1) / 2, (h - 1) / 2).
        """
        width, height = self._camera_size(camera)
        fovy = math.radians(float(self.model.cam_fovy[self.model.camera(camera).id]))
        f = 0.5 * height / math.tan(0.5 * fovy)
        return CameraIntrinsics(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)

    def camera_pose(self, camera: str, optical: bool = True) -> Pose:
        """World pose of a camera's optical frame (z forward, x right, y down), or with
        ``optical=False`` its REP 103 body frame (x forward, y left, z up)."""
        self._camera_size(camera)  # validates the name
        cid = self.model.camera(camera).id
        r = self.data.cam_xmat[cid].reshape(3, 3) @ (_CAM_TO_OPTICAL if optical else CAM_TO_LINK)
        return Pose.from_matrix(self.data.cam_xpos[cid].copy(), r)

    def render(self, camera: str) -> np.ndarray:
        """(height, width, 3) uint8 RGB from ``camera``, row 0 at the top, no shadows."""
        width, height = self._camera_size(camera)
        renderer = self._renderers.get(camera)
        if renderer is None:
            renderer = mujoco.Renderer(self.model, height=height, width=width)
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            self._renderers[camera] = renderer
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    # --- frames of the robot description -------------------------------------------------------

    def frame_poses(self) -> dict[str, Pose]:
        """World pose of every frame of the robot description (vla_description's vla_tabletop):
        arm links, fingers, IMU, camera frames. TF itself comes from the description and
        joint_states (robot_state_node); this is MuJoCo's side of the consistency test."""
        d = self.data
        poses = {}
        for name in (*LINK_BODIES, 'left_finger', 'right_finger'):
            b = self.model.body(name).id
            poses[name] = Pose(d.xpos[b].copy(), d.xquat[b].copy())
        poses[IMU_SITE] = _pose(d.site_xpos[self._imu_site], d.site_xmat[self._imu_site])
        for cam in CAMERAS:
            poses[f'{cam}_link'] = self.camera_pose(cam, optical=False)
            poses[f'{cam}_optical_frame'] = self.camera_pose(cam, optical=True)
        return poses

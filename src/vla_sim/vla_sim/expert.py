"""Closed-loop scripted pushing expert with privileged state.

Every call re-plans from the sim's current state (block, target, tool pose, joints), so it labels
any state, including ones a learned policy drifts into (DAgger). It plans a tool path, then maps
it to joint-position targets with damped-least-squares IK on MuJoCo Jacobians, and returns them
as an :class:`ActionChunk` stamped with the current sim time.

Strategy: with the gripper closed as a pusher, stand behind the block on the line from the target
through the block, then push along that line; the line is recomputed every call, which steers
the block. If the tool is not behind the block, go there: directly at push height when that path
keeps clear of every block, else up, over and down.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import mujoco
import numpy as np
import transforms3d

from vla_core.chunk import ActionChunk
from vla_core.config import Config, param
from vla_core.robot import Pose
from vla_sim.scene import ARM_JOINTS, BLOCK_COLORS, BLOCK_HALF_SIZE
from vla_sim.sim import MujocoSim
from vla_sim.tasks import segment_distance

__all__ = ['ExpertConfig', 'IkSolver', 'PushExpert', 'chunk_target']

_N_ARM = len(ARM_JOINTS)
# ee_link orientation with the tool pointing straight down at zero yaw (see scene.py).
_TOOL_DOWN = np.diag([1.0, -1.0, -1.0])
# Push directions tried, relative to block->goal [rad], when the straight one is obstructed.
_PUSH_ANGLES = (0.0, 0.35, -0.35, 0.7, -0.7, 1.05, -1.05)


@dataclass(frozen=True, kw_only=True)
class ExpertConfig(Config):
    horizon: int = param(10, description='targets per chunk', range=(1, 200))
    dt: float = param(0.05, description='time between chunk targets [s]', range=(0.005, 1.0))
    lead_s: float = param(
        0.1, description='look-ahead compensating the servo lag (kv/kp) [s]', range=(0.0, 0.5)
    )
    transit_speed: float = param(
        0.25, description='tool speed moving around [m/s]', range=(0.01, 1)
    )
    push_speed: float = param(0.1, description='tool speed while pushing [m/s]', range=(0.01, 0.5))
    push_height: float = param(
        0.022, description='tool centre height while pushing [m]', range=(0.01, 0.05)
    )
    transit_height: float = param(
        0.1, description='tool centre height when passing over blocks [m]', range=(0.06, 0.3)
    )
    pusher_offset: float = param(
        0.034, description='block centre to tool centre when in contact [m]', range=(0.02, 0.1)
    )
    approach_gap: float = param(
        0.03, description='extra distance behind the block before pushing [m]', range=(0.0, 0.1)
    )
    lateral_tolerance: float = param(
        0.015, description='max sideways offset from the push line to keep pushing [m]',
        range=(0.002, 0.05),
    )  # fmt: skip
    clearance: float = param(
        0.055, description='min tool-to-block-centre distance on low moves [m]',
        range=(0.03, 0.15),
    )  # fmt: skip
    orient_time_s: float = param(
        0.3, description='time to bring the tool upright from a tilted state [s]',
        range=(0.0, 2.0),
    )  # fmt: skip


def chunk_target(chunk: ActionChunk, t: float) -> np.ndarray:
    """Linearly interpolated target at time ``t``, holding the ends outside the chunk."""
    if chunk.horizon == 1 or t <= chunk.stamp:
        return np.array(chunk.targets[0])
    x = (t - chunk.stamp) / chunk.dt
    i = math.floor(x)
    if i >= chunk.horizon - 1:
        return np.array(chunk.targets[-1])
    a = x - i
    return (1.0 - a) * chunk.targets[i] + a * chunk.targets[i + 1]


def _rotvec(r: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, angle <= pi) of a rotation matrix. In the IK's inner loop:
    MuJoCo's matrix -> quaternion is ~15x faster than transforms3d's eigen-based mat2quat."""
    q = np.empty(4)
    mujoco.mju_mat2Quat(q, r.reshape(9))
    axis, angle = transforms3d.quaternions.quat2axangle(q if q[0] >= 0.0 else -q)
    return axis * angle


def _rot_exp(v: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector."""
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    return transforms3d.axangles.axangle2mat(v / angle, angle, is_normalized=True)


def _rot_z(yaw: float) -> np.ndarray:
    return transforms3d.axangles.axangle2mat((0.0, 0.0, 1.0), yaw, is_normalized=True)


class IkSolver:
    """Tool-site IK: a closed-form elbow-up seed, refined by damped least squares on MuJoCo
    Jacobians (scratch MjData, the sim is untouched).

    Plain DLS from the current joints can wander onto the elbow-down branch and stall at a joint
    limit (seen when pushing towards the base after a perturbation); the closed-form seed pins
    the branch, and DLS makes the result exact for any tool orientation near vertical.
    """

    def __init__(self, sim: MujocoSim, damping: float = 0.02, max_iters: int = 30) -> None:
        self._m = sim.model
        self._d = mujoco.MjData(sim.model)
        self._site = sim.ee_site_id
        self._qadr = sim.qpos_addresses[:_N_ARM]
        self._dadr = sim.dof_addresses[:_N_ARM]
        self._lo = sim.limits.position_lower[:_N_ARM]
        self._hi = sim.limits.position_upper[:_N_ARM]
        self._lambda2 = damping**2
        self._iters = max_iters
        self._jacp = np.zeros((3, self._m.nv))
        self._jacr = np.zeros((3, self._m.nv))
        # Geometry for the closed form, read from the zero configuration.
        self._d.qpos[:] = 0.0
        mujoco.mj_kinematics(self._m, self._d)
        body = {n: self._d.body(n).xpos.copy() for n in ('link2', 'link3', 'link4')}
        self._shoulder = body['link2']
        self._l1 = float(np.linalg.norm(body['link3'] - body['link2']))
        self._l2 = float(np.linalg.norm(body['link4'] - body['link3']))
        self._wrist_drop = float(body['link4'][2] - self._d.site_xpos[self._site][2])

    def seed(self, pos: np.ndarray, yaw: float) -> np.ndarray:
        """Closed-form joints putting the tool at ``pos`` pointing down with world ``yaw``."""
        wrist = np.array([pos[0], pos[1], pos[2] + self._wrist_drop]) - self._shoulder
        j1 = math.atan2(wrist[1], wrist[0])
        r, z = math.hypot(wrist[0], wrist[1]), wrist[2]
        l1, l2 = self._l1, self._l2
        rho = min(math.hypot(r, z), l1 + l2 - 1e-6)
        j3 = math.asin(max(-1.0, min(1.0, (l1 * l1 + l2 * l2 - rho * rho) / (2 * l1 * l2))))
        cos_b = (l1 * l1 + rho * rho - l2 * l2) / (2 * l1 * rho)
        j2 = 0.5 * math.pi - (math.atan2(z, r) + math.acos(max(-1.0, min(1.0, cos_b))))
        j6 = math.remainder(yaw - j1, 2 * math.pi)
        return np.clip(np.array([j1, j2, j3, -(j2 + j3), 0.0, j6]), self._lo, self._hi)

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool position and rotation matrix at arm joints ``q``."""
        self._d.qpos[self._qadr] = q
        mujoco.mj_kinematics(self._m, self._d)
        return self._d.site_xpos[self._site].copy(), self._d.site_xmat[self._site].reshape(3, 3)

    def solve(
        self, q0: np.ndarray, pos: np.ndarray, rot: np.ndarray, tol: float = 1e-4
    ) -> np.ndarray:
        """DLS from ``q0`` towards tool position ``pos`` and rotation ``rot``."""
        q = np.array(q0, dtype=np.float64)
        for _ in range(self._iters):
            p, r = self.forward(q)
            err = np.concatenate([pos - p, 0.5 * _rotvec(rot @ r.T)])
            if float(np.linalg.norm(err)) < tol:
                break
            mujoco.mj_comPos(self._m, self._d)
            mujoco.mj_jacSite(self._m, self._d, self._jacp, self._jacr, self._site)
            jac = np.vstack([self._jacp[:, self._dadr], 0.5 * self._jacr[:, self._dadr]])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + self._lambda2 * np.eye(6), err)
            step = float(np.max(np.abs(dq)))
            if step > 0.3:  # keep each Newton step inside the linear regime
                dq *= 0.3 / step
            q = np.clip(q + dq, self._lo, self._hi)
        return q


class PushExpert:
    """Scripted expert for the push tasks; ``act`` returns an ActionChunk of joint targets."""

    def __init__(self, sim: MujocoSim, config: ExpertConfig | None = None) -> None:
        self.sim = sim
        self.config = config if config is not None else ExpertConfig()
        self.ik = IkSolver(sim)
        self.phase = ''  # last plan's phase, for logging and tests
        self._sequence = 0

    def act(self, block: str, target_xy: np.ndarray) -> ActionChunk:
        """A chunk pushing ``block`` towards ``target_xy``, planned from the current sim state."""
        if block not in BLOCK_COLORS:
            raise ValueError(f'unknown block {block!r}; known: {list(BLOCK_COLORS)}')
        cfg = self.config
        sim = self.sim
        ee = sim.ee_pose()
        path, speed, self.phase = self._plan(block, np.asarray(target_xy, dtype=np.float64), ee)
        times = cfg.lead_s + cfg.dt * np.arange(cfg.horizon)
        points = _sample_polyline(path, speed * times)
        r_now = ee.rotation
        targets = np.empty((cfg.horizon, len(sim.joint_names)))
        for k, (p, t) in enumerate(zip(points, times, strict=True)):
            yaw = math.atan2(p[1], p[0])  # the arm's natural yaw: joint6 stays near zero
            r_goal = _rot_z(yaw) @ _TOOL_DOWN
            # Straighten a tilted tool gradually rather than snapping it upright.
            a = 1.0 if cfg.orient_time_s <= 0.0 else min(1.0, t / cfg.orient_time_s)
            r_des = _rot_exp(a * _rotvec(r_goal @ r_now.T)) @ r_now
            targets[k, :_N_ARM] = self.ik.solve(self.ik.seed(p, yaw), p, r_des)
        targets[:, _N_ARM] = 0.0  # closed gripper is the pusher
        self._sequence += 1
        return ActionChunk(
            stamp=sim.now(),
            dt=cfg.dt,
            joint_names=sim.joint_names,
            targets=targets,
            source='expert',
            sequence=self._sequence,
        )

    def _plan(self, block: str, goal: np.ndarray, ee: Pose) -> tuple[list[np.ndarray], float, str]:
        """Tool path (polyline from the current tool position), its speed and the phase name."""
        cfg = self.config
        e = np.array(ee.position)
        b = self.sim.block_pose(block).position[:2]
        to_goal = goal - b
        dist = float(np.linalg.norm(to_goal))
        if dist < 1e-6:
            return [e, np.array([*e[:2], cfg.transit_height])], cfg.transit_speed, 'done'
        low = e[2] < cfg.push_height + 0.02
        standoff = cfg.pusher_offset + cfg.approach_gap
        # Push straight at the goal unless another block sits where the pusher must stand; then
        # push at the smallest angle that is free (still closing in on the goal): once the block
        # has moved away from the obstacle, a later call straightens out again.
        d = to_goal / dist
        for angle in _PUSH_ANGLES:
            rotated = _rot_z(angle)[:2, :2] @ (to_goal / dist)
            if self._clear_of_others(block, b - rotated * standoff):
                d = rotated
                break
        rel = e[:2] - b
        along, lateral = float(rel @ d), float(rel @ np.array([-d[1], d[0]]))
        behind = -(standoff + 0.02) < along < -cfg.pusher_offset + 0.012
        if low and behind and abs(lateral) < cfg.lateral_tolerance:
            # Push along the line through the block centre until the block is abreast of the
            # goal (on it, for the straight push).
            start = b - d * cfg.pusher_offset
            end = b + d * (float(to_goal @ d) - cfg.pusher_offset)
            z = cfg.push_height
            return [e, np.array([*start, z]), np.array([*end, z])], cfg.push_speed, 'push'

        pre = np.array([*(b - d * standoff), cfg.push_height])
        if low and self._clear_low_path(e[:2], pre[:2]):
            return [e, pre], cfg.transit_speed, 'approach_low'
        up = np.array([*e[:2], max(cfg.transit_height, e[2])])
        over = np.array([*pre[:2], up[2]])
        if float(np.linalg.norm(e[:2] - pre[:2])) < 0.01:
            return [e, pre], cfg.transit_speed, 'descend'
        return [e, up, over, pre], cfg.transit_speed, 'approach_high'

    def _clear_of_others(self, block: str, p: np.ndarray) -> bool:
        """Whether the pusher can stand at ``p`` without landing on another block."""
        for color in BLOCK_COLORS:
            if color == block:
                continue
            c = self.sim.block_pose(color).position
            if float(np.linalg.norm(c[:2] - p)) < self.config.clearance:
                return False
        return True

    def _clear_low_path(self, a: np.ndarray, b: np.ndarray) -> bool:
        for color in BLOCK_COLORS:
            c = self.sim.block_pose(color).position
            if c[2] > 3.0 * BLOCK_HALF_SIZE:
                continue  # not on the table any more
            if segment_distance(c[:2], a, b) < self.config.clearance:
                return False
        return True


def _sample_polyline(points: list[np.ndarray], s: np.ndarray) -> np.ndarray:
    """Points at arc lengths ``s`` along the polyline, clamped to its end."""
    pts = np.array(points, dtype=np.float64)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    out = np.empty((len(s), 3))
    for k, sk in enumerate(s):
        if sk >= cum[-1]:
            out[k] = pts[-1]
            continue
        i = int(np.searchsorted(cum, sk, side='right')) - 1
        a = 0.0 if seg[i] < 1e-12 else (sk - cum[i]) / seg[i]
        out[k] = pts[i] + a * (pts[i + 1] - pts[i])
    return out

"""The controller's command as the message the robot's driver takes (issue 25).

Three kinds of driver, one per ``output.message``:

* ``joint_state`` (default): sensor_msgs/JointState on ``joint_commands`` every tick, names in
  ``joint_names`` order, the ``output_mode`` field (position, velocity or effort) filled, stamped
  with the control time. What our simulator and JointState-speaking drivers take.
* ``forward_command``: std_msgs/Float64MultiArray every tick, the ``output_mode`` values in
  ``joint_names`` order, for ros2_control's forward_command_controller (and its
  position_controllers/velocity_controllers/effort_controllers JointGroup* variants), whose
  ``joints`` must list ``joint_names`` in the same order and whose ``interface_name`` must be
  ``output_mode``. The message carries no names and no stamp: order is the contract.
* ``joint_trajectory``: trajectory_msgs/JointTrajectory every ``trajectory_every`` ticks (and at
  once when the status changes: track, hold, stop, e-stop) for ros2_control's
  joint_trajectory_controller. Stamped with the control time; ``trajectory_points`` points of the
  tracked reference ahead of it (positions, velocities, accelerations of the chunk tracker's
  spline, or of its stop or hold while stopping), ``trajectory_dt`` apart, the first one
  ``trajectory_dt`` after the stamp, positions inside the safety limits. JTC interpolates between
  them and closes the loop itself, so our PID/MPC and residual do not act in this mode; the chunk
  tracking (latency compensation by time, splicing) and the safety stops do.

Topic: ``output.topic`` (relative, so namespaces apply; default ``joint_commands``), e.g.
``/forward_position_controller/commands`` or ``/joint_trajectory_controller/joint_trajectory``.
config/ros2_control/ has an example for a real arm.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from builtin_interfaces.msg import Duration
import numpy as np
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_core.config import Config, param
from vla_core.control import ControlCommand
from vla_ros_common.conversions import seconds_to_stamp

__all__ = ['MESSAGES', 'CommandOutput', 'OutputConfig']

MESSAGES = {
    'joint_state': JointState,
    'forward_command': Float64MultiArray,
    'joint_trajectory': JointTrajectory,
}
Message = JointState | Float64MultiArray | JointTrajectory
# (K,) times -> position, velocity, acceleration (K, DoF): the chunk tracker's preview.
Preview = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True, kw_only=True)
class OutputConfig(Config):
    message: str = param(
        'joint_state',
        description='joint_state (sensor_msgs/JointState), forward_command (Float64MultiArray for '
        "ros2_control's forward_command_controller) or joint_trajectory (JointTrajectory for its "
        'joint_trajectory_controller)',
        choices=tuple(MESSAGES),
        read_only=True,
    )
    topic: str = param(
        'joint_commands', description='topic of the commands (relative: namespaces apply)',
        read_only=True,
    )  # fmt: skip
    trajectory_points: int = param(
        5, description='joint_trajectory: reference points ahead of the stamp', range=(1, 1000),
        read_only=True,
    )  # fmt: skip
    trajectory_dt: float = param(
        0.02, description='joint_trajectory: time between the points [s]', range=(1e-4, 10.0),
        read_only=True,
    )  # fmt: skip
    trajectory_every: int = param(
        10, description='joint_trajectory: publish every N control ticks (and on status changes)',
        range=(1, 100000), read_only=True,
    )  # fmt: skip


def _duration(seconds: float) -> Duration:
    total_ns = round(seconds * 1e9)
    return Duration(sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000)


class CommandOutput:
    """Builds the configured message from each tick's :class:`ControlCommand`.

    ``preview`` is the tracker's (:meth:`vla_core.control.ChunkTracker.preview`), read on the
    control thread like the command; ``q_min``/``q_max`` the safety position limits."""

    def __init__(
        self,
        config: OutputConfig,
        joint_names: Sequence[str],
        preview: Preview,
        q_min: np.ndarray,
        q_max: np.ndarray,
    ) -> None:
        self.config = config
        self.joint_names = list(joint_names)
        self.msg_type = MESSAGES[config.message]
        self._preview = preview
        self._q_min, self._q_max = np.asarray(q_min, float), np.asarray(q_max, float)
        self._offsets = config.trajectory_dt * np.arange(1, config.trajectory_points + 1)
        self._ticks = 0
        self._last_status = ''

    def message(self, cmd: ControlCommand) -> Message | None:
        """The message for this tick, or None when a joint_trajectory is not due."""
        kind = self.config.message
        if kind == 'joint_state':
            msg = JointState(name=self.joint_names)
            msg.header.stamp = seconds_to_stamp(cmd.t)
            setattr(msg, cmd.mode, cmd.values.tolist())
            return msg
        if kind == 'forward_command':
            msg = Float64MultiArray(data=cmd.values.tolist())
            msg.layout.dim = [
                MultiArrayDimension(label='joints', size=len(self.joint_names), stride=1)
            ]
            return msg
        self._ticks += 1
        due = self._ticks % self.config.trajectory_every == 1 % self.config.trajectory_every
        if not due and cmd.status == self._last_status:
            return None
        self._last_status = cmd.status
        return self.trajectory(cmd.t)

    def trajectory(self, t: float) -> JointTrajectory:
        """The reference from ``t + trajectory_dt`` on, as a JointTrajectory stamped ``t``."""
        p, v, a = self._preview(t + self._offsets)
        clipped = np.clip(p, self._q_min, self._q_max)
        outside = clipped != p  # at a limit the reference stands still there
        p, v, a = clipped, np.where(outside, 0.0, v), np.where(outside, 0.0, a)
        msg = JointTrajectory(joint_names=self.joint_names)
        msg.header.stamp = seconds_to_stamp(t)
        msg.points = [
            JointTrajectoryPoint(
                positions=p[k].tolist(),
                velocities=v[k].tolist(),
                accelerations=a[k].tolist(),
                time_from_start=_duration(float(offset)),
            )
            for k, offset in enumerate(self._offsets)
        ]
        return msg

"""The MuJoCo robot on the topics a hardware robot's drivers would use (a bridge, nothing more).

Publishes ``joint_states``, ``camera/<name>/image_raw`` + ``camera_info`` (intrinsics from the
MuJoCo camera), ``imu/data_raw`` (specific force incl. gravity, REP 145), ``/clock`` (every header
stamp is a /clock time, so ``use_sim_time`` nodes agree), the command actually applied after
clipping (``applied_joint_commands``), the task's ``instruction`` (latched) and
``episode/status``. Subscribes ``joint_commands`` (sensor_msgs/JointState: the field of the sim's
actuation mode, by joint name); NaN/Inf, wrong-length or unknown-joint commands are refused with a
diagnostic and never applied. With ``expert_rate_hz`` > 0 the scripted expert, which needs
privileged sim state, publishes ``expert/action_chunk`` from the same process.

TF is not the sim's: as on hardware, robot_state_node (or robot_state_publisher) publishes the
arm's, cameras' and IMU's frames from joint_states and the robot description (vla_description's
vla_tabletop.urdf, written from the same table as this MJCF).

Time: sim time runs from 0 in each episode; stamps are ``epoch + sim time of all episodes so
far``, monotone across resets. ``real_time_factor`` paces the physics thread against the wall
clock with absolute deadlines (0: as fast as possible).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState
from std_msgs.msg import String

from vla_core.chunk import ActionChunk
from vla_core.config import Config, param
from vla_core.robot import CommandError, JointCommand, validate_command
from vla_interfaces.msg import ActionChunk as ActionChunkMsg
from vla_interfaces.msg import EpisodeStatus
from vla_interfaces.srv import ResetEpisode
from vla_ros_common import diagnostics, qos
from vla_ros_common.conversions import camera_info_msg, chunk_to_msg, seconds_to_stamp
from vla_ros_common.image import numpy_to_image
from vla_ros_common.node_main import run_node
from vla_ros_common.params import declare_config
from vla_sim.config import SimConfig
from vla_sim.expert import ExpertConfig, PushExpert
from vla_sim.sim import MujocoSim
from vla_sim.tasks import TASKS, TabletopTask, TaskConfig

__all__ = ['SimNode', 'SimNodeConfig', 'joint_command_from_msg']


@dataclass(frozen=True, kw_only=True)
class SimNodeConfig(Config):
    sim: SimConfig = param(default_factory=SimConfig, description='simulated robot and scene')
    task: TaskConfig = param(default_factory=TaskConfig, description='task randomization')
    expert: ExpertConfig = param(default_factory=ExpertConfig, description='scripted expert')
    task_name: str = param(
        'push_red', description='task of the first episode', choices=tuple(TASKS)
    )
    task_cycle: tuple[str, ...] = param(
        tuple(TASKS),
        description='tasks that episodes cycle through (automatic resets, resets naming no task)',
        choices=tuple(TASKS),
    )
    seed: int = param(0, description='seed of the first episode', range=(0, 2**31 - 1))
    auto_reset: bool = param(
        True, description='start the next episode (next seed) after success or the time limit'
    )
    real_time_factor: float = param(
        1.0, description='sim seconds per wall second; 0 runs as fast as possible',
        range=(0.0, 100.0),
    )  # fmt: skip
    publish_clock: bool = param(True, description='publish /clock (for use_sim_time nodes)')
    state_rate_hz: float = param(
        100.0, description='joint_states and /clock rate [Hz] (at most the control rate)',
        range=(1.0, 1000.0),
    )  # fmt: skip
    imu_rate_hz: float = param(200.0, description='imu/data_raw rate [Hz]', range=(0.0, 1000.0))
    camera_rate_hz: float = param(
        15.0, description='rate of each camera [Hz]; 0 disables rendering', range=(0.0, 120.0)
    )
    expert_rate_hz: float = param(
        0.0, description='scripted expert chunks on expert/action_chunk [Hz]; 0: off',
        range=(0.0, 50.0),
    )  # fmt: skip
    diagnostics_period: float = param(1.0, description='[s]', range=(0.1, 60.0))


def joint_command_from_msg(msg: JointState, mode: str) -> JointCommand:
    """The command in ``msg``'s field for ``mode``; CommandError says what is wrong."""
    values = {'position': msg.position, 'velocity': msg.velocity, 'effort': msg.effort}[mode]
    if len(values) == 0:
        raise CommandError(f"joint_commands has no '{mode}' values (the sim is in {mode} mode)")
    return JointCommand(mode=mode, values=list(values), joint_names=tuple(msg.name))


class SimNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('sim', **kwargs)
        self._cfg = declare_config(self, SimNodeConfig).value
        cfg = self._cfg
        self.sim = MujocoSim(cfg.sim)
        self.sim.connect()
        self.task = TabletopTask(self.sim, cfg.task_name, cfg.task)
        self.expert = PushExpert(self.sim, cfg.expert)
        self._lock = threading.Lock()
        self._pending_command: JointCommand | None = None
        self._pending_reset: tuple[str, int, threading.Event] | None = None
        self._counters = {'commands': 0, 'rejected_commands': 0, 'episodes': 0, 'successes': 0}
        self._last_rejection = ''
        self._epoch = time.time()
        self._time_offset = 0.0  # sim time of finished episodes
        self._seed = cfg.seed
        self._episode_state = EpisodeStatus.RUNNING
        self._rtf_window: tuple[float, float] = (time.monotonic(), 0.0)

        self._joint_pub = self.create_publisher(JointState, 'joint_states', qos.SENSOR_OUT)
        self._applied_pub = self.create_publisher(JointState, 'applied_joint_commands', qos.COMMAND)
        self._imu_pub = self.create_publisher(Imu, 'imu/data_raw', qos.SENSOR_OUT)
        self._clock_pub = self.create_publisher(Clock, '/clock', qos.CLOCK)
        self._instruction_pub = self.create_publisher(String, 'instruction', qos.LATCHED)
        self._status_pub = self.create_publisher(EpisodeStatus, 'episode/status', qos.LATCHED)
        self._chunk_pub = self.create_publisher(
            ActionChunkMsg, 'expert/action_chunk', qos.ACTION_CHUNK
        )
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS)
        self._cameras = {}
        for cam in self.sim.camera_names:
            intr = self.sim.camera_intrinsics(cam)
            info = camera_info_msg(
                intr.width, intr.height, intr.k, intr.p, frame_id=f'{cam}_optical_frame'
            )
            self._cameras[cam] = (
                self.create_publisher(Image, f'camera/{cam}/image_raw', qos.SENSOR_OUT),
                self.create_publisher(CameraInfo, f'camera/{cam}/camera_info', qos.SENSOR_OUT),
                info,
            )
        self.create_subscription(JointState, 'joint_commands', self._on_command, qos.COMMAND)
        self.create_service(ResetEpisode, 'sim/reset', self._on_reset)
        self.create_timer(cfg.diagnostics_period, self._publish_diagnostics)

        self._reset_episode(cfg.task_name, cfg.seed)
        self._running = True
        self._thread = threading.Thread(target=self._run, name='sim', daemon=True)
        self._thread.start()

    # --- time -----------------------------------------------------------------------------------

    def stamp_of(self, sim_time: float) -> float:
        """Robot-clock seconds (= /clock) of a time in the current episode's sim time."""
        return self._epoch + self._time_offset + sim_time

    # --- callbacks (executor threads) -----------------------------------------------------------

    def _on_command(self, msg: JointState) -> None:
        try:
            cmd = joint_command_from_msg(msg, self.sim.actuation_mode)
            if not cmd.joint_names:
                raise CommandError('joint_commands has no joint names')
            validate_command(cmd, self.sim.joint_names, self.sim.actuation_mode)
        except CommandError as err:
            with self._lock:
                self._counters['rejected_commands'] += 1
                self._last_rejection = str(err)
            self.get_logger().warn(f'joint_commands refused: {err}', throttle_duration_sec=2.0)
            return
        with self._lock:
            self._pending_command = cmd
            self._counters['commands'] += 1

    def _next_task(self) -> str:
        cycle = self._cfg.task_cycle or (self.task.name,)
        if self.task.name not in cycle:
            return cycle[0]
        return cycle[(cycle.index(self.task.name) + 1) % len(cycle)]

    def _on_reset(self, request: ResetEpisode.Request, response: ResetEpisode.Response):
        task = request.task or self._next_task()
        if task not in TASKS:
            response.success = False
            response.message = f'unknown task {task!r}; known: {list(TASKS)}'
            return response
        seed = request.seed if request.seed >= 0 else self._seed + 1
        done = threading.Event()
        with self._lock:
            self._pending_reset = (task, seed, done)
        if not done.wait(timeout=10.0):
            response.success = False
            response.message = 'the simulation thread did not reset within 10 s'
            return response
        response.success = True
        response.message = f'reset to {task} with seed {seed}'
        response.instruction = self.task.instruction
        response.seed = seed
        return response

    # --- the physics thread ---------------------------------------------------------------------

    def _reset_episode(self, task: str, seed: int) -> None:
        self._time_offset += self.sim.now()
        if task != self.task.name:
            self.task = TabletopTask(self.sim, task, self._cfg.task)
        self.task.reset(seed)
        self._seed = seed
        self._counters['episodes'] += 1
        self._episode_state = EpisodeStatus.RUNNING
        self._instruction_pub.publish(String(data=self.task.instruction))
        self._publish_status()
        self.get_logger().info(
            f'episode {self._counters["episodes"]}: {task} seed {seed}: "{self.task.instruction}"'
        )

    def _every(self, rate_hz: float) -> int:
        """Control ticks between publications at ``rate_hz`` (0: never)."""
        if rate_hz <= 0.0:
            return 0
        return max(1, round(1.0 / (rate_hz * self.sim.control_period)))

    def _run(self) -> None:
        cfg = self._cfg
        every_state = self._every(cfg.state_rate_hz)
        every_imu = self._every(cfg.imu_rate_hz)
        every_camera = self._every(cfg.camera_rate_hz)
        every_expert = self._every(cfg.expert_rate_hz)
        try:
            self._loop(every_state, every_imu, every_camera, every_expert)
        finally:
            self.sim.disconnect()  # renderers' EGL contexts belong to this thread

    def _loop(self, every_state: int, every_imu: int, every_camera: int, every_expert: int) -> None:
        cfg = self._cfg
        period = self.sim.control_period
        wall_start = time.monotonic()
        sim_elapsed = 0.0
        tick = 0
        while self._running:
            with self._lock:
                command, self._pending_command = self._pending_command, None
                reset, self._pending_reset = self._pending_reset, None
            if reset is not None:
                task, seed, done = reset
                self._end_episode(EpisodeStatus.ABORTED)
                self._reset_episode(task, seed)
                done.set()
            if command is not None:
                applied = self.sim.send_command(command)
                self._applied_pub.publish(self._joint_msg(applied.values, applied.mode))
            self.sim.step(1)
            tick += 1
            sim_elapsed += period
            if every_state and tick % every_state == 0:
                self._publish_state()
                self._check_episode()
            if every_imu and tick % every_imu == 0:
                self._publish_imu()
            if every_camera and tick % every_camera == 0:
                self._publish_cameras()
            if every_expert and tick % every_expert == 0:
                self._publish_expert()
            if cfg.real_time_factor > 0.0:
                # Absolute deadlines: lateness is caught up, never accumulated as drift.
                delay = wall_start + sim_elapsed / cfg.real_time_factor - time.monotonic()
                if delay > 0.0:
                    time.sleep(delay)

    def _joint_msg(self, values: np.ndarray, mode: str) -> JointState:
        msg = JointState()
        msg.header.stamp = seconds_to_stamp(self.stamp_of(self.sim.now()))
        msg.name = list(self.sim.joint_names)
        setattr(msg, mode, np.asarray(values, dtype=float).tolist())
        return msg

    def _publish_state(self) -> None:
        state = self.sim.read_state()
        stamp = seconds_to_stamp(self.stamp_of(state.stamp))
        if self._cfg.publish_clock:
            self._clock_pub.publish(Clock(clock=stamp))
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = list(state.joint_names)
        msg.position = state.position.tolist()
        msg.velocity = state.velocity.tolist()
        msg.effort = state.effort.tolist()
        self._joint_pub.publish(msg)

    def _publish_imu(self) -> None:
        sample = self.sim.imu()
        msg = Imu()
        msg.header.stamp = seconds_to_stamp(self.stamp_of(sample.stamp))
        msg.header.frame_id = sample.frame_id
        msg.orientation_covariance[0] = -1.0  # raw IMU: no orientation estimate
        a, w = sample.linear_acceleration, sample.angular_velocity
        msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = map(
            float, a
        )
        msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = map(float, w)
        self._imu_pub.publish(msg)

    def _publish_cameras(self) -> None:
        stamp = seconds_to_stamp(self.stamp_of(self.sim.now()))
        for cam, (image_pub, info_pub, info) in self._cameras.items():
            pixels = self.sim.render(cam)
            image_pub.publish(
                numpy_to_image(pixels, 'rgb8', frame_id=f'{cam}_optical_frame', stamp=stamp)
            )
            info.header.stamp = stamp
            info_pub.publish(info)

    def _publish_expert(self) -> None:
        chunk = self.expert.act(self.task.block, self.task.target_xy)
        stamped = ActionChunk(
            stamp=self.stamp_of(chunk.stamp),
            dt=chunk.dt,
            joint_names=chunk.joint_names,
            targets=chunk.targets,
            source=chunk.source,
            sequence=chunk.sequence,
        )
        self._chunk_pub.publish(chunk_to_msg(stamped))

    def _check_episode(self) -> None:
        if self._episode_state != EpisodeStatus.RUNNING:
            return
        if self.task.is_success():
            self._counters['successes'] += 1
            self._end_episode(EpisodeStatus.SUCCEEDED)
        elif self.task.is_timed_out():
            self._end_episode(EpisodeStatus.TIMED_OUT)
        if self._episode_state != EpisodeStatus.RUNNING and self._cfg.auto_reset:
            self._reset_episode(self._next_task(), self._seed + 1)

    def _end_episode(self, state: int) -> None:
        if self._episode_state == EpisodeStatus.RUNNING:
            self._episode_state = state
            self._publish_status()
            outcome = {EpisodeStatus.SUCCEEDED: 'succeeded', EpisodeStatus.TIMED_OUT: 'timed out'}
            self.get_logger().info(
                f'episode {self._counters["episodes"]} {outcome.get(state, "aborted")} after '
                f'{self.task.elapsed:.1f} s ({self._counters["successes"]}/'
                f'{self._counters["episodes"]} succeeded)'
            )

    def _publish_status(self) -> None:
        msg = EpisodeStatus()
        msg.header.stamp = seconds_to_stamp(self.stamp_of(self.sim.now()))
        msg.state = self._episode_state
        msg.episode = self._counters['episodes']
        msg.task = self.task.name
        msg.instruction = self.task.instruction
        msg.seed = self._seed
        msg.elapsed = self.task.elapsed
        self._status_pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        sim_total = self._time_offset + self.sim.now()
        wall0, sim0 = self._rtf_window
        self._rtf_window = (now, sim_total)
        with self._lock:
            values: dict[str, object] = dict(self._counters)
            rejection = self._last_rejection
        values['real_time_factor'] = (sim_total - sim0) / max(now - wall0, 1e-9)
        values['task'] = self.task.name
        values['seed'] = self._seed
        if rejection:
            values['last_rejection'] = rejection
        level = diagnostics.WARN if rejection else diagnostics.OK
        self._diag_pub.publish(diagnostics.diagnostic_array(
            self.get_clock().now().to_msg(),
            [diagnostics.status('sim: robot', level, rejection or 'running', values)],
        ))  # fmt: skip

    def destroy_node(self) -> None:
        self._running = False
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    return run_node(SimNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

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

Episodes: ``seed_schedule`` ``per_task`` runs the (task, seed) pairs of the in-process evaluation
(:func:`vla_sim.tasks.episode_schedule`: every task of ``task_cycle`` at seeds ``seed``,
``seed + 1``, ... interleaved), ``per_episode`` the next task and seed every episode; with
``episodes_per_task`` the schedule ends and no new episode starts. Each episode's outcome (success,
time, failure diagnostics) goes to ``episode_log`` (JSON lines) and the table of all of them is
logged at shutdown. ``reset_controller`` names a Trigger service (the controller's
``control/reset``) called at every reset: chunks of the last episode must not act in the next.

Time: sim time runs from 0 in each episode; stamps are ``epoch + sim time of all episodes so
far``, monotone across resets. ``real_time_factor`` paces the physics thread against the wall
clock with absolute deadlines (0: as fast as possible). ``lockstep`` instead waits, every control
period, for the controller's command stamped with that tick and, at each camera frame, for the
chunk computed from it on ``policy_chunks`` (:mod:`vla_sim.lockstep`; the controller's
``chunk_delay`` sets when it takes effect): deterministic, and as fast as the nodes compute. Its
epoch is fixed (1000 s), so runs repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vla_core.chunk import ActionChunk
from vla_core.robot import CommandError, JointCommand, validate_command
from vla_interfaces.msg import ActionChunk as ActionChunkMsg
from vla_interfaces.msg import EpisodeStatus
from vla_interfaces.srv import ResetEpisode
from vla_ros_common import diagnostics, qos
from vla_ros_common.conversions import camera_info_msg, chunk_to_msg, seconds_to_stamp
from vla_ros_common.image import numpy_to_image
from vla_ros_common.node_main import run_node
from vla_ros_common.params import ParameterError, declare_config
from vla_sim.expert import PushExpert
from vla_sim.lockstep import LockstepGate, LockstepTimeoutError, await_links
from vla_sim.node_config import SimNodeConfig
from vla_sim.outcomes import EpisodeRecorder
from vla_sim.sim import MujocoSim
from vla_sim.tasks import TASKS, TabletopTask, cycling_schedule, episode_schedule

__all__ = ['SimNode', 'SimNodeConfig', 'joint_command_from_msg']


def _stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


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
        cycle = cfg.task_cycle or (cfg.task_name,)
        self._schedule = (
            episode_schedule(cycle, cfg.seed, cfg.episodes_per_task or None)
            if cfg.seed_schedule == 'per_task'
            else cycling_schedule(cycle, cfg.task_name, cfg.seed)
        )
        first_task, first_seed = next(self._schedule)
        self.task = TabletopTask(self.sim, first_task, cfg.task)
        self.expert = PushExpert(self.sim, cfg.expert)
        self._lock = threading.Lock()
        self._pending_command: JointCommand | None = None
        self._pending_reset: tuple[str, int, threading.Event] | None = None
        self._counters = {'commands': 0, 'rejected_commands': 0, 'episodes': 0, 'successes': 0}
        self._last_rejection = ''
        # Lockstep: a fixed epoch, so stamps (and every float computed from them) repeat.
        self._epoch = 1000.0 if cfg.lockstep else time.time()
        self._time_offset = 0.0  # sim time of finished episodes
        self._seed = first_seed
        self._episode_state = EpisodeStatus.RUNNING
        self._episodes = EpisodeRecorder(cfg.episode_log)
        self._rtf_window: tuple[float, float] = (time.monotonic(), 0.0)
        self._gate: LockstepGate | None = None
        if cfg.lockstep:
            self._gate = LockstepGate(cfg.lockstep_timeout)
            if self._every(cfg.state_rate_hz) != 1:
                raise ParameterError('state_rate_hz', 'lockstep needs joint_states every tick')
        self._last_sent: dict[str, list] = {}  # lockstep: messages to re-send if one was lost

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
        self._command_sub = self.create_subscription(
            JointState, 'joint_commands', self._on_command, qos.COMMAND
        )
        self._chunk_sub = None
        if cfg.policy_chunks:
            self._chunk_sub = self.create_subscription(
                ActionChunkMsg, cfg.policy_chunks, self._on_chunk, qos.ACTION_CHUNK
            )
        self._reset_client = (
            self.create_client(Trigger, cfg.reset_controller) if cfg.reset_controller else None
        )
        self.create_service(ResetEpisode, 'sim/reset', self._on_reset)
        self.create_timer(cfg.diagnostics_period, self._publish_diagnostics)

        self._reset_episode(first_task, first_seed, first=True)
        self._running = True
        self._thread = threading.Thread(target=self._run, name='sim', daemon=True)
        self._thread.start()

    # --- time -----------------------------------------------------------------------------------

    def stamp_of(self, sim_time: float) -> float:
        """Robot-clock seconds (= /clock) of a time in the current episode's sim time."""
        return self._epoch + self._time_offset + sim_time

    def _now_ns(self) -> int:
        return _stamp_ns(seconds_to_stamp(self.stamp_of(self.sim.now())))

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
        if self._gate is not None:
            self._gate.command_arrived(_stamp_ns(msg.header.stamp))

    def _on_chunk(self, msg: ActionChunkMsg) -> None:
        if self._gate is not None:
            self._gate.chunk_arrived(_stamp_ns(msg.header.stamp))

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

    def _reset_episode(self, task: str, seed: int, first: bool = False) -> None:
        self._time_offset += self.sim.now()
        if task != self.task.name:
            self.task = TabletopTask(self.sim, task, self._cfg.task)
        self.task.reset(seed)
        self._seed = seed
        self._episodes.start(self.sim, self.task.block, self.task.target_xy, self.stamp_of(0.0))
        self._counters['episodes'] += 1
        self._episode_state = EpisodeStatus.RUNNING
        if not first:  # (a controller starting up has nothing to forget)
            self._reset_controller()
        self._instruction_pub.publish(String(data=self.task.instruction))
        self._publish_status()
        self.get_logger().info(
            f'episode {self._counters["episodes"]}: {task} seed {seed}: "{self.task.instruction}"'
        )

    def _reset_controller(self) -> None:
        """The controller forgets the last episode's chunks (lockstep: before the next tick)."""
        client = self._reset_client
        if client is None or not client.service_is_ready():
            return
        future = client.call_async(Trigger.Request())
        if self._gate is not None:
            done = threading.Event()
            future.add_done_callback(lambda _f: done.set())
            if not done.wait(self._cfg.lockstep_timeout):
                raise LockstepTimeoutError(f'lockstep: {self._cfg.reset_controller} did not answer')

    def _every(self, rate_hz: float) -> int:
        """Control ticks between publications at ``rate_hz`` (0: never)."""
        if rate_hz <= 0.0:
            return 0
        return max(1, round(1.0 / (rate_hz * self.sim.control_period)))

    def _run(self) -> None:
        cfg = self._cfg
        every = tuple(
            self._every(r)
            for r in (cfg.state_rate_hz, cfg.imu_rate_hz, cfg.camera_rate_hz, cfg.expert_rate_hz)
        )
        try:
            if self._gate is not None or cfg.await_graph:
                self._await_graph(every[2] > 0, every[3] > 0)
            self._loop(*every)
        except LockstepTimeoutError as err:  # a node of the graph is gone: say so, stop stepping
            self.get_logger().error(f'{err}; the simulation stopped')
        finally:
            self.sim.disconnect()  # renderers' EGL contexts belong to this thread

    def _await_graph(self, cameras: bool, expert: bool) -> None:
        """The first tick waits until every link of the graph has matched: the controller's
        commands, the policy's chunks and what they read (a sample published before its reader
        matched is lost: a lockstep run would not repeat; in real time the first episode would
        start without them)."""
        links = [('joint_states', lambda: self._joint_pub.get_subscription_count())]
        links.append(('joint_commands', lambda: self._command_sub.get_publisher_count()))
        if expert:
            links.append(('expert chunks', lambda: self._chunk_pub.get_subscription_count()))
        if self._chunk_sub is not None:
            chunk_sub = self._chunk_sub
            links.append(('policy chunks', lambda: chunk_sub.get_publisher_count()))
            # The controller must read them too (seen from here: its subscription exists).
            topic = self._cfg.policy_chunks
            links.append(('controller on ' + topic, lambda: self.count_subscribers(topic) - 1))
            if cameras:
                for cam, (image_pub, _, _) in self._cameras.items():
                    links.append((cam, image_pub.get_subscription_count))
        await_links(links, self._cfg.lockstep_timeout, lambda: self._running)

    def _loop(self, every_state: int, every_imu: int, every_camera: int, every_expert: int) -> None:
        """Per control period: the tick's messages (from the episode's first tick on), the
        lockstep waits, the command, one period of physics, the episode's outcome."""
        cfg = self._cfg
        gate = self._gate
        period = self.sim.control_period
        wall_start = time.monotonic()
        sim_elapsed = 0.0
        tick = 0  # control periods since the episode started
        while self._running:
            with self._lock:
                reset, self._pending_reset = self._pending_reset, None
            if reset is not None:
                task, seed, done = reset
                self._end_episode(EpisodeStatus.ABORTED)
                self._reset_episode(task, seed)
                tick = 0
                done.set()
            if every_expert and tick % every_expert == 0:
                self._publish_expert()  # before the joint state that the controller ticks on
            if every_state and tick % every_state == 0:
                self._publish_state()
            if every_imu and tick % every_imu == 0:
                self._publish_imu()
            if every_camera and tick % every_camera == 0:
                self._publish_cameras()
                if gate is not None and cfg.policy_chunks:
                    gate.await_chunk(self._now_ns(), self._resend('cameras'))
            if gate is not None:
                gate.await_command(self._now_ns(), self._resend('state'))
            with self._lock:
                command, self._pending_command = self._pending_command, None
            if command is not None:
                applied = self.sim.send_command(command)
                self._applied_pub.publish(self._joint_msg(applied.values, applied.mode))
            self.sim.step(1)
            tick += 1
            sim_elapsed += period
            self._episodes.step()
            if self._check_episode():
                tick = 0
            if cfg.real_time_factor > 0.0 and gate is None:
                # Absolute deadlines: lateness is caught up, never accumulated as drift.
                delay = wall_start + sim_elapsed / cfg.real_time_factor - time.monotonic()
                if delay > 0.0:
                    time.sleep(delay)

    def _resend(self, kind: str):
        """Re-publish the last messages of ``kind`` (a sample the graph lost, lockstep)."""

        def resend() -> None:
            for publisher, msg in self._last_sent.get(kind, []):
                publisher.publish(msg)

        return resend

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
        self._last_sent['state'] = [(self._joint_pub, msg)]

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
        sent = list(self._last_sent.get('state', []))  # the policy pairs frames with this state
        for cam, (image_pub, info_pub, info) in self._cameras.items():
            pixels = self.sim.render(cam)
            image = numpy_to_image(pixels, 'rgb8', frame_id=f'{cam}_optical_frame', stamp=stamp)
            image_pub.publish(image)
            info.header.stamp = stamp
            info_pub.publish(info)
            sent.append((image_pub, image))
        self._last_sent['cameras'] = sent

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

    def _check_episode(self) -> bool:
        """End the episode on success or time-out and start the scheduled next one; whether a
        new episode started."""
        if self._episode_state != EpisodeStatus.RUNNING:
            return False
        if self.task.is_success():
            self._counters['successes'] += 1
            self._end_episode(EpisodeStatus.SUCCEEDED)
        elif self.task.is_timed_out():
            self._end_episode(EpisodeStatus.TIMED_OUT)
        if self._episode_state == EpisodeStatus.RUNNING or not self._cfg.auto_reset:
            return False
        following = next(self._schedule, None)
        if following is None:
            self.get_logger().info(
                f'schedule complete: {len(self._episodes.outcomes)} episodes; no new one starts'
            )
            return False
        self._reset_episode(*following)
        return True

    def _end_episode(self, state: int) -> None:
        if self._episode_state != EpisodeStatus.RUNNING:
            return
        self._episode_state = state
        self._publish_status()
        outcome = {EpisodeStatus.SUCCEEDED: 'succeeded', EpisodeStatus.TIMED_OUT: 'timed out'}
        self.get_logger().info(
            f'episode {self._counters["episodes"]} {outcome.get(state, "aborted")} after '
            f'{self.task.elapsed:.1f} s ({self._counters["successes"]}/'
            f'{self._counters["episodes"]} succeeded)'
        )
        if state != EpisodeStatus.ABORTED:
            self._episodes.finish(
                self.task.name, self._seed, state == EpisodeStatus.SUCCEEDED, self.task.elapsed,
                self.stamp_of(self.sim.now()), episode=self._counters['episodes'],
            )  # fmt: skip

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
        if self._gate is not None:
            self._gate.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        if self._episodes.outcomes:
            self.get_logger().info('episodes finished:\n' + '\n'.join(self._episodes.table()))
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    return run_node(SimNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

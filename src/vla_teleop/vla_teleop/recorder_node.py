"""Demonstration recorder: configured topics -> one rosbag2 (MCAP) bag per episode.

    ros2 run vla_teleop recorder --ros-args --params-file config/recorder.yaml
    vla run <graph with the recorder>

On disk (``output_dir``)::

    episode_000000/                  a rosbag2 bag: ros2 bag info/play, rosbags read it
        metadata.yaml                written at the start, rewritten atomically while recording
        episode_000000_0.mcap        chunks flushed every flush_period (<= 0.5 s)
        episode.json                 the episode: instruction, success, operator, robot, seed,
                                     software version, status, drops per topic, problems
    discarded/episode_000003-<utc>/  discarded takes, kept when keep_discarded (index reused)

Services (vla_interfaces): ``~/start_episode`` (StartEpisode), ``~/stop_episode`` (StopEpisode:
save with a success label, or discard; re-record = discard + start, the instruction is latched).
Keys on the terminal (``keyboard``): s start, y save success, n save failure, d discard,
r re-record. Automatic episodes (``auto.enabled``): the recorder calls the simulator's reset
service (vla_interfaces/ResetEpisode) when idle, starts an episode with the instruction and seed it
returns, and saves it when ``auto.status_topic`` (vla_interfaces/EpisodeStatus) reports its end
or after ``auto.max_duration``. Publishes ``/diagnostics`` (per-topic drops, queue, disk) and
``~/episode`` (std_msgs/String JSON, latched: phase, index, path).

Messages are subscribed raw (CDR bytes straight to disk), stamped with the receive time (MCAP log
time; header stamps stay in the data) and handed to a writer thread through a bounded queue whose
overflow is counted per topic. Subscriptions are created once a topic has publishers, with QoS
matched to them (transient-local for latched topics; their last messages are replayed into every
episode). A publisher of another type than configured is reported and not recorded.

Crash safety: after SIGKILL every saved episode is complete; the one being recorded has a
``metadata.yaml`` and an MCAP whose flushed chunks are intact. The recorder recovers it at its next
start (status ``interrupted``), or run ``vla recover <output_dir>``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
import importlib.metadata
import json
import os
from pathlib import Path
import queue
import select
import struct
import sys
import threading
import time
import traceback
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from std_msgs.msg import String

from vla_core.config import Config, param
from vla_core.episodes import (
    KEY_BINDINGS,
    AutoAction,
    AutoEpisodePolicy,
    Episode,
    EpisodeError,
    EpisodeMachine,
    EpisodeRequest,
    KeyCommand,
    Outcome,
    Phase,
    StreamMonitor,
    StreamMonitorConfig,
    key_help,
)
from vla_data.bag import BagError, BagWriter, recover_bag, write_json_atomic
from vla_data.bag_metadata import qos_to_dict
from vla_data.episodes_store import EpisodeStore
from vla_data.message_definitions import message_definition, type_description_hash

try:  # Jazzy and later: rclpy's C++ events executor
    from rclpy.experimental.events_executor import EventsExecutor as IoExecutor
except ImportError:  # Humble has none: the Python executor records too, at more CPU per message
    IoExecutor: type[Executor] = SingleThreadedExecutor  # type: ignore[no-redef]
from vla_interfaces.msg import EpisodeStatus
from vla_interfaces.srv import ResetEpisode, StartEpisode, StopEpisode
from vla_ros_common import diagnostics, qos
from vla_ros_common.node_main import run_node
from vla_ros_common.params import declare_config
from vla_ros_common.topics import message_class, subscription_qos_for

__all__ = ['AutoConfig', 'RecorderConfig', 'RecorderNode', 'main']

DEFAULT_TOPICS = (
    '/camera/scene_camera/image_raw=sensor_msgs/msg/Image',
    '/camera/scene_camera/camera_info=sensor_msgs/msg/CameraInfo',
    '/imu/data=sensor_msgs/msg/Imu',
    '/joint_states=sensor_msgs/msg/JointState',
    '/expert/action_chunk=vla_interfaces/msg/ActionChunk',  # the teleop/expert intent
    '/joint_commands=sensor_msgs/msg/JointState',  # the command actually applied
    '/tf=tf2_msgs/msg/TFMessage',
    '/tf_static=tf2_msgs/msg/TFMessage',
    '/robot_description=std_msgs/msg/String',
)


@dataclass(frozen=True, kw_only=True)
class AutoConfig(Config):
    enabled: bool = param(
        False, description='run episodes automatically from the simulator reset/success hook'
    )
    reset_service: str = param(
        '/sim/reset', description='vla_interfaces/ResetEpisode service called when idle'
    )
    status_topic: str = param(
        '/episode/status',
        description='vla_interfaces/EpisodeStatus of the episode runner (the simulator): '
        'SUCCEEDED saves the episode as a success, TIMED_OUT or ABORTED as a failure',
    )
    task: str = param('', description='task id passed to the reset service (empty: current)')
    max_duration: float = param(
        60.0, description='an episode without success ends (saved, failure) after [s]',
        range=(0.1, 86400.0),
    )  # fmt: skip
    episodes: int = param(
        0, description='stop after this many episodes (0: never)', range=(0, 10**9)
    )


@dataclass(frozen=True, kw_only=True)
class RecorderConfig(Config):
    output_dir: str = param(
        '~/vla_episodes', description='directory of the episode bags', read_only=True
    )
    topics: tuple[str, ...] = param(
        DEFAULT_TOPICS,
        description="recorded topics as 'topic=pkg/msg/Type'",
        read_only=True,
    )
    robot: str = param('', description='robot name stored with every episode')
    operator: str = param('', description='default operator name (StartEpisode can override)')
    software_version: str = param(
        '', description='stored with every episode (empty: $VLA_SOFTWARE_VERSION or the package)'
    )
    compression: str = param(
        'none', description='MCAP chunk compression', choices=('none', 'zstd', 'lz4'),
        read_only=True,
    )  # fmt: skip
    chunk_size_kb: int = param(
        4096, description='MCAP chunk size; a chunk is also closed every flush_period [KiB]',
        range=(64, 1 << 20), read_only=True,
    )  # fmt: skip
    flush_period: float = param(
        0.25, description='chunks reach the OS at least this often: the most a SIGKILL loses [s]',
        range=(0.01, 0.5),
    )  # fmt: skip
    fsync_period: float = param(
        1.0, description='data reaches the disk at least this often (power loss) [s]',
        range=(0.05, 60.0),
    )  # fmt: skip
    metadata_period: float = param(
        2.0, description='metadata.yaml and episode.json are refreshed this often [s]',
        range=(0.1, 60.0),
    )  # fmt: skip
    queue_max_mb: float = param(
        256.0, description='writer queue bound; overflowing messages are dropped and counted [MB]',
        range=(1.0, 65536.0), read_only=True,
    )  # fmt: skip
    min_free_mb: float = param(
        1024.0, description='recording stops (episode saved) below this much free disk [MB]',
        range=(0.0, 1e9),
    )  # fmt: skip
    max_episode_mb: float = param(
        0.0, description='an episode stops (saved) at this size (0: no limit) [MB]',
        range=(0.0, 1e9),
    )  # fmt: skip
    subscription_depth: int = param(
        50, description='queue depth of the (non-latched) subscriptions', range=(1, 10000),
        read_only=True,
    )  # fmt: skip
    silence_timeout: float = param(
        1.0, description='a recorded topic silent this long in an episode is reported [s]',
        range=(0.01, 3600.0),
    )  # fmt: skip
    graph_period: float = param(
        0.5, description='publishers are checked (new topics, wrong types) this often [s]',
        range=(0.05, 60.0), read_only=True,
    )  # fmt: skip
    diagnostics_period: float = param(
        1.0, description='period of the /diagnostics report [s]', range=(0.05, 60.0),
        read_only=True,
    )  # fmt: skip
    keyboard: bool = param(
        False, description='episode keys on the terminal (when stdin is one)', read_only=True
    )
    keep_discarded: bool = param(
        True, description='move discarded takes to output_dir/discarded instead of deleting'
    )
    recover_on_start: bool = param(
        True, description='recover episodes left by a killed recorder at start', read_only=True
    )
    drops: StreamMonitorConfig = param(
        default_factory=StreamMonitorConfig, description='drop accounting'
    )
    auto: AutoConfig = param(default_factory=AutoConfig, description='automatic episodes')

    def validate(self) -> None:
        from vla_core.config import ConfigError

        seen: set[str] = set()
        for entry in self.topics:
            topic, sep, type_name = entry.partition('=')
            if not sep or not topic.startswith('/') or type_name.count('/') != 2:
                raise ConfigError(
                    'topics', f"'{entry}' is not 'topic=pkg/msg/Type' with an absolute topic"
                )
            if topic in seen:
                raise ConfigError('topics', f"topic '{topic}' is listed twice")
            seen.add(topic)


def parse_topics(entries: tuple[str, ...]) -> dict[str, str]:
    return dict(e.split('=', 1) for e in entries)


def software_version(configured: str) -> str:
    if configured:
        return configured
    env = os.environ.get('VLA_SOFTWARE_VERSION', '')
    if env:
        return env
    try:
        return f'vla_teleop {importlib.metadata.version("vla_teleop")}'
    except importlib.metadata.PackageNotFoundError:
        return 'vla_teleop (source tree)'


# --- writer queue ---------------------------------------------------------------------------------


@dataclass
class _Command:
    kind: str  # 'start' | 'stop' | 'quit'
    episode: Episode | None = None
    outcome: Outcome | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: str = ''
    error: str = ''


class _WriterQueue:
    """Messages bounded by bytes (overflow counted per topic); commands always accepted."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.overflows: dict[str, int] = {}
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()

    def put_message(self, topic: str, recv_ns: int, data: bytes) -> bool:
        with self._cond:
            if self.bytes + len(data) > self.max_bytes:
                self.overflows[topic] = self.overflows.get(topic, 0) + 1
                return False
            self.bytes += len(data)
            self._items.append((topic, recv_ns, data))
            self._cond.notify()
            return True

    def put_command(self, command: _Command) -> None:
        with self._cond:
            self._items.append(command)
            self._cond.notify()

    def take_all(self, timeout: float) -> list[Any]:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            items = list(self._items)
            self._items.clear()
            self.bytes = 0
            return items

    def take_overflows(self) -> dict[str, int]:
        with self._cond:
            out, self.overflows = self.overflows, {}
            return out


# --- per-topic state ------------------------------------------------------------------------------


@dataclass
class _Topic:
    name: str
    type: str
    header_first: bool
    has_sequence: bool
    msg_cls: type | None
    subscribed: bool = False
    latched: bool = False
    offered_qos: list[dict[str, Any]] = field(default_factory=list)
    wrong_type: str = ''  # the publishers' type(s) when they differ
    last_recv_ns: int = 0
    latched_cache: deque[tuple[int, bytes]] = field(default_factory=lambda: deque(maxlen=100))


def _inspect_type(type_name: str) -> tuple[type | None, bool, bool]:
    try:
        cls = message_class(type_name)
    except ValueError:
        return None, False, False
    fields = cls.get_fields_and_field_types()
    first = next(iter(fields.items()), ('', ''))
    header_first = first == ('header', 'std_msgs/Header')
    has_sequence = fields.get('sequence', '') in ('uint64', 'int64', 'uint32', 'int32')
    return cls, header_first, has_sequence


def _header_stamp_ns(data: bytes) -> int:
    """The header stamp of a header-first message from its CDR bytes, without deserializing."""
    if len(data) < 12:
        return 0
    fmt = '<iI' if data[1] & 1 else '>iI'  # encapsulation: CDR_LE (1) or CDR_BE (0)
    sec, nsec = struct.unpack_from(fmt, data, 4)
    return sec * 1_000_000_000 + nsec


class RecorderNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('recorder', **kwargs)
        self._cfg = declare_config(self, RecorderConfig)
        cfg = self._cfg.value
        self._root = Path(cfg.output_dir).expanduser().resolve()
        self._root.mkdir(parents=True, exist_ok=True)
        self._store = EpisodeStore(self._root)
        self._version = software_version(cfg.software_version)
        if cfg.recover_on_start:
            for report in self._store.recover_all():
                self.get_logger().warn(f'recovered after a crash: {report}')
        gaps = self._store.allocator().gaps()
        if gaps:
            self.get_logger().warn(
                f'episodes {gaps} are missing in {self._root} (deleted by hand?); '
                'the next episodes fill them'
            )
        self._lock = threading.RLock()  # the machine and everything that starts/stops episodes
        self._machine = EpisodeMachine(
            self._store.allocator(), cfg.robot, self._version, operator=cfg.operator
        )
        self._topics: dict[str, _Topic] = {}
        for name, type_name in parse_topics(cfg.topics).items():
            cls, header_first, has_seq = _inspect_type(type_name)
            if cls is None:
                self.get_logger().error(
                    f"topic {name}: message type '{type_name}' is not installed: not recorded"
                )
            self._topics[name] = _Topic(name, type_name, header_first, has_seq, cls)
        self._monitors = {name: StreamMonitor(cfg.drops) for name in self._topics}
        self._problems: list[str] = []  # of the current episode
        self._queue = _WriterQueue(int(cfg.queue_max_mb * 1e6))
        self._recording = False
        self._episode_start_mono = 0.0
        self._bytes_total = 0
        self._last_stop_reason = ''
        self._rate_window: deque[tuple[float, int]] = deque(maxlen=20)

        self._sub_group = ReentrantCallbackGroup()
        # The recorded topics are taken by a helper node on rclpy's C++ events executor in a
        # thread of its own: the Python executors cost ~1 ms of GIL per message, too much for
        # 500 Hz joint states + 200 Hz IMU + cameras (bench/bench_recorder.py). Humble has no
        # events executor: there it is a SingleThreadedExecutor (IoExecutor).
        self._io_node = Node(
            f'{self.get_name()}_io',
            namespace=self.get_namespace(),
            context=self.context,
            use_global_arguments=False,
            start_parameter_services=False,
        )
        self._io_executor = IoExecutor(context=self.context)
        self._io_executor.add_node(self._io_node)
        # Entities are created on the io thread between spins: creating them from another thread
        # while the events executor spins deadlocks (rclpy Jazzy).
        self._io_tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._io_stop = threading.Event()
        self._io_thread = threading.Thread(target=self._spin_io, name='recorder_io', daemon=True)
        self._io_thread.start()
        self._srv_group = MutuallyExclusiveCallbackGroup()
        self._diag_pub = self.create_publisher(
            DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS,
            qos_overriding_options=qos.qos_overrides(),
        )  # fmt: skip
        self._state_pub = self.create_publisher(String, '~/episode', qos.LATCHED)
        self.create_service(
            StartEpisode, '~/start_episode', self._on_start_srv, callback_group=self._srv_group
        )
        self.create_service(
            StopEpisode, '~/stop_episode', self._on_stop_srv, callback_group=self._srv_group
        )
        self._writer = threading.Thread(target=self._writer_loop, name='recorder_writer')
        self._writer.start()
        self._check_graph()
        self.create_timer(cfg.graph_period, self._check_graph, callback_group=self._srv_group)
        self.create_timer(cfg.diagnostics_period, self._publish_diagnostics)
        self._publish_state()

        self._auto: AutoEpisodePolicy | None = None
        self._auto_success = False
        self._auto_failed = False
        self._auto_seed: int | None = None  # seed of the episode the simulator runs for us
        if cfg.auto.enabled:
            self._auto = AutoEpisodePolicy(cfg.auto.max_duration, cfg.auto.episodes)
            self._reset_client = self.create_client(
                ResetEpisode, cfg.auto.reset_service, callback_group=self._srv_group
            )
            self.create_subscription(
                EpisodeStatus, cfg.auto.status_topic, self._on_status, qos.LATCHED,
                callback_group=self._sub_group,
            )  # fmt: skip
            self.create_timer(0.05, self._auto_step, callback_group=self._srv_group)

        self._keys_stop = threading.Event()
        self._keys: threading.Thread | None = None
        if cfg.keyboard and sys.stdin.isatty():
            self._keys = threading.Thread(target=self._key_loop, name='recorder_keys', daemon=True)
            self._keys.start()
        self.get_logger().info(
            f'recording {len(self._topics)} topics into {self._root} '
            f'(next episode {self._machine.allocator.peek()}, {self._version})'
        )

    # --- episodes ---------------------------------------------------------------------------------

    def start_episode(self, request: EpisodeRequest, source: str = 'operator') -> Episode:
        """Start recording; EpisodeError says why not (already recording, disk full, ...)."""
        cfg = self._cfg.value
        free_mb = self._free_mb()
        if free_mb < cfg.min_free_mb:
            raise EpisodeError(
                f'only {free_mb:.0f} MB free on {self._root} (min_free_mb {cfg.min_free_mb:g}): '
                'not starting; free disk space or lower min_free_mb'
            )
        with self._lock:
            episode = self._machine.start(request, self.get_clock().now().nanoseconds, source)
            self._auto_success = False
            self._auto_failed = False
            self._recording = True
            self._episode_start_mono = time.monotonic()
            command = _Command('start', episode=episode)
            self._queue.put_command(command)
        self._wait(command)
        if command.error:
            raise EpisodeError(command.error)
        self.get_logger().info(
            f'episode {episode.index} recording: "{episode.instruction}" ({source})'
        )
        self._publish_state()
        return episode

    def stop_episode(
        self,
        *,
        save: bool,
        success: bool | None = None,
        note: str = '',
        reason: str = 'operator',
    ) -> tuple[Episode, str]:
        """Stop the current episode, saving or discarding it; returns it and its path."""
        with self._lock:
            outcome = self._machine.stop(
                self.get_clock().now().nanoseconds,
                save=save,
                success=success,
                note=note,
                reason=reason,
            )
            self._recording = False
            command = _Command('stop', outcome=outcome)
            self._queue.put_command(command)
        self._wait(command)
        if command.error:
            raise EpisodeError(command.error)
        self._publish_state()
        return outcome.episode, command.result

    def _wait(self, command: _Command) -> None:
        if not command.done.wait(30.0):
            command.error = 'the writer thread did not answer within 30 s'

    def _on_start_srv(self, request: Any, response: Any) -> Any:
        try:
            episode = self.start_episode(
                EpisodeRequest(
                    request.instruction, request.task, request.operator_name, request.seed
                )
            )
        except EpisodeError as err:
            self.get_logger().error(f'start refused: {err}')
            response.success, response.message = False, str(err)
            return response
        response.success = True
        response.episode_index = episode.index
        response.message = f'recording episode {episode.index}'
        return response

    def _on_stop_srv(self, request: Any, response: Any) -> Any:
        try:
            episode, path = self.stop_episode(
                save=request.save, success=request.task_success, note=request.note
            )
        except EpisodeError as err:
            self.get_logger().error(f'stop refused: {err}')
            response.success, response.message = False, str(err)
            return response
        response.success = True
        response.episode_index = episode.index
        response.path = path if request.save else ''
        response.message = f'episode {episode.index} {episode.status}'
        return response

    def _publish_state(self) -> None:
        with self._lock:
            current = self._machine.current
            state = {
                'phase': self._machine.phase.value,
                'episode_index': current.index if current else None,
                'next_index': self._machine.allocator.peek(),
                'instruction': current.instruction if current else '',
                'last_stop_reason': self._last_stop_reason,
                'output_dir': str(self._root),
            }
        self._state_pub.publish(String(data=json.dumps(state)))

    # --- keyboard ---------------------------------------------------------------------------------

    def handle_key(self, key: str) -> str:
        """Apply one key; returns what happened (also logged)."""
        command = KEY_BINDINGS.get(key.lower())
        if command is None:
            return ''
        try:
            if command is KeyCommand.HELP:
                message = key_help()
            elif command is KeyCommand.START:
                index = self.start_episode(EpisodeRequest(), 'keyboard').index
                message = f'episode {index} started'
            elif command in (KeyCommand.SAVE_SUCCESS, KeyCommand.SAVE_FAILURE):
                success = command is KeyCommand.SAVE_SUCCESS
                episode, _ = self.stop_episode(save=True, success=success, reason='keyboard')
                message = f'episode {episode.index} saved ({"success" if success else "failure"})'
            elif command is KeyCommand.DISCARD:
                episode, _ = self.stop_episode(save=False, reason='keyboard')
                message = f'episode {episode.index} discarded'
            else:  # re-record: the instruction, task and operator are latched
                episode, _ = self.stop_episode(save=False, reason='rerecord')
                again = self.start_episode(EpisodeRequest(), 'keyboard')
                message = f'episode {episode.index} discarded, recording it again as {again.index}'
        except EpisodeError as err:
            message = str(err)
        self.get_logger().info(f'[{key}] {message}')
        return message

    def _key_loop(self) -> None:
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            self.get_logger().info(f'keys: {key_help()}')
            while not self._keys_stop.is_set():
                ready, _, _ = select.select([fd], [], [], 0.2)
                if ready:
                    self.handle_key(os.read(fd, 1).decode(errors='ignore'))
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    # --- automatic episodes -----------------------------------------------------------------------

    def _on_status(self, msg: EpisodeStatus) -> None:
        # Only the episode started for us counts: the topic is latched, and a late status of the
        # previous episode must not end this one.
        if not self._recording or msg.seed != self._auto_seed:
            return
        if msg.state == EpisodeStatus.SUCCEEDED:
            self._auto_success = True
        elif msg.state in (EpisodeStatus.TIMED_OUT, EpisodeStatus.ABORTED):
            self._auto_failed = True

    def _auto_step(self) -> None:
        policy = self._auto
        assert policy is not None
        phase = self._machine.phase
        elapsed = time.monotonic() - self._episode_start_mono
        if self._auto_failed:
            elapsed = float('inf')  # the runner gave up on this episode: save it as a failure
        action = policy.step(phase, elapsed, self._auto_success)
        try:
            if action is AutoAction.RESET:
                if not self._reset_client.service_is_ready():
                    policy.reset_pending = False  # try again on the next step
                    return
                req = ResetEpisode.Request(task=self._cfg.value.auto.task, seed=-1)
                self._reset_client.call_async(req).add_done_callback(self._on_reset_done)
            elif action is AutoAction.SAVE_SUCCESS:
                self.stop_episode(save=True, success=True, reason='auto_success')
            elif action is AutoAction.SAVE_TIMEOUT:
                self.stop_episode(save=True, success=False, reason='auto_timeout')
        except EpisodeError as err:
            self.get_logger().error(f'automatic episode: {err}')

    def _on_reset_done(self, future: Any) -> None:
        assert self._auto is not None
        self._auto.reset_pending = False
        result = future.result()
        if result is None or not result.success:
            why = result.message if result is not None else 'no answer'
            self.get_logger().error(f'simulator reset failed: {why}; retrying')
            return
        self._auto_seed = result.seed
        try:
            self.start_episode(
                EpisodeRequest(result.instruction, self._cfg.value.auto.task, '', result.seed),
                'auto',
            )
        except EpisodeError as err:
            self.get_logger().error(f'automatic episode not started: {err}')

    # --- subscriptions ----------------------------------------------------------------------------

    def _check_graph(self) -> None:
        """Subscribe to topics that got publishers; report publishers of the wrong type."""
        for t in self._topics.values():
            if t.msg_cls is None:
                continue
            infos = self.get_publishers_info_by_topic(t.name)
            types = sorted({i.topic_type for i in infos})
            wrong = ', '.join(x for x in types if x != t.type)
            if wrong != t.wrong_type:
                t.wrong_type = wrong
                if wrong:
                    self._problem(
                        f'topic {t.name}: configured as {t.type} but published as {wrong}: '
                        'those publishers are not recorded (fix the topics parameter)'
                    )
            if t.subscribed or t.type not in types:
                continue
            matching = [i for i in infos if i.topic_type == t.type]
            profile = subscription_qos_for(self, t.name, self._cfg.value.subscription_depth)
            t.latched = profile.durability == qos.LATCHED.durability
            if t.latched:
                # Replay what a transient-local reader gets: each publisher's last `depth`
                # messages, not everything ever received (that would grow every episode).
                depth = sum(max(1, i.qos_profile.depth) for i in matching) or 1
                t.latched_cache = deque(t.latched_cache, maxlen=depth)
            t.offered_qos = [qos_to_dict(i.qos_profile) for i in matching]
            self._io_tasks.put(
                lambda t=t, profile=profile: self._io_node.create_subscription(
                    t.msg_cls, t.name, lambda data: self._on_message(t, data), profile, raw=True
                )
            )
            t.subscribed = True
            self.get_logger().info(
                f'subscribed {t.name} ({t.type}, {profile.reliability.name.lower()}, '
                f'{profile.durability.name.lower()})'
            )

    def _spin_io(self) -> None:
        try:
            while not self._io_stop.is_set():
                while not self._io_tasks.empty():
                    self._io_tasks.get()()
                self._io_executor.spin_once(timeout_sec=0.05)
        except Exception as err:  # a dead recorder must say so, not record nothing silently
            if self.context.ok():
                self.get_logger().fatal(f'subscription thread died: {err}')

    def _problem(self, message: str) -> None:
        self.get_logger().error(message)
        with self._lock:
            if message not in self._problems:
                self._problems.append(message)

    def _on_message(self, topic: _Topic, data: bytes) -> None:
        now = self.get_clock().now().nanoseconds
        topic.last_recv_ns = now
        if topic.latched:
            topic.latched_cache.append((now, data))
        if self._recording:
            self._queue.put_message(topic.name, now, data)

    # --- writer thread ----------------------------------------------------------------------------

    def _writer_loop(self) -> None:
        bag: BagWriter | None = None
        episode: Episode | None = None
        last_log = 0
        last_flush = last_fsync = last_meta = last_disk = time.monotonic()
        while True:
            cfg = self._cfg.value
            items = self._queue.take_all(min(cfg.flush_period, 0.1))
            try:
                for item in items:
                    if isinstance(item, _Command):
                        if item.kind == 'quit':
                            if bag is not None:
                                bag.abort()
                            return
                        bag, episode, last_log = self._run_command(item, bag, episode)
                        continue
                    if bag is None:
                        continue  # arrived after the episode stopped
                    name, recv_ns, data = item
                    t = self._topics[name]
                    if not bag.has_topic(name):
                        self._add_topic(bag, t)
                    # Receive times come from several executor threads: keep the file monotone.
                    log_ns = max(recv_ns, last_log)
                    last_log = log_ns
                    bag.write(name, log_ns, data, recv_ns)
                    stamp = _header_stamp_ns(data) if t.header_first else 0
                    seq = None
                    if t.has_sequence and t.msg_cls is not None and len(data) < 1 << 16:
                        seq = int(deserialize_message(data, t.msg_cls).sequence)
                    self._monitors[name].observe(recv_ns, stamp, seq)
                if bag is None:
                    continue
                now = time.monotonic()
                if now - last_flush >= cfg.flush_period:
                    fsync = now - last_fsync >= cfg.fsync_period
                    bag.flush(fsync=fsync)
                    last_flush = now
                    if fsync:
                        last_fsync = now
                if now - last_disk >= 0.2:
                    last_disk = now
                    reason = self._space_problem(bag)
                    if reason and episode is not None:
                        bag, episode = self._stop_from_writer(bag, episode, reason)
                        continue
                if now - last_meta >= cfg.metadata_period and episode is not None:
                    last_meta = now
                    bag.write_metadata()
                    self._write_episode_file(bag, episode)
            except Exception as err:  # the writer must never die silently
                # ENOSPC and friends: keep what reached the disk, say so, stop the episode.
                self.get_logger().error(
                    f'write error, episode stopped: {type(err).__name__}: {err}\n'
                    + traceback.format_exc()
                )
                if bag is not None and episode is not None:
                    bag.abort()
                    try:
                        self._stop_from_writer(bag, episode, f'write_error: {err}')
                    except Exception as again:
                        self.get_logger().error(f'could not finish the episode: {again}')
                bag, episode = None, None

    def _space_problem(self, bag: BagWriter) -> str:
        cfg = self._cfg.value
        free = self._free_mb()
        if free < cfg.min_free_mb:
            return (
                f'disk_space: only {free:.0f} MB free on {self._root} '
                f'(min_free_mb {cfg.min_free_mb:g})'
            )
        if cfg.max_episode_mb and bag.bytes_written > cfg.max_episode_mb * 1e6:
            return f'size_limit: episode reached max_episode_mb {cfg.max_episode_mb:g}'
        return ''

    def _stop_from_writer(self, bag: BagWriter, episode: Episode, reason: str) -> tuple[None, None]:
        with self._lock:
            if self._machine.current is episode:
                outcome = self._machine.stop(
                    self.get_clock().now().nanoseconds, save=True, reason=reason.split(':')[0],
                    note=reason,
                )  # fmt: skip
                self._recording = False
            else:
                outcome = None
        self._problem(f'episode {episode.index} stopped cleanly: {reason}')
        if outcome is not None:
            self._finish(bag, outcome)
        self._last_stop_reason = reason
        self._publish_state()
        return None, None

    def _run_command(
        self, command: _Command, bag: BagWriter | None, episode: Episode | None
    ) -> tuple[BagWriter | None, Episode | None, int]:
        last_log = 0
        try:
            if command.kind == 'start':
                assert command.episode is not None
                if bag is not None and episode is not None:  # cannot happen; never lose it
                    self._finish(bag, Outcome(episode, True))
                bag, episode = self._open(command.episode)
                last_log = episode.start_ns
                command.result = str(bag.directory)
            elif command.kind == 'stop':
                assert command.outcome is not None
                if bag is None or episode is not command.outcome.episode:
                    # The writer stopped it already (disk, write error): report that.
                    command.error = f'episode {command.outcome.episode.index} was already stopped'
                else:
                    command.result = self._finish(bag, command.outcome)
                bag, episode = None, None
        except (OSError, BagError) as err:
            command.error = f'{type(err).__name__}: {err}'
            self.get_logger().error(f'{command.kind} failed: {command.error}')
            if command.kind == 'start' and command.episode is not None:
                with self._lock:
                    if self._machine.current is command.episode:
                        self._machine.stop(0, save=False, reason='open_failed')
                        self._recording = False
                bag, episode = None, None
        finally:
            command.done.set()
        return bag, episode, last_log

    def _open(self, episode: Episode) -> tuple[BagWriter, Episode]:
        cfg = self._cfg.value
        with self._lock:
            self._problems = [p for p in self._problems if 'configured as' in p]
        self._queue.take_overflows()
        for monitor in self._monitors.values():
            monitor.reset()
        custom = {
            'episode_index': str(episode.index),
            'instruction': episode.instruction,
            'robot': episode.robot,
            'operator': episode.operator,
            'software_version': episode.software_version,
        }
        bag = BagWriter(
            self._store.path(episode.index),
            compression=cfg.compression,
            chunk_size=cfg.chunk_size_kb * 1024,
            custom_data=custom,
        )
        for t in self._topics.values():
            if t.subscribed:
                self._add_topic(bag, t)
        bag.write_metadata()
        self._write_episode_file(bag, episode)
        # Latched topics were received once: every episode gets their last messages.
        for t in self._topics.values():
            for recv_ns, data in list(t.latched_cache):
                bag.write(t.name, episode.start_ns, data, recv_ns)
                self._monitors[t.name].counts.received += 1
        bag.flush(fsync=True)
        return bag, episode

    def _add_topic(self, bag: BagWriter, t: _Topic) -> None:
        bag.add_topic(
            t.name, t.type, t.offered_qos, message_definition(t.type), type_description_hash(t.type)
        )

    def _finish(self, bag: BagWriter, outcome: Outcome) -> str:
        episode = outcome.episode
        bag.custom_data['success'] = str(episode.success).lower()
        bag.custom_data['status'] = episode.status
        if not bag.closed:
            bag.close()
        elif bag.aborted:  # after a write error: index what reached the file
            try:
                self.get_logger().warn(str(recover_bag(bag.directory, bag.custom_data)))
            except BagError as err:
                self._problem(f'episode {episode.index}: {err}; run `vla recover`')
        directory = bag.directory
        if not outcome.saved:
            self._write_episode_file(bag, episode)
            where = self._store.discard(episode.index, keep=self._cfg.value.keep_discarded)
            self.get_logger().info(
                f'episode {episode.index} discarded'
                + (f' (kept in {where})' if where else '')
                + f'; index {episode.index} will be reused'
            )
            return ''
        self._write_episode_file(bag, episode)
        lost = {n: m.counts.lost() for n, m in self._monitors.items() if m.counts.lost()}
        self._bytes_total += bag.bytes_written
        self.get_logger().info(
            f'episode {episode.index} saved ({episode.end_reason}, success={episode.success}): '
            f'{bag.message_count} messages, {bag.bytes_written / 1e6:.1f} MB in {directory}'
            + (f'; lost {lost}' if lost else '')
        )
        return str(directory)

    def _write_episode_file(self, bag: BagWriter, episode: Episode) -> None:
        overflows = self._queue.take_overflows()
        counts = bag.counts()
        topics = {}
        for name, t in self._topics.items():
            m = self._monitors[name]
            m.counts.queue_overflows += overflows.get(name, 0)
            topics[name] = {
                'type': t.type,
                'messages': counts.get(name, 0),
                'latched': t.latched,
                'publishers': 'wrong type: ' + t.wrong_type if t.wrong_type else (
                    'matched' if t.subscribed else 'none seen'),
                'drops': m.counts.to_dict(),
            }  # fmt: skip
        with self._lock:
            problems = list(self._problems)
        data = {
            **episode.to_dict(),
            'bag': {
                'path': str(bag.directory),
                'storage': 'mcap',
                'files': [bag.file_name],
                'messages': bag.message_count,
                'bytes': bag.bytes_written,
            },
            'topics': topics,
            'problems': problems,
            'recorder': {
                'flush_period': self._cfg.value.flush_period,
                'log_time': 'receive time (node clock); header stamps are in the data',
            },
        }
        write_json_atomic(bag.directory / 'episode.json', data)

    # --- diagnostics ------------------------------------------------------------------------------

    def _free_mb(self) -> float:
        st = os.statvfs(self._root)
        return st.f_bavail * st.f_frsize / 1e6

    def _publish_diagnostics(self) -> None:
        now = self.get_clock().now().nanoseconds
        cfg = self._cfg.value
        statuses = []
        recording = self._recording
        for name, t in self._topics.items():
            c = self._monitors[name].counts
            silent = (now - t.last_recv_ns) * 1e-9 if t.last_recv_ns else None
            overflow = self._queue.overflows.get(name, 0) + c.queue_overflows
            if t.msg_cls is None:
                level, msg = diagnostics.ERROR, f'type {t.type} not installed'
            elif t.wrong_type:
                level, msg = diagnostics.ERROR, f'published as {t.wrong_type}, not {t.type}'
            elif recording and not t.subscribed:
                level, msg = diagnostics.WARN, 'no publisher'
            elif recording and (silent is None or silent > cfg.silence_timeout) and not t.latched:
                level, msg = (
                    diagnostics.WARN,
                    'stale: no message for '
                    + (f'{silent:.1f} s' if silent is not None else 'ever'),
                )
            elif c.lost() or overflow or c.stale or c.stamp_regressions:
                level = diagnostics.WARN
                msg = (
                    f'lost ~{c.lost() + self._queue.overflows.get(name, 0)}, '
                    f'stale {c.stale}, regressions {c.stamp_regressions}'
                )
            else:
                level, msg = diagnostics.OK, 'recording' if recording else 'idle'
            statuses.append(
                diagnostics.status(f'recorder: {name}', level, msg, {
                    'type': t.type, **c.to_dict(), 'queue_overflows': overflow,
                    'seconds_since_last': -1.0 if silent is None else silent,
                })
            )  # fmt: skip
        with self._lock:
            current = self._machine.current
        free = self._free_mb()
        level = diagnostics.OK
        message = f'recording episode {current.index}' if current else 'idle'
        if free < cfg.min_free_mb:
            level, message = diagnostics.ERROR, f'disk nearly full: {free:.0f} MB free'
        elif self._last_stop_reason and not current:
            level, message = diagnostics.WARN, f'last episode stopped: {self._last_stop_reason}'
        statuses.append(
            diagnostics.status('recorder', level, message, {
                'phase': 'recording' if current else 'idle',
                'episode_index': current.index if current else -1,
                'next_index': self._machine.allocator.peek(),
                'queue_mb': self._queue.bytes / 1e6,
                'free_mb': free,
                'output_dir': str(self._root),
            })
        )  # fmt: skip
        self._diag_pub.publish(
            diagnostics.diagnostic_array(self.get_clock().now().to_msg(), statuses)
        )

    # --- shutdown ---------------------------------------------------------------------------------

    def destroy_node(self) -> None:
        if getattr(self, '_machine', None) is not None and self._machine.phase is Phase.RECORDING:
            try:
                self.stop_episode(save=True, reason='shutdown', note='recorder stopped')
            except EpisodeError as err:
                self.get_logger().error(f'could not save the episode at shutdown: {err}')
        keys = getattr(self, '_keys', None)
        if keys is not None:
            self._keys_stop.set()
            keys.join(timeout=1.0)
        io_executor = getattr(self, '_io_executor', None)
        if io_executor is not None:
            self._io_stop.set()
            self._io_thread.join(timeout=2.0)
            io_executor.shutdown()
            self._io_node.destroy_node()
        writer = getattr(self, '_writer', None)
        if writer is not None and writer.is_alive():
            self._queue.put_command(_Command('quit'))
            writer.join(timeout=10.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(RecorderNode, args, threads=4)


if __name__ == '__main__':
    sys.exit(main())

"""Teleop node: an operator's input device -> the expert stream, gated by a deadman.

    ros2 run vla_teleop teleop_node --ros-args --params-file config/teleop.yaml -p device:=gamepad

``device``: ``keyboard`` (this terminal; see vla_teleop.teleop.keyboard for the keys),
``gamepad`` (Linux joystick API, ``gamepad.device``) or ``leader_arm`` (mirrors ``leader.topic``).
The sim's scripted expert needs no teleop node: the sim node publishes it on the same topic.

Subscribes ``joint_states`` (sensor_msgs/JointState; the chunk's stamp is its header stamp) and,
for the leader arm, ``leader/joint_states`` and optionally ``leader/deadman`` (std_msgs/Bool).
Publishes at ``rate_hz``, while the deadman is held, ``expert/action_chunk``
(vla_interfaces/ActionChunk, source ``teleop_<device>``, ``jog.horizon`` targets from the newest
joint state on), and always ``teleop/intervention`` (std_msgs/Bool: true while the operator is in
control). On release (or the input or joint states going stale, or shutdown) one final chunk
holds the arm where it is and intervention turns false; then no chunks until the deadman is
held again. Also ``/diagnostics``. Parameters are read at start (a change needs a restart).
"""

from __future__ import annotations

from dataclasses import dataclass
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool

from vla_core.config import Config, ConfigError, param
from vla_core.robot import JointStateSample
from vla_interfaces.msg import ActionChunk as ActionChunkMsg
from vla_ros_common import diagnostics, qos
from vla_ros_common.conversions import chunk_to_msg, stamp_to_seconds
from vla_ros_common.description import load_robot_description
from vla_ros_common.node_main import run_node
from vla_ros_common.params import declare_config
from vla_teleop.teleop.core import InputSample, Jacobian, JogConfig, TeleopCore
from vla_teleop.teleop.gamepad import GamepadConfig, GamepadJog
from vla_teleop.teleop.keyboard import HELP, KeyboardConfig, KeyboardJog, TerminalReader
from vla_teleop.teleop.kinematics import urdf_jacobian
from vla_teleop.teleop.leader_arm import LeaderArmConfig, LeaderArmInput

__all__ = ['TeleopNode', 'TeleopNodeConfig', 'joint_state_sample', 'main']

DEVICES = ('keyboard', 'gamepad', 'leader_arm')


@dataclass(frozen=True, kw_only=True)
class TeleopNodeConfig(Config):
    device: str = param('keyboard', description='input device', choices=DEVICES, read_only=True)
    rate_hz: float = param(
        20.0, description='chunk and intervention rate [Hz]', range=(1.0, 200.0), read_only=True
    )
    kinematics: str = param(
        'urdf', description="EE-jog Jacobian: 'urdf' (the robot description urdf_file), 'none' "
        "(joint jog only); 'vla_sim' is a deprecated name of 'urdf'",
        choices=('urdf', 'none', 'vla_sim'), read_only=True,
    )  # fmt: skip
    urdf_file: str = param(
        'package://vla_description/urdf/vla_arm.urdf',
        description='robot description of the EE jog: package://<pkg>/<path>, file:// or a path',
        read_only=True,
    )  # fmt: skip
    ee_link: str = param('ee_link', description='the link the EE jog moves', read_only=True)
    jog: JogConfig = param(default_factory=JogConfig, description='jog, limits and deadman')
    keyboard: KeyboardConfig = param(default_factory=KeyboardConfig, description='keyboard')
    gamepad: GamepadConfig = param(default_factory=GamepadConfig, description='gamepad')
    leader: LeaderArmConfig = param(default_factory=LeaderArmConfig, description='leader arm')
    diagnostics_period: float = param(1.0, description='[s]', range=(0.1, 60.0))


def joint_state_sample(msg: JointState, fallback_stamp: float) -> JointStateSample | None:
    """The message's positions (velocity/effort not needed); None if malformed."""
    n = len(msg.name)
    if n == 0 or len(msg.position) != n:
        return None
    stamp = stamp_to_seconds(msg.header.stamp)
    zeros = np.zeros(n)
    return JointStateSample(
        stamp=stamp if stamp > 0.0 else fallback_stamp,
        joint_names=tuple(msg.name),
        position=np.asarray(msg.position, dtype=np.float64),
        velocity=zeros,
        effort=zeros,
    )


class TeleopNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('teleop', **kwargs)
        cfg = declare_config(self, TeleopNodeConfig).value
        self._cfg = cfg
        self._device = cfg.device
        log = self.get_logger()
        jog = cfg.jog
        if cfg.device == 'leader_arm' and cfg.leader.deadman == 'always':
            jog = jog.replace(rearm_after_timeout=False)  # no button that could be released
        jacobian = self._load_kinematics(cfg) if cfg.device != 'leader_arm' else None
        self._core = TeleopCore(jog, jacobian, source=f'teleop_{cfg.device}')
        self._state: JointStateSample | None = None
        self._state_received = -float('inf')
        self._counts = {'chunks': 0, 'hold_chunks': 0, 'engagements': 0, 'bad_joint_states': 0}
        self._last_event = ''
        self._device_note = ''

        self._chunk_pub = self.create_publisher(
            ActionChunkMsg, 'expert/action_chunk', qos.ACTION_CHUNK
        )
        self._intervention_pub = self.create_publisher(Bool, 'teleop/intervention', qos.COMMAND)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS)
        self.create_subscription(JointState, 'joint_states', self._on_joint_state, qos.SENSOR_IN)

        self._keyboard: KeyboardJog | None = None
        self._terminal: TerminalReader | None = None
        self._gamepad: GamepadJog | None = None
        self._leader: LeaderArmInput | None = None
        if cfg.device == 'keyboard':
            self._keyboard = KeyboardJog(cfg.keyboard, jog.joint_names, jacobian is not None)
            self._terminal = TerminalReader()
            if self._terminal.open():
                log.info(f'keyboard teleop: {HELP}')
                log.info(self._keyboard.status())
            else:
                self._device_note = f'keyboard disabled: {self._terminal.error}'
                log.error(self._device_note)
        elif cfg.device == 'gamepad':
            self._gamepad = GamepadJog(cfg.gamepad, jog.joint_names)
            self._gamepad_connected = False
            log.info(f'gamepad teleop on {cfg.gamepad.device}: hold button '
                     f'{cfg.gamepad.deadman_button} to move')  # fmt: skip
        else:
            self._leader = LeaderArmInput(cfg.leader, jog.joint_names)
            self.create_subscription(JointState, cfg.leader.topic, self._on_leader, qos.SENSOR_IN)
            if cfg.leader.deadman == 'topic':
                self.create_subscription(
                    Bool, cfg.leader.deadman_topic, self._on_leader_deadman, qos.COMMAND
                )
            log.info(
                f'leader-arm teleop: {cfg.leader.topic} -> {list(jog.joint_names)} '
                f'(map {self._leader.mapper.mapping}), deadman {cfg.leader.deadman}'
            )
        self.create_timer(1.0 / cfg.rate_hz, self._tick)
        self.create_timer(cfg.diagnostics_period, self._publish_diagnostics)

    def _load_kinematics(self, cfg: TeleopNodeConfig) -> Jacobian | None:
        if cfg.kinematics == 'none' or not cfg.jog.ee_joints:
            return None
        if cfg.kinematics == 'vla_sim':
            self.get_logger().warn("kinematics 'vla_sim' is deprecated: use 'urdf'")
        try:
            urdf = load_robot_description(cfg.urdf_file)
            return urdf_jacobian(urdf, cfg.jog.ee_joints, cfg.ee_link)
        except (ConfigError, ValueError) as err:
            self.get_logger().warn(f'EE jog disabled (no kinematics: {err})')
            return None

    # --- callbacks --------------------------------------------------------------------------------

    def _on_joint_state(self, msg: JointState) -> None:
        now = time.monotonic()
        sample = joint_state_sample(msg, self.get_clock().now().nanoseconds * 1e-9)
        if sample is None:
            self._counts['bad_joint_states'] += 1
            return
        self._state = sample
        self._state_received = now

    def _on_leader(self, msg: JointState) -> None:
        assert self._leader is not None
        self._leader.on_leader(list(msg.name), list(msg.position), time.monotonic())

    def _on_leader_deadman(self, msg: Bool) -> None:
        assert self._leader is not None
        self._leader.on_deadman(bool(msg.data), time.monotonic())

    def _sample(self, now: float) -> InputSample | None:
        if self._keyboard is not None:
            assert self._terminal is not None
            data = self._terminal.read()
            if data is None:  # no terminal (or it went away): the keyboard input is stale
                note = f'keyboard disabled: {self._terminal.error}'
                if self._device_note != note:
                    self._device_note = note
                    self.get_logger().error(note)
                return self._keyboard.sample(now)
            for message in self._keyboard.feed(data, now):
                self.get_logger().info(message)
            return self._keyboard.sample(now)
        if self._gamepad is not None:
            sample = self._gamepad.sample(now)
            connected = self._gamepad.device.connected
            if connected != self._gamepad_connected:
                self._gamepad_connected = connected
                path = self._gamepad.device.path
                if connected:
                    self.get_logger().info(f'gamepad {path} connected')
                else:
                    self.get_logger().warn(f'gamepad lost: {self._gamepad.device.error}')
            self._device_note = self._gamepad.device.error
            return sample
        assert self._leader is not None
        return self._leader.sample(now)

    def _tick(self) -> None:
        now = time.monotonic()
        sample = self._sample(now)
        out = self._core.step(now, sample, self._state, self._state_received)
        if out.chunk is not None:
            self._chunk_pub.publish(chunk_to_msg(out.chunk))
            self._counts['chunks'] += 1
            self._counts['hold_chunks'] += not out.intervention
        self._intervention_pub.publish(Bool(data=out.intervention))
        if out.event and out.event != self._last_event:
            self._log_event(out.event)
        self._last_event = out.event
        if self._core.ee_unavailable:
            self.get_logger().warn(
                'EE jog asked for but no kinematics: use joint jog', throttle_duration_sec=5.0
            )
            self._core.ee_unavailable = 0

    def _log_event(self, event: str) -> None:
        log = self.get_logger()
        if event == 'engaged':
            self._counts['engagements'] += 1
            log.info('deadman held: operator in control')
        elif event == 'released':
            log.info('deadman released: holding')
        elif event == 'input_timeout':
            log.warn(f'{self._device} input lost: holding (release the deadman to re-arm)')
        elif event == 'state_lost':
            log.warn('joint_states stale: holding')
        elif event == 'no_state':
            log.warn('deadman held but no fresh joint_states with every jog joint: not moving')

    def _publish_diagnostics(self) -> None:
        core = self._core
        if self._device_note:
            level, message = diagnostics.WARN, self._device_note
        elif core.engaged:
            level, message = diagnostics.OK, 'operator in control'
        else:
            level, message = diagnostics.OK, 'idle (deadman released)'
        values = {
            'device': self._device,
            'engaged': core.engaged,
            'waiting_for_deadman_release': core.blocked,
            'joint_state_age': time.monotonic() - self._state_received,
            **self._counts,
        }
        if self._keyboard is not None:
            values['keyboard'] = self._keyboard.status()
        status = diagnostics.status(f'{self.get_name()}: teleop', level, message, values)
        stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(diagnostics.diagnostic_array(stamp, [status]))

    def destroy_node(self) -> None:
        core = getattr(self, '_core', None)
        if core is not None and core.engaged:  # stop where we are before going away
            fresh = time.monotonic() - self._state_received <= core.config.state_timeout
            chunk = core.release(self._state if fresh else None)
            if chunk is not None:
                self._chunk_pub.publish(chunk_to_msg(chunk))
            self._intervention_pub.publish(Bool(data=False))
        terminal = getattr(self, '_terminal', None)
        if terminal is not None:
            terminal.close()
        gamepad = getattr(self, '_gamepad', None)
        if gamepad is not None:
            gamepad.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(TeleopNode, args)


if __name__ == '__main__':
    sys.exit(main())

"""Gamepad teleop through the Linux joystick API (``/dev/input/js*``), no external libraries.

The kernel's joydev driver delivers 8-byte ``struct js_event`` records (host byte order):
``u32 time [ms], s16 value, u8 type, u8 number``; type 0x01 button, 0x02 axis, or'ed with 0x80
for the synthetic events that report every control's state right after the device is opened.
Events arrive only on change, so a stick held still sends nothing: the state is kept here, and the
input counts as good while the device is open (an unplugged pad fails the read with ENODEV, which
releases the deadman; the device is reopened every ``reconnect_period``).

Mapping: ``axis_channels[i]`` / ``button_channels[i]`` name what axis/button ``i`` drives:
an EE axis (``x y z rx ry rz``, base frame) or a joint name, with an optional ``-`` to invert;
``''`` leaves it unused. Axes are in [-1, 1] after the ``deadzone`` (rescaled so motion starts
from 0), buttons give 1 while pressed. The deadman is button ``deadman_button`` held.

Defaults fit an Xbox-style pad on the xpad driver (axes 0 LX, 1 LY, 2 LT, 3 RX, 4 RY, 5 RT,
6/7 d-pad; buttons 0 A, 1 B, 2 X, 3 Y, 4 LB, 5 RB): hold LB; left stick: x (push forward) and y
(push left); right stick: z (push up) and yaw (push left); A closes and B opens the gripper;
d-pad up/down: pitch, left/right: roll. Check a pad with ``jstest /dev/input/js0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import errno
import os
import struct

from vla_core.config import Config, ConfigError, param
from vla_teleop.teleop.core import EE_AXES, InputSample, JogCommand, parse_channel

__all__ = [
    'JS_EVENT',
    'JS_EVENT_AXIS',
    'JS_EVENT_BUTTON',
    'JS_EVENT_INIT',
    'GamepadConfig',
    'GamepadJog',
    'JoystickDevice',
    'JsEvent',
    'apply_deadzone',
    'pack_event',
    'parse_events',
]

JS_EVENT = struct.Struct('=IhBB')  # host order, standard sizes: 8 bytes
JS_EVENT_BUTTON = 0x01
JS_EVENT_AXIS = 0x02
JS_EVENT_INIT = 0x80
_AXIS_MAX = 32767.0


@dataclass(frozen=True)
class JsEvent:
    time_ms: int
    value: int
    type: int  # JS_EVENT_BUTTON or JS_EVENT_AXIS, without the init flag
    number: int
    init: bool = False


def pack_event(value: int, type_: int, number: int, time_ms: int = 0) -> bytes:
    """One ``struct js_event`` as the kernel writes it (for tests and simulators)."""
    return JS_EVENT.pack(time_ms & 0xFFFFFFFF, value, type_, number)


def parse_events(data: bytes) -> tuple[list[JsEvent], bytes]:
    """Whole events in ``data`` and the incomplete tail to prepend to the next read."""
    size = JS_EVENT.size
    whole = len(data) - len(data) % size
    events = []
    for time_ms, value, type_, number in JS_EVENT.iter_unpack(data[:whole]):
        kind = type_ & ~JS_EVENT_INIT
        if kind in (JS_EVENT_BUTTON, JS_EVENT_AXIS):
            events.append(JsEvent(time_ms, value, kind, number, bool(type_ & JS_EVENT_INIT)))
    return events, data[whole:]


def apply_deadzone(value: float, deadzone: float) -> float:
    """0 inside the deadzone, then rescaled so the output still spans [-1, 1] without a step."""
    value = max(-1.0, min(1.0, value))
    if abs(value) <= deadzone:
        return 0.0
    return (abs(value) - deadzone) / (1.0 - deadzone) * (1.0 if value > 0 else -1.0)


@dataclass(frozen=True, kw_only=True)
class GamepadConfig(Config):
    device: str = param('/dev/input/js0', description='joystick device (Linux joystick API)')
    deadman_button: int = param(4, description='button to hold for motion (4: LB)', range=(0, 255))
    axis_channels: tuple[str, ...] = param(
        ('-y', '-x', '', '-rz', '-z', '', '-rx', '-ry'),
        description="per axis: EE axis (x y z rx ry rz) or joint name, '-' inverts, '' unused",
    )
    button_channels: tuple[str, ...] = param(
        ('-gripper', 'gripper'),
        description="per button: EE axis or joint name driven at full rate while held, '' unused",
    )
    deadzone: float = param(0.15, description='stick deadzone (fraction)', range=(0.0, 0.9))
    speed: float = param(0.5, description='speed scale at full stick', range=(0.05, 1.0))
    reconnect_period: float = param(
        1.0, description='retry opening a missing device this often [s]', range=(0.05, 60.0)
    )

    def validate(self) -> None:
        if self.deadman_button < len(self.button_channels) and self.button_channels[
            self.deadman_button
        ].strip('+- '):
            raise ConfigError('button_channels', 'the deadman button must not drive a channel')


class JoystickDevice:
    """A joystick device file read without blocking; reopened after it fails."""

    def __init__(self, path: str, reconnect_period: float = 1.0) -> None:
        self.path = path
        self.reconnect_period = reconnect_period
        self._fd: int | None = None
        self._tail = b''
        self._next_try = -float('inf')
        self.error = ''
        self.connects = 0

    @property
    def connected(self) -> bool:
        return self._fd is not None

    def poll(self, now: float) -> list[JsEvent]:
        """Every event available now; opens the device when due. Never blocks."""
        if self._fd is None:
            if now < self._next_try:
                return []
            self._next_try = now + self.reconnect_period
            try:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError as err:
                self.error = f'cannot open {self.path}: {err.strerror}'
                return []
            self._tail = b''
            self.error = ''
            self.connects += 1
        data = self._tail
        while True:
            try:
                chunk = os.read(self._fd, JS_EVENT.size * 64)
            except BlockingIOError:
                break
            except OSError as err:  # ENODEV: unplugged
                if err.errno in (errno.EAGAIN, errno.EINTR):
                    break
                self.error = f'{self.path}: {err.strerror}'
                self.close(now)
                return []
            if not chunk:  # EOF (a fifo or file in tests): nothing more for now
                break
            data += chunk
        events, self._tail = parse_events(data)
        return events

    def close(self, now: float = -float('inf')) -> None:
        fd, self._fd = self._fd, None
        self._next_try = now + self.reconnect_period
        if fd is not None:
            os.close(fd)


class GamepadJog:
    """Gamepad state -> input samples."""

    def __init__(
        self,
        config: GamepadConfig,
        joint_names: Sequence[str],
        device: JoystickDevice | None = None,
    ) -> None:
        self.config = config
        self.joint_names = tuple(joint_names)
        try:
            self._axes = [parse_channel(c, joint_names) for c in config.axis_channels]
        except ValueError as err:
            raise ConfigError('gamepad.axis_channels', str(err)) from None
        try:
            self._buttons = [parse_channel(c, joint_names) for c in config.button_channels]
        except ValueError as err:
            raise ConfigError('gamepad.button_channels', str(err)) from None
        self.device = device or JoystickDevice(config.device, config.reconnect_period)
        self.axes: dict[int, float] = {}
        self.buttons: dict[int, bool] = {}
        self._alive = -float('inf')
        self._was_connected = False

    def apply(self, event: JsEvent) -> None:
        if event.type == JS_EVENT_AXIS:
            self.axes[event.number] = event.value / _AXIS_MAX
        else:
            self.buttons[event.number] = event.value != 0

    def sample(self, now: float) -> InputSample:
        for event in self.device.poll(now):
            self.apply(event)
        if self.device.connected:
            self._alive = now
        elif self._was_connected:  # forget a lost pad's state: its init events will restore it
            self.axes.clear()
            self.buttons.clear()
        self._was_connected = self.device.connected
        return InputSample(
            deadman=self.buttons.get(self.config.deadman_button, False),
            command=self.command(),
            stamp=self._alive,
        )

    def command(self) -> JogCommand:
        twist = [0.0] * 6
        rates: dict[str, float] = {}

        def add(channel: tuple[str, float] | None, value: float) -> None:
            if channel is None or value == 0.0:
                return
            name, sign = channel
            if name in EE_AXES:
                twist[EE_AXES.index(name)] += sign * value
            else:
                rates[name] = rates.get(name, 0.0) + sign * value

        for number, channel in enumerate(self._axes):
            add(channel, apply_deadzone(self.axes.get(number, 0.0), self.config.deadzone))
        for number, channel in enumerate(self._buttons):
            if number != self.config.deadman_button:
                add(channel, 1.0 if self.buttons.get(number, False) else 0.0)
        return JogCommand(joint_rates=rates, twist=tuple(twist), speed=self.config.speed)

    def close(self) -> None:
        self.device.close()

"""Keyboard teleop: jog joints or the end effector from a terminal.

A terminal reports key presses, never releases, so "hold to move" is inferred from auto-repeat:
a motion key moves for ``key_initial_timeout`` after its first press (long enough to bridge the
auto-repeat delay, 250-660 ms on common terminals) and, once it repeats, for
``key_repeat_timeout`` after the newest repeat, so the arm stops soon after the key is let go.
Only one motion key is active at a time (terminals repeat only the last key held).

The deadman cannot be held either (holding space would stop the motion key's repeats), so space
*toggles* it and it releases itself after ``deadman_timeout`` without any key, i.e. when the
operator stops typing. Esc releases it at once.

Keys (case-insensitive; arrows work too)::

    space      deadman on/off          esc      deadman off
    tab or m   switch joint / EE frame [ ]      speed down / up
    c / v      close / open gripper    h or ?   this help
    joint frame:  1..9 select joint, + or = or up: positive, - or down: negative
    EE frame (base frame):  w/s +x/-x (also up/down), a/d +y/-y (also left/right), q/e +z/-z,
                            u/o +roll/-roll (about x), i/k +pitch/-pitch (y), j/l +yaw/-yaw (z)

:class:`KeyboardJog` is the pure key logic (fed bytes and times); :class:`TerminalReader` owns the
terminal: cbreak mode (Ctrl-C still interrupts), non-blocking reads, the settings restored on
close, at exit and on exceptions; a stdin that is not a TTY is reported, never touched.
"""

from __future__ import annotations

import atexit
from collections.abc import Sequence
import contextlib
from dataclasses import dataclass
import os
import select

from vla_core.config import Config, param
from vla_teleop.teleop.core import EE_AXES, InputSample, JogCommand

__all__ = ['HELP', 'KeyboardConfig', 'KeyboardJog', 'TerminalReader', 'tokenize']

HELP = (
    'space: deadman on/off (auto-off after deadman_timeout without keys), esc: deadman off, '
    'tab/m: joint<->EE frame, [ ]: speed -/+, c/v: gripper close/open, h: help | '
    'joint frame: 1..9 select, +/= or up: +, - or down: - | '
    'EE frame: w/s x, a/d y, q/e z, u/o roll, i/k pitch, j/l yaw (arrows: x/y)'
)

# EE frame: key -> (axis, sign). Base frame: x forward, y left, z up (REP 103).
EE_KEYS = {
    'w': ('x', 1.0),
    's': ('x', -1.0),
    'up': ('x', 1.0),
    'down': ('x', -1.0),
    'a': ('y', 1.0),
    'd': ('y', -1.0),
    'left': ('y', 1.0),
    'right': ('y', -1.0),
    'q': ('z', 1.0),
    'e': ('z', -1.0),
    'u': ('rx', 1.0),
    'o': ('rx', -1.0),
    'i': ('ry', 1.0),
    'k': ('ry', -1.0),
    'j': ('rz', 1.0),
    'l': ('rz', -1.0),
}
JOINT_KEYS = {'+': 1.0, '=': 1.0, 'up': 1.0, '-': -1.0, 'down': -1.0}
GRIPPER_KEYS = {'c': -1.0, 'v': 1.0}  # gripper value is the opening: + opens
_ARROWS = {b'A': 'up', b'B': 'down', b'C': 'right', b'D': 'left'}


@dataclass(frozen=True, kw_only=True)
class KeyboardConfig(Config):
    deadman_timeout: float = param(
        1.0, description='the deadman releases itself after this long without a key [s]',
        range=(0.1, 60.0),
    )  # fmt: skip
    key_initial_timeout: float = param(
        0.6, description='a motion key moves this long after its first press (bridges the '
        "terminal's auto-repeat delay) [s]", range=(0.05, 2.0),
    )  # fmt: skip
    key_repeat_timeout: float = param(
        0.15, description='once repeating, motion stops this long after the last repeat [s]',
        range=(0.02, 1.0),
    )  # fmt: skip
    speed: float = param(0.5, description='initial speed scale', range=(0.05, 1.0))
    speed_step: float = param(0.1, description='speed change per [ or ] key', range=(0.01, 0.5))
    frame: str = param('joint', description='initial jog frame', choices=('joint', 'ee'))
    gripper_joint: str = param('gripper', description="joint of the c/v keys; '' for none")


def tokenize(data: bytes) -> list[str]:
    """Bytes from the terminal -> key names: one character, 'up'/'down'/'left'/'right', 'esc',
    'tab', 'space'. Unknown escape sequences are dropped."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        b = data[i : i + 1]
        if b == b'\x1b':
            if data[i + 1 : i + 2] in (b'[', b'O'):
                # CSI/SS3: parameters then a final byte in @..~
                j = i + 2
                while j < len(data) and not 0x40 <= data[j] <= 0x7E:
                    j += 1
                final = data[j : j + 1]
                if final in _ARROWS:
                    keys.append(_ARROWS[final])
                i = j + 1
                continue
            keys.append('esc')
        elif b == b'\t':
            keys.append('tab')
        elif b == b' ':
            keys.append('space')
        elif 0x21 <= data[i] <= 0x7E:
            keys.append(b.decode('ascii').lower())
        i += 1
    return keys


class KeyboardJog:
    """Key logic: ``feed`` the terminal's bytes, ``sample`` the input at the teleop rate."""

    def __init__(
        self, config: KeyboardConfig, joint_names: Sequence[str], ee_available: bool = True
    ) -> None:
        self.config = config
        self.joint_names = tuple(joint_names)
        self.ee_available = ee_available
        self.frame = config.frame if ee_available else 'joint'
        self.speed = config.speed
        self.selected = 0
        self.deadman = False
        self._last_key = -float('inf')
        # Active motion: channel, sign, first press, newest press, repeated?
        self._motion: tuple[str, float, float, float, bool] | None = None
        self._alive = -float('inf')  # newest time the terminal was read

    @property
    def gripper(self) -> str:
        g = self.config.gripper_joint
        return g if g in self.joint_names else ''

    def feed(self, data: bytes, now: float) -> list[str]:
        """Apply the bytes read at ``now`` (b'' for a read with nothing new); messages for the
        operator."""
        self._alive = now
        messages = []
        for key in tokenize(data):
            message = self.key(key, now)
            if message:
                messages.append(message)
        return messages

    def key(self, key: str, now: float) -> str:
        """Apply one key; what changed, for the operator ('' for plain motion)."""
        self._last_key = now
        if key == 'space':
            self.deadman = not self.deadman
            self._motion = None
            return 'deadman ON: jogging' if self.deadman else 'deadman off'
        if key == 'esc':
            self.deadman = False
            self._motion = None
            return 'deadman off'
        if key in ('tab', 'm'):
            if not self.ee_available:
                return 'EE frame unavailable (no kinematics): joint frame only'
            self.frame = 'ee' if self.frame == 'joint' else 'joint'
            self._motion = None
            return f'frame: {self.frame}'
        if key in ('[', ']'):
            step = self.config.speed_step if key == ']' else -self.config.speed_step
            self.speed = float(min(1.0, max(0.05, round(self.speed + step, 3))))
            return f'speed {self.speed:.2f}'
        if key in ('h', '?'):
            return HELP
        if key in GRIPPER_KEYS and self.gripper:
            return self._move(self.gripper, GRIPPER_KEYS[key], now)
        if self.frame == 'joint':
            if key.isdigit() and key != '0':
                index = int(key) - 1
                if index >= len(self.joint_names):
                    return f'no joint {key}: {len(self.joint_names)} joints'
                self.selected = index
                self._motion = None
                return f'joint {key}: {self.joint_names[index]}'
            if key in JOINT_KEYS:
                return self._move(self.joint_names[self.selected], JOINT_KEYS[key], now)
        elif key in EE_KEYS:
            axis, sign = EE_KEYS[key]
            return self._move(axis, sign, now)
        return ''

    def _move(self, channel: str, sign: float, now: float) -> str:
        m = self._motion
        if m is not None and m[0] == channel and m[1] == sign:
            self._motion = (channel, sign, m[2], now, True)
        else:
            self._motion = (channel, sign, now, now, False)
        return '' if self.deadman else 'deadman off: press space to jog'

    def sample(self, now: float) -> InputSample:
        cfg = self.config
        if self.deadman and now - self._last_key > cfg.deadman_timeout:
            self.deadman = False
        command = JogCommand(speed=self.speed)
        m = self._motion
        if m is not None:
            channel, sign, _, last, repeated = m
            timeout = cfg.key_repeat_timeout if repeated else cfg.key_initial_timeout
            if now - last > timeout:
                self._motion = None
            elif channel in EE_AXES:
                twist = [0.0] * 6
                twist[EE_AXES.index(channel)] = sign
                command = JogCommand(twist=tuple(twist), speed=self.speed)
            else:
                command = JogCommand(joint_rates={channel: sign}, speed=self.speed)
        return InputSample(deadman=self.deadman, command=command, stamp=self._alive)

    def status(self) -> str:
        joint = self.joint_names[self.selected]
        return (
            f'deadman {"ON" if self.deadman else "off"}, frame {self.frame}'
            f'{f" (joint {joint})" if self.frame == "joint" else ""}, speed {self.speed:.2f}'
        )


class TerminalReader:
    """Non-blocking key bytes from a terminal in cbreak mode; restores it on close."""

    def __init__(self, fd: int | None = None) -> None:
        self._fd = fd
        self._saved: list | None = None
        self.error = ''

    @property
    def is_open(self) -> bool:
        return self._saved is not None

    def open(self) -> bool:
        """Enter cbreak mode; False (``error`` says why) when there is no usable terminal."""
        import sys
        import termios
        import tty

        try:
            fd = sys.stdin.fileno() if self._fd is None else self._fd
        except (OSError, ValueError, AttributeError):
            self.error = 'stdin has no file descriptor'
            return False
        if not os.isatty(fd):
            self.error = 'stdin is not a terminal (run the node in a terminal, not from launch)'
            return False
        try:
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)  # no line buffering or echo; Ctrl-C still raises SIGINT
        except termios.error as err:
            self._saved = None
            self.error = f'cannot set the terminal up: {err}'
            return False
        self._fd = fd
        atexit.register(self.close)  # a crash or sys.exit must not leave the terminal raw
        return True

    def read(self) -> bytes | None:
        """Bytes typed since the last call (b'' if none); None once the terminal is gone."""
        if self._saved is None or self._fd is None:
            return None
        data = b''
        try:
            while select.select([self._fd], [], [], 0.0)[0]:
                chunk = os.read(self._fd, 256)
                if not chunk:  # EOF: terminal closed
                    self.close()
                    self.error = 'the terminal was closed'
                    return None
                data += chunk
        except OSError as err:
            self.close()
            self.error = f'terminal read failed: {err}'
            return None
        return data

    def close(self) -> None:
        import termios

        saved, self._saved = self._saved, None
        if saved is not None and self._fd is not None:
            with contextlib.suppress(termios.error):  # the terminal may be gone already
                termios.tcsetattr(self._fd, termios.TCSADRAIN, saved)
            atexit.unregister(self.close)

    def __enter__(self) -> TerminalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

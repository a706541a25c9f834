"""Keyboard teleop: key decoding and mapping, auto-repeat timing, the terminal through a pty."""

import os
import termios

import pytest

from vla_teleop.teleop.keyboard import KeyboardConfig, KeyboardJog, TerminalReader, tokenize

NAMES = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper')


def _jog(**kw) -> KeyboardJog:
    return KeyboardJog(KeyboardConfig(**kw), NAMES)


def test_tokenize_keys_arrows_and_escape():
    assert tokenize(b'W+ \t\x1b[A\x1b[D\x1bOB\x1b') == [
        'w', '+', 'space', 'tab', 'up', 'left', 'down', 'esc'
    ]  # fmt: skip
    assert tokenize(b'\x1b[1;5C') == ['right']  # modified arrow
    assert tokenize(b'\x1b[3~a') == ['a']  # delete: dropped


def test_joint_frame_select_and_jog():
    jog = _jog(speed=0.5)
    assert jog.feed(b'3', 0.0) == ['joint 3: joint3']
    assert jog.feed(b'+', 0.0) == ['deadman off: press space to jog']
    s = jog.sample(0.1)
    assert not s.deadman and s.command.joint_rates == {'joint3': 1.0} and s.command.speed == 0.5
    jog.feed(b' ', 0.2)
    jog.feed(b'-', 0.2)
    s = jog.sample(0.3)
    assert s.deadman and s.command.joint_rates == {'joint3': -1.0} and s.stamp == 0.2
    assert jog.feed(b'9', 0.3) == ['no joint 9: 7 joints']
    assert jog.feed(b']]', 0.3)[-1] == 'speed 0.70'
    jog.feed(b'c', 0.4)
    assert jog.sample(0.4).command.joint_rates == {'gripper': -1.0}


def test_ee_frame_keys_map_to_base_frame_twists():
    jog = _jog(frame='ee')
    expected = {b'w': (0, 1), b's': (0, -1), b'a': (1, 1), b'd': (1, -1), b'q': (2, 1),
                b'e': (2, -1), b'u': (3, 1), b'o': (3, -1), b'i': (4, 1), b'k': (4, -1),
                b'j': (5, 1), b'l': (5, -1), b'\x1b[A': (0, 1), b'\x1b[C': (1, -1)}  # fmt: skip
    for key, (axis, sign) in expected.items():
        jog.feed(key, 0.0)
        twist = jog.sample(0.0).command.twist
        assert twist[axis] == sign and sum(map(abs, twist)) == 1.0, key
    assert jog.feed(b'm', 0.0) == ['frame: joint']
    assert KeyboardJog(KeyboardConfig(frame='ee'), NAMES, ee_available=False).frame == 'joint'


def test_hold_is_inferred_from_auto_repeat():
    jog = _jog(key_initial_timeout=0.5, key_repeat_timeout=0.1)
    jog.feed(b' +', 0.0)
    assert jog.sample(0.45).command.joint_rates  # bridging the auto-repeat delay
    assert not jog.sample(0.55).command.joint_rates  # a single tap ends
    jog.feed(b'+', 1.0)
    jog.feed(b'+', 1.5)  # repeating now: stops soon after the last repeat
    assert jog.sample(1.58).command.joint_rates
    assert not jog.sample(1.62).command.joint_rates


def test_deadman_toggles_and_releases_itself_without_keys():
    jog = _jog(deadman_timeout=1.0)
    jog.feed(b' ', 0.0)
    assert jog.sample(0.9).deadman
    jog.feed(b'+', 0.9)
    assert jog.sample(1.8).deadman  # keys keep it alive
    assert not jog.sample(2.0).deadman
    jog.feed(b' ', 3.0)
    assert jog.feed(b' ', 3.1) == ['deadman off']
    jog.feed(b' ', 3.2)
    assert jog.feed(b'\x1b', 3.3) == ['deadman off'] and not jog.sample(3.3).deadman


def test_terminal_reader_through_a_pty_restores_the_settings():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        reader = TerminalReader(slave)
        assert reader.open()
        assert not termios.tcgetattr(slave)[3] & (termios.ICANON | termios.ECHO)
        assert reader.read() == b''
        os.write(master, b' w\x1b[A')  # no newline: cbreak hands keys over at once
        jog = KeyboardJog(KeyboardConfig(frame='ee'), NAMES)
        jog.feed(reader.read(), 0.0)
        s = jog.sample(0.0)
        assert s.deadman and s.command.twist[0] == 1.0
        reader.close()
        assert termios.tcgetattr(slave) == before
        assert reader.read() is None
    finally:
        os.close(master)
        os.close(slave)


def test_terminal_reader_restores_on_exceptions():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        with pytest.raises(RuntimeError), TerminalReader(slave) as reader:
            assert reader.open()
            raise RuntimeError('boom')
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_not_a_tty_is_refused_cleanly(tmp_path):
    r, w = os.pipe()
    try:
        reader = TerminalReader(r)
        assert not reader.open() and 'not a terminal' in reader.error
        assert reader.read() is None
        reader.close()
    finally:
        os.close(r)
        os.close(w)

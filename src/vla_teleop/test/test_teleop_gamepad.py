"""Gamepad teleop: js_event parsing, mapping and deadzone, a fake device through a fifo."""

import os

import pytest

from vla_core.config import ConfigError
from vla_teleop.teleop.gamepad import (
    JS_EVENT_AXIS,
    JS_EVENT_BUTTON,
    JS_EVENT_INIT,
    GamepadConfig,
    GamepadJog,
    JoystickDevice,
    apply_deadzone,
    pack_event,
    parse_events,
)

NAMES = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper')


def test_parse_events_from_packed_bytes_keeps_the_partial_tail():
    data = (
        pack_event(1, JS_EVENT_BUTTON | JS_EVENT_INIT, 4, 10)
        + pack_event(-32767, JS_EVENT_AXIS, 1, 20)
        + pack_event(0, 0x04, 0, 30)  # unknown type: skipped
        + pack_event(5, JS_EVENT_AXIS, 3, 40)[:5]
    )
    assert len(data) == 29
    events, tail = parse_events(data)
    assert [(e.type, e.number, e.value, e.init, e.time_ms) for e in events] == [
        (JS_EVENT_BUTTON, 4, 1, True, 10),
        (JS_EVENT_AXIS, 1, -32767, False, 20),
    ]
    assert len(tail) == 5
    events, tail = parse_events(tail + pack_event(5, JS_EVENT_AXIS, 3, 40)[5:])
    assert [(e.number, e.value) for e in events] == [(3, 5)] and tail == b''


def test_deadzone_is_continuous():
    assert apply_deadzone(0.1, 0.15) == 0.0
    assert apply_deadzone(0.15 + 1e-9, 0.15) == pytest.approx(0.0, abs=1e-6)
    assert apply_deadzone(-1.0, 0.15) == -1.0 and apply_deadzone(2.0, 0.15) == 1.0
    assert apply_deadzone(0.575, 0.15) == pytest.approx(0.5)


def test_config_rejects_unknown_channels_and_a_moving_deadman():
    with pytest.raises(ConfigError, match='axis_channels'):
        GamepadJog(GamepadConfig(axis_channels=('elbow',)), NAMES)
    with pytest.raises(ConfigError, match='deadman'):
        GamepadConfig(deadman_button=0, button_channels=('x',))


def test_fifo_device_mapping_deadman_and_reconnect(tmp_path):
    path = tmp_path / 'js0'
    now = 0.0
    cfg = GamepadConfig(device=str(path), deadzone=0.1, speed=0.5, reconnect_period=0.5)
    pad = GamepadJog(cfg, NAMES)
    s = pad.sample(now)  # no device yet
    assert not pad.device.connected and 'cannot open' in pad.device.error
    assert s.stamp == -float('inf') and not s.deadman
    os.mkfifo(path)
    assert not pad.device.connected and pad.sample(0.2).stamp == -float('inf')  # not yet due
    s = pad.sample(0.6)
    assert pad.device.connected and s.stamp == 0.6
    writer = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        # init burst, then: LB held, left stick pushed forward, right stick left, B (open) held
        os.write(writer, pack_event(0, JS_EVENT_BUTTON | JS_EVENT_INIT, 4)
                 + pack_event(0, JS_EVENT_AXIS | JS_EVENT_INIT, 1)
                 + pack_event(1, JS_EVENT_BUTTON, 4) + pack_event(-32767, JS_EVENT_AXIS, 1)
                 + pack_event(-16384, JS_EVENT_AXIS, 3) + pack_event(1, JS_EVENT_BUTTON, 1)
                 + pack_event(1000, JS_EVENT_AXIS, 0)[:3])  # fmt: skip
        s = pad.sample(0.7)
        assert s.deadman and s.stamp == 0.7
        twist = s.command.twist
        assert twist[0] == pytest.approx(1.0)  # -LY -> +x
        assert twist[5] == pytest.approx((0.5 - 0.1) / 0.9, abs=1e-4)  # -RX -> +yaw
        assert twist[1] == 0.0 and s.command.joint_rates == {'gripper': 1.0}
        assert s.command.speed == 0.5
        os.write(writer, pack_event(1000, JS_EVENT_AXIS, 0)[3:] + pack_event(0, JS_EVENT_BUTTON, 4))
        s = pad.sample(0.8)
        assert not s.deadman and pad.axes[0] == pytest.approx(1000 / 32767)
        s = pad.sample(5.0)  # a stick held still sends nothing: the state is kept
        assert s.stamp == 5.0 and s.command.twist[0] == pytest.approx(1.0)
    finally:
        os.close(writer)
    # unplugged: the read fails -> closed, state forgotten, stamp frozen; reopened later
    pad.device.close(5.0)
    pad.device._next_try = 1e9
    s = pad.sample(5.1)
    assert s.stamp == 5.0 and not s.deadman and s.command.twist == (0.0,) * 6
    pad.close()


def test_read_errors_close_the_device(tmp_path):
    device = JoystickDevice(str(tmp_path / 'dir'), reconnect_period=0.1)
    os.mkdir(tmp_path / 'dir')  # opening works, reading fails with EISDIR
    assert device.poll(0.0) == [] and not device.connected and device.error
    assert device.poll(0.05) == [] and device.connects == 1  # waits for reconnect_period
    device.poll(0.2)
    assert device.connects == 2

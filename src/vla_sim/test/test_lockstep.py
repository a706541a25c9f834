"""Lockstep's gate (the sim waits for what the graph owes it) and the shared episode schedule."""

from __future__ import annotations

import threading
import time

import pytest

from vla_sim.lockstep import LockstepGate, LockstepTimeoutError
from vla_sim.tasks import episode_schedule


def test_the_sim_waits_for_the_command_of_its_tick():
    gate = LockstepGate(timeout=10.0)
    released = threading.Event()

    tick = 10_000_000  # 10 ms in nanoseconds

    def sim_thread() -> None:
        gate.await_command(2 * tick)
        released.set()

    thread = threading.Thread(target=sim_thread)
    thread.start()
    gate.command_arrived(tick)  # the previous tick's command does not release this one
    assert not released.wait(0.2)
    gate.command_arrived(2 * tick)
    thread.join(5.0)
    assert released.is_set()
    gate.await_command(tick)  # already there: no wait


def test_a_chunk_for_an_older_frame_does_not_count():
    gate = LockstepGate(timeout=10.0)
    frame = 1_000_100_000_000
    gate.chunk_arrived(frame)
    gate.await_chunk(frame)
    gate.await_chunk(frame + 500)  # the same stamp after a round trip through float seconds
    clock = iter([0.0, 0.0, 11.0])
    late = LockstepGate(timeout=10.0, clock=lambda: next(clock))
    late.chunk_arrived(frame)
    with pytest.raises(LockstepTimeoutError, match='no chunk within 10 s'):
        late.await_chunk(frame + 100_000_000)


def test_what_is_waited_for_is_sent_again_when_lost():
    gate = LockstepGate(timeout=10.0, retry=0.05)
    resent = []

    def republish() -> None:
        resent.append(time.monotonic())
        if len(resent) == 2:
            gate.command_arrived(10**12)

    gate.await_command(10**12, republish)
    assert len(resent) == 2


def test_close_releases_a_waiting_sim():
    gate = LockstepGate(timeout=60.0)
    threading.Timer(0.1, gate.close).start()
    gate.await_chunk(1)  # returns instead of waiting a minute


def test_schedule_runs_every_task_at_the_same_seeds_interleaved():
    pairs = list(episode_schedule(['push_red', 'push_blue'], 100, 3))
    assert pairs == [
        ('push_red', 100), ('push_blue', 100), ('push_red', 101), ('push_blue', 101),
        ('push_red', 102), ('push_blue', 102),
    ]  # fmt: skip
    endless = episode_schedule(['push_green'], 7)
    assert [next(endless) for _ in range(3)] == [
        ('push_green', 7),
        ('push_green', 8),
        ('push_green', 9),
    ]

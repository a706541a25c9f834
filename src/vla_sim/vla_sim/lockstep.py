"""Lockstep: the simulator steps only when the graph has answered, so a graph evaluation is
deterministic and runs as fast as the nodes compute, whatever the machine's load.

The sim thread publishes a control tick's messages, then waits here for the controller's command
stamped with that tick and, at a camera frame's tick, for the policy's chunk stamped with that
frame. The controller's ``chunk_delay`` decides when a chunk takes effect (the inference latency in
simulated time); waiting for the chunk at its frame's tick only makes sure it has arrived by then.
Subscription callbacks report what arrived. Stamps are integer nanoseconds of the robot clock.
Pure Python, unit-tested without ROS.
"""

from __future__ import annotations

from collections.abc import Callable
import threading
import time

__all__ = ['LockstepGate', 'LockstepTimeoutError', 'await_links']

_MATCH_NS = 1000  # stamps that went through float seconds agree to well within a microsecond


class LockstepTimeoutError(RuntimeError):
    """What the sim waited for did not come (a node died or refused the input)."""


class LockstepGate:
    def __init__(
        self, timeout: float, retry: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.timeout = timeout
        self.retry = retry  # re-publish what is waited for after this long (a lost sample)
        self._clock = clock
        self._cond = threading.Condition()
        self._command_ns = -1
        self._chunk_ns = -1
        self._closed = False

    # --- callbacks (executor thread) ---

    def command_arrived(self, stamp_ns: int) -> None:
        with self._cond:
            self._command_ns = max(self._command_ns, int(stamp_ns))
            self._cond.notify_all()

    def chunk_arrived(self, stamp_ns: int) -> None:
        with self._cond:
            self._chunk_ns = max(self._chunk_ns, int(stamp_ns))
            self._cond.notify_all()

    def close(self) -> None:
        """Release every wait (shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # --- sim thread ---

    def await_command(self, stamp_ns: int, republish: Callable[[], None] | None = None) -> None:
        """Until a command stamped ``stamp_ns`` (or later) has arrived."""
        self._wait(lambda: self._command_ns >= stamp_ns - _MATCH_NS, 'joint command', republish)

    def await_chunk(self, stamp_ns: int, republish: Callable[[], None] | None = None) -> None:
        """Until the chunk computed from the frame stamped ``stamp_ns`` has arrived."""
        self._wait(lambda: self._chunk_ns >= stamp_ns - _MATCH_NS, 'chunk', republish)

    def _wait(
        self, ready: Callable[[], bool], what: str, republish: Callable[[], None] | None
    ) -> None:
        start = self._clock()
        next_retry = start + self.retry
        with self._cond:
            while not ready() and not self._closed:
                now = self._clock()
                if now - start > self.timeout:
                    raise LockstepTimeoutError(f'lockstep: no {what} within {self.timeout:g} s')
                if republish is not None and now >= next_retry:
                    next_retry = now + self.retry
                    self._cond.release()
                    try:
                        republish()
                    finally:
                        self._cond.acquire()
                self._cond.wait(timeout=min(self.retry, 0.05))


def await_links(
    links: list[tuple[str, Callable[[], int]]],
    timeout: float,
    running: Callable[[], bool] = lambda: True,
    settle: float = 0.5,
) -> None:
    """Wait until every ``(name, matched count)`` link has a peer, then ``settle`` seconds (each
    end of a match learns the other separately). Lockstep starts there: a sample published
    before its reader matched is lost, and the run would not repeat."""
    deadline = time.monotonic() + timeout
    while running() and not all(count() > 0 for _, count in links):
        if time.monotonic() > deadline:
            missing = [name for name, count in links if count() == 0]
            raise LockstepTimeoutError(f'lockstep: no peer on {missing} within {timeout:g} s')
        time.sleep(0.05)
    time.sleep(settle)

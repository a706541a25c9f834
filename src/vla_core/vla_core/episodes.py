"""Demonstration episodes: the state machine, gap-free index allocation and drop accounting.

Pure (no rclpy); the recorder node (``vla_teleop.recorder_node``) drives it from services, keys and
the simulator's reset/success hook.

* :class:`IndexAllocator` hands out the lowest index not on disk, so saved episodes are always
  ``0..n-1``: a discarded episode's index is reused, a crashed one keeps its index (it is
  recovered, not deleted), and a hole made by hand is filled by the next episode.
* :class:`EpisodeMachine` is idle or recording; every refused transition is an
  :class:`EpisodeError` whose message says what to do instead.
* :class:`StreamMonitor` counts, per topic, what a recorded stream lost: header-stamp gaps (with an
  estimate of the messages missing), stamp regressions, producer sequence gaps, stale messages
  (stamp older than ``stale_age`` at reception) and messages the recorder itself dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
import enum
import re
import statistics
from typing import Any

from vla_core.config import Config, param

__all__ = [
    'KEY_BINDINGS',
    'AutoAction',
    'AutoEpisodePolicy',
    'DropCounts',
    'Episode',
    'EpisodeError',
    'EpisodeMachine',
    'EpisodeRequest',
    'IndexAllocator',
    'KeyCommand',
    'Phase',
    'StreamMonitor',
    'StreamMonitorConfig',
    'episode_dir_name',
    'key_help',
    'parse_episode_dir_name',
]

_DIR_RE = re.compile(r'^episode_(\d{6,})$')


def episode_dir_name(index: int) -> str:
    if index < 0:
        raise ValueError(f'episode index must be >= 0, got {index}')
    return f'episode_{index:06d}'


def parse_episode_dir_name(name: str) -> int | None:
    """``'episode_000012'`` -> 12; anything else -> None."""
    m = _DIR_RE.match(name)
    return int(m.group(1)) if m else None


class EpisodeError(RuntimeError):
    """A refused episode command; the message is meant for the operator."""


class IndexAllocator:
    """Lowest free index first, so the indices in use never have a gap for long."""

    def __init__(self, used: Iterable[int] = ()) -> None:
        self._used: set[int] = set()
        for index in used:
            if index < 0:
                raise ValueError(f'episode index must be >= 0, got {index}')
            self._used.add(index)

    @property
    def used(self) -> frozenset[int]:
        return frozenset(self._used)

    def gaps(self) -> list[int]:
        """Indices missing below the highest one in use (holes made outside the recorder)."""
        if not self._used:
            return []
        return sorted(set(range(max(self._used))) - self._used)

    def peek(self) -> int:
        index = 0
        while index in self._used:
            index += 1
        return index

    def reserve(self) -> int:
        index = self.peek()
        self._used.add(index)
        return index

    def release(self, index: int) -> None:
        """Give a discarded episode's index back; the next episode takes it."""
        if index not in self._used:
            raise ValueError(f'episode index {index} is not reserved')
        self._used.remove(index)


class Phase(enum.Enum):
    IDLE = 'idle'
    RECORDING = 'recording'


@dataclass(frozen=True)
class EpisodeRequest:
    """What an operator (service, key) or the simulator hook asks for when starting."""

    instruction: str = ''  # empty: the latched instruction of the previous episode
    task: str = ''  # empty: the latched task
    operator: str = ''  # empty: the latched operator
    seed: int = -1  # -1: none given


@dataclass
class Episode:
    """One episode's record; ``to_dict`` is what lands in the episode metadata file."""

    index: int
    instruction: str
    task: str
    operator: str
    robot: str
    seed: int | None
    software_version: str
    start_ns: int
    source: str = 'operator'  # operator | keyboard | auto
    status: str = 'recording'  # recording | saved | interrupted
    stop_ns: int | None = None
    success: bool | None = None
    end_reason: str = ''  # operator | disk_space | size_limit | write_error | auto_success | ...
    note: str = ''
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Outcome:
    episode: Episode
    saved: bool


class EpisodeMachine:
    """Idle <-> recording. ``start`` reserves an index; ``stop`` saves or discards (the index is
    then released and reused). Instruction, task and operator are latched across episodes."""

    def __init__(
        self, allocator: IndexAllocator, robot: str, software_version: str, operator: str = ''
    ) -> None:
        self._allocator = allocator
        self._robot = robot
        self._software_version = software_version
        self._latched = EpisodeRequest(operator=operator)
        self.current: Episode | None = None

    @property
    def phase(self) -> Phase:
        return Phase.IDLE if self.current is None else Phase.RECORDING

    @property
    def allocator(self) -> IndexAllocator:
        return self._allocator

    def start(self, request: EpisodeRequest, now_ns: int, source: str = 'operator') -> Episode:
        if self.current is not None:
            raise EpisodeError(
                f'already recording episode {self.current.index}: stop (save or discard) it first'
            )
        latched = self._latched
        merged = EpisodeRequest(
            instruction=request.instruction or latched.instruction,
            task=request.task or latched.task,
            operator=request.operator or latched.operator,
            seed=request.seed,
        )
        self._latched = merged
        self.current = Episode(
            index=self._allocator.reserve(),
            instruction=merged.instruction,
            task=merged.task,
            operator=merged.operator,
            robot=self._robot,
            seed=None if merged.seed < 0 else merged.seed,
            software_version=self._software_version,
            start_ns=now_ns,
            source=source,
        )
        return self.current

    def stop(
        self,
        now_ns: int,
        *,
        save: bool,
        success: bool | None = None,
        note: str = '',
        reason: str = 'operator',
    ) -> Outcome:
        episode = self.current
        if episode is None:
            raise EpisodeError('no episode is being recorded: start one first')
        self.current = None
        episode.stop_ns = now_ns
        episode.note = note
        episode.end_reason = reason
        if save:
            episode.status = 'saved'
            episode.success = success
        else:
            self._allocator.release(episode.index)
            episode.status = 'discarded'
        return Outcome(episode, saved=save)


# --- keyboard -------------------------------------------------------------------------------------


class KeyCommand(enum.Enum):
    START = 'start a new episode'
    SAVE_SUCCESS = 'stop and save, labelled success'
    SAVE_FAILURE = 'stop and save, labelled failure'
    DISCARD = 'stop and discard (the index is reused)'
    RERECORD = 'discard the current episode and start again with the same instruction'
    HELP = 'print these keys'


KEY_BINDINGS: dict[str, KeyCommand] = {
    's': KeyCommand.START,
    'y': KeyCommand.SAVE_SUCCESS,
    'n': KeyCommand.SAVE_FAILURE,
    'd': KeyCommand.DISCARD,
    'r': KeyCommand.RERECORD,
    'h': KeyCommand.HELP,
    '?': KeyCommand.HELP,
}


def key_help() -> str:
    return '  '.join(f'[{k}] {c.value}' for k, c in KEY_BINDINGS.items() if k != '?')


# --- automatic episodes (simulator hook) ----------------------------------------------------------


class AutoAction(enum.Enum):
    NONE = 'none'
    RESET = 'reset'  # ask the simulator for a new initial state, then start
    SAVE_SUCCESS = 'save_success'
    SAVE_TIMEOUT = 'save_timeout'


@dataclass
class AutoEpisodePolicy:
    """When automatic episodes run: reset when idle, save on success or after ``max_duration``.

    ``episodes`` = 0 runs until stopped. Manual commands still work in between; the policy only
    looks at the phase the machine is in.
    """

    max_duration_s: float
    episodes: int = 0
    done: int = 0
    reset_pending: bool = False

    def step(self, phase: Phase, elapsed_s: float, success: bool) -> AutoAction:
        if phase is Phase.IDLE:
            if self.reset_pending or (self.episodes and self.done >= self.episodes):
                return AutoAction.NONE
            self.reset_pending = True
            return AutoAction.RESET
        if success:
            self.done += 1
            return AutoAction.SAVE_SUCCESS
        if elapsed_s >= self.max_duration_s:
            self.done += 1
            return AutoAction.SAVE_TIMEOUT
        return AutoAction.NONE


# --- drop accounting ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StreamMonitorConfig(Config):
    gap_factor: float = param(
        2.5,
        description='a header-stamp interval longer than this many typical intervals is a gap '
        '(above 2 so that scheduling jitter is not reported as loss: a single lost message of a '
        'regular stream shows only in sequence numbers, two in a row in the stamps)',
        range=(1.1, 1000.0),
    )
    stale_age: float = param(
        0.2,
        description='a message whose header stamp is older than this at reception is stale [s] '
        '(LeRobot accepts 0.5 s silently; we count and report it)',
        range=(0.0, 3600.0),
    )


@dataclass
class DropCounts:
    received: int = 0
    stamp_gaps: int = 0  # gap events
    missing_estimate: int = 0  # messages the gaps imply were lost upstream
    stamp_regressions: int = 0  # stamp older than the previous one
    sequence_gaps: int = 0  # messages missing by the producer's counter
    stale: int = 0  # stamp older than stale_age at reception
    queue_overflows: int = 0  # dropped by the recorder (writer queue full)
    max_age_s: float = 0.0

    def lost(self) -> int:
        return self.missing_estimate + self.sequence_gaps + self.queue_overflows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StreamMonitor:
    """Drop accounting of one topic. Feed receive time and header stamp (ns; 0 = no stamp)."""

    _WINDOW = 32

    def __init__(self, cfg: StreamMonitorConfig) -> None:
        self.cfg = cfg
        self.counts = DropCounts()
        self._last_stamp = 0
        self._last_seq: int | None = None
        self._intervals: deque[int] = deque(maxlen=self._WINDOW)
        self._typical = 0
        self._since_update = 0

    def reset(self) -> None:
        """A new episode: counts restart, the stream's rate estimate is kept."""
        self.counts = DropCounts()
        self._last_stamp = 0
        self._last_seq = None

    def overflow(self) -> None:
        self.counts.queue_overflows += 1

    def observe(self, recv_ns: int, stamp_ns: int = 0, sequence: int | None = None) -> None:
        c = self.counts
        c.received += 1
        if sequence is not None:
            if self._last_seq is not None and sequence > self._last_seq + 1:
                c.sequence_gaps += sequence - self._last_seq - 1
            self._last_seq = sequence
        if stamp_ns <= 0:
            return
        age = (recv_ns - stamp_ns) * 1e-9
        if age > c.max_age_s:
            c.max_age_s = age
        if age > self.cfg.stale_age:
            c.stale += 1
        last, self._last_stamp = self._last_stamp, stamp_ns
        if last == 0:
            return
        interval = stamp_ns - last
        if interval < 0:
            c.stamp_regressions += 1
            return
        typical = self._typical
        if typical > 0 and interval > self.cfg.gap_factor * typical:
            c.stamp_gaps += 1
            c.missing_estimate += max(round(interval / typical) - 1, 1)
        self._intervals.append(interval)
        self._since_update += 1
        # The typical interval is the median of a window holding every interval, gaps and the
        # bursts after stalls alike (robust to both); re-estimated now and then, not per message.
        if (typical == 0 and len(self._intervals) >= 4) or self._since_update >= self._WINDOW:
            self._typical = int(statistics.median(self._intervals))
            self._since_update = 0

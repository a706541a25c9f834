import pytest

from vla_core.episodes import (
    KEY_BINDINGS,
    AutoAction,
    AutoEpisodePolicy,
    EpisodeError,
    EpisodeMachine,
    EpisodeRequest,
    IndexAllocator,
    KeyCommand,
    Phase,
    StreamMonitor,
    StreamMonitorConfig,
    episode_dir_name,
    key_help,
    parse_episode_dir_name,
)

MS = 1_000_000


def test_dir_names_round_trip():
    assert episode_dir_name(12) == 'episode_000012'
    assert parse_episode_dir_name('episode_000012') == 12
    assert parse_episode_dir_name('episode_1234567') == 1234567
    assert parse_episode_dir_name('episode_12') is None
    assert parse_episode_dir_name('discarded') is None
    with pytest.raises(ValueError):
        episode_dir_name(-1)


def test_allocator_takes_the_lowest_free_index_and_reuses_released_ones():
    a = IndexAllocator([0, 1, 2])
    assert a.reserve() == 3
    a.release(3)  # discarded: the next take gets the same index
    assert a.reserve() == 3
    holes = IndexAllocator([0, 2, 5])
    assert holes.gaps() == [1, 3, 4]
    assert [holes.reserve() for _ in range(4)] == [1, 3, 4, 6]
    assert holes.gaps() == []
    with pytest.raises(ValueError):
        holes.release(42)


def _machine(used=()):
    return EpisodeMachine(IndexAllocator(used), robot='arm', software_version='1.2.3')


def test_start_stop_save_and_discard_never_leave_gaps():
    m = _machine()
    saved = []
    for i, save in enumerate([True, False, True, False, False, True]):
        ep = m.start(EpisodeRequest(instruction='pick'), now_ns=i)
        assert m.phase is Phase.RECORDING
        outcome = m.stop(i + 1, save=save, success=True)
        assert m.phase is Phase.IDLE
        if save:
            saved.append(ep.index)
            assert outcome.episode.status == 'saved' and outcome.episode.success
        else:
            assert outcome.episode.status == 'discarded'
    assert saved == [0, 1, 2]
    assert m.allocator.used == frozenset(saved)


def test_refused_transitions_say_what_to_do():
    m = _machine()
    with pytest.raises(EpisodeError, match='start one first'):
        m.stop(0, save=True)
    m.start(EpisodeRequest(), 0)
    with pytest.raises(EpisodeError, match='already recording episode 0'):
        m.start(EpisodeRequest(), 1)


def test_metadata_is_latched_across_episodes():
    m = _machine(used=[0])
    first = m.start(EpisodeRequest('stack the cubes', 'stack', 'alice', 7), 10)
    assert (first.index, first.robot, first.software_version, first.seed) == (1, 'arm', '1.2.3', 7)
    m.stop(20, save=False)
    again = m.start(EpisodeRequest(), 30)  # re-record: same instruction, task and operator
    assert (again.index, again.instruction, again.task, again.operator) == (
        1, 'stack the cubes', 'stack', 'alice',
    )  # fmt: skip
    assert again.seed is None  # -1: none given
    d = m.stop(40, save=True, success=False, note='dropped it').episode.to_dict()
    assert d['success'] is False and d['note'] == 'dropped it' and d['stop_ns'] == 40


def test_keys_cover_every_command():
    assert set(KEY_BINDINGS.values()) == set(KeyCommand)
    assert '[s] start a new episode' in key_help()


def test_auto_policy_resets_when_idle_and_saves_on_success_or_timeout():
    p = AutoEpisodePolicy(max_duration_s=5.0, episodes=2)
    assert p.step(Phase.IDLE, 0.0, False) is AutoAction.RESET
    assert p.step(Phase.IDLE, 0.0, False) is AutoAction.NONE  # reset already asked
    p.reset_pending = False  # the simulator answered, the episode started
    assert p.step(Phase.RECORDING, 1.0, False) is AutoAction.NONE
    assert p.step(Phase.RECORDING, 1.0, True) is AutoAction.SAVE_SUCCESS
    assert p.step(Phase.IDLE, 0.0, False) is AutoAction.RESET
    p.reset_pending = False
    assert p.step(Phase.RECORDING, 5.0, False) is AutoAction.SAVE_TIMEOUT
    assert p.step(Phase.IDLE, 0.0, False) is AutoAction.NONE  # two episodes done


def _feed(monitor, stamps_ms, age_ms=1.0):
    for s in stamps_ms:
        monitor.observe(int((s + age_ms) * MS), int(s * MS))


def test_monitor_clean_stream_has_no_drops():
    m = StreamMonitor(StreamMonitorConfig())
    _feed(m, [10.0 * i + (0.3 if i % 2 else 0.0) for i in range(1, 200)])  # 100 Hz with jitter
    c = m.counts
    assert c.received == 199 and c.lost() == 0 and c.stale == 0 and c.stamp_regressions == 0


def test_monitor_counts_gaps_regressions_and_stale_messages():
    m = StreamMonitor(StreamMonitorConfig(stale_age=0.1))
    stamps = [10.0 * i for i in range(1, 50)]
    del stamps[20:23]  # three samples lost upstream
    stamps.append(stamps[-1] - 5.0)  # a stamp going backwards
    _feed(m, stamps)
    m.observe(10_000 * MS, 9_000 * MS)  # a second old when it arrived
    c = m.counts
    # 3 lost, then 485 ms -> 9000 ms at 10 ms: 851 missing.
    assert (c.stamp_gaps, c.missing_estimate, c.stamp_regressions) == (2, 3 + 851, 1)
    assert c.stale == 1 and c.max_age_s == pytest.approx(1.0)


def test_monitor_counts_sequence_gaps_and_overflows_and_resets_per_episode():
    m = StreamMonitor(StreamMonitorConfig())
    for seq in (0, 1, 2, 5, 6, 10):
        m.observe(seq * MS, 0, sequence=seq)
    m.overflow()
    assert (m.counts.sequence_gaps, m.counts.queue_overflows, m.counts.lost()) == (5, 1, 6)
    m.reset()
    assert m.counts.lost() == 0 and m.counts.received == 0


def test_unstamped_messages_are_counted_but_not_checked():
    m = StreamMonitor(StreamMonitorConfig())
    for i in range(10):
        m.observe(i * MS, 0)
    assert m.counts.received == 10 and m.counts.lost() == 0


def test_monitor_is_not_fooled_by_a_stall_and_the_burst_after_it():
    m = StreamMonitor(StreamMonitorConfig())
    stamps = [2.0 * i for i in range(100)]
    t = stamps[-1]
    for _ in range(5):  # a 10 ms stall, then the backlog in a burst, then regular again
        stamps.append(t + 10.0 + 0.05 * len(stamps[100:]))
    t = stamps[-1]
    stamps += [t + 2.0 * (i + 1) for i in range(100)]
    _feed(m, stamps)
    assert m.counts.stamp_gaps == 1 and m.counts.missing_estimate == 4
    assert m._typical == 2 * MS

"""The recorder node with a demo publisher in one process: episodes, bad input, diagnostics."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
import sys
import time

import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from recorder_harness import Harness, episode_json, read_bag, statuses, wait_for
from recorder_test_nodes import DemoPublisher
from std_msgs.msg import String
import yaml

from vla_data.recover import main as recover_main
from vla_interfaces.msg import EpisodeStatus
from vla_interfaces.srv import ResetEpisode, StartEpisode, StopEpisode
from vla_ros_common import qos

ERROR, WARN = b'\x02', b'\x01'


@pytest.fixture
def harness():
    h = Harness()
    yield h
    h.close()


def _call(harness: Harness, srv_type, name: str, **fields):
    client = harness.probe.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=10.0), name
    future = client.call_async(srv_type.Request(**fields))
    wait_for(future.done, 15.0, f'{name} answer')
    harness.probe.destroy_client(client)
    return future.result()


def _ready(harness: Harness, root: Path, **params):
    harness.node(DemoPublisher, **params.pop('publisher', {}))
    rec = harness.recorder(root, **params)
    wait_for(lambda: all(t.subscribed or t.wrong_type for t in rec._topics.values()), 10, 'subs')
    wait_for(lambda: all(len(t.latched_cache) for t in rec._topics.values() if t.latched), 10)
    return rec


def _record_at_least(rec, joint_states: int) -> None:
    """Let the current episode receive this many more joint states (not seconds: load varies)."""
    counts = rec._monitors['/joint_states'].counts
    target = counts.received + joint_states
    wait_for(lambda: counts.received >= target, 30, f'{joint_states} joint states')


def _status(root: Path, index: int) -> str:
    try:
        return episode_json(root, index)['status']
    except (OSError, ValueError):
        return ''


def _consecutive(bag, topic: str) -> list[float]:
    ticks = [m.position[0] for _, m in bag['msgs'][topic]]
    assert ticks == list(range(int(ticks[0]), int(ticks[0]) + len(ticks))), f'{topic} lost some'
    return ticks


def test_episodes_through_services_save_discard_and_rerecord(harness, tmp_path):
    rec = _ready(harness, tmp_path, robot='so100', operator='bob', software_version='9.9')
    start, stop = '/recorder/start_episode', '/recorder/stop_episode'
    r = _call(harness, StartEpisode, start, instruction='pick the cube', task='pick', seed=3)
    assert r.success and r.episode_index == 0
    refused = _call(harness, StartEpisode, start)
    assert not refused.success and 'already recording episode 0' in refused.message
    _record_at_least(rec, 60)
    r = _call(harness, StopEpisode, stop, save=True, task_success=True, note='clean')
    assert r.success and r.path.endswith('episode_000000')
    # A bad take: discard, and its index is reused by the re-recording.
    assert _call(harness, StartEpisode, start, operator_name='carol').episode_index == 1
    time.sleep(0.3)
    r = _call(harness, StopEpisode, stop, save=False)
    assert r.success and r.path == '' and (tmp_path / 'discarded').is_dir()
    r = _call(harness, StartEpisode, start)
    assert r.episode_index == 1
    _record_at_least(rec, 60)
    assert _call(harness, StopEpisode, stop, save=True, task_success=False).success
    assert not _call(harness, StopEpisode, stop, save=True).success  # nothing recording
    assert sorted(p.name for p in tmp_path.glob('episode_*')) == [
        'episode_000000',
        'episode_000001',
    ]

    for index, success in ((0, True), (1, False)):
        meta = episode_json(tmp_path, index)
        assert meta['status'] == 'saved' and meta['success'] is success
        assert meta['instruction'] == 'pick the cube' and meta['task'] == 'pick'  # latched
        assert (meta['robot'], meta['software_version']) == ('so100', '9.9')
        bag = read_bag(tmp_path / f'episode_{index:06d}')
        # rosbags: exact counts (as metadata and episode.json say), monotone log times, nothing
        # lost in between, the intent and the applied command both there, latched data in each.
        assert bag['log_times'] == sorted(bag['log_times'])
        for topic, info in meta['topics'].items():
            assert bag['counts'][topic] == info['messages'], topic
            assert info['drops']['queue_overflows'] == 0
        assert bag['message_count'] == meta['bag']['messages']
        ticks = _consecutive(bag, '/joint_states')
        commands = _consecutive(bag, '/joint_commands')  # edges may differ by a message
        assert abs(commands[0] - ticks[0]) <= 2 and abs(commands[-1] - ticks[-1]) <= 2
        seqs = [m.sequence for _, m in bag['msgs']['/expert/action_chunk']]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert bag['counts']['/tf_static'] == 1 and bag['counts']['/robot_description'] == 1
        assert bag['msgs']['/tf_static'][0][1].transforms[0].child_frame_id == 'base_link'
        assert len(ticks) > 40
    assert episode_json(tmp_path, 0)['operator'] == 'bob'
    assert episode_json(tmp_path, 1)['operator'] == 'carol'
    # As Jazzy's rosbag2 records them: each type's hash as its publishers advertise it, and
    # the QoS they offer as the rmw reports it (Fast DDS: infinite durations, history unknown).
    info = yaml.safe_load((tmp_path / 'episode_000000' / 'metadata.yaml').read_text())
    topics = {
        t['topic_metadata']['name']: t['topic_metadata']
        for t in info['rosbag2_bagfile_information']['topics_with_message_count']
    }
    for name in ('/joint_states', '/expert/action_chunk', '/tf_static'):
        (publisher,) = harness.probe.get_publishers_info_by_topic(name)
        assert topics[name]['type_description_hash'] == str(publisher.topic_type_hash), name
    (offered,) = topics['/joint_states']['offered_qos_profiles']
    assert (offered['reliability'], offered['durability']) == ('reliable', 'volatile')
    assert offered['deadline'] == {'sec': 9223372036, 'nsec': 854775807}  # RMW_DURATION_INFINITE
    assert episode_json(tmp_path, 0)['seed'] == 3 and episode_json(tmp_path, 1)['seed'] is None
    assert rec._machine.allocator.peek() == 2


def test_keys_drive_episodes(harness, tmp_path):
    rec = _ready(harness, tmp_path)
    assert 'episode 0 started' in rec.handle_key('s')
    time.sleep(0.3)
    assert 'discarded, recording it again as 0' in rec.handle_key('r')
    time.sleep(0.3)
    assert 'saved (failure)' in rec.handle_key('n')
    assert 'no episode' in rec.handle_key('y')
    assert rec.handle_key('x') == ''
    assert episode_json(tmp_path, 0)['success'] is False


def test_wrong_type_is_reported_and_other_topics_still_recorded(harness, tmp_path):
    topics = ['/joint_states=sensor_msgs/msg/Imu', '/joint_commands=sensor_msgs/msg/JointState']
    rec = _ready(harness, tmp_path, topics=topics)
    rec.start_episode(__import__('vla_core.episodes').episodes.EpisodeRequest('x'))
    time.sleep(0.6)
    rec.stop_episode(save=True, success=True)
    meta = episode_json(tmp_path, 0)
    assert any(
        'configured as sensor_msgs/msg/Imu but published as sensor_msgs/msg/JointState' in p
        for p in meta['problems']
    )
    assert meta['topics']['/joint_states']['publishers'].startswith('wrong type')
    bag = read_bag(tmp_path / 'episode_000000')
    assert '/joint_states' not in bag['counts'] and bag['counts']['/joint_commands'] > 20
    wait_for(lambda: any(s.level == ERROR for s in statuses(harness, 'recorder: /joint_states')))


def test_stale_and_gappy_streams_are_counted_and_reported(harness, tmp_path):
    rec = _ready(harness, tmp_path, publisher={'stamp_lag': 0.5, 'skip_every': 10})
    rec.start_episode(__import__('vla_core.episodes').episodes.EpisodeRequest('x'))
    # Count messages, not seconds: a loaded machine slows the publisher's timer.
    _record_at_least(rec, 100)
    rec.stop_episode(save=True)
    drops = episode_json(tmp_path, 0)['topics']['/joint_states']['drops']
    assert drops['stale'] == drops['received'] >= 100 and drops['max_age_s'] >= 0.5
    # Two ticks in ten skipped: ~12 gaps of 2 in 100 messages (jitter may merge or add one).
    assert drops['stamp_gaps'] >= 8 and drops['missing_estimate'] >= 2 * drops['stamp_gaps'] - 2
    chunk_drops = episode_json(tmp_path, 0)['topics']['/expert/action_chunk']['drops']
    assert chunk_drops['sequence_gaps'] == 0  # skips are in joint ticks, chunks stay counted
    wait_for(lambda: any(s.level == WARN for s in statuses(harness, 'recorder: /joint_states')))


def test_silent_topic_is_reported(harness, tmp_path):
    rec = _ready(harness, tmp_path, silence_timeout=0.2)
    rec.start_episode(__import__('vla_core.episodes').episodes.EpisodeRequest('x'))
    harness.remove(next(n for n in harness.nodes if isinstance(n, DemoPublisher)))
    wait_for(
        lambda: any('no message' in s.message for s in statuses(harness, 'recorder: /joint_states'))
    )
    rec.stop_episode(save=True)
    assert read_bag(tmp_path / 'episode_000000')['message_count'] > 0


def test_disk_guard_refuses_to_start_and_stops_cleanly(harness, tmp_path):
    rec = _ready(harness, tmp_path)
    episodes = __import__('vla_core.episodes').episodes
    rec.start_episode(episodes.EpisodeRequest('x'))
    time.sleep(0.5)
    # The free-space threshold rises above what is free: the episode stops and is saved.
    rec.set_parameters([Parameter('min_free_mb', value=1e8)])
    wait_for(lambda: _status(tmp_path, 0) == 'saved', 5, 'disk stop')
    meta = episode_json(tmp_path, 0)
    assert meta['status'] == 'saved' and meta['end_reason'] == 'disk_space'
    assert any('only' in p and 'MB free' in p for p in meta['problems'])
    bag = read_bag(tmp_path / 'episode_000000')
    assert bag['counts']['/joint_states'] == meta['topics']['/joint_states']['messages'] > 20
    r = _call(harness, StartEpisode, '/recorder/start_episode')
    assert not r.success and 'min_free_mb' in r.message and 'not starting' in r.message
    assert sorted(p.name for p in tmp_path.glob('episode_*')) == ['episode_000000']
    state = json.loads(rec._state_pub and _latest_state(harness))
    assert state['last_stop_reason'].startswith('disk_space')


def _latest_state(harness: Harness) -> str:
    got: list[str] = []
    from std_msgs.msg import String

    from vla_ros_common import qos

    sub = harness.probe.create_subscription(
        String, '/recorder/episode', lambda m: got.append(m.data), qos.LATCHED
    )
    wait_for(lambda: bool(got), 5)
    harness.probe.destroy_subscription(sub)
    return got[-1]


def test_size_limit_stops_the_episode(harness, tmp_path):
    rec = _ready(harness, tmp_path, max_episode_mb=0.01, flush_period=0.05)
    episodes = __import__('vla_core.episodes').episodes
    rec.start_episode(episodes.EpisodeRequest('x'))
    wait_for(lambda: _status(tmp_path, 0) == 'saved', 10, 'size stop')
    assert episode_json(tmp_path, 0)['end_reason'] == 'size_limit'
    assert read_bag(tmp_path / 'episode_000000')['message_count'] > 0


class FakeSim(Node):
    """The simulator's side of the automatic-episode hook (ResetEpisode + EpisodeStatus)."""

    def __init__(self, **kwargs) -> None:
        super().__init__('sim', **kwargs)
        self.resets = 0
        self.status = self.create_publisher(EpisodeStatus, '/episode/status', qos.LATCHED)
        self.create_service(ResetEpisode, '/sim/reset', self._reset)

    def _reset(self, request, response):
        self.resets += 1
        response.success, response.instruction, response.seed = True, 'push the block', 40
        response.seed += self.resets
        return response

    def publish(self, state: int, seed: int) -> None:
        self.status.publish(EpisodeStatus(state=state, seed=seed, instruction='push the block'))


def test_automatic_episodes_follow_the_simulator(harness, tmp_path):
    sim = harness.node(FakeSim)
    rec = _ready(harness, tmp_path, **{'auto.enabled': True, 'auto.max_duration': 30.0,
                                       'auto.episodes': 2})  # fmt: skip
    phase = __import__('vla_core.episodes').episodes.Phase
    wait_for(lambda: rec._machine.phase is phase.RECORDING, 10, 'auto start')
    sim.publish(EpisodeStatus.SUCCEEDED, seed=40)  # a stale status of an earlier episode
    time.sleep(0.5)
    assert rec._machine.phase is phase.RECORDING and _status(tmp_path, 0) != 'saved'
    sim.publish(EpisodeStatus.SUCCEEDED, seed=41)
    wait_for(lambda: (tmp_path / 'episode_000001').is_dir(), 10, 'second episode')
    sim.publish(EpisodeStatus.TIMED_OUT, seed=42)
    wait_for(lambda: _status(tmp_path, 1) == 'saved', 10, 'timeout')
    first, second = episode_json(tmp_path, 0), episode_json(tmp_path, 1)
    assert (first['success'], first['end_reason'], first['source']) == (
        True,
        'auto_success',
        'auto',
    )
    assert (second['success'], second['end_reason']) == (False, 'auto_timeout')
    assert (first['instruction'], first['seed'], second['seed']) == ('push the block', 41, 42)
    time.sleep(0.3)
    assert sim.resets == 2 and not (tmp_path / 'episode_000002').exists()


def test_interrupted_episode_is_recovered_at_start(harness, tmp_path):
    rec = _ready(harness, tmp_path)
    episodes = __import__('vla_core.episodes').episodes
    rec.start_episode(episodes.EpisodeRequest('x'))
    time.sleep(0.8)
    # What SIGKILL leaves: no footer; simulate by copying the live episode directory.
    import shutil

    shutil.copytree(tmp_path / 'episode_000000', tmp_path / 'copy' / 'episode_000000')
    rec.stop_episode(save=True)
    root = tmp_path / 'copy'
    assert recover_main([str(root)]) == 0
    meta = episode_json(root, 0)
    assert meta['status'] == 'interrupted' and meta['end_reason'] == 'recorder_killed'
    assert read_bag(root / 'episode_000000')['counts']['/joint_states'] > 10
    assert recover_main([str(root)]) == 0  # nothing left to do


def test_shipped_parameter_file_is_valid():
    import yaml

    from vla_core.config import config_from_dict
    from vla_teleop.recorder_node import RecorderConfig, parse_topics

    root = Path(__file__).resolve().parents[3]
    params = yaml.safe_load((root / 'config' / 'recorder.yaml').read_text())
    cfg = config_from_dict(RecorderConfig, params['recorder']['ros__parameters'])
    topics = parse_topics(cfg.topics)
    # Both the teleop/expert intent and the command actually applied are recorded by default.
    assert topics['/expert/action_chunk'] == 'vla_interfaces/msg/ActionChunk'
    assert topics['/joint_commands'] == 'sensor_msgs/msg/JointState'
    assert cfg.flush_period <= 0.5
    assert parse_topics(RecorderConfig().topics) == topics


def test_bad_topic_entries_are_refused():
    from vla_core.config import ConfigError
    from vla_teleop.recorder_node import RecorderConfig

    with pytest.raises(ConfigError, match='topic=pkg/msg/Type'):
        RecorderConfig(topics=('joint_states',))
    with pytest.raises(ConfigError, match='listed twice'):
        RecorderConfig(topics=('/a=std_msgs/msg/String', '/a=std_msgs/msg/String'))


def test_latched_replay_is_each_publishers_last_message(harness, tmp_path):
    """A depth-1 latched topic republished many times is replayed once, at its latest value
    (what a transient-local reader receives), not its whole history into every episode."""
    publisher = harness.node(DemoPublisher)
    rec = harness.recorder(tmp_path)
    wait_for(lambda: all(t.subscribed or t.wrong_type for t in rec._topics.values()), 10, 'subs')
    for version in range(5):
        publisher.description.publish(String(data=f'urdf v{version}'))
    cache = rec._topics['/robot_description'].latched_cache
    wait_for(lambda: len(cache) == 1 and b'urdf v4' in cache[-1][1], 10, 'latest description')
    episodes = __import__('vla_core.episodes').episodes
    rec.start_episode(episodes.EpisodeRequest('x'))
    time.sleep(0.3)
    rec.stop_episode(save=True, success=True)
    bag = read_bag(tmp_path / 'episode_000000')
    assert bag['counts']['/robot_description'] == 1
    assert bag['msgs']['/robot_description'][0][1].data == 'urdf v4'


def test_without_the_events_executor_the_recorder_still_records(harness, tmp_path, monkeypatch):
    """Humble's rclpy has no rclpy.experimental.events_executor (Jazzy only). Hidden here, the
    recorder takes its topics on a SingleThreadedExecutor and records an episode all the same."""
    monkeypatch.setitem(sys.modules, 'rclpy.experimental.events_executor', None)  # import fails
    monkeypatch.delitem(sys.modules, 'vla_teleop.recorder_node')  # restored after the test
    humble = importlib.import_module('vla_teleop.recorder_node')
    assert humble.IoExecutor is SingleThreadedExecutor
    rec = _ready(harness, tmp_path, node_class=humble.RecorderNode)
    assert type(rec._io_executor) is SingleThreadedExecutor
    start, stop = '/recorder/start_episode', '/recorder/stop_episode'
    assert _call(harness, StartEpisode, start, instruction='on humble').success
    _record_at_least(rec, 30)
    assert _call(harness, StopEpisode, stop, save=True).success
    meta = episode_json(tmp_path, 0)
    assert meta['status'] == 'saved' and meta['instruction'] == 'on humble'
    bag = read_bag(tmp_path / 'episode_000000')
    assert len(_consecutive(bag, '/joint_states')) >= 30
    assert bag['counts']['/joint_states'] == meta['topics']['/joint_states']['messages']

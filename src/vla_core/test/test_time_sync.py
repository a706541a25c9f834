import random

import pytest

from vla_core.config import ConfigError
from vla_core.time_sync import ApproximateTimeSynchronizer, TimeSyncConfig


def _sync(**kw):
    return ApproximateTimeSynchronizer(TimeSyncConfig(**kw))


def test_each_camera_frame_gets_the_nearest_joint_state_and_imu_sample():
    s = _sync(max_skew=0.006)  # joints at 100 Hz: nearest is within 5 ms
    events = [('camera', 0.1 + i / 30.0 + 0.0013, f'img{i}') for i in range(30)]
    events += [('joint_states', i / 100.0, f'js{i}') for i in range(110)]
    events += [('imu', i / 200.0 + 0.0002, f'imu{i}') for i in range(220)]
    # Arrival = stamp + per-stream transport latency with jitter (the camera is slowest).
    rng = random.Random(0)
    latency = {'camera': 0.030, 'joint_states': 0.004, 'imu': 0.002}
    arrivals = sorted(events, key=lambda e: e[1] + latency[e[0]] + rng.uniform(0.0, 0.003))
    bundles = []
    for stream, stamp, msg in arrivals:
        bundles += s.add(stream, stamp, msg)
    assert len(bundles) == 30
    for i, b in enumerate(bundles):
        t = b.stamp
        assert b.messages['camera'] == f'img{i}'
        assert b.messages['joint_states'] == f'js{round(t * 100)}'
        assert b.messages['imu'] == f'imu{round((t - 0.0002) * 200)}'
        assert b.skew <= 0.006


def test_bundle_waits_until_the_neighbour_is_final():
    s = _sync(streams=('camera', 'joints'), max_skew=0.01)
    assert s.add('camera', 1.0, 'img') == []
    assert s.add('joints', 0.995, 'j0') == []  # a nearer one may still come
    out = s.add('joints', 1.003, 'j1')
    assert [b.messages['joints'] for b in out] == ['j1']


def test_too_large_skew_drops_the_reference_message():
    s = _sync(streams=('camera', 'joints'), max_skew=0.005)
    s.add('camera', 1.0, 'img')
    assert s.add('joints', 1.02, 'j') == []
    assert s.stats.dropped_skew == 1 and s.stats.bundles == 0


def test_flush_resolves_a_silent_stream():
    s = _sync(streams=('camera', 'joints', 'imu'), max_skew=0.01, max_wait=0.1)
    s.add('camera', 1.0, 'img')
    s.add('joints', 0.999, 'j')
    s.add('imu', 0.998, 'i')  # no later imu sample yet
    assert s.flush(now=1.05) == []
    out = s.flush(now=1.2)
    assert len(out) == 1 and out[0].messages['imu'] == 'i'
    s.add('camera', 2.0, 'img2')  # joints and imu went silent
    assert s.flush(now=3.0) == [] and s.stats.dropped_timeout == 1


def test_non_reference_queues_stay_bounded():
    s = _sync(streams=('camera', 'imu'), max_skew=0.01, queue_size=50)
    for i in range(10000):
        s.add('imu', i / 1000.0, i)
        if i % 33 == 0:
            s.add('camera', i / 1000.0, i)
    assert len(s._streams['imu'].stamps) <= 50
    assert s.stats.bundles >= 300


def test_config_validation():
    with pytest.raises(ConfigError, match='reference'):
        TimeSyncConfig(reference='lidar')
    with pytest.raises(ConfigError, match='streams'):
        TimeSyncConfig(streams=('camera',))
    with pytest.raises(KeyError):
        _sync().add('lidar', 0.0, None)

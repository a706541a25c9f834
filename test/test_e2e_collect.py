"""End to end in simulation: the collect graph records scripted-expert episodes (sim, controller
and recorder in separate processes), every bag reads back with rosbags with exact message counts
and monotone header stamps, and the bags convert to an aligned dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore
import yaml

ROOT = Path(__file__).resolve().parent.parent
EPISODES = 3


def _typestore(reader: Reader) -> Typestore:
    """The ROS 2 store plus the definitions stored in the bag (our own messages)."""
    from rosbags.typesys import get_types_from_msg

    store = get_typestore(Stores.ROS2_JAZZY)
    for conn in reader.connections:
        if conn.msgtype.startswith('vla_interfaces/'):
            store.register(get_types_from_msg(conn.msgdef.data.split('\n=====')[0], conn.msgtype))
    return store


@pytest.fixture(scope='module')
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp('collect')
    graph = yaml.safe_load((ROOT / 'config/graphs/collect.yaml').read_text())
    for node in graph['nodes']:
        if node['name'] == 'recorder':
            node['parameters'][1].update({'output_dir': str(out / 'episodes'),
                                          'auto.episodes': EPISODES})  # fmt: skip
        if node['name'] == 'sim':
            node['parameters'][1].update({'camera_rate_hz': 10.0})
    graph_file = out / 'collect.yaml'
    graph_file.write_text(yaml.safe_dump(graph))
    log = open(out / 'runner.log', 'w')  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, '-m', 'vla_ros_common.runner', str(graph_file),
         '--config-dir', str(ROOT / 'config'), '--processes'],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
    )  # fmt: skip
    deadline = time.monotonic() + 240.0
    try:
        while time.monotonic() < deadline:
            saved = [
                p for p in (out / 'episodes').glob('episode_*/episode.json')
                if json.loads(p.read_text()).get('status') == 'saved'
            ]  # fmt: skip
            if len(saved) >= EPISODES:
                break
            assert proc.poll() is None, (out / 'runner.log').read_text()[-3000:]
            time.sleep(1.0)
        else:
            pytest.fail(
                f'{EPISODES} episodes not saved in time:\n'
                + (out / 'runner.log').read_text()[-3000:]
            )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        log.close()
    return out / 'episodes'


def test_every_bag_reads_back_exactly(recorded):
    bags = sorted(p for p in recorded.glob('episode_*') if p.is_dir())
    assert len(bags) >= EPISODES
    for bag in bags[:EPISODES]:
        meta = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
        expected = {
            t['topic_metadata']['name']: t['message_count']
            for t in meta['topics_with_message_count']
        }
        episode = json.loads((bag / 'episode.json').read_text())
        assert episode['instruction'].startswith('push the ')
        assert isinstance(episode['success'], bool) and episode['seed'] >= 0  # the label is stored
        with Reader(bag) as reader:
            store = _typestore(reader)
            counts: dict[str, int] = {}
            stamps: dict[str, list[float]] = {}
            for conn, _, raw in reader.messages():
                counts[conn.topic] = counts.get(conn.topic, 0) + 1
                msg = store.deserialize_cdr(raw, conn.msgtype)
                header = getattr(msg, 'header', None)
                if header is not None:
                    stamps.setdefault(conn.topic, []).append(
                        header.stamp.sec + header.stamp.nanosec * 1e-9
                    )
        assert counts == {k: v for k, v in expected.items() if v}, bag.name
        assert meta['message_count'] == sum(counts.values())
        for topic in ('/joint_states', '/camera/scene_camera/image_raw', '/expert/action_chunk'):
            assert counts[topic] > 0, topic
            assert np.all(np.diff(stamps[topic]) > 0), f'{bag.name} {topic} stamps not monotone'


def test_bags_convert_to_an_aligned_dataset(recorded, tmp_path):
    from vla_data.dataset import EpisodeDataset, build_dataset

    result = build_dataset(recorded, tmp_path / 'dataset', progress=False)
    data = EpisodeDataset(tmp_path / 'dataset', horizon=4)
    assert len(data.episodes) >= EPISODES
    sample = data[0]
    assert sample['images']['scene_camera'].shape == (224, 224, 3)
    assert sample['action'].shape == (4, 7) and sample['state'].shape == (7,)
    assert sample['instruction'].startswith('push the ')
    assert result is not None

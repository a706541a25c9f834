"""Our bags' rosbag2 metadata against rosbag2's (type hashes from rosidl's own output) and against
a bag that rosbags' rosbag2 writer makes of the same topics and messages."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mcap.reader import make_reader
import numpy as np
import pytest
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
import yaml

from vla_data.bag import BagWriter, recover_bag
from vla_data.message_definitions import message_definition, type_description_hash

TOPICS = {
    '/joint_states': 'sensor_msgs/msg/JointState',
    '/cam': 'sensor_msgs/msg/Image',
    '/expert/action_chunk': 'vla_interfaces/msg/ActionChunk',
}
# RMW_DURATION_INFINITE (rmw/time.h), Humble and Jazzy alike.
INFINITE = {'sec': 9223372036, 'nsec': 854775807}
QOS = [
    {
        'history': 'keep_last',
        'depth': 10,
        'reliability': 'best_effort',
        'durability': 'transient_local',
        'deadline': INFINITE,
        'lifespan': {'sec': 1, 'nsec': 500},
        'liveliness': 'automatic',
        'liveliness_lease_duration': INFINITE,
        'avoid_ros_namespace_conventions': False,
    }
]
T0 = 1_700_000_000_000_000_000


def _typestore() -> Any:
    store = get_typestore(Stores.EMPTY)
    for t in TOPICS.values():
        store.register(get_types_from_msg(message_definition(t), t))
    return store


STORE = _typestore()


def _messages() -> list[tuple[str, int, bytes]]:
    t = STORE.types
    out = []
    for i in range(6):
        stamp = t['builtin_interfaces/msg/Time'](1_700_000_000, i * 1000)
        header = t['std_msgs/msg/Header'](stamp, 'base')
        msgs = {
            '/joint_states': t['sensor_msgs/msg/JointState'](
                header, ['j1'], np.array([float(i)]), np.array([]), np.array([])
            ),
            '/cam': t['sensor_msgs/msg/Image'](
                header, 1, 2, 'rgb8', 0, 6, np.arange(6, dtype=np.uint8)
            ),
            '/expert/action_chunk': t['vla_interfaces/msg/ActionChunk'](
                header, ['j1'], 0.1, 1, np.array([1.0]), 'expert', i
            ),
        }
        for topic, msg in msgs.items():
            out.append(
                (topic, T0 + i * 1000 + len(out), bytes(STORE.serialize_cdr(msg, TOPICS[topic])))
            )
    return out


def _ours(path: Path, distro: str) -> Path:
    bag = BagWriter(path, custom_data={'instruction': 'pick'}, ros_distro=distro)
    for topic, type_name in TOPICS.items():
        bag.add_topic(topic, type_name, QOS, message_definition(type_name),
                      type_description_hash(type_name))  # fmt: skip
    for topic, stamp, data in _messages():
        bag.write(topic, stamp, data)
    bag.close()
    return path


def _rosbags_qos(q: dict[str, Any]) -> Qos:
    def time(d: dict[str, int]) -> QosTime:
        return QosTime(d['sec'], d['nsec'])

    return Qos(
        QosHistory[q['history'].upper()], q['depth'], QosReliability[q['reliability'].upper()],
        QosDurability[q['durability'].upper()], time(q['deadline']), time(q['lifespan']),
        QosLiveliness[q['liveliness'].upper()], time(q['liveliness_lease_duration']),
        q['avoid_ros_namespace_conventions'],
    )  # fmt: skip


def _theirs(path: Path, version: int) -> Path:
    """The same bag by rosbags' writer, which computes definitions and RIHS01 hashes itself."""
    with Writer(path, version=version, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.set_custom_data('instruction', 'pick')
        conns = {
            topic: writer.add_connection(
                topic,
                type_name,
                typestore=STORE,
                offered_qos_profiles=[_rosbags_qos(q) for q in QOS],
            )
            for topic, type_name in TOPICS.items()
        }
        for topic, stamp, data in _messages():
            writer.write(conns[topic], stamp, data)
    return path


def _info(bag: Path) -> dict[str, Any]:
    return yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']


def _mcap(bag: Path) -> dict[str, Any]:
    with open(next(bag.glob('*.mcap')), 'rb') as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        records = [(r.name, r.metadata) for r in reader.iter_metadata()]
        return {
            'profile': reader.get_header().profile,
            'schemas': {s.name: s for s in summary.schemas.values()},
            'channels': {c.topic: c for c in summary.channels.values()},
            'records': records,
            'messages': [(c.topic, m.log_time, m.data) for _, c, m in reader.iter_messages()],
        }


# The two writers differ in what they name: the file (rosbag2 and we: <bag>_0.mcap, rosbags:
# <bag>.mcap) and ros_distro (rosbags writes 'rosbags').
NAMES = ('relative_file_paths', 'files', 'ros_distro')


def _comparable(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if k not in NAMES}


def test_type_hashes_are_rosidls_for_every_installed_message() -> None:
    """rosidl_generator_type_description installs share/<pkg>/msg/<Type>.json with the hash."""
    checked = {}
    for prefix in os.environ['AMENT_PREFIX_PATH'].split(os.pathsep):
        for path in Path(prefix, 'share').glob('*/msg/*.json'):
            want = json.loads(path.read_text())['type_hashes'][0]
            checked[want['type_name']] = (type_description_hash(want['type_name']),
                                          want['hash_string'])  # fmt: skip
    assert len(checked) > 100 and 'vla_interfaces/msg/ActionChunk' in checked
    assert {t: ours for t, (ours, _) in checked.items()} == {t: w for t, (_, w) in checked.items()}
    assert checked['sensor_msgs/msg/Image'][0] == (
        'RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47'
    )


def test_type_hash_of_every_field_kind_matches_rosbags(tmp_path, monkeypatch) -> None:
    """Bounded strings and sequences, fixed arrays, byte, defaults and constants (neither is
    hashed), a nested type of the same package and an empty message. (Not char: rosidl hashes it
    as uint8, as std_msgs/msg/Char's installed hash shows, rosbags as FIELD_TYPE_CHAR.)"""
    share = tmp_path / 'share' / 'vla_hash_probe'
    (share / 'msg').mkdir(parents=True)
    (tmp_path / 'share' / 'ament_index' / 'resource_index' / 'packages').mkdir(parents=True)
    (tmp_path / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'vla_hash_probe').touch()
    (share / 'msg' / 'Empty.msg').write_text('# nothing\n')
    (share / 'msg' / 'Probe.msg').write_text(
        'uint8 MODE_A=1 # a constant\nstring NAME = "x=y"\n'
        'string<=8 short_name\nstring<=4[3] tags\nint32[<=5] bounded\n'
        'float64[3] fixed "[1.0, 2.0, 3.0]"\nbyte b\nbool flag true\n'
        'Empty[] empties\nstd_msgs/Header header\n'
    )
    monkeypatch.setenv(
        'AMENT_PREFIX_PATH', f'{tmp_path}{os.pathsep}{os.environ["AMENT_PREFIX_PATH"]}'
    )
    store = get_typestore(Stores.EMPTY)
    for name in ('Empty', 'Probe'):
        t = f'vla_hash_probe/msg/{name}'
        store.register(get_types_from_msg(message_definition(t), t))
    for name in ('Empty', 'Probe'):
        t = f'vla_hash_probe/msg/{name}'
        assert type_description_hash(t) == store.hash_rihs01(t), t


@pytest.mark.parametrize('distro,version', [('jazzy', 9), ('humble', 5)])
def test_metadata_matches_rosbags_writer(tmp_path, distro, version) -> None:
    ours = _ours(tmp_path / 'ours' / 'bag', distro)
    # rosbags writes versions 8 and 9; Humble's 5 keeps version 8's QoS serialization.
    theirs = _theirs(tmp_path / 'theirs' / 'bag', 9 if version == 9 else 8)
    mine, ref = _info(ours), _info(theirs)
    assert mine['version'] == version
    assert '&id' not in (ours / 'metadata.yaml').read_text()  # no YAML aliases, as rosbag2
    assert mine['relative_file_paths'] == ['bag_0.mcap'] == [f['path'] for f in mine['files']]
    mcap_mine, mcap_ref = _mcap(ours), _mcap(theirs)
    if version == 9:
        assert mine['ros_distro'] == 'jazzy'
        assert _comparable(mine) == _comparable(ref)  # topics, QoS, hashes, counts, times
        hashes = [
            t['topic_metadata']['type_description_hash'] for t in mine['topics_with_message_count']
        ]
        assert all(h.startswith('RIHS01_') for h in hashes)
        # The rosbag2 record: written at open and close (readers take the last), as rosbag2 does.
        assert [name for name, _ in mcap_mine['records']] == ['rosbag2', 'rosbag2']
        serialized = yaml.safe_load(mcap_mine['records'][-1][1]['serialized_metadata'])
        assert serialized == mine
        ref_serialized = yaml.safe_load(mcap_ref['records'][-1][1]['serialized_metadata'])
        assert _comparable(serialized) == _comparable(ref_serialized)
    else:
        # Version 5 (Humble's rosbag2 0.15): no hash, custom_data or ros_distro; QoS as a string
        # holding the rmw enum integers, as version 8 writes it.
        expected_keys = set(ref) - {'custom_data', 'ros_distro'}
        assert set(mine) == expected_keys
        for t_mine, t_ref in zip(
            mine['topics_with_message_count'], ref['topics_with_message_count'], strict=True
        ):
            assert set(t_mine['topic_metadata']) == set(t_ref['topic_metadata']) - {
                'type_description_hash'
            }
            qos = t_mine['topic_metadata']['offered_qos_profiles']
            assert isinstance(qos, str) and yaml.safe_load(qos) == yaml.safe_load(
                t_ref['topic_metadata']['offered_qos_profiles']
            )
            assert (
                yaml.safe_load(qos)[0]['reliability'] == 2
            )  # RMW_QOS_POLICY_RELIABILITY_BEST_EFFORT
        assert mcap_mine['records'] == [('rosbag2', {'ROS_DISTRO': 'humble'})] * 2
    assert mcap_mine['profile'] == mcap_ref['profile'] == 'ros2'
    assert mcap_mine['messages'] == mcap_ref['messages']
    assert mcap_mine['schemas'].keys() == mcap_ref['schemas'].keys() == set(TOPICS.values())
    for name, schema in mcap_mine['schemas'].items():
        ref_schema = mcap_ref['schemas'][name]
        assert schema.encoding == ref_schema.encoding == 'ros2msg'
        # Same types (rosbags writes its normalized text, we the .msg files, as rosbag2 does).
        assert get_types_from_msg(schema.data.decode(), name) == get_types_from_msg(
            ref_schema.data.decode(), name
        )
    for topic, channel in mcap_mine['channels'].items():
        ref_channel = mcap_ref['channels'][topic]
        assert channel.message_encoding == ref_channel.message_encoding == 'cdr'
        assert yaml.safe_load(channel.metadata['offered_qos_profiles']) == yaml.safe_load(
            ref_channel.metadata['offered_qos_profiles']
        )
        # rosbag2 (Jazzy's mcap_storage.cpp create_topic) also writes topic_type_hash; rosbags not.
        extra = {'topic_type_hash'} if version == 9 else set()
        assert set(channel.metadata) == set(ref_channel.metadata) | extra
        if version == 9:
            assert channel.metadata['topic_type_hash'] == type_description_hash(TOPICS[topic])


@pytest.mark.parametrize('distro', ['jazzy', 'humble'])
def test_rosbags_reads_our_qos_and_hashes_back(tmp_path, distro) -> None:
    with Reader(_ours(tmp_path / 'bag', distro)) as reader:
        conns = {c.topic: c for c in reader.connections}
    assert conns['/cam'].ext.offered_qos_profiles == [_rosbags_qos(q) for q in QOS]
    want = type_description_hash('sensor_msgs/msg/Image') if distro == 'jazzy' else ''
    assert conns['/cam'].digest == want


def test_recovered_bag_keeps_hashes_qos_and_distro(tmp_path) -> None:
    bag = BagWriter(tmp_path / 'bag', ros_distro='humble')
    bag.add_topic('/cam', TOPICS['/cam'], QOS, message_definition(TOPICS['/cam']),
                  type_description_hash(TOPICS['/cam']))  # fmt: skip
    for topic, stamp, data in _messages():
        if topic == '/cam':
            bag.write(topic, stamp, data)
    bag.flush()
    bag.abort()  # no summary, no footer, no final metadata.yaml
    (tmp_path / 'bag' / 'metadata.yaml').unlink()
    assert recover_bag(tmp_path / 'bag').message_count == 6
    info = _info(tmp_path / 'bag')
    assert info['version'] == 5  # the distro came from the MCAP's rosbag2 record
    qos = yaml.safe_load(
        info['topics_with_message_count'][0]['topic_metadata']['offered_qos_profiles']
    )
    assert qos[0]['deadline'] == INFINITE and qos[0]['history'] == 1

"""rosbag2's bag metadata per ROS distro, as rosbag2_storage and rosbag2_storage_mcap write it:
``metadata.yaml``, each MCAP channel's metadata and the MCAP ``rosbag2`` metadata record.

==================  ======================================  =====================================
                    Humble (rosbag2 0.15)                   Jazzy (rosbag2 0.26) and later
==================  ======================================  =====================================
version             5                                       9
offered QoS         a YAML string, policies as rmw enum     a YAML list, policies by name
                    integers
type hash           none                                    ``type_description_hash`` (RIHS01),
                                                            channel key ``topic_type_hash``
custom_data,        none                                    in metadata.yaml
ros_distro
MCAP ``rosbag2``    ``ROS_DISTRO``                          ``serialized_metadata``: the bag
record                                                      information as YAML
==================  ======================================  =====================================

Infinite QoS durations are rmw's ``RMW_DURATION_INFINITE`` on both, INT64_MAX ns as
``{sec: 9223372036, nsec: 854775807}``; the values Foxy's rmw implementations reported (Fast DDS:
``{sec: 2147483647, nsec: 4294967295}``) are only translated by rosbag2 when it reads old bags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rosbags.interfaces import QosDurability, QosHistory, QosLiveliness, QosReliability
import yaml

__all__ = [
    'TopicInfo',
    'bag_info',
    'channel_metadata',
    'distro_of_mcap_record',
    'mcap_metadata_record',
    'metadata_version',
    'metadata_yaml',
    'qos_from_channel',
    'qos_to_dict',
]

MCAP_RECORD = 'rosbag2'
_INFINITE_NS = 2**63 - 1  # RMW_DURATION_INFINITE
_VERSIONS = {'humble': 5}  # any other distro: 9 (Jazzy's)
# Policy name -> rmw enum value, for metadata before version 9.
_POLICIES = {
    'history': QosHistory,
    'reliability': QosReliability,
    'durability': QosDurability,
    'liveliness': QosLiveliness,
}


def metadata_version(ros_distro: str) -> int:
    """The metadata version that distro's rosbag2 writes."""
    return _VERSIONS.get(ros_distro, 9)


def _duration(ns: int) -> dict[str, int]:
    sec, nsec = divmod(min(max(ns, 0), _INFINITE_NS), 1_000_000_000)
    return {'sec': sec, 'nsec': nsec}


def qos_to_dict(profile: Any) -> dict[str, Any]:
    """An rclpy QoSProfile as version 9 writes it (policy names in lower case). Durations
    rclpy reports as INT64_MAX ns (rmw's infinite) stay infinite; 0 is rmw's unspecified."""

    def name(policy: Any) -> str:
        return str(getattr(policy, 'name', policy)).lower()

    def ns(value: Any) -> int:
        return int(getattr(value, 'nanoseconds', value) or 0)

    return {
        'history': name(profile.history),
        'depth': int(profile.depth),
        'reliability': name(profile.reliability),
        'durability': name(profile.durability),
        'deadline': _duration(ns(profile.deadline)),
        'lifespan': _duration(ns(profile.lifespan)),
        'liveliness': name(profile.liveliness),
        'liveliness_lease_duration': _duration(ns(profile.liveliness_lease_duration)),
        'avoid_ros_namespace_conventions': bool(profile.avoid_ros_namespace_conventions),
    }


def _qos_for_version(profiles: list[dict[str, Any]], version: int) -> Any:
    """Version 9: the list itself; before: a YAML string with the policies as enum integers."""
    if version >= 9:
        return profiles
    numbered = [
        {k: _POLICIES[k][v.upper()].value if k in _POLICIES else v for k, v in p.items()}
        for p in profiles
    ]
    return _dump(numbered).strip()


def qos_from_channel(text: str) -> list[dict[str, Any]]:
    """A channel's ``offered_qos_profiles`` back as version 9 dicts (either serialization)."""
    profiles = yaml.safe_load(text or '[]') or []
    named = {p: {e.value: e.name.lower() for e in enum} for p, enum in _POLICIES.items()}
    return [
        {k: named[k][v] if k in named and isinstance(v, int) else v for k, v in p.items()}
        for p in profiles
    ]


class _Dumper(yaml.SafeDumper):
    """Repeated values written out (rosbag2 writes no YAML anchors and aliases)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


@dataclass
class TopicInfo:
    name: str
    type: str
    offered_qos: list[dict[str, Any]]  # version 9 dicts (qos_to_dict)
    type_hash: str = ''  # RIHS01 (message_definitions.type_description_hash)
    count: int = 0


def channel_metadata(topic: TopicInfo, ros_distro: str) -> dict[str, str]:
    """The metadata of a topic's MCAP channel."""
    version = metadata_version(ros_distro)
    if version < 9:
        return {'offered_qos_profiles': _qos_for_version(topic.offered_qos, version)}
    return {
        'offered_qos_profiles': _dump(topic.offered_qos).strip(),
        'topic_type_hash': topic.type_hash,
    }


def bag_info(
    file_name: str,
    topics: list[TopicInfo],
    message_count: int,
    start_ns: int,
    end_ns: int,
    custom_data: Mapping[str, str],
    ros_distro: str,
) -> dict[str, Any]:
    """The ``rosbag2_bagfile_information`` of a one-file MCAP bag, in the distro's version."""
    version = metadata_version(ros_distro)
    duration = max(end_ns - start_ns, 0) if message_count else 0
    start = start_ns if message_count else 0

    def topic_metadata(t: TopicInfo) -> dict[str, Any]:
        meta = {
            'name': t.name,
            'type': t.type,
            'serialization_format': 'cdr',
            'offered_qos_profiles': _qos_for_version(t.offered_qos, version),
        }
        if version >= 7:
            meta['type_description_hash'] = t.type_hash
        return meta

    info: dict[str, Any] = {
        'version': version,
        'storage_identifier': 'mcap',
        'duration': {'nanoseconds': duration},
        'starting_time': {'nanoseconds_since_epoch': start},
        'message_count': message_count,
        'topics_with_message_count': [
            {'topic_metadata': topic_metadata(t), 'message_count': t.count} for t in topics
        ],
        'compression_format': '',
        'compression_mode': '',
        'relative_file_paths': [file_name],
        'files': [
            {
                'path': file_name,
                'starting_time': {'nanoseconds_since_epoch': start},
                'duration': {'nanoseconds': duration},
                'message_count': message_count,
            }
        ],
    }
    if version >= 6:
        # yaml-cpp writes an empty map as null, as rosbag2 and rosbags do.
        info['custom_data'] = {str(k): str(v) for k, v in custom_data.items()} or None
    if version >= 8:
        info['ros_distro'] = ros_distro
    return info


def metadata_yaml(info: Mapping[str, Any]) -> str:
    """The text of ``metadata.yaml``."""
    return _dump({'rosbag2_bagfile_information': dict(info)})


def mcap_metadata_record(info: Mapping[str, Any], ros_distro: str) -> dict[str, str]:
    """The MCAP metadata record ``rosbag2`` (rosbag2 writes one when the bag opens and one when
    it closes; readers take the last): the serialized bag information from version 9 on."""
    if info['version'] >= 9:
        return {'serialized_metadata': _dump(dict(info))}
    return {'ROS_DISTRO': ros_distro}


def distro_of_mcap_record(record: Mapping[str, str]) -> str:
    """The ROS distro a ``rosbag2`` metadata record names ('' if none)."""
    if 'serialized_metadata' in record:
        try:
            return str(yaml.safe_load(record['serialized_metadata']).get('ros_distro') or '')
        except (yaml.YAMLError, AttributeError):
            return ''
    return record.get('ROS_DISTRO', '')

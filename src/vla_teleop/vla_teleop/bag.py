"""rosbag2 bags with MCAP storage, written without rosbag2 (not installable here), and recovered.

A bag is a directory ``<name>/`` holding ``metadata.yaml`` (rosbag2 format version 9, what Jazzy's
``ros2 bag info/play`` and the ``rosbags`` library read) and one ``<name>_0.mcap`` (profile
``ros2``, schemas ``ros2msg`` with the full message definition, channels ``cdr``, QoS offered by
the publishers in each channel's ``offered_qos_profiles``).

Crash safety: ``metadata.yaml`` exists from the start and is rewritten atomically as the bag grows;
the MCAP is flushed as whole chunks (``flush``), so a killed writer leaves a file whose complete
chunks are intact but which has no summary or footer. :func:`recover_bag` (what ``ros2 bag
reindex`` does for rosbag2) rewrites such a file from its complete records and regenerates
``metadata.yaml`` from what it actually holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
import contextlib
from dataclasses import dataclass, field
import io
import json
import os
from pathlib import Path
import re
from typing import Any

from mcap.exceptions import McapError
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType, Writer
import yaml

__all__ = [
    'BagError',
    'BagWriter',
    'RecoveryReport',
    'atomic_write_text',
    'message_definition',
    'qos_to_dict',
    'recover_bag',
]

METADATA_VERSION = 9
_SEPARATOR = '=' * 80
_PRIMITIVES = {
    'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32',
    'uint32', 'int64', 'uint64', 'string', 'wstring',
}  # fmt: skip
_COMPRESSION = {'none': CompressionType.NONE, 'zstd': CompressionType.ZSTD,
                'lz4': CompressionType.LZ4}  # fmt: skip
# rosbag2 writes an infinite Duration this way.
_INFINITE = {'sec': 2147483647, 'nsec': 4294967295}


class BagError(RuntimeError):
    """A bag cannot be written or recovered; the message names the file."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``path`` so that it is always either the old or the new content (temp, fsync,
    rename, fsync of the directory), never a torn file after a crash."""
    tmp = path.with_name(f'.{path.name}.tmp')
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- message definitions --------------------------------------------------------------------------


def _msg_file(package: str, name: str) -> Path:
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        share = Path(get_package_share_directory(package))
    except PackageNotFoundError:
        raise BagError(f"message package '{package}' is not installed") from None
    path = share / 'msg' / f'{name}.msg'
    if not path.is_file():
        raise BagError(f'no message definition {path}')
    return path


def _field_types(text: str, package: str) -> Iterator[str]:
    """The non-primitive field types of a .msg text as ``pkg/Type``."""
    for raw in text.splitlines():
        line = raw.split('#', 1)[0].strip()
        if not line:
            continue
        type_token, _, rest = line.partition(' ')
        if '=' in rest.split(None, 1)[0] if rest.strip() else False:
            continue  # a constant ("uint8 FOO=1"): always a primitive
        base = re.sub(r'\[.*\]$', '', type_token)
        base = re.sub(r'<=\d+$', '', base)
        if base in _PRIMITIVES:
            continue
        if base == 'Header':
            yield 'std_msgs/Header'
        elif '/' in base:
            parts = base.split('/')
            yield f'{parts[0]}/{parts[-1]}'
        else:
            yield f'{package}/{base}'


def message_definition(type_name: str) -> str:
    """The ``ros2msg`` schema text of ``pkg/msg/Type``: its .msg file followed by every
    dependency's, each after a line of 80 '=' and ``MSG: pkg/Type`` (as rosbag2 writes it)."""
    parts = type_name.split('/')
    if len(parts) != 3 or parts[1] != 'msg':
        raise BagError(f"message type '{type_name}' is not of the form pkg/msg/Type")
    package, _, name = parts
    root = _msg_file(package, name).read_text()
    seen = {f'{package}/{name}'}
    order: list[tuple[str, str]] = []
    stack = list(reversed(list(_field_types(root, package))))
    while stack:
        dep = stack.pop()
        if dep in seen:
            continue
        seen.add(dep)
        dep_pkg, dep_name = dep.split('/')
        text = _msg_file(dep_pkg, dep_name).read_text()
        order.append((dep, text))
        stack.extend(reversed(list(_field_types(text, dep_pkg))))
    out = [root.rstrip('\n')]
    for dep, text in order:
        out.append(f'{_SEPARATOR}\nMSG: {dep}\n{text.rstrip(chr(10))}')
    return '\n'.join(out) + '\n'


# --- QoS ------------------------------------------------------------------------------------------


def _duration(ns: int) -> dict[str, int]:
    if ns <= 0 or ns >= 2**63 - 1:
        return {'sec': 0, 'nsec': 0} if ns <= 0 else dict(_INFINITE)
    return {'sec': ns // 1_000_000_000, 'nsec': ns % 1_000_000_000}


def qos_to_dict(profile: Any) -> dict[str, Any]:
    """An rclpy QoSProfile as metadata version 9 writes it (lower-case policy names)."""

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


# --- writer ---------------------------------------------------------------------------------------


@dataclass
class _Topic:
    name: str
    type: str
    offered_qos: list[dict[str, Any]]
    channel_id: int
    count: int = 0


@dataclass
class _Stats:
    count: int = 0
    start_ns: int = 0
    end_ns: int = 0
    counts: dict[int, int] = field(default_factory=dict)


class BagWriter:
    """One rosbag2 MCAP bag. Not thread-safe: the recorder calls it from its writer thread only."""

    def __init__(
        self,
        directory: Path,
        *,
        compression: str = 'none',
        chunk_size: int = 4 * 1024 * 1024,
        custom_data: Mapping[str, str] | None = None,
        ros_distro: str = '',
    ) -> None:
        if compression not in _COMPRESSION:
            raise BagError(f"compression '{compression}' is not one of {sorted(_COMPRESSION)}")
        self.directory = Path(directory)
        if self.directory.exists():
            raise BagError(f'{self.directory} exists already: refusing to overwrite a bag')
        self.directory.mkdir(parents=True)
        self.file_name = f'{self.directory.name}_0.mcap'
        self.path = self.directory / self.file_name
        self.custom_data: dict[str, str] = dict(custom_data or {})
        self.ros_distro = ros_distro or os.environ.get('ROS_DISTRO', 'jazzy')
        self._file = open(self.path, 'wb')  # noqa: SIM115 - lives as long as the bag
        self._writer = Writer(
            self._file, chunk_size=chunk_size, compression=_COMPRESSION[compression]
        )
        self._writer.start(profile='ros2', library='vla_teleop')
        self._schemas: dict[str, int] = {}
        self._topics: dict[str, _Topic] = {}
        self._stats = _Stats()
        self._size = 0
        self.closed = False
        self.aborted = False
        self.write_metadata()  # a bag killed at once still has one

    @property
    def bytes_written(self) -> int:
        return self._size if self.closed else self._file.tell()

    @property
    def message_count(self) -> int:
        return self._stats.count

    def has_topic(self, name: str) -> bool:
        return name in self._topics

    def add_topic(
        self, name: str, type_name: str, offered_qos: list[dict[str, Any]], definition: str
    ) -> int:
        if name in self._topics:
            return self._topics[name].channel_id
        schema_id = self._schemas.get(type_name)
        if schema_id is None:
            schema_id = self._writer.register_schema(
                name=type_name,  # rosbag2 names MCAP schemas pkg/msg/Type
                encoding='ros2msg',
                data=definition.encode(),
            )
            self._schemas[type_name] = schema_id
        channel_id = self._writer.register_channel(
            topic=name,
            message_encoding='cdr',
            schema_id=schema_id,
            metadata={'offered_qos_profiles': yaml.safe_dump(offered_qos) if offered_qos else ''},
        )
        self._topics[name] = _Topic(name, type_name, offered_qos, channel_id)
        return channel_id

    def write(self, topic: str, log_time_ns: int, data: bytes, publish_time_ns: int = 0) -> None:
        t = self._topics[topic]
        self._writer.add_message(
            channel_id=t.channel_id,
            log_time=log_time_ns,
            data=data,
            publish_time=publish_time_ns or log_time_ns,
            sequence=t.count,
        )
        t.count += 1
        s = self._stats
        if s.count == 0:
            s.start_ns = log_time_ns
        s.start_ns = min(s.start_ns, log_time_ns)
        s.end_ns = max(s.end_ns, log_time_ns)
        s.count += 1

    def flush(self, fsync: bool = False) -> None:
        """Close the open chunk and hand it to the OS (survives SIGKILL); with ``fsync`` also to
        the disk (survives power loss)."""
        self._writer.flush()
        if fsync:
            os.fsync(self._file.fileno())

    def counts(self) -> dict[str, int]:
        return {name: t.count for name, t in self._topics.items()}

    def write_metadata(self) -> None:
        topics = [
            {'topic': t.name, 'type': t.type, 'qos': t.offered_qos, 'count': t.count}
            for t in self._topics.values()
        ]
        text = metadata_yaml(
            self.file_name,
            topics,
            self._stats.count,
            self._stats.start_ns,
            self._stats.end_ns,
            self.custom_data,
            self.ros_distro,
        )
        atomic_write_text(self.directory / 'metadata.yaml', text)

    def close(self) -> None:
        """Summary and footer (the file becomes indexed), then the final metadata.yaml."""
        if self.closed:
            return
        try:
            self._writer.finish()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._size = self._file.tell()
        finally:
            self.closed = True
            self._file.close()
        self.write_metadata()

    def abort(self) -> None:
        """After a write error: keep what reached the file; recover_bag makes it readable."""
        if not self.closed:
            with contextlib.suppress(OSError, ValueError):
                self._size = self._file.tell()
            self.closed = True
            self.aborted = True
            with contextlib.suppress(OSError):
                self._file.close()


def metadata_yaml(
    file_name: str,
    topics: list[dict[str, Any]],
    message_count: int,
    start_ns: int,
    end_ns: int,
    custom_data: Mapping[str, str],
    ros_distro: str,
) -> str:
    duration = max(end_ns - start_ns, 0) if message_count else 0
    start = start_ns if message_count else 0
    info = {
        'version': METADATA_VERSION,
        'storage_identifier': 'mcap',
        'duration': {'nanoseconds': duration},
        'starting_time': {'nanoseconds_since_epoch': start},
        'message_count': message_count,
        'topics_with_message_count': [
            {
                'topic_metadata': {
                    'name': t['topic'],
                    'type': t['type'],
                    'serialization_format': 'cdr',
                    'offered_qos_profiles': t['qos'],
                    'type_description_hash': '',
                },
                'message_count': t['count'],
            }
            for t in topics
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
        'custom_data': {str(k): str(v) for k, v in custom_data.items()},
        'ros_distro': ros_distro,
    }
    return yaml.safe_dump({'rosbag2_bagfile_information': info}, sort_keys=False)


# --- recovery -------------------------------------------------------------------------------------


@dataclass
class RecoveryReport:
    directory: Path
    recovered: bool  # False: the file was complete already
    message_count: int
    end_ns: int
    dropped_bytes: int  # the torn tail that was cut off

    def __str__(self) -> str:
        if not self.recovered:
            return f'{self.directory}: complete, {self.message_count} messages'
        return (
            f'{self.directory}: recovered {self.message_count} messages, '
            f'{self.dropped_bytes} bytes of torn tail dropped'
        )


def _is_complete(path: Path) -> bool:
    size = path.stat().st_size
    if size < 8 + 37:
        return False
    with open(path, 'rb') as f:
        f.seek(-8, os.SEEK_END)
        return f.read(8) == b'\x89MCAP0\r\n'


def _read_complete_records(data: bytes) -> tuple[list[Any], int]:
    """Every whole record of an MCAP prefix and the offset after the last whole top-level one."""
    records: list[Any] = []
    good_end = 8
    stream = io.BytesIO(data)
    reader = StreamReader(stream, skip_magic=False, emit_chunks=False)
    it = reader.records
    while True:
        try:
            record = next(it)
        except StopIteration:
            break
        except (McapError, EOFError, ValueError, IndexError, OSError, Exception):
            # Torn record at the end (or a chunk whose CRC fails): keep what came before.
            break
        records.append(record)
        good_end = stream.tell()
    return records, good_end


def recover_bag(
    directory: Path, extra_custom: Mapping[str, str] | None = None, *, force: bool = False
) -> RecoveryReport:
    """Make a bag left by a killed writer readable: rewrite its MCAP from the complete records
    (atomically, the original kept as ``.mcap.orig`` until the new one is in place) and rebuild
    ``metadata.yaml`` from the file's actual contents. A complete bag is left as it is (only
    its metadata.yaml is rebuilt, if missing) unless ``force`` (re-index it all the same)."""
    directory = Path(directory)
    meta_path = directory / 'metadata.yaml'
    old_meta: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            old_meta = yaml.safe_load(meta_path.read_text())['rosbag2_bagfile_information']
        except (yaml.YAMLError, KeyError, TypeError):
            old_meta = {}
    files = sorted(directory.glob('*.mcap'))
    if len(files) != 1:
        raise BagError(f'{directory}: expected one .mcap file, found {len(files)}')
    path = files[0]
    complete = _is_complete(path)
    if complete and meta_path.is_file() and not force:
        return RecoveryReport(directory, False, int(old_meta.get('message_count', 0)), 0, 0)
    data = path.read_bytes()
    if data[:8] != b'\x89MCAP0\r\n':
        raise BagError(f'{path}: not an MCAP file (bad magic)')
    records, good_end = _read_complete_records(data)
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    messages: list[Message] = []
    for r in records:
        if isinstance(r, Schema):
            schemas[r.id] = r
        elif isinstance(r, Channel):
            channels[r.id] = r
        elif isinstance(r, Message):
            messages.append(r)
    messages.sort(key=lambda m: m.log_time)
    tmp = path.with_name(f'.{path.name}.recovering')
    counts: dict[int, int] = {cid: 0 for cid in channels}
    with open(tmp, 'wb') as f:
        w = Writer(f, compression=CompressionType.NONE)
        w.start(profile='ros2', library='vla_teleop recover')
        schema_map = {
            sid: w.register_schema(name=s.name, encoding=s.encoding, data=s.data)
            for sid, s in schemas.items()
        }
        channel_map = {
            cid: w.register_channel(
                topic=c.topic,
                message_encoding=c.message_encoding,
                schema_id=schema_map.get(c.schema_id, 0),
                metadata=dict(c.metadata),
            )
            for cid, c in channels.items()
        }
        for m in messages:
            if m.channel_id not in channel_map:
                continue
            w.add_message(
                channel_id=channel_map[m.channel_id],
                log_time=m.log_time,
                data=m.data,
                publish_time=m.publish_time,
                sequence=m.sequence,
            )
            counts[m.channel_id] += 1
        w.finish()
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(directory)
    old_topics = {
        t['topic_metadata']['name']: t['topic_metadata']
        for t in old_meta.get('topics_with_message_count', []) or []
    }
    topics = []
    for cid, c in channels.items():
        qos = yaml.safe_load(c.metadata.get('offered_qos_profiles', '') or '[]') or []
        type_name = old_topics.get(c.topic, {}).get('type') or _type_from_schema(schemas, c)
        topics.append({'topic': c.topic, 'type': type_name, 'qos': qos, 'count': counts[cid]})
    custom = dict(old_meta.get('custom_data') or {})
    custom.update(extra_custom or {})
    start_ns = messages[0].log_time if messages else 0
    end_ns = messages[-1].log_time if messages else 0
    text = metadata_yaml(
        path.name,
        topics,
        len(messages),
        start_ns,
        end_ns,
        custom,
        str(old_meta.get('ros_distro') or os.environ.get('ROS_DISTRO', 'jazzy')),
    )
    atomic_write_text(meta_path, text)
    return RecoveryReport(directory, True, len(messages), end_ns, len(data) - good_end)


def _type_from_schema(schemas: Mapping[int, Schema], channel: Channel) -> str:
    schema = schemas.get(channel.schema_id)
    return schema.name if schema is not None else ''


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + '\n')

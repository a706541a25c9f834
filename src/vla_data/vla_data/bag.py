"""rosbag2 bags with MCAP storage, written without rosbag2 (not installable here), and recovered.

A bag is a directory ``<name>/`` holding ``metadata.yaml`` and one ``<name>_0.mcap`` (profile
``ros2``, schemas ``ros2msg`` with the full message definition, channels ``cdr`` with the QoS
offered by the publishers and the type's RIHS01 hash, and the ``rosbag2`` metadata record), in the
version the bag's ROS distro writes (:mod:`vla_data.bag_metadata`: 9 on Jazzy, 5 on Humble), what
``ros2 bag info/play`` and the ``rosbags`` library read.

Crash safety: ``metadata.yaml`` exists from the start and is rewritten atomically as the bag grows;
the MCAP is flushed as whole chunks (``flush``), so a killed writer leaves a file whose complete
chunks are intact but which has no summary or footer. :func:`recover_bag` (what ``ros2 bag
reindex`` does for rosbag2) rewrites such a file from its complete records and regenerates
``metadata.yaml`` from what it actually holds.
"""

from __future__ import annotations

from collections.abc import Mapping
import contextlib
from dataclasses import dataclass
import io
import json
import os
from pathlib import Path
from typing import Any

from mcap.exceptions import McapError
from mcap.records import Channel, Message, Metadata, Schema
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType, Writer
import yaml

from vla_data.bag_metadata import (
    MCAP_RECORD,
    TopicInfo,
    bag_info,
    channel_metadata,
    distro_of_mcap_record,
    mcap_metadata_record,
    metadata_yaml,
    qos_from_channel,
)

__all__ = [
    'BagError',
    'BagWriter',
    'RecoveryReport',
    'atomic_write_text',
    'recover_bag',
]

_COMPRESSION = {'none': CompressionType.NONE, 'zstd': CompressionType.ZSTD,
                'lz4': CompressionType.LZ4}  # fmt: skip


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


# --- writer ---------------------------------------------------------------------------------------


@dataclass
class _Stats:
    count: int = 0
    start_ns: int = 0
    end_ns: int = 0


class BagWriter:
    """One rosbag2 MCAP bag, as ``ros_distro``'s rosbag2 writes it (default: $ROS_DISTRO, else
    jazzy). Not thread-safe: the recorder calls it from its writer thread only."""

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
        self._writer.start(profile='ros2', library='vla_data')
        self._schemas: dict[str, int] = {}
        self._topics: dict[str, TopicInfo] = {}
        self._channels: dict[str, int] = {}
        self._stats = _Stats()
        self._size = 0
        self.closed = False
        self.aborted = False
        self.write_metadata()  # a bag killed at once still has one
        self._write_mcap_record()  # as rosbag2 does when it opens a bag

    @property
    def bytes_written(self) -> int:
        return self._size if self.closed else self._file.tell()

    @property
    def message_count(self) -> int:
        return self._stats.count

    def has_topic(self, name: str) -> bool:
        return name in self._topics

    def add_topic(
        self,
        name: str,
        type_name: str,
        offered_qos: list[dict[str, Any]],
        definition: str,
        type_hash: str,
    ) -> int:
        """A topic of ``type_name`` (``pkg/msg/Type``): its publishers' QoS (``qos_to_dict``),
        its ``ros2msg`` definition and RIHS01 hash (``vla_data.message_definitions``)."""
        if name in self._topics:
            return self._channels[name]
        schema_id = self._schemas.get(type_name)
        if schema_id is None:
            schema_id = self._writer.register_schema(
                name=type_name,  # rosbag2 names MCAP schemas pkg/msg/Type
                encoding='ros2msg',
                data=definition.encode(),
            )
            self._schemas[type_name] = schema_id
        topic = TopicInfo(name, type_name, offered_qos, type_hash)
        self._channels[name] = self._writer.register_channel(
            topic=name,
            message_encoding='cdr',
            schema_id=schema_id,
            metadata=channel_metadata(topic, self.ros_distro),
        )
        self._topics[name] = topic
        return self._channels[name]

    def write(self, topic: str, log_time_ns: int, data: bytes, publish_time_ns: int = 0) -> None:
        t = self._topics[topic]
        self._writer.add_message(
            channel_id=self._channels[topic],
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

    def _info(self) -> dict[str, Any]:
        s = self._stats
        return bag_info(
            self.file_name, list(self._topics.values()), s.count, s.start_ns, s.end_ns,
            self.custom_data, self.ros_distro,
        )  # fmt: skip

    def _write_mcap_record(self) -> None:
        self._writer.add_metadata(MCAP_RECORD, mcap_metadata_record(self._info(), self.ros_distro))

    def write_metadata(self) -> None:
        atomic_write_text(self.directory / 'metadata.yaml', metadata_yaml(self._info()))

    def close(self) -> None:
        """The final ``rosbag2`` record, summary and footer (the file becomes indexed), then the
        final metadata.yaml."""
        if self.closed:
            return
        try:
            self._write_mcap_record()
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
    distro = str(old_meta.get('ros_distro') or '')
    for r in records:
        if isinstance(r, Schema):
            schemas[r.id] = r
        elif isinstance(r, Channel):
            channels[r.id] = r
        elif isinstance(r, Message) and r.channel_id in channels:
            messages.append(r)
        elif isinstance(r, Metadata) and r.name == MCAP_RECORD:
            distro = distro or distro_of_mcap_record(r.metadata)
    distro = distro or os.environ.get('ROS_DISTRO', 'jazzy')
    messages.sort(key=lambda m: m.log_time)
    old_topics = {
        t['topic_metadata']['name']: t['topic_metadata']
        for t in old_meta.get('topics_with_message_count', []) or []
    }
    topics: dict[int, TopicInfo] = {}
    for cid, c in channels.items():
        old = old_topics.get(c.topic, {})
        topics[cid] = TopicInfo(
            c.topic,
            old.get('type') or _type_from_schema(schemas, c),
            qos_from_channel(c.metadata.get('offered_qos_profiles', '')),
            c.metadata.get('topic_type_hash') or old.get('type_description_hash', ''),
        )
    for m in messages:
        topics[m.channel_id].count += 1
    custom = dict(old_meta.get('custom_data') or {})
    custom.update(extra_custom or {})
    start_ns = messages[0].log_time if messages else 0
    end_ns = messages[-1].log_time if messages else 0
    info = bag_info(
        path.name, list(topics.values()), len(messages), start_ns, end_ns, custom, distro
    )
    tmp = path.with_name(f'.{path.name}.recovering')
    with open(tmp, 'wb') as f:
        w = Writer(f, compression=CompressionType.NONE)
        w.start(profile='ros2', library='vla_data recover')
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
            w.add_message(
                channel_id=channel_map[m.channel_id],
                log_time=m.log_time,
                data=m.data,
                publish_time=m.publish_time,
                sequence=m.sequence,
            )
        w.add_metadata(MCAP_RECORD, mcap_metadata_record(info, distro))
        w.finish()
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(directory)
    atomic_write_text(meta_path, metadata_yaml(info))
    return RecoveryReport(directory, True, len(messages), end_ns, len(data) - good_end)


def _type_from_schema(schemas: Mapping[int, Schema], channel: Channel) -> str:
    schema = schemas.get(channel.schema_id)
    return schema.name if schema is not None else ''


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + '\n')

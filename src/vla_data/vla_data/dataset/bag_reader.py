"""Read one episode bag into per-stream arrays keyed by header stamp (rosbags, no rclpy).

Types are registered from the definitions stored in the bag itself (every rosbag2 MCAP carries
its full ``ros2msg`` schemas, ours included), so our custom ``vla_interfaces`` types need no
install. Only the topics asked for are deserialized; images stay raw until picked by the grid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
import json
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore
import yaml

__all__ = [
    'BagReadError',
    'ChunkStream',
    'EpisodeBag',
    'ImageStream',
    'JointStream',
    'image_to_rgb',
    'read_episode',
    'typestore_of',
]

IMAGE = 'sensor_msgs/msg/Image'
JOINT_STATE = 'sensor_msgs/msg/JointState'
ACTION_CHUNK = 'vla_interfaces/msg/ActionChunk'
NS = 1_000_000_000


class BagReadError(RuntimeError):
    """A bag cannot be read; the message names it and says what to do."""


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * NS + int(header.stamp.nanosec)


@dataclass
class ImageStream:
    stamps_ns: list[int] = field(default_factory=list)  # arrival order
    msgs: list[Any] = field(default_factory=list)  # deserialized sensor_msgs/Image


@dataclass
class JointStream:
    """Joint values ``(N, D)`` in ``names`` order (by name from each message)."""

    names: tuple[str, ...] = ()
    value_field: str = 'position'  # position | velocity | effort: the one the messages fill
    stamps_ns: list[int] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)

    def values(self) -> np.ndarray:
        return np.stack(self.rows) if self.rows else np.zeros((0, len(self.names)))


@dataclass
class ChunkStream:
    """Action chunks; ``targets[i]`` is ``(H_i, D)`` in ``names`` order."""

    names: tuple[str, ...] = ()
    stamps_ns: list[int] = field(default_factory=list)
    step_dt: list[float] = field(default_factory=list)
    targets: list[np.ndarray] = field(default_factory=list)
    sequence: list[int] = field(default_factory=list)


@dataclass
class EpisodeBag:
    path: Path
    meta: dict[str, Any]  # episode.json (or metadata.yaml custom_data when there is none)
    topics: dict[str, str]  # every topic in the bag -> type
    images: dict[str, ImageStream]
    joints: dict[str, JointStream]
    chunks: dict[str, ChunkStream]
    instruction_topic: str = ''  # last std_msgs/String on an 'instruction' topic


def image_to_rgb(msg: Any) -> np.ndarray:
    """A sensor_msgs/Image as ``(H, W, 3)`` uint8 RGB."""
    h, w, step, enc = int(msg.height), int(msg.width), int(msg.step), str(msg.encoding).lower()
    channels = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1, '8uc1': 1, '8uc3': 3}
    if enc not in channels:
        raise BagReadError(f'image encoding {enc!r} is not supported (8-bit rgb/bgr/mono only)')
    c = channels[enc]
    data = np.asarray(msg.data, dtype=np.uint8)
    img = data[: h * step].reshape(h, step)[:, : w * c].reshape(h, w, c)
    if c == 1:
        return np.repeat(img, 3, axis=2)
    if enc.startswith('bgr') or enc == '8uc3':  # OpenCV's 8UC3 is BGR by convention
        img = img[:, :, 2::-1]
    return np.ascontiguousarray(img[:, :, :3])


def typestore_of(reader: Reader) -> Typestore:
    """A typestore of every message type an open bag holds, built from the definitions stored
    in the bag itself (no message package needed)."""
    store = get_typestore(Stores.EMPTY)
    types: dict[str, Any] = {}
    for conn in reader.connections:
        types.update(get_types_from_msg(conn.msgdef.data, conn.msgtype))
    store.register(types)
    return store


def _episode_meta(path: Path) -> dict[str, Any]:
    f = path / 'episode.json'
    if f.is_file():
        try:
            return dict(json.loads(f.read_text()))
        except json.JSONDecodeError as err:
            raise BagReadError(f'{f}: unreadable ({err})') from None
    meta_file = path / 'metadata.yaml'
    try:
        info = yaml.safe_load(meta_file.read_text())['rosbag2_bagfile_information']
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise BagReadError(
            f'{path}: neither episode.json nor a readable metadata.yaml ({err})'
        ) from None
    custom = dict(info.get('custom_data') or {})
    success = custom.get('success')
    return {
        'instruction': custom.get('instruction', ''),
        'task': custom.get('task', ''),
        'status': custom.get('status', 'saved'),
        'success': None if success in (None, '', 'none') else success == 'true',
        'robot': custom.get('robot', ''),
        'operator': custom.get('operator', ''),
        'software_version': custom.get('software_version', ''),
    }


def _joint_row(msg: Any, names: tuple[str, ...], field_name: str) -> np.ndarray:
    values = np.asarray(getattr(msg, field_name), dtype=np.float64)
    msg_names = list(msg.name)
    if tuple(msg_names) == names:
        return values.copy()
    index = {n: i for i, n in enumerate(msg_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise BagReadError(f'joint state without joints {missing} (has {msg_names})')
    return values[[index[n] for n in names]]


def read_episode(
    path: Path,
    image_topics: Iterable[str] | None,
    joint_topics: Iterable[str],
    chunk_topics: Iterable[str],
    joint_names: dict[str, tuple[str, ...]] | None = None,
) -> EpisodeBag:
    """Every message of the wanted topics. ``image_topics=None``: every sensor_msgs/Image topic.
    ``joint_names`` fixes the column order of a joint/chunk topic (default: first message's)."""
    path = Path(path)
    meta = _episode_meta(path)
    if meta.get('status') == 'recording':
        raise BagReadError(
            f'{path}: still marked recording (the recorder was killed): run '
            f'`vla recover {path.parent}` first'
        )
    joint_names = dict(joint_names or {})
    try:
        reader = Reader(path)
        reader.open()
    except Exception as err:  # rosbags raises several types for torn or foreign files
        raise BagReadError(
            f'{path}: cannot open the bag ({err}); if the recorder was killed, run '
            f'`vla recover {path}`'
        ) from None
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        store = typestore_of(reader)
        wanted_images = (
            {t for t, ty in topics.items() if ty == IMAGE}
            if image_topics is None
            else set(image_topics)
        )
        bag = EpisodeBag(path, meta, topics, {}, {}, {})
        for t in sorted(wanted_images):
            bag.images[t] = ImageStream()
        # A topic listed as both is read as what its type says.
        for t in joint_topics:
            if topics.get(t) == JOINT_STATE:
                bag.joints[t] = JointStream()
        for t in chunk_topics:
            if topics.get(t) == ACTION_CHUNK:
                bag.chunks[t] = ChunkStream()
        instruction_topics = [
            t for t, ty in topics.items() if ty == 'std_msgs/msg/String' and 'instruction' in t
        ]
        wanted = set(bag.images) | set(bag.joints) | set(bag.chunks) | set(instruction_topics)
        conns = [c for c in reader.connections if c.topic in wanted]
        for conn, _log_time, raw in reader.messages(connections=conns):
            msg: Any = store.deserialize_cdr(raw, conn.msgtype)  # the type the bag defines
            t = conn.topic
            if t in bag.images:
                bag.images[t].stamps_ns.append(_stamp_ns(msg.header))
                bag.images[t].msgs.append(msg)
            elif t in bag.joints:
                _add_joint(bag.joints[t], msg, joint_names.get(t))
            elif t in bag.chunks:
                _add_chunk(bag.chunks[t], msg, joint_names.get(t))
            elif t in instruction_topics:
                bag.instruction_topic = str(msg.data)
    except BagReadError as err:
        raise BagReadError(f'{path}: {err}') from None
    except Exception as err:
        raise BagReadError(f'{path}: cannot read the bag ({type(err).__name__}: {err})') from None
    finally:
        reader.close()
    return bag


def _add_joint(s: JointStream, msg: Any, names: tuple[str, ...] | None) -> None:
    if not s.names:
        s.names = tuple(names or msg.name)
        # A command in velocity or effort mode leaves position empty.
        for f in ('position', 'velocity', 'effort'):
            if len(getattr(msg, f)) == len(msg.name) and len(msg.name):
                s.value_field = f
                break
    s.stamps_ns.append(_stamp_ns(msg.header))
    s.rows.append(_joint_row(msg, s.names, s.value_field))


def _add_chunk(s: ChunkStream, msg: Any, names: tuple[str, ...] | None) -> None:
    msg_names = tuple(msg.joint_names)
    if not s.names:
        s.names = tuple(names or msg_names)
    horizon = int(msg.horizon)
    targets = np.asarray(msg.targets, dtype=np.float64).reshape(horizon, len(msg_names))
    if msg_names != s.names:
        index = {n: i for i, n in enumerate(msg_names)}
        missing = [n for n in s.names if n not in index]
        if missing:
            raise BagReadError(f'action chunk without joints {missing} (has {list(msg_names)})')
        targets = targets[:, [index[n] for n in s.names]]
    s.stamps_ns.append(_stamp_ns(msg.header))
    s.step_dt.append(float(msg.step_dt))
    s.targets.append(targets)
    s.sequence.append(int(msg.sequence))

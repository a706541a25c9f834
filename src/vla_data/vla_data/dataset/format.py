"""The on-disk dataset format (``vla_dataset`` version 1) and its loader, :class:`EpisodeDataset`.

A dataset is derived from bags by ``vla dataset`` and can be rebuilt from them at any time::

    <root>/
      dataset.json                  format, version, fps, cameras (topic, shape), state and action
                                    (topic, type, joint names), build configuration, source bags
      episodes.parquet              one row per episode (see EPISODE_COLUMNS)
      data/episode_000000.parquet   one row per grid tick (see frame columns below)
      sync_report.json              per-episode sync report of the build
      lerobot/                      optional LeRobot v3 export (vla_data.dataset.lerobot)

Frame columns of ``data/episode_NNNNNN.parquet`` (``G`` rows, one per control tick):

- ``frame_index`` int64, ``timestamp`` float64 (``frame_index / fps`` [s], episode time),
  ``stamp_ns`` int64 (the tick as an absolute header-stamp time);
- ``observation.state`` fixed_size_list<float32>[D]: joint state at the tick (linear
  interpolation between the two nearest messages by header stamp, or the nearest one);
- ``action`` fixed_size_list<float32>[A]: the action for the tick: the expert chunk's target
  for that time (``vla_interfaces/ActionChunk``, interpolated between rows), or the joint command
  (``sensor_msgs/JointState``) at the tick;
- ``action.plan`` (optional) fixed_size_list<float32>[P*A]: what the expert would command from
  this tick's state if it took over, ``P`` targets at ``1 / fps`` (row-major ``(P, A)``).
  Relabelled (DAgger) episodes have it: someone else executed, so the next ticks' actions are not
  the expert's continuation, and a chunk made of them would teach a plan that never moves on.
  Loaders take chunks from it;
- ``observation.environment_state`` (optional) fixed_size_list<float32>[E]: privileged scene
  state at the tick (LeRobot's key of that name), names in ``dataset.json``
  ``environment_state.names``. Simulated episodes have it (the named block's and the target's
  position); a policy never sees it, training may use it as an auxiliary target;
- ``observation.images.<cam>`` binary: PNG (lossless, RGB) of the camera frame nearest the tick;
- ``source_stamp_ns.<key>`` int64 for ``key`` in state, action and every camera: the header
  stamp of the message used (skew = ``source_stamp_ns - stamp_ns``).

Episode indices are contiguous from 0 in build order (bags sorted by their index);
``source_index`` keeps the recorder's index.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
import json
from pathlib import Path
import shutil
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    'FORMAT_NAME',
    'FORMAT_VERSION',
    'DatasetFormatError',
    'DatasetWriter',
    'EpisodeDataset',
    'EpisodeInfo',
    'decode_png',
    'encode_png',
    'episode_file',
    'frame_columns',
]

FORMAT_NAME = 'vla_dataset'
FORMAT_VERSION = 1
IMAGE_PREFIX = 'observation.images.'
STAMP_PREFIX = 'source_stamp_ns.'
PLAN_COLUMN = 'action.plan'
ENV_STATE_COLUMN = 'observation.environment_state'
EPISODE_COLUMNS = (
    'episode_index', 'source_index', 'bag', 'instruction', 'task', 'success', 'status', 'length',
    'start_ns', 'robot', 'operator', 'seed', 'max_cross_skew_s',
)  # fmt: skip


class DatasetFormatError(RuntimeError):
    """Not a dataset of this format (or of another version)."""


def episode_file(root: Path, episode_index: int) -> Path:
    return Path(root) / 'data' / f'episode_{episode_index:06d}.parquet'


def encode_png(rgb: np.ndarray) -> bytes:
    """``(H, W, 3)`` uint8 RGB -> PNG bytes (deterministic, lossless)."""
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ValueError('PNG encoding failed')
    return buf.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> ``(H, W, 3)`` uint8 RGB."""
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError('PNG decoding failed')
    return np.ascontiguousarray(bgr[:, :, ::-1])


@dataclass(frozen=True)
class EpisodeInfo:
    episode_index: int
    source_index: int  # the recorder's episode index
    bag: str
    instruction: str
    task: str
    success: bool | None
    status: str  # saved | interrupted
    length: int  # frames
    start_ns: int
    robot: str
    operator: str
    seed: int | None
    max_cross_skew_s: float


def read_info(root: Path) -> dict[str, Any]:
    path = Path(root) / 'dataset.json'
    if not path.is_file():
        raise DatasetFormatError(
            f'{root}: no dataset.json (not a built dataset, or the build failed)'
        )
    info = json.loads(path.read_text())
    if info.get('format') != FORMAT_NAME or info.get('version') != FORMAT_VERSION:
        raise DatasetFormatError(
            f'{root}: format {info.get("format")!r} v{info.get("version")}, '
            f'expected {FORMAT_NAME!r} v{FORMAT_VERSION}'
        )
    return info


EPISODES_SCHEMA = pa.schema(
    [
        ('episode_index', pa.int64()), ('source_index', pa.int64()), ('bag', pa.string()),
        ('instruction', pa.string()), ('task', pa.string()), ('success', pa.bool_()),
        ('status', pa.string()), ('length', pa.int64()), ('start_ns', pa.int64()),
        ('robot', pa.string()), ('operator', pa.string()), ('seed', pa.int64()),
        ('max_cross_skew_s', pa.float64()),
    ]
)  # fmt: skip


class DatasetWriter:
    """Writes a dataset into ``<out_dir>.partial``; :meth:`finish` renames it into place.

    A crash or :meth:`abort` leaves ``out_dir`` as it was: a half-written dataset never carries
    the name of a complete one.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.tmp = self.out_dir.with_name(self.out_dir.name + '.partial')
        shutil.rmtree(self.tmp, ignore_errors=True)
        (self.tmp / 'data').mkdir(parents=True)
        self.episodes: list[dict[str, Any]] = []
        self.frames = 0

    def add_episode(self, frames: pa.Table, row: dict[str, Any]) -> int:
        """One episode's frame table and its ``episodes.parquet`` row (without
        ``episode_index`` and ``length``, which are assigned here); its episode index."""
        index = len(self.episodes)
        pq.write_table(frames, episode_file(self.tmp, index))
        self.episodes.append({**row, 'episode_index': index, 'length': frames.num_rows})
        self.frames += frames.num_rows
        return index

    def finish(self, info: dict[str, Any], sync_report: dict[str, Any] | None = None) -> Path:
        """Write ``episodes.parquet``, ``dataset.json`` (``info`` plus format, version and
        totals) and the sync report, then replace ``out_dir`` with the finished dataset."""
        table = pa.table(
            {k: [e[k] for e in self.episodes] for k in EPISODE_COLUMNS}, schema=EPISODES_SCHEMA
        )
        pq.write_table(table, self.tmp / 'episodes.parquet')
        head = {
            'format': FORMAT_NAME,
            'version': FORMAT_VERSION,
            'fps': info['fps'],
            'total_episodes': len(self.episodes),
            'total_frames': self.frames,
        }
        (self.tmp / 'dataset.json').write_text(json.dumps({**head, **info}, indent=2) + '\n')
        if sync_report is not None:
            (self.tmp / 'sync_report.json').write_text(json.dumps(sync_report, indent=2) + '\n')
        if self.out_dir.exists():
            shutil.rmtree(self.out_dir)
        self.tmp.rename(self.out_dir)
        return self.out_dir

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def frame_columns(
    stamps_ns: np.ndarray,
    fps: float,
    state: np.ndarray,
    action: np.ndarray,
    images: dict[str, list[bytes]],
    source_stamps_ns: dict[str, np.ndarray],
    plan: np.ndarray | None = None,
    env_state: np.ndarray | None = None,
) -> dict[str, pa.Array]:
    """The frame columns of one episode (see the module docstring) as arrow arrays;
    ``plan (G, P, A)``: what the expert would command from every tick (relabelled episodes);
    ``env_state (G, E)``: privileged scene state (simulated episodes)."""
    n = len(stamps_ns)
    columns: dict[str, pa.Array] = {
        'frame_index': pa.array(np.arange(n, dtype=np.int64)),
        'timestamp': pa.array(np.arange(n, dtype=np.float64) / fps),
        'stamp_ns': pa.array(np.asarray(stamps_ns, dtype=np.int64)),
        'observation.state': _fixed(state),
        'action': _fixed(action),
    }
    if plan is not None:
        plan = np.asarray(plan)
        if plan.ndim != 3 or plan.shape[0] != n or plan.shape[2] != np.shape(action)[1]:
            raise ValueError(f'plan must be (G={n}, P, A), got {plan.shape}')
        columns[PLAN_COLUMN] = _fixed(plan.reshape(n, -1))
    if env_state is not None:
        env_state = np.asarray(env_state)
        if env_state.ndim != 2 or env_state.shape[0] != n:
            raise ValueError(f'env_state must be (G={n}, E), got {env_state.shape}')
        columns[ENV_STATE_COLUMN] = _fixed(env_state)
    for key, pngs in images.items():
        columns[IMAGE_PREFIX + key] = pa.array(pngs, type=pa.binary())
    for key, s in source_stamps_ns.items():
        columns[STAMP_PREFIX + key] = pa.array(np.asarray(s, dtype=np.int64))
    return columns


def _fixed(values: np.ndarray) -> pa.FixedSizeListArray:
    v = np.ascontiguousarray(values, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])


def read_episodes(root: Path) -> list[EpisodeInfo]:
    rows = pq.read_table(Path(root) / 'episodes.parquet').to_pylist()
    return [EpisodeInfo(**{k: r[k] for k in EPISODE_COLUMNS}) for r in rows]


class EpisodeDataset:
    """Samples of a built dataset, one per (episode, frame), for training.

    ``dataset[i]`` is a dict:

    - ``images``: ``{camera: (H, W, 3) uint8 RGB}`` (cameras as in ``camera_names``);
    - ``state``: ``(D,)`` float32, joint names ``state_names``;
    - ``action``: ``(horizon, A)`` float32, the actions of this frame and the next ``horizon-1``
      (joint names ``action_names``; past the episode's end the last one repeats);
    - ``action_is_pad``: ``(horizon,)`` bool, True where the action was repeated as padding;
    - ``env_state``: ``(E,)`` float32 privileged scene state (names ``env_state_names``), or
      None where the dataset has none;
    - ``instruction``, ``task``: str; ``success``: bool | None;
    - ``timestamp``: float [s] episode time; ``stamp_ns``: int absolute tick time;
    - ``episode_index``, ``frame_index``: int.

    Episode files are read lazily and ``cache_episodes`` of them are kept, so a DataLoader with
    workers (the object pickles as paths) reads each file once per worker.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        horizon: int = 1,
        cameras: Sequence[str] | None = None,
        episodes: Sequence[int] | None = None,
        success_only: bool = False,
        cache_episodes: int = 2,
    ) -> None:
        if horizon < 1:
            raise ValueError(f'horizon must be >= 1, got {horizon}')
        self.root = Path(root)
        self.info = read_info(self.root)
        self.horizon = int(horizon)
        self.fps = float(self.info['fps'])
        all_cams = list(self.info['cameras'])
        self.camera_names = list(all_cams if cameras is None else cameras)
        unknown = set(self.camera_names) - set(all_cams)
        if unknown:
            raise ValueError(f'unknown cameras {sorted(unknown)}; the dataset has {all_cams}')
        self.state_names: list[str] = list(self.info['state']['names'])
        self.action_names: list[str] = list(self.info['action']['names'])
        self.env_state_names: list[str] = list(
            self.info.get('environment_state', {}).get('names', [])
        )
        eps = read_episodes(self.root)
        if episodes is not None:
            wanted = set(episodes)
            eps = [e for e in eps if e.episode_index in wanted]
        if success_only:
            eps = [e for e in eps if e.success]
        self.episodes: list[EpisodeInfo] = eps
        self._offsets = np.cumsum([0] + [e.length for e in eps])
        self._cache_size = max(1, int(cache_episodes))
        self._cache: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state['_cache'] = OrderedDict()  # workers read their own
        return state

    def locate(self, index: int) -> tuple[int, int]:
        """Sample ``index`` -> (position in ``episodes``, frame index)."""
        if not 0 <= index < len(self):
            raise IndexError(f'index {index} out of range for {len(self)} samples')
        pos = int(np.searchsorted(self._offsets, index, side='right') - 1)
        return pos, int(index - self._offsets[pos])

    def __getitem__(self, index: int) -> dict[str, Any]:
        pos, frame = self.locate(int(index))
        return self.frame(self.episodes[pos].episode_index, frame)

    def episode_arrays(self, episode_index: int) -> dict[str, Any]:
        """One whole episode: ``state (G, D)``, ``action (G, A)`` float32, ``timestamp (G,)``,
        ``stamp_ns (G,)``, ``plan (G, P, A)`` and ``env_state (G, E)`` or None,
        ``source_stamp_ns`` {key: (G,)}, ``images`` {cam: list of G PNG
        bytes} (decode with :func:`decode_png`)."""
        cached = self._cache.get(episode_index)
        if cached is not None:
            self._cache.move_to_end(episode_index)
            return cached
        table = pq.read_table(episode_file(self.root, episode_index))
        n_act = len(self.action_names)
        arrays = {
            'state': _matrix(table.column('observation.state')),
            'action': _matrix(table.column('action')),
            'plan': (
                _matrix(table.column(PLAN_COLUMN)).reshape(table.num_rows, -1, n_act)
                if PLAN_COLUMN in table.column_names
                else None
            ),
            'env_state': (
                _matrix(table.column(ENV_STATE_COLUMN))
                if ENV_STATE_COLUMN in table.column_names
                else None
            ),
            'timestamp': table.column('timestamp').to_numpy(),
            'stamp_ns': table.column('stamp_ns').to_numpy(),
            'source_stamp_ns': {
                n[len(STAMP_PREFIX) :]: table.column(n).to_numpy()
                for n in table.column_names
                if n.startswith(STAMP_PREFIX)
            },
            'images': {c: table.column(IMAGE_PREFIX + c).to_pylist() for c in self.camera_names},
        }
        self._cache[episode_index] = arrays
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return arrays

    def frame(self, episode_index: int, frame_index: int) -> dict[str, Any]:
        ep = next(e for e in self.episodes if e.episode_index == episode_index)
        a = self.episode_arrays(episode_index)
        n = ep.length
        rows = np.arange(frame_index, frame_index + self.horizon)
        pad = rows >= n
        if a['plan'] is None:
            action = a['action'][np.minimum(rows, n - 1)]
        else:  # a relabelled episode: what the expert would command from this state
            plan = a['plan'][frame_index]
            if len(plan) < self.horizon:
                raise DatasetFormatError(
                    f'{self.root}: episode {episode_index} has expert plans of {len(plan)} '
                    f'ticks; a horizon of {self.horizon} was asked for'
                )
            action, pad = plan[: self.horizon], np.zeros(self.horizon, dtype=bool)
        return {
            'images': {c: decode_png(a['images'][c][frame_index]) for c in self.camera_names},
            'state': a['state'][frame_index],
            'action': action,
            'action_is_pad': pad,
            'env_state': None if a['env_state'] is None else a['env_state'][frame_index],
            'instruction': ep.instruction,
            'task': ep.task,
            'success': ep.success,
            'timestamp': float(a['timestamp'][frame_index]),
            'stamp_ns': int(a['stamp_ns'][frame_index]),
            'episode_index': episode_index,
            'frame_index': int(frame_index),
        }


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed_size_list<float32>[D] column -> ``(G, D)`` float32."""
    arr = column.combine_chunks()
    width = arr.type.list_size
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, width).astype(np.float32)

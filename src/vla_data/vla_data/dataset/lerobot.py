"""Export a built dataset to the LeRobot v3 layout (``codebase_version`` ``v3.0``).

    <out>/meta/info.json
    <out>/meta/stats.json
    <out>/meta/tasks.parquet
    <out>/meta/episodes/chunk-000/file-000.parquet
    <out>/data/chunk-000/file-000.parquet
    <out>/videos/observation.images.<cam>/chunk-000/file-000.mp4

Written from LeRobot's published v3 layout as we know it, without LeRobot installed here (not
verified by loading with LeRobot; assumptions):

- Many episodes per file; a new ``file-NNN`` starts when the current one passes
  ``data_files_size_mb`` / ``video_files_size_mb`` (checked between episodes), and a new
  ``chunk-NNN`` after ``chunks_size`` files. An episode's rows are
  ``dataset_from_index .. dataset_to_index`` (exclusive) of the whole dataset, its video frames
  ``from_timestamp .. to_timestamp`` [s] of its video file.
- ``timestamp`` is ``frame_index / fps``: our grid is uniform in header-stamp time, so LeRobot's
  index-based timing is exact here (the true stamps stay in our own format).
- ``task`` is the episode's instruction (LeRobot conditions on it); ``meta/tasks.parquet`` has
  the task string as its (pandas) index and a ``task_index`` column. pandas is not installed, so
  the index is declared through the pandas metadata pyarrow stores in the schema.
- ``meta/episodes`` columns: episode_index, tasks, length, data/chunk_index, data/file_index,
  dataset_from_index, dataset_to_index, videos/<key>/{chunk_index, file_index, from_timestamp,
  to_timestamp}, meta/episodes/{chunk_index, file_index}, and ``stats/<feature>/<stat>``.
- ``stats.json``: min, max, mean, std, count per feature; images per channel as ``(3, 1, 1)`` in
  [0, 1]. Newer LeRobot versions also add quantiles; they are not written.
- Video: MPEG-4 Part 2 (OpenCV fourcc ``mp4v``, the encoder OpenCV's bundled FFmpeg has here;
  ``avc1``/H.264 is unavailable, LeRobot's default AV1 needs PyAV). PyAV/torchcodec decode it.
  Lossy: our own format keeps PNG frames.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import shutil
import sys
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from vla_core.config import Config, param
from vla_data.dataset.format import (
    ENV_STATE_COLUMN,
    DatasetFormatError,
    EpisodeDataset,
    decode_png,
)

__all__ = ['CODEBASE_VERSION', 'LeRobotConfig', 'export_lerobot']

CODEBASE_VERSION = 'v3.0'
DATA_PATH = 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
VIDEO_PATH = 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4'
EPISODES_PATH = 'meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'


@dataclass(frozen=True, kw_only=True)
class LeRobotConfig(Config):
    enabled: bool = param(False, description='export the LeRobot v3 layout to <out_dir>/lerobot')
    robot_type: str = param('', description="info.json robot_type (empty: the episodes' robot)")
    chunks_size: int = param(1000, description='files per chunk directory', range=(1, 100000))
    data_files_size_mb: float = param(
        100.0, description='a data file rolls over past this size [MB]', range=(0.001, 1e6)
    )
    video_files_size_mb: float = param(
        500.0, description='a video file rolls over past this size [MB]', range=(0.001, 1e6)
    )
    fourcc: str = param('mp4v', description='OpenCV video codec', choices=('mp4v', 'avc1'))


class _Files:
    """chunk/file indices that roll over by size."""

    def __init__(self, chunks_size: int) -> None:
        self.chunk = 0
        self.file = 0
        self.chunks_size = chunks_size

    def next(self) -> None:
        self.file += 1
        if self.file >= self.chunks_size:
            self.chunk, self.file = self.chunk + 1, 0


class _Stats:
    """Running min/max/sum/sum of squares over axis 0 (per channel for images)."""

    def __init__(self) -> None:
        self.n = 0
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None
        self.s: np.ndarray | None = None
        self.ss: np.ndarray | None = None

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        lo, hi, s, ss = x.min(0), x.max(0), x.sum(0), (x * x).sum(0)
        if self.lo is None:
            self.lo, self.hi, self.s, self.ss = lo, hi, s, ss
        else:
            assert self.hi is not None and self.s is not None and self.ss is not None
            self.lo = np.minimum(self.lo, lo)
            self.hi = np.maximum(self.hi, hi)
            self.s, self.ss = self.s + s, self.ss + ss
        self.n += x.shape[0]

    def merge(self, other: _Stats) -> None:
        if other.lo is None:
            return
        assert other.hi is not None and other.s is not None and other.ss is not None
        if self.lo is None:
            self.n, self.lo, self.hi, self.s, self.ss = (
                other.n, other.lo, other.hi, other.s, other.ss
            )  # fmt: skip
            return
        assert self.hi is not None and self.s is not None and self.ss is not None
        self.lo, self.hi = np.minimum(self.lo, other.lo), np.maximum(self.hi, other.hi)
        self.s, self.ss, self.n = self.s + other.s, self.ss + other.ss, self.n + other.n

    def to_dict(self, image: bool = False) -> dict[str, Any]:
        assert self.lo is not None and self.s is not None and self.ss is not None
        mean = self.s / self.n
        std = np.sqrt(np.maximum(self.ss / self.n - mean * mean, 0.0))
        out = {'min': self.lo, 'max': self.hi, 'mean': mean, 'std': std}
        shape = (3, 1, 1) if image else (-1,)
        d: dict[str, Any] = {k: np.asarray(v).reshape(shape).tolist() for k, v in out.items()}
        d['count'] = [self.n]
        return d


def _pandas_index_metadata(index_col: str, value_col: str) -> dict[bytes, bytes]:
    """The schema metadata pandas writes for a frame indexed by ``index_col`` (strings) with one
    int64 column, so ``pd.read_parquet`` restores the index as LeRobot expects."""
    meta = {
        'index_columns': [index_col],
        'column_indexes': [
            {'name': None, 'field_name': None, 'pandas_type': 'unicode', 'numpy_type': 'object',
             'metadata': {'encoding': 'UTF-8'}}
        ],
        'columns': [
            {'name': value_col, 'field_name': value_col, 'pandas_type': 'int64',
             'numpy_type': 'int64', 'metadata': None},
            {'name': index_col, 'field_name': index_col, 'pandas_type': 'unicode',
             'numpy_type': 'object', 'metadata': None},
        ],
        'creator': {'library': 'pyarrow', 'version': pa.__version__},
        'pandas_version': '2.2.0',
    }  # fmt: skip
    return {b'pandas': json.dumps(meta).encode()}


def _fixed(values: np.ndarray) -> pa.FixedSizeListArray:
    v = np.asarray(values, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])


def export_lerobot(
    dataset_root: Path, out: Path, cfg: LeRobotConfig | None = None, *, progress: bool = False
) -> Path:
    """Write the LeRobot v3 layout of the dataset at ``dataset_root`` into ``out`` (replaced)."""
    cfg = cfg or LeRobotConfig()
    ds = EpisodeDataset(dataset_root)
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / 'meta').mkdir(parents=True)
    fps = ds.fps
    tasks: dict[str, int] = {}
    for e in ds.episodes:
        tasks.setdefault(e.instruction or e.task or 'unspecified', len(tasks))
    cams = ds.camera_names
    shapes = {c: ds.info['cameras'][c]['shape'] for c in cams}
    video_keys = {c: f'observation.images.{c}' for c in cams}
    data_files = _Files(cfg.chunks_size)
    video_files = {c: _Files(cfg.chunks_size) for c in cams}
    writers: dict[str, cv2.VideoWriter] = {}
    video_frames = dict.fromkeys(cams, 0)  # frames already in the open file
    video_paths: dict[str, Path] = {}
    pending: list[pa.Table] = []
    pending_bytes = 0
    episode_rows: list[dict[str, Any]] = []
    totals: dict[str, _Stats] = {}
    index = 0

    def flush_data() -> None:
        nonlocal pending, pending_bytes
        if not pending:
            return
        path = out / DATA_PATH.format(chunk_index=data_files.chunk, file_index=data_files.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(pending), path)
        pending, pending_bytes = [], 0
        data_files.next()

    def open_video(c: str) -> None:
        f = video_files[c]
        path = out / VIDEO_PATH.format(
            video_key=video_keys[c], chunk_index=f.chunk, file_index=f.file
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        h, w = shapes[c][0], shapes[c][1]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*cfg.fourcc), fps, (w, h))
        if not writer.isOpened():
            raise RuntimeError(f'OpenCV cannot write {cfg.fourcc!r} video to {path}')
        writers[c], video_paths[c], video_frames[c] = writer, path, 0

    bar = tqdm(ds.episodes, desc='lerobot', unit='ep', disable=not progress, file=sys.stderr)
    for e in bar:
        a = ds.episode_arrays(e.episode_index)
        n = e.length
        task_index = tasks[e.instruction or e.task or 'unspecified']
        vectors = {'observation.state': a['state'], 'action': a['action']}
        if ds.env_state_names:
            if a['env_state'] is None:
                raise DatasetFormatError(
                    f'{dataset_root}: episode {e.episode_index} has no environment state, '
                    'which dataset.json names'
                )
            vectors[ENV_STATE_COLUMN] = a['env_state']
        columns = {
            **vectors,
            'timestamp': (np.arange(n) / fps).astype(np.float32)[:, None],
            'frame_index': np.arange(n, dtype=np.int64)[:, None],
            'episode_index': np.full((n, 1), e.episode_index, dtype=np.int64),
            'index': np.arange(index, index + n, dtype=np.int64)[:, None],
            'task_index': np.full((n, 1), task_index, dtype=np.int64),
        }
        table = pa.table(
            {
                **{k: _fixed(v) for k, v in vectors.items()},
                **{k: pa.array(v[:, 0]) for k, v in columns.items() if k not in vectors},
            }
        )
        row: dict[str, Any] = {
            'episode_index': e.episode_index,
            'tasks': [e.instruction or e.task or 'unspecified'],
            'length': n,
            'data/chunk_index': data_files.chunk,
            'data/file_index': data_files.file,
            'dataset_from_index': index,
            'dataset_to_index': index + n,
        }
        ep_stats = {k: _Stats() for k in columns}
        for k, v in columns.items():
            ep_stats[k].add(v)
        for c in cams:
            if c not in writers:
                open_video(c)
            st = _Stats()
            for png in a['images'][c]:
                rgb = decode_png(png)
                writers[c].write(np.ascontiguousarray(rgb[:, :, ::-1]))
                st.add(rgb.reshape(-1, 3) / 255.0)
            key = video_keys[c]
            f = video_files[c]
            row[f'videos/{key}/chunk_index'] = f.chunk
            row[f'videos/{key}/file_index'] = f.file
            row[f'videos/{key}/from_timestamp'] = video_frames[c] / fps
            row[f'videos/{key}/to_timestamp'] = (video_frames[c] + n) / fps
            video_frames[c] += n
            ep_stats[key] = st
        row['meta/episodes/chunk_index'] = 0
        row['meta/episodes/file_index'] = 0
        for k, st in ep_stats.items():
            for name, value in st.to_dict(image=k in video_keys.values()).items():
                row[f'stats/{k}/{name}'] = value
            totals.setdefault(k, _Stats()).merge(st)
        episode_rows.append(row)
        index += n
        # The data file's row range is fixed before rollover, so append first, then roll.
        pending.append(table)
        pending_bytes += table.nbytes
        if pending_bytes >= cfg.data_files_size_mb * 1e6:
            flush_data()
        for c in cams:
            if video_paths[c].stat().st_size >= cfg.video_files_size_mb * 1e6:
                writers.pop(c).release()
                video_files[c].next()
    bar.close()
    flush_data()
    for w in writers.values():
        w.release()
    ep_path = out / EPISODES_PATH.format(chunk_index=0, file_index=0)
    ep_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), ep_path)
    task_table = pa.table(
        {'task_index': pa.array(list(tasks.values()), pa.int64()), 'task': list(tasks)}
    ).replace_schema_metadata(_pandas_index_metadata('task', 'task_index'))
    pq.write_table(task_table, out / 'meta' / 'tasks.parquet')
    stats = {k: st.to_dict(image=k in video_keys.values()) for k, st in totals.items()}
    (out / 'meta' / 'stats.json').write_text(json.dumps(stats, indent=2) + '\n')
    robots = sorted({e.robot for e in ds.episodes if e.robot})
    features: dict[str, Any] = {}
    for c in cams:
        h, w, ch = shapes[c]
        features[video_keys[c]] = {
            'dtype': 'video',
            'shape': [h, w, ch],
            'names': ['height', 'width', 'channels'],
            'info': {
                'video.height': h,
                'video.width': w,
                'video.codec': 'mpeg4' if cfg.fourcc == 'mp4v' else 'h264',
                'video.pix_fmt': 'yuv420p',
                'video.is_depth_map': False,
                'video.fps': fps,
                'video.channels': ch,
                'has_audio': False,
            },
        }
    features['observation.state'] = {
        'dtype': 'float32', 'shape': [len(ds.state_names)], 'names': ds.state_names
    }  # fmt: skip
    features['action'] = {
        'dtype': 'float32', 'shape': [len(ds.action_names)], 'names': ds.action_names
    }  # fmt: skip
    if ds.env_state_names:
        features[ENV_STATE_COLUMN] = {
            'dtype': 'float32', 'shape': [len(ds.env_state_names)], 'names': ds.env_state_names
        }  # fmt: skip
    features['timestamp'] = {'dtype': 'float32', 'shape': [1], 'names': None}
    for k in ('frame_index', 'episode_index', 'index', 'task_index'):
        features[k] = {'dtype': 'int64', 'shape': [1], 'names': None}
    info = {
        'codebase_version': CODEBASE_VERSION,
        'robot_type': cfg.robot_type or (robots[0] if len(robots) == 1 else 'unknown'),
        'total_episodes': len(ds.episodes),
        'total_frames': index,
        'total_tasks': len(tasks),
        'chunks_size': cfg.chunks_size,
        'data_files_size_in_mb': cfg.data_files_size_mb,
        'video_files_size_in_mb': cfg.video_files_size_mb,
        'fps': int(fps) if float(fps).is_integer() else fps,
        'splits': {'train': f'0:{len(ds.episodes)}'},
        'data_path': DATA_PATH,
        'video_path': VIDEO_PATH,
        'features': features,
    }
    (out / 'meta' / 'info.json').write_text(json.dumps(info, indent=4) + '\n')
    return out

"""Export a built dataset to the LeRobot v3 layout (``codebase_version`` ``v3.0``).

    <out>/meta/info.json
    <out>/meta/stats.json
    <out>/meta/tasks.parquet
    <out>/meta/episodes/chunk-000/file-000.parquet
    <out>/data/chunk-000/file-000.parquet
    <out>/videos/observation.images.<cam>/chunk-000/file-000.mp4

Written from LeRobot's v3 layout (LeRobot 0.6.1 loads it, every frame with its video decoded, and
``lerobot-edit-dataset`` edits it: ``test_lerobot.py``, in its own environment made by
``make lerobot-env``):

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
- ``stats.json`` (and each episode's ``stats/...``): min, max, mean, std, count and the quantiles
  q01, q10, q50, q90, q99 per feature, as LeRobot 0.6.1 computes them; images per channel as
  ``(3, 1, 1)`` in [0, 1], with count = frames. Ours are exact (LeRobot estimates image stats
  from a sample of frames and quantiles from histograms, and averages episode quantiles).
- Video: H.264 (libx264, the default) or AV1 (libsvtav1) through PyAV, ``yuv420p`` (even
  sizes), frame ``i`` at pts ``i`` in time base ``1/fps``, keyframes at most ``gop`` frames apart
  (LeRobot's default 2: training decodes single frames at random). The encoder settings go into
  ``info.json`` (``video.g``, ``video.crf``, ...): ``lerobot-edit-dataset`` re-encodes what it
  keeps with them, and accepts only h264, hevc and AV1 (the SVT-AV1 of LeRobot 0.6.1's PyAV
  crashes on 16-pixel frames; 32 and up are fine). Lossy: our own format keeps PNG frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
import json
from pathlib import Path
import shutil
import sys
from typing import Any

import av
from av.video.stream import VideoStream
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from vla_core.config import Config, ConfigError, param
from vla_data.dataset.format import (
    ENV_STATE_COLUMN,
    DatasetFormatError,
    EpisodeDataset,
    decode_png,
)

__all__ = ['CODEBASE_VERSION', 'LeRobotConfig', 'export_lerobot']

CODEBASE_VERSION = 'v3.0'
PIX_FMT = 'yuv420p'  # what LeRobot writes and expects of RGB video
_PRESETS = {'libsvtav1': 12}  # LeRobot's (the fastest); x264 keeps its own default
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
    vcodec: str = param(
        'h264', description='video encoder: h264 (libx264) or libsvtav1 (AV1)',
        choices=('h264', 'libsvtav1'),
    )  # fmt: skip
    crf: int = param(
        23, description='video quality: lower is better and larger (h264: up to 51)', range=(0, 63)
    )
    gop: int = param(2, description='frames from one keyframe to the next', range=(1, 1000))

    def validate(self) -> None:
        if self.vcodec == 'h264' and self.crf > 51:
            raise ConfigError('crf', f'h264 takes 0..51, got {self.crf}')


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


QUANTILES = {'q01': 0.01, 'q10': 0.10, 'q50': 0.50, 'q90': 0.90, 'q99': 0.99}  # LeRobot 0.6.1's


def _stats_dict(values: dict[str, Any], count: int, shape: tuple[int, ...]) -> dict[str, Any]:
    d: dict[str, Any] = {
        k: np.asarray(v, dtype=np.float64).reshape(shape).tolist() for k, v in values.items()
    }
    d['count'] = [count]
    return d


class _VectorStats:
    """Exact statistics of the rows of a feature (episodes merge by keeping their rows: a few
    numbers per frame)."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        self.rows.append(x.reshape(len(x), -1))

    def merge(self, other: _VectorStats) -> None:
        self.rows.extend(other.rows)

    def to_dict(self) -> dict[str, Any]:
        x = np.concatenate(self.rows)
        values = {'min': x.min(0), 'max': x.max(0), 'mean': x.mean(0), 'std': x.std(0)}
        values |= {k: np.quantile(x, q, axis=0) for k, q in QUANTILES.items()}
        return _stats_dict(values, len(x), (-1,))


class _ImageStats:
    """Exact per-channel statistics of uint8 RGB frames, scaled to [0, 1], from a 256-bin
    histogram per channel; ``count`` is the number of frames, as in LeRobot."""

    def __init__(self) -> None:
        self.frames = 0
        self.hist = np.zeros((3, 256), dtype=np.int64)

    def add(self, rgb: np.ndarray) -> None:
        for c in range(3):
            self.hist[c] += np.bincount(rgb[..., c].ravel(), minlength=256)
        self.frames += 1

    def merge(self, other: _ImageStats) -> None:
        self.hist += other.hist
        self.frames += other.frames

    def to_dict(self) -> dict[str, Any]:
        levels = np.arange(256) / 255.0
        n = self.hist.sum(1)
        cdf = np.cumsum(self.hist, axis=1)
        mean = self.hist @ levels / n
        values = {
            'min': levels[np.argmax(self.hist > 0, axis=1)],
            'max': levels[255 - np.argmax(self.hist[:, ::-1] > 0, axis=1)],
            'mean': mean,
            'std': np.sqrt(np.maximum(self.hist @ levels**2 / n - mean**2, 0.0)),
        }
        # The smallest level with at least a fraction q of the pixels at or below it.
        values |= {
            k: levels[np.argmax(cdf >= q * n[:, None], axis=1)] for k, q in QUANTILES.items()
        }
        return _stats_dict(values, self.frames, (3, 1, 1))


class _Video:
    """One mp4 of one camera, encoded as the config says; frame i at pts i in time base 1/fps."""

    def __init__(self, path: Path, fps: float, width: int, height: int, cfg: LeRobotConfig):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.frames = 0
        self.bytes = 0  # of the packets muxed so far (the encoder holds some frames back)
        self._rate = Fraction(fps).limit_denominator(1001)
        self._container = av.open(str(path), mode='w')
        options = {'g': str(cfg.gop), 'crf': str(cfg.crf)}
        if cfg.vcodec in _PRESETS:
            options['preset'] = str(_PRESETS[cfg.vcodec])
        stream = self._container.add_stream(cfg.vcodec, rate=self._rate, options=options)
        assert isinstance(stream, VideoStream)
        self._stream = stream
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, PIX_FMT
        self._stream.time_base = 1 / self._rate

    def write(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
        frame.pts, frame.time_base = self.frames, 1 / self._rate
        self._mux(self._stream.encode(frame))
        self.frames += 1

    def _mux(self, packets: list[av.Packet]) -> None:
        self._container.mux(packets)
        self.bytes += sum(p.size for p in packets)

    def close(self) -> None:
        self._mux(self._stream.encode(None))
        self._container.close()


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
    cams = ds.camera_names
    shapes = {c: ds.info['cameras'][c]['shape'] for c in cams}
    for c in cams:
        h, w = shapes[c][0], shapes[c][1]
        if h % 2 or w % 2:
            raise DatasetFormatError(
                f'{dataset_root}: camera {c} is {w}x{h}; {PIX_FMT} video needs even sizes'
            )
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / 'meta').mkdir(parents=True)
    fps = ds.fps
    tasks: dict[str, int] = {}
    for e in ds.episodes:
        tasks.setdefault(e.instruction or e.task or 'unspecified', len(tasks))
    video_keys = {c: f'observation.images.{c}' for c in cams}
    data_files = _Files(cfg.chunks_size)
    video_files = {c: _Files(cfg.chunks_size) for c in cams}
    videos: dict[str, _Video] = {}  # the open file of each camera
    pending: list[pa.Table] = []
    pending_bytes = 0
    episode_rows: list[dict[str, Any]] = []
    vector_totals: dict[str, _VectorStats] = {}
    image_totals: dict[str, _ImageStats] = {}
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
        videos[c] = _Video(path, fps, shapes[c][1], shapes[c][0], cfg)

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
        ep_vectors: dict[str, _VectorStats] = {}
        ep_images: dict[str, _ImageStats] = {}
        for k, v in columns.items():
            ep_vectors[k] = _VectorStats()
            ep_vectors[k].add(v)
        for c in cams:
            if c not in videos:
                open_video(c)
            video, st = videos[c], _ImageStats()
            first = video.frames
            for png in a['images'][c]:
                rgb = decode_png(png)
                video.write(rgb)
                st.add(rgb)
            key = video_keys[c]
            f = video_files[c]
            row[f'videos/{key}/chunk_index'] = f.chunk
            row[f'videos/{key}/file_index'] = f.file
            row[f'videos/{key}/from_timestamp'] = first / fps
            row[f'videos/{key}/to_timestamp'] = video.frames / fps
            ep_images[key] = st
        row['meta/episodes/chunk_index'] = 0
        row['meta/episodes/file_index'] = 0
        ep_stats: dict[str, _VectorStats | _ImageStats] = {**ep_vectors, **ep_images}
        for k, feature_stats in ep_stats.items():
            for name, value in feature_stats.to_dict().items():
                row[f'stats/{k}/{name}'] = value
        for k, vector_stats in ep_vectors.items():
            vector_totals.setdefault(k, _VectorStats()).merge(vector_stats)
        for k, image_stats in ep_images.items():
            image_totals.setdefault(k, _ImageStats()).merge(image_stats)
        episode_rows.append(row)
        index += n
        # The data file's row range is fixed before rollover, so append first, then roll.
        pending.append(table)
        pending_bytes += table.nbytes
        if pending_bytes >= cfg.data_files_size_mb * 1e6:
            flush_data()
        for c in cams:
            if videos[c].bytes >= cfg.video_files_size_mb * 1e6:
                videos.pop(c).close()
                video_files[c].next()
    bar.close()
    flush_data()
    for video in videos.values():
        video.close()
    ep_path = out / EPISODES_PATH.format(chunk_index=0, file_index=0)
    ep_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), ep_path)
    task_table = pa.table(
        {'task_index': pa.array(list(tasks.values()), pa.int64()), 'task': list(tasks)}
    ).replace_schema_metadata(_pandas_index_metadata('task', 'task_index'))
    pq.write_table(task_table, out / 'meta' / 'tasks.parquet')
    totals: dict[str, _VectorStats | _ImageStats] = {**vector_totals, **image_totals}
    stats = {k: st.to_dict() for k, st in totals.items()}
    (out / 'meta' / 'stats.json').write_text(json.dumps(stats, indent=2) + '\n')
    robots = sorted({e.robot for e in ds.episodes if e.robot})
    info_fps = int(fps) if float(fps).is_integer() else fps  # LeRobot's fps is an int
    features: dict[str, Any] = {}
    for c in cams:
        h, w, ch = shapes[c]
        features[video_keys[c]] = {
            'dtype': 'video',
            'shape': [h, w, ch],
            'names': ['height', 'width', 'channels'],
            'info': {  # as LeRobot's get_video_info writes it, with the encoder settings
                'video.height': h,
                'video.width': w,
                'video.codec': av.codec.Codec(cfg.vcodec, 'w').canonical_name,  # h264 / av1
                'video.pix_fmt': PIX_FMT,
                'video.fps': info_fps,
                'video.channels': ch,
                'has_audio': False,
                'video.g': cfg.gop,
                'video.crf': cfg.crf,
                'video.preset': _PRESETS.get(cfg.vcodec),
                'video.fast_decode': 0,
                'video.video_backend': 'pyav',
                'video.extra_options': {},
                'is_depth_map': False,
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
        'fps': info_fps,
        'splits': {'train': f'0:{len(ds.episodes)}'},
        'data_path': DATA_PATH,
        'video_path': VIDEO_PATH,
        'features': features,
    }
    (out / 'meta' / 'info.json').write_text(json.dumps(info, indent=4) + '\n')
    return out

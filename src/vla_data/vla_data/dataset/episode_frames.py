"""One episode bag on the control-rate grid: its frame table and its sync report.

Every stream is put on one grid ``anchor + k / rate`` by its header stamps (``vla_core.alignment``):
images as the nearest frame, the state (and JointState actions) interpolated or nearest, chunk
actions looked up by time in the chunk in force. The report records per topic the skew of the
samples used, duplicates, regressions, gaps and drops; an episode whose layout differs from the
first one written (cameras, joints, action source) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from vla_core.alignment import NS, align_streams, chunk_lookup, interpolate
from vla_core.episodes import parse_episode_dir_name
from vla_data.dataset.bag_reader import EpisodeBag, image_to_rgb
from vla_data.dataset.format import encode_png, frame_columns

if TYPE_CHECKING:
    from vla_data.dataset.build import BuildConfig

__all__ = ['EpisodeSchema', 'align_episode', 'camera_key', 'episode_report', 'schema_diff']


def camera_key(topic: str) -> str:
    """'/camera/scene_camera/image_raw' -> 'scene_camera'; '/cam' -> 'cam'."""
    parts = [p for p in topic.split('/') if p]
    if len(parts) >= 2 and parts[-1] in ('image_raw', 'image', 'image_rect', 'image_color'):
        parts = parts[:-1]
    return ''.join(c if c.isalnum() or c == '_' else '_' for c in parts[-1]) if parts else 'camera'


@dataclass
class EpisodeSchema:
    """What every episode must agree on (fixed by the first one written)."""

    cameras: dict[str, dict[str, Any]]
    state: dict[str, Any]
    action: dict[str, Any]


def episode_report(bag: EpisodeBag, index: int | None) -> dict[str, Any]:
    meta = bag.meta
    drops = {t: v.get('drops', {}) for t, v in (meta.get('topics') or {}).items()}
    return {
        'bag': str(bag.path),
        'source_index': meta.get('index', parse_episode_dir_name(bag.path.name)),
        'episode_index': index,
        'status': meta.get('status', 'saved'),
        'success': meta.get('success'),
        'ok': False,
        'included': False,
        'frames': 0,
        'violations': [],
        'recorder_drops': {t: d for t, d in drops.items() if any(d.get(k) for k in _DROP_KEYS)},
    }


_DROP_KEYS = ('stamp_gaps', 'missing_estimate', 'sequence_gaps', 'stale', 'queue_overflows')


def align_episode(
    bag: EpisodeBag,
    cfg: BuildConfig,
    schema: EpisodeSchema | None,
    report: dict[str, Any],
) -> tuple[pa.Table | None, EpisodeSchema | None]:
    """Align one episode; its frame table, or None with violations in ``report``."""
    a = cfg.alignment
    cams = {camera_key(t): t for t in sorted(bag.images)}
    problems = report['violations']
    if len(cams) != len(bag.images):
        problems.append(f'camera topics {sorted(bag.images)} map to the same key')
    missing = [t for t in bag.images if t not in bag.topics]
    if cfg.state_topic not in bag.joints:
        missing.append(cfg.state_topic)
    action_topic = next((t for t in cfg.action_topics if t in bag.joints or t in bag.chunks), '')
    if not action_topic:
        missing.append(' or '.join(cfg.action_topics))
    if missing:
        problems.append(f'topics missing from the bag: {missing}')
        return None, schema
    if not cams:
        problems.append('no camera (sensor_msgs/Image) topic in the bag')
        return None, schema
    state = bag.joints[cfg.state_topic]
    is_chunk = action_topic in bag.chunks
    act_names = bag.chunks[action_topic].names if is_chunk else bag.joints[action_topic].names
    stamps: dict[str, np.ndarray] = {t: np.array(bag.images[t].stamps_ns) for t in cams.values()}
    stamps[cfg.state_topic] = np.array(state.stamps_ns, dtype=np.int64)
    chunks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    sequences: dict[str, np.ndarray] = {}
    if is_chunk:
        c = bag.chunks[action_topic]
        stamps[action_topic] = np.array(c.stamps_ns, dtype=np.int64)
        chunks[action_topic] = (np.array(c.step_dt), np.array([len(x) for x in c.targets]))
        sequences[action_topic] = np.array(c.sequence, dtype=np.int64)
    else:
        stamps[action_topic] = np.array(bag.joints[action_topic].stamps_ns, dtype=np.int64)
    empty = [t for t, s in stamps.items() if s.size == 0]
    if empty:
        problems.append(f'no messages on {empty}')
        return None, schema
    result = align_streams(stamps, a, sequences=sequences, chunks=chunks)
    grid = result.grid_ns
    report.update(
        frames=int(grid.size),
        rate_hz=a.rate,
        max_skew_bound_s=a.max_skew,
        window_ns=[int(grid[0]), int(grid[-1])] if grid.size else [],
        duration_s=float((grid[-1] - grid[0]) / NS) if grid.size else 0.0,
        trimmed_start_s=result.trimmed_start_s,
        trimmed_end_s=result.trimmed_end_s,
        max_cross_skew_s=result.max_cross_skew_s,
        cross_skew_pair=list(result.cross_skew_pair),
        action_topic=action_topic,
        streams={t: s.to_dict() for t, s in result.streams.items()},
    )
    problems.extend(v.message for v in result.violations)
    if problems:
        return None, schema
    # Values on the grid.
    st = np.asarray(stamps[cfg.state_topic])
    s_keep = np.argsort(st, kind='stable')
    if cfg.interpolate:
        s_sorted = st[s_keep]
        uniq = np.ones(s_sorted.size, dtype=bool)
        uniq[1:] = s_sorted[1:] != s_sorted[:-1]
        state_vals = interpolate(s_sorted[uniq], state.values()[s_keep][uniq], grid)
    else:
        state_vals = state.values()[result.indices[cfg.state_topic]]
    if cfg.state_joints:
        idx = {n: i for i, n in enumerate(state.names)}
        absent = [n for n in cfg.state_joints if n not in idx]
        if absent:
            problems.append(f'{cfg.state_topic}: joints {absent} not in {list(state.names)}')
            return None, schema
        state_vals = state_vals[:, [idx[n] for n in cfg.state_joints]]
        state_names = tuple(cfg.state_joints)
    else:
        state_names = state.names
    if is_chunk:
        c = bag.chunks[action_topic]
        order = np.argsort(stamps[action_topic], kind='stable')
        cs = stamps[action_topic][order]
        uniq = np.ones(cs.size, dtype=bool)
        uniq[1:] = cs[1:] != cs[:-1]
        order = order[uniq]
        k, row, _ = chunk_lookup(
            cs[uniq], chunks[action_topic][0][order], chunks[action_topic][1][order], grid
        )
        action_vals = np.empty((grid.size, len(act_names)))
        for g, (ci, r) in enumerate(zip(order[k], row, strict=True)):
            tg = c.targets[ci]
            lo = int(np.floor(r))
            hi = min(lo + 1, tg.shape[0] - 1)
            action_vals[g] = tg[lo] + (r - lo) * (tg[hi] - tg[lo])
    else:
        j = bag.joints[action_topic]
        at = np.asarray(stamps[action_topic])
        if cfg.interpolate:
            a_keep = np.argsort(at, kind='stable')
            a_sorted = at[a_keep]
            uniq = np.ones(a_sorted.size, dtype=bool)
            uniq[1:] = a_sorted[1:] != a_sorted[:-1]
            action_vals = interpolate(a_sorted[uniq], j.values()[a_keep][uniq], grid)
        else:
            action_vals = j.values()[result.indices[action_topic]]
    cam_info: dict[str, dict[str, Any]] = {}
    images: dict[str, list[bytes]] = {}
    for key, topic in cams.items():
        msgs = bag.images[topic].msgs
        encoded: dict[int, bytes] = {}
        shape: tuple[int, ...] = ()
        for i in result.indices[topic]:
            if int(i) not in encoded:
                rgb = image_to_rgb(msgs[int(i)])
                if shape and rgb.shape != shape:
                    problems.append(f'{topic}: image size changes from {shape} to {rgb.shape}')
                    return None, schema
                shape = rgb.shape
                encoded[int(i)] = encode_png(rgb)
        images[key] = [encoded[int(i)] for i in result.indices[topic]]
        cam_info[key] = {'topic': topic, 'shape': list(shape)}
    keys = {'state': cfg.state_topic, 'action': action_topic, **cams}
    columns = frame_columns(
        grid, a.rate, state_vals, action_vals, images,
        {key: grid + result.skew_ns[topic] for key, topic in keys.items()},
    )  # fmt: skip
    this = EpisodeSchema(
        cameras=cam_info,
        state={'topic': cfg.state_topic, 'field': state.value_field, 'names': list(state_names)},
        action={
            'topic': action_topic,
            'type': bag.topics[action_topic],
            'field': 'targets' if is_chunk else bag.joints[action_topic].value_field,
            'names': list(act_names),
        },
    )
    if schema is not None and this != schema:
        problems.append(schema_diff(schema, this))
        return None, schema
    report['ok'] = True
    return pa.table(columns), this


def schema_diff(first: EpisodeSchema, this: EpisodeSchema) -> str:
    for name in ('cameras', 'state', 'action'):
        if getattr(first, name) != getattr(this, name):
            return (
                f'{name} differ from the first episode: {getattr(this, name)} vs '
                f'{getattr(first, name)}'
            )
    return 'differs from the first episode'

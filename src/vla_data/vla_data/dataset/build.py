"""Episode bags -> a training dataset aligned at the control rate on header stamps.

    vla dataset <bags_root> <out_dir> [--rate 10] [--max-skew 0.05]
        [--lerobot] [--config config/dataset.yaml] [--skip-failing] [--overwrite]

Bags are the source of truth; the dataset is derived and rebuilt from them. Every stream is put on
one grid ``anchor + k / rate`` by its header stamps (``vla_core.alignment``), and every episode
gets a sync report: per topic the skew of the samples used (max, mean), duplicated stamps,
regressions, gaps and dropped messages, frames reused on the grid; the largest cross-stream skew;
the recorder's own drop counts. An episode whose skew exceeds ``max_skew`` (a stale or frozen
camera, ...) fails the build with a message naming the topic and the skew (exit status 2, only
``sync_report.json`` is written) unless ``--skip-failing`` leaves it out. Episodes still marked
``recording`` must be recovered first (``vla recover``); recovered ones (``interrupted``) are
included as configured and keep their status.

The dataset is written to ``<out_dir>.partial`` and renamed when complete. With ``--lerobot`` it
is also exported to the LeRobot v3 layout in ``<out_dir>/lerobot``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
import hashlib
import json
from pathlib import Path
import sys
from typing import Any

from tqdm import tqdm
import yaml

from vla_core.alignment import AlignmentConfig
from vla_core.cli import cli_main
from vla_core.config import Config, ConfigError, config_from_dict, config_to_flat, param
from vla_core.episodes import parse_episode_dir_name
from vla_data.dataset.bag_reader import BagReadError, read_episode
from vla_data.dataset.episode_frames import (
    EpisodeSchema,
    align_episode,
    camera_key,
    episode_report,
)
from vla_data.dataset.format import DatasetWriter
from vla_data.dataset.lerobot import LeRobotConfig, export_lerobot

__all__ = [
    'BuildConfig',
    'BuildResult',
    'DatasetBuildError',
    'build_dataset',
    'camera_key',
    'find_bags',
    'format_report',
    'main',
]


@dataclass(frozen=True, kw_only=True)
class BuildConfig(Config):
    alignment: AlignmentConfig = param(
        default_factory=AlignmentConfig, description='grid rate, skew bound, gap detection'
    )
    cameras: tuple[str, ...] = param(
        (), description='image topics to include (empty: every sensor_msgs/Image topic)'
    )
    state_topic: str = param('/joint_states', description='sensor_msgs/JointState of the robot')
    state_joints: tuple[str, ...] = param(
        (), description="joints of observation.state, in order (empty: the first message's)"
    )
    action_topics: tuple[str, ...] = param(
        ('/expert/action_chunk', '/joint_commands'),
        description='action source, the first present in a bag: an ActionChunk topic (the '
        "expert's target for each tick) or a JointState command topic",
    )
    interpolate: bool = param(
        True, description='state and JointState actions interpolated at the tick (else nearest)'
    )
    statuses: tuple[str, ...] = param(
        ('saved', 'interrupted'), description='episode statuses to include (episode.json)'
    )
    success_only: bool = param(False, description='only episodes labelled successful')
    skip_failing: bool = param(
        False, description='leave out episodes that fail the sync checks instead of failing'
    )
    lerobot: LeRobotConfig = param(default_factory=LeRobotConfig, description='LeRobot v3 export')


class DatasetBuildError(RuntimeError):
    """The build was refused; ``reports`` holds every episode's sync report."""

    def __init__(self, message: str, reports: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.reports = reports or []


@dataclass
class BuildResult:
    out_dir: Path
    reports: list[dict[str, Any]]
    episodes: int
    frames: int
    lerobot_dir: Path | None = None
    excluded: list[str] = field(default_factory=list)


def find_bags(root: Path) -> list[Path]:
    """Episode bag directories under ``root`` sorted by index (``discarded/`` is not looked in);
    ``root`` itself when it is one bag."""
    root = Path(root)
    if (root / 'metadata.yaml').is_file():
        return [root]
    found = []
    for entry in root.iterdir() if root.is_dir() else ():
        index = parse_episode_dir_name(entry.name)
        if index is not None and entry.is_dir():
            found.append((index, entry))
    return [p for _, p in sorted(found)]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _seed(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and value >= 0 else None


def build_dataset(
    bags_root: Path,
    out_dir: Path,
    cfg: BuildConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build the dataset of every episode bag under ``bags_root`` into ``out_dir``.

    Raises :class:`DatasetBuildError` (with every episode's report; ``out_dir`` then holds only
    ``sync_report.json``) when an episode fails its sync checks and ``skip_failing`` is off, or
    when no episode remains.
    """
    cfg = cfg or BuildConfig()
    log = log or (lambda _s: None)
    bags_root, out_dir = Path(bags_root).expanduser(), Path(out_dir).expanduser()
    bags = find_bags(bags_root)
    if not bags:
        raise DatasetBuildError(f'{bags_root}: no episode bags (episode_NNNNNN/ directories)')
    if out_dir.exists() and any(out_dir.iterdir()):
        only_report = [p.name for p in out_dir.iterdir()] == ['sync_report.json']
        if not (overwrite or only_report):
            raise DatasetBuildError(f'{out_dir} exists and is not empty (use --overwrite)')
    writer = DatasetWriter(out_dir)
    joint_names: dict[str, tuple[str, ...]] = {}
    reports: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    excluded: list[str] = []
    schema: EpisodeSchema | None = None
    failed = False
    bar = tqdm(bags, desc='episodes', unit='ep', disable=not progress, file=sys.stderr)
    try:
        for path in bar:
            bar.set_postfix_str(path.name)
            try:
                bag = read_episode(
                    path,
                    cfg.cameras or None,
                    [cfg.state_topic, *cfg.action_topics],
                    cfg.action_topics,
                    joint_names,
                )
            except BagReadError as err:
                reports.append({'bag': str(path), 'ok': False, 'violations': [str(err)]})
                failed = True
                continue
            report = episode_report(bag, None)
            reports.append(report)
            status, success = report['status'], report['success']
            if status not in cfg.statuses or (cfg.success_only and success is not True):
                report['skipped'] = f'status {status!r}, success {success!r} not selected'
                report['ok'] = True
                continue
            table, schema = align_episode(bag, cfg, schema, report)
            if table is None:
                failed = True
                excluded.append(path.name)
                continue
            meta = bag.meta
            instruction = str(meta.get('instruction') or bag.instruction_topic or '')
            index = writer.add_episode(
                table,
                {
                    'source_index': int(report['source_index'] or 0),
                    'bag': str(path),
                    'instruction': instruction,
                    'task': str(meta.get('task') or ''),
                    'success': success if isinstance(success, bool) else None,
                    'status': status,
                    'start_ns': int(report['window_ns'][0]),
                    'robot': str(meta.get('robot') or ''),
                    'operator': str(meta.get('operator') or ''),
                    'seed': _seed(meta.get('seed')),
                    'max_cross_skew_s': float(report['max_cross_skew_s']),
                },
            )
            report['episode_index'] = index
            report['included'] = True
            mcaps = sorted(path.glob('*.mcap'))
            sources.append(
                {'episode_index': index, 'bag': str(path), 'mcap': [m.name for m in mcaps],
                 'sha256': [_sha256(m) for m in mcaps]}
            )  # fmt: skip
            # Later episodes read their joints in the first one's column order.
            joint_names[cfg.state_topic] = bag.joints[cfg.state_topic].names
            if schema is not None:
                joint_names[schema.action['topic']] = tuple(schema.action['names'])
    finally:
        bar.close()
    for r in reports:
        log(format_report(r))
    report_doc = {
        'ok': not failed,
        'config': config_to_flat(cfg),
        'episodes': reports,
    }
    if (failed and not cfg.skip_failing) or not writer.episodes or schema is None:
        writer.abort()
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / 'sync_report.json').write_text(json.dumps(report_doc, indent=2) + '\n')
        bad = [
            f'  {Path(r["bag"]).name}: ' + '; '.join(r['violations'])
            for r in reports
            if r.get('violations')
        ]
        reason = 'episodes failed the sync checks' if bad else 'no episode selected'
        raise DatasetBuildError(
            f'dataset not built, {reason} (report: {out_dir / "sync_report.json"}):\n'
            + '\n'.join(bad),
            reports,
        )
    info = {
        'fps': cfg.alignment.rate,
        'cameras': schema.cameras,
        'state': schema.state,
        'action': schema.action,
        'alignment': 'header stamps on a uniform grid; images nearest frame, state '
        + ('interpolated' if cfg.interpolate else 'nearest message')
        + '; see vla_core.alignment',
        'build_config': config_to_flat(cfg),
        'sources': sources,
    }
    writer.finish(info, report_doc)
    lerobot_dir = None
    if cfg.lerobot.enabled:
        lerobot_dir = out_dir / 'lerobot'
        export_lerobot(out_dir, lerobot_dir, cfg.lerobot, progress=progress)
    return BuildResult(out_dir, reports, len(writer.episodes), writer.frames, lerobot_dir, excluded)


def format_report(r: dict[str, Any]) -> str:
    """One episode's sync report as a few lines for the terminal."""
    name = Path(r.get('bag', '?')).name
    if r.get('skipped'):
        return f'{name}: skipped ({r["skipped"]})'
    head = (
        f'{name}: {"OK" if r.get("ok") else "FAILED"} status={r.get("status", "?")} '
        f'frames={r.get("frames", 0)}'
    )
    if 'max_cross_skew_s' in r:
        a, b = r.get('cross_skew_pair', ['', ''])
        head += f' max cross-stream skew {r["max_cross_skew_s"] * 1e3:.1f} ms ({a} vs {b})'
    lines = [head]
    for topic, s in (r.get('streams') or {}).items():
        lines.append(
            f'  {topic:<36} {s["rate_hz"]:6.1f} Hz  skew max {s["max_skew_s"] * 1e3:6.1f} ms '
            f'mean {s["mean_abs_skew_s"] * 1e3:5.1f} ms  dup {s["duplicates"]} '
            f'dropped {s["dropped"]} gaps {s["gaps"]} reordered {s["regressions"]} '
            f'reused {s["reused"]}'
        )
    for topic, d in (r.get('recorder_drops') or {}).items():
        lines.append(f'  recorder {topic}: {d}')
    lines.extend(f'  ! {v}' for v in r.get('violations', []))
    return '\n'.join(lines)


def load_config(path: Path | None) -> BuildConfig:
    """``config/dataset.yaml`` (its ``build_dataset`` section, or the whole file)."""
    if path is None:
        return BuildConfig()
    data = yaml.safe_load(Path(path).read_text()) or {}
    data = data.get('build_dataset', data)
    return config_from_dict(BuildConfig, data)


@cli_main('vla dataset')
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='vla dataset', description=(__doc__ or '').splitlines()[0]
    )
    parser.add_argument('bags_root', type=Path, help='recorder output_dir, or one episode bag')
    parser.add_argument('out_dir', type=Path, help='dataset directory to create')
    parser.add_argument('--config', type=Path, help='YAML (config/dataset.yaml)')
    parser.add_argument('--rate', type=float, help='control-rate grid [Hz]')
    parser.add_argument('--max-skew', type=float, help='skew bound [s]')
    parser.add_argument('--lerobot', action='store_true', help='also export LeRobot v3')
    parser.add_argument('--skip-failing', action='store_true', help='leave out failing episodes')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing out_dir')
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
        align = {}
        if args.rate is not None:
            align['rate'] = args.rate
        if args.max_skew is not None:
            align['max_skew'] = args.max_skew
        if align:
            cfg = cfg.replace(alignment=cfg.alignment.replace(**align))
        if args.lerobot:
            cfg = cfg.replace(lerobot=cfg.lerobot.replace(enabled=True))
        if args.skip_failing:
            cfg = cfg.replace(skip_failing=True)
    except (ConfigError, OSError, yaml.YAMLError) as err:
        print(f'vla dataset: {err}', file=sys.stderr)
        return 2
    try:
        result = build_dataset(
            args.bags_root,
            args.out_dir,
            cfg,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            log=print,
        )
    except DatasetBuildError as err:
        print(f'vla dataset: {err}', file=sys.stderr)
        return 2
    print(
        f'dataset: {result.out_dir} ({result.episodes} episodes, {result.frames} frames at '
        f'{cfg.alignment.rate:g} Hz); sync report: {result.out_dir / "sync_report.json"}'
        + (f'; LeRobot v3: {result.lerobot_dir}' if result.lerobot_dir else '')
        + (f'; left out: {result.excluded}' if result.excluded else '')
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())

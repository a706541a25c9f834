"""The episode directory: which indices exist, discarding, and recovery after a crash."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
import shutil
from typing import Any

from vla_core.episodes import IndexAllocator, episode_dir_name, parse_episode_dir_name
from vla_data.bag import BagError, recover_bag, write_json_atomic

__all__ = ['EpisodeStore']

EPISODE_FILE = 'episode.json'


class EpisodeStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, index: int) -> Path:
        return self.root / episode_dir_name(index)

    def indices(self) -> list[int]:
        found = []
        for entry in self.root.iterdir() if self.root.is_dir() else ():
            index = parse_episode_dir_name(entry.name)
            if index is not None and entry.is_dir():
                found.append(index)
        return sorted(found)

    def allocator(self) -> IndexAllocator:
        return IndexAllocator(self.indices())

    def read(self, index: int) -> dict[str, Any]:
        return json.loads((self.path(index) / EPISODE_FILE).read_text())

    def discard(self, index: int, keep: bool) -> Path | None:
        """Remove episode ``index`` from the numbered sequence (its index becomes free)."""
        src = self.path(index)
        if not keep:
            shutil.rmtree(src)
            return None
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')
        dst = self.root / 'discarded' / f'{src.name}-{stamp}'
        dst.parent.mkdir(exist_ok=True)
        src.rename(dst)
        return dst

    def recover_all(self) -> list[str]:
        """Recover every episode a killed recorder left in 'recording' state; returns reports.

        A directory without a single complete MCAP record (killed while creating it) holds no
        data: it is removed so its index is reused.
        """
        reports = []
        for index in self.indices():
            directory = self.path(index)
            meta_file = directory / EPISODE_FILE
            try:
                meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
            except json.JSONDecodeError:
                meta = {}
            if meta.get('status') not in (None, 'recording'):
                continue
            mcaps = list(directory.glob('*.mcap'))
            if not mcaps or mcaps[0].stat().st_size < 8:
                shutil.rmtree(directory)
                reports.append(f'{directory}: empty, removed (index {index} is free again)')
                continue
            try:
                report = recover_bag(directory, {'status': 'interrupted'})
            except BagError as err:
                reports.append(f'{directory}: NOT recoverable: {err}')
                continue
            meta.setdefault('index', index)
            meta['status'] = 'interrupted'
            meta['end_reason'] = 'recorder_killed'
            meta['stop_ns'] = report.end_ns or meta.get('start_ns')
            meta.setdefault('bag', {})['messages'] = report.message_count
            meta['recovery'] = str(report)
            write_json_atomic(meta_file, meta)
            reports.append(str(report))
        return reports

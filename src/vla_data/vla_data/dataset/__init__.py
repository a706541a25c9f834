"""Training datasets derived from episode bags: alignment at the control rate on header stamps,
per-episode sync reports, our format (:mod:`.format`) with its loader, and a LeRobot v3 export.

    from vla_data.dataset import EpisodeDataset, build_dataset
    build_dataset('~/vla_episodes', 'datasets/push_red')          # or: vla dataset
    ds = EpisodeDataset('datasets/push_red', horizon=10)
    sample = ds[0]   # images {cam: (H, W, 3) uint8}, state (D,), action (10, A), instruction, ...
"""

from typing import Any

from vla_data.dataset.format import DatasetFormatError, EpisodeDataset, EpisodeInfo
from vla_data.dataset.lerobot import LeRobotConfig, export_lerobot

_BUILD = ('BuildConfig', 'BuildResult', 'DatasetBuildError', 'build_dataset', 'load_config')


def __getattr__(name: str) -> Any:
    # Lazy, so that `python -m vla_data.dataset.build` does not import the module twice.
    if name in _BUILD:
        from vla_data.dataset import build

        return getattr(build, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = [
    'BuildConfig',
    'BuildResult',
    'DatasetBuildError',
    'DatasetFormatError',
    'EpisodeDataset',
    'EpisodeInfo',
    'LeRobotConfig',
    'build_dataset',
    'export_lerobot',
    'load_config',
]

"""Make episodes left by a killed recorder readable (the recorder also does this at start).

    vla recover ~/vla_episodes                     # every interrupted episode
    vla recover ~/vla_episodes/episode_000012      # one bag

Like ``ros2 bag reindex``: the MCAP is rewritten from its complete records (the torn tail after
the last flush is dropped), metadata.yaml is rebuilt from what the file holds, and episode.json
is marked ``interrupted``. A complete bag is left as it is; ``--force`` (one bag directory)
rewrites it all the same, for a metadata.yaml that no longer matches its MCAP.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
import sys

from vla_core.cli import cli_main
from vla_core.episodes import parse_episode_dir_name
from vla_data.bag import BagError, recover_bag
from vla_data.episodes_store import EpisodeStore

__all__ = ['main']


@cli_main('vla recover')
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='vla recover', description=__doc__.splitlines()[0])
    parser.add_argument('path', type=Path, help='the output_dir, or one bag directory')
    parser.add_argument(
        '--force', action='store_true', help='rewrite one bag even if it looks complete'
    )
    args = parser.parse_args(argv)
    path: Path = args.path.expanduser()
    if not path.is_dir():
        print(f'vla recover: {path} is not a directory', file=sys.stderr)
        return 2
    if (path / 'metadata.yaml').exists() or parse_episode_dir_name(path.name) is not None:
        try:
            print(recover_bag(path, force=args.force))
        except BagError as err:
            print(f'vla recover: {err}', file=sys.stderr)
            return 1
        return 0
    if args.force:
        print(f'recover_episodes: --force takes one bag directory, not {path}', file=sys.stderr)
        return 2
    reports = EpisodeStore(path).recover_all()
    for line in reports:
        print(line)
    if not reports:
        print(f'{path}: nothing to recover')
    return 1 if any('NOT recoverable' in r for r in reports) else 0


if __name__ == '__main__':
    sys.exit(main())

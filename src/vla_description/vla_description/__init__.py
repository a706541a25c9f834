"""Robot description of the VLA suite's tabletop arm (see :mod:`vla_description.arm`)."""

from __future__ import annotations

from pathlib import Path

__all__ = ['ROBOTS', 'urdf_path']

ROBOTS = ('vla_arm', 'vla_tabletop')


def urdf_path(robot: str = 'vla_arm') -> Path:
    """The installed ``share/vla_description/urdf/<robot>.urdf``, else the source tree's."""
    if robot not in ROBOTS:
        raise ValueError(f'unknown robot {robot!r}; known: {list(ROBOTS)}')
    try:
        from ament_index_python.packages import get_package_share_directory

        path = Path(get_package_share_directory('vla_description')) / 'urdf' / f'{robot}.urdf'
        if path.is_file():
            return path
    except (ImportError, LookupError, OSError):  # no ament index, or this package not in it
        pass
    return Path(__file__).resolve().parent.parent / 'urdf' / f'{robot}.urdf'

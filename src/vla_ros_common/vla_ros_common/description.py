"""Robot descriptions by reference: ``package://<pkg>/<path>`` (the ROS convention), ``file://`` or
a plain path, resolved against the ament index like robot_state_publisher's launch files do."""

from __future__ import annotations

from pathlib import Path

from vla_core.config import ConfigError

__all__ = ['load_robot_description', 'resolve_uri']


def resolve_uri(uri: str) -> Path:
    """The file ``uri`` names; ConfigError (one line) when its package or file is missing."""
    if uri.startswith('package://'):
        package, _, rest = uri.removeprefix('package://').partition('/')
        try:
            from ament_index_python.packages import get_package_share_directory

            path = Path(get_package_share_directory(package)) / rest
        except (ImportError, LookupError, OSError):
            raise ConfigError('urdf_file', f"package '{package}' not installed ({uri})") from None
    else:
        path = Path(uri.removeprefix('file://')).expanduser()
    if not path.is_file():
        raise ConfigError('urdf_file', f'no such file: {path}')
    return path


def load_robot_description(urdf_file: str, robot_description: str = '') -> str:
    """The URDF text: ``robot_description`` if given (robot_state_publisher's parameter), else the
    file ``urdf_file`` names."""
    if robot_description.strip():
        return robot_description
    if not urdf_file:
        raise ConfigError('urdf_file', 'give a URDF file or the robot_description text')
    return resolve_uri(urdf_file).read_text()

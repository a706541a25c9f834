"""``package://<package>/<path>`` (the URL form of camera_info_manager and robot descriptions): a
file shipped in an installed package's share directory, wherever the workspace lives."""

from __future__ import annotations

__all__ = ['resolve_package_url']


def resolve_package_url(url: str) -> str:
    """The file path of a ``package://`` URL; any other string unchanged. FileNotFoundError
    names the package when it is not installed."""
    if not url.startswith('package://'):
        return url
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    package, _, rest = url[len('package://') :].partition('/')
    try:
        share = get_package_share_directory(package)
    except (PackageNotFoundError, ValueError):
        raise FileNotFoundError(f"{url}: package '{package}' is not installed") from None
    return f'{share}/{rest}'

"""The ``ros2msg`` schema text of a message type, as rosbag2 writes it into an MCAP bag.

Read from the ``.msg`` files that the message packages install (found through the ament index),
so no message package is imported: the recorder can describe any topic type it subscribes to.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import re

from vla_data.bag import BagError

__all__ = ['message_definition']

_SEPARATOR = '=' * 80
_PRIMITIVES = {
    'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32',
    'uint32', 'int64', 'uint64', 'string', 'wstring',
}  # fmt: skip


def _msg_file(package: str, name: str) -> Path:
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        share = Path(get_package_share_directory(package))
    except PackageNotFoundError:
        raise BagError(f"message package '{package}' is not installed") from None
    path = share / 'msg' / f'{name}.msg'
    if not path.is_file():
        raise BagError(f'no message definition {path}')
    return path


def _field_types(text: str, package: str) -> Iterator[str]:
    """The non-primitive field types of a .msg text as ``pkg/Type``."""
    for raw in text.splitlines():
        line = raw.split('#', 1)[0].strip()
        if not line:
            continue
        type_token, _, rest = line.partition(' ')
        if '=' in rest.split(None, 1)[0] if rest.strip() else False:
            continue  # a constant ("uint8 FOO=1"): always a primitive
        base = re.sub(r'\[.*\]$', '', type_token)
        base = re.sub(r'<=\d+$', '', base)
        if base in _PRIMITIVES:
            continue
        if base == 'Header':
            yield 'std_msgs/Header'
        elif '/' in base:
            parts = base.split('/')
            yield f'{parts[0]}/{parts[-1]}'
        else:
            yield f'{package}/{base}'


def message_definition(type_name: str) -> str:
    """The ``ros2msg`` schema text of ``pkg/msg/Type``: its .msg file followed by every
    dependency's, each after a line of 80 '=' and ``MSG: pkg/Type`` (as rosbag2 writes it)."""
    parts = type_name.split('/')
    if len(parts) != 3 or parts[1] != 'msg':
        raise BagError(f"message type '{type_name}' is not of the form pkg/msg/Type")
    package, _, name = parts
    root = _msg_file(package, name).read_text()
    seen = {f'{package}/{name}'}
    order: list[tuple[str, str]] = []
    stack = list(reversed(list(_field_types(root, package))))
    while stack:
        dep = stack.pop()
        if dep in seen:
            continue
        seen.add(dep)
        dep_pkg, dep_name = dep.split('/')
        text = _msg_file(dep_pkg, dep_name).read_text()
        order.append((dep, text))
        stack.extend(reversed(list(_field_types(text, dep_pkg))))
    out = [root.rstrip('\n')]
    for dep, text in order:
        out.append(f'{_SEPARATOR}\nMSG: {dep}\n{text.rstrip(chr(10))}')
    return '\n'.join(out) + '\n'

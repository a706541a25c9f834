"""What a message type is, as rosbag2 records it: the ``ros2msg`` schema text of an MCAP bag and
the RIHS01 type description hash (REP 2011) of its metadata.

Both are read from the ``.msg`` files that the message packages install (found through the ament
index), so no message package is imported: the recorder can describe any topic type it subscribes
to, on Humble too, whose packages ship no precomputed hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import hashlib
import json
from pathlib import Path
import re

from vla_data.bag import BagError

__all__ = ['message_definition', 'type_description_hash']

_SEPARATOR = '=' * 80
# .msg primitive -> rosidl's FieldType id (type_description_interfaces/msg/FieldType), through
# the IDL type rosidl_adapter maps it to (char is uint8, byte is octet).
_TYPE_IDS = {
    'int8': 2, 'uint8': 3, 'char': 3, 'int16': 4, 'uint16': 5, 'int32': 6, 'uint32': 7,
    'int64': 8, 'uint64': 9, 'float32': 10, 'float64': 11, 'bool': 15, 'byte': 16, 'string': 17,
    'wstring': 18,
}  # fmt: skip
_NESTED, _BOUNDED_STRING = 1, {'string': 21, 'wstring': 22}
_ARRAY, _BOUNDED_SEQUENCE, _SEQUENCE = 48, 96, 144  # added to the element's id
_ARRAY_SUFFIX = re.compile(r'\[(<=)?(\d*)\]$')


@dataclass(frozen=True)
class _Field:
    name: str
    type_id: int
    capacity: int  # array size or sequence bound
    string_capacity: int  # bound of a bounded string
    nested: str  # pkg/msg/Type of a message field, else ''

    def description(self) -> dict[str, object]:
        """The field as rosidl serializes it for hashing (default values excluded)."""
        return {
            'name': self.name,
            'type': {
                'type_id': self.type_id,
                'capacity': self.capacity,
                'string_capacity': self.string_capacity,
                'nested_type_name': self.nested,
            },
        }


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


def _split_type(type_name: str) -> tuple[str, str]:
    parts = type_name.split('/')
    if len(parts) != 3 or parts[1] != 'msg':
        raise BagError(f"message type '{type_name}' is not of the form pkg/msg/Type")
    return parts[0], parts[2]


def _parse_field(type_token: str, name: str, package: str) -> _Field:
    array = _ARRAY_SUFFIX.search(type_token)
    base = type_token[: array.start()] if array else type_token
    string_capacity = 0
    if '<=' in base:  # bounded string: string<=N
        base, bound = base.split('<=')
        string_capacity = int(bound)
    nested = ''
    if base in _TYPE_IDS:
        type_id = _BOUNDED_STRING[base] if string_capacity else _TYPE_IDS[base]
    else:
        type_id = _NESTED
        if base == 'Header':
            nested = 'std_msgs/msg/Header'
        elif '/' in base:
            parts = base.split('/')
            nested = f'{parts[0]}/msg/{parts[-1]}'
        else:
            nested = f'{package}/msg/{base}'
    capacity = 0
    if array:
        bounded, size = array.group(1), array.group(2)
        if bounded:
            type_id, capacity = type_id + _BOUNDED_SEQUENCE, int(size)
        elif size:
            type_id, capacity = type_id + _ARRAY, int(size)
        else:
            type_id += _SEQUENCE
    return _Field(name, type_id, capacity, string_capacity, nested)


@functools.cache
def _fields(type_name: str) -> tuple[str, tuple[_Field, ...]]:
    """The .msg text of ``pkg/msg/Type`` and its fields, parsed the way rosidl_adapter does:
    a comment starts at '#', a line whose rest holds '=' is a constant (not part of the type)."""
    package, name = _split_type(type_name)
    text = _msg_file(package, name).read_text()
    fields = []
    for raw in text.replace('\t', ' ').splitlines():
        line = raw.split('#', 1)[0].strip()
        if not line:
            continue
        type_token, _, rest = line.partition(' ')
        rest = rest.strip()
        if not rest:
            raise BagError(f"{type_name}: cannot parse '{raw.strip()}'")
        if '=' in rest:
            continue
        fields.append(_parse_field(type_token, rest.split(' ', 1)[0], package))
    return text, tuple(fields)


def _dependencies(type_name: str) -> list[str]:
    """Every message type ``type_name`` uses, depth first in field order, each once."""
    seen = {type_name}
    order: list[str] = []
    stack = [f.nested for f in reversed(_fields(type_name)[1]) if f.nested]
    while stack:
        dep = stack.pop()
        if dep in seen:
            continue
        seen.add(dep)
        order.append(dep)
        stack.extend(f.nested for f in reversed(_fields(dep)[1]) if f.nested)
    return order


def message_definition(type_name: str) -> str:
    """The ``ros2msg`` schema text of ``pkg/msg/Type``: its .msg file followed by every
    dependency's, each after a line of 80 '=' and ``MSG: pkg/Type`` (as rosbag2 writes it)."""
    out = [_fields(type_name)[0].rstrip('\n')]
    for dep in _dependencies(type_name):
        package, name = _split_type(dep)
        out.append(f'{_SEPARATOR}\nMSG: {package}/{name}\n{_fields(dep)[0].rstrip(chr(10))}')
    return '\n'.join(out) + '\n'


def _individual_description(type_name: str) -> dict[str, object]:
    fields = _fields(type_name)[1]
    # rosidl gives an empty message one placeholder member.
    fields = fields or (_Field('structure_needs_at_least_one_member', 3, 0, 0, ''),)
    return {'type_name': type_name, 'fields': [f.description() for f in fields]}


def type_description_hash(type_name: str) -> str:
    """The RIHS01 hash of ``pkg/msg/Type`` (what rosbag2 records as ``type_description_hash``):
    SHA-256 of the type description (the type, then every referenced type sorted by name)
    serialized as rosidl_generator_type_description does (JSON with ', ' and ': ' separators)."""
    description = {
        'type_description': _individual_description(type_name),
        'referenced_type_descriptions': [
            _individual_description(t) for t in sorted(_dependencies(type_name))
        ],
    }
    text = json.dumps(description, separators=(', ', ': '))
    return 'RIHS01_' + hashlib.sha256(text.encode()).hexdigest()

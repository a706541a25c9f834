"""Frozen, self-validating configuration dataclasses.

Every tunable of the suite lives in a ``Config`` subclass declared with :func:`param`, so the
pure core validates its inputs on construction and the ROS layer (``vla_ros_common.params``)
can declare each field as a ROS parameter with its description, range and read-only flag.

    @dataclass(frozen=True, kw_only=True)
    class PidConfig(Config):
        kp: float = param(20.0, description='proportional gain [1/s]', range=(0.0, 1e4))
        mode: str = param('clamp', description='anti-windup', choices=('clamp', 'back_calculation'))

Supported field types: ``bool``, ``int``, ``float``, ``str``, ``tuple[T, ...]`` of those, and nested
``Config`` subclasses (declared as dotted parameters ``outer.inner``).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
import dataclasses
import math
import re
import typing
from typing import Any, TypeVar

__all__ = [
    'Config',
    'ConfigError',
    'ParamSpec',
    'config_from_dict',
    'config_from_flat',
    'config_to_flat',
    'iter_params',
    'param',
]

_META_KEY = 'vla_param'
_SCALARS = (bool, int, float, str)

C = TypeVar('C', bound='Config')


class ConfigError(ValueError):
    """An invalid configuration value. ``field`` is the (dotted) name of the offending field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"parameter '{field}': {reason}")


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """What the ROS layer needs to declare one field as a parameter."""

    name: str  # dotted name
    type: type  # bool, int, float, str or tuple
    element_type: builtins.type | None  # for tuples (``type`` here is the field above)
    description: str
    range: tuple[float, float] | None
    choices: tuple[Any, ...] | None
    read_only: bool
    required: bool
    default: Any


def param(
    default: Any = dataclasses.MISSING,
    *,
    description: str,
    range: tuple[float, float] | None = None,
    choices: tuple[Any, ...] | None = None,
    read_only: bool = False,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field carrying parameter metadata. No default means the parameter is required."""
    if not description:
        raise ValueError('every parameter needs a description')
    if range is not None and not range[0] <= range[1]:
        raise ValueError(f'empty range {range}')
    metadata = {
        _META_KEY: {
            'description': description,
            'range': None if range is None else (range[0], range[1]),
            'choices': None if choices is None else tuple(choices),
            'read_only': read_only,
        }
    }
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class Config:
    """Base of frozen config dataclasses: checks types, ranges and choices on construction.

    Subclasses are ``@dataclass(frozen=True, kw_only=True)`` and may override :meth:`validate`
    for cross-field rules, raising :class:`ConfigError` with the field's name.
    """

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = _coerce(f.name, hints[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)  # frozen: normalise int->float, list->tuple
            meta = f.metadata.get(_META_KEY)
            if meta is not None:
                _check_range_and_choices(f.name, value, meta)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; override and raise ConfigError(field, reason)."""

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_config_type(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Config)


def _tuple_element(tp: Any) -> type | None:
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis and args[0] in _SCALARS:
            return args[0]
    return None


_YAML11_EXPONENT = re.compile(r'[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+')


def _coerce_scalar(name: str, tp: type, value: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, str) and _YAML11_EXPONENT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads '1e-3' (no dot) as a string
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isnan(value):
                raise ConfigError(name, 'is NaN')
            return float(value)
    elif tp is str and isinstance(value, str):
        return value
    raise ConfigError(name, f'expected {tp.__name__}, got {type(value).__name__} {value!r}')


def _coerce(name: str, tp: Any, value: Any) -> Any:
    if tp in _SCALARS:
        return _coerce_scalar(name, tp, value)
    element = _tuple_element(tp)
    if element is not None:
        if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__'):
            raise ConfigError(name, f'expected a list of {element.__name__}, got {value!r}')
        return tuple(_coerce_scalar(f'{name}[{i}]', element, v) for i, v in enumerate(value))
    if _is_config_type(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return config_from_dict(tp, value, prefix=f'{name}.')
        raise ConfigError(name, f'expected {tp.__name__}, got {type(value).__name__}')
    raise TypeError(f"field '{name}': unsupported config type {tp!r}")


def _check_range_and_choices(name: str, value: Any, meta: Mapping[str, Any]) -> None:
    values = value if isinstance(value, tuple) else (value,)
    lo_hi = meta['range']
    if lo_hi is not None:
        lo, hi = lo_hi
        for v in values:
            if not lo <= v <= hi:
                raise ConfigError(name, f'{v!r} is outside the allowed range [{lo}, {hi}]')
    choices = meta['choices']
    if choices is not None:
        for v in values:
            if v not in choices:
                raise ConfigError(name, f'{v!r} is not one of {list(choices)}')


def iter_params(cls: type[Config], prefix: str = '') -> Iterator[ParamSpec]:
    """Every leaf field of ``cls`` as a ParamSpec, nested configs flattened to dotted names."""
    hints = _type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        tp = hints[f.name]
        name = prefix + f.name
        if _is_config_type(tp):
            yield from iter_params(tp, prefix=name + '.')
            continue
        meta = f.metadata.get(_META_KEY)
        if meta is None:
            raise TypeError(f'{cls.__name__}.{f.name} must be declared with param(...)')
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required:
            default = None
        elif f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = f.default_factory()  # type: ignore[operator]  # not MISSING (above)
        element = _tuple_element(tp)
        yield ParamSpec(
            name=name,
            type=tuple if element is not None else tp,
            element_type=element,
            description=meta['description'],
            range=meta['range'],
            choices=meta['choices'],
            read_only=meta['read_only'],
            required=required,
            default=tuple(default) if element is not None and default is not None else default,
        )


def config_from_dict(cls: type[C], data: Mapping[str, Any], prefix: str = '') -> C:
    """Build ``cls`` from a (possibly nested) mapping; unknown keys are errors that name them."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(prefix + unknown[0], f'unknown parameter; known: {sorted(names)}')
    hints = _type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if _is_config_type(hints[key]) and isinstance(value, Mapping):
            value = config_from_dict(hints[key], value, prefix=f'{prefix}{key}.')
        kwargs[key] = value
    missing = [
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(prefix + missing[0], 'is required but was not given')
    try:
        return cls(**kwargs)
    except ConfigError as err:
        if prefix and not err.field.startswith(prefix):
            raise ConfigError(prefix + err.field, err.reason) from None
        raise


def config_from_flat(cls: type[C], flat: Mapping[str, Any]) -> C:
    """Build ``cls`` from dotted names (``{'pid.kp': 2.0}``), as ROS parameters arrive."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = nested
        *parents, leaf = dotted.split('.')
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config_from_dict(cls, nested)


def config_to_flat(cfg: Config, prefix: str = '') -> dict[str, Any]:
    """The inverse of :func:`config_from_flat`."""
    flat: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):  # type: ignore[arg-type]
        value = getattr(cfg, f.name)
        if isinstance(value, Config):
            flat.update(config_to_flat(value, prefix=f'{prefix}{f.name}.'))
        else:
            flat[prefix + f.name] = value
    return flat

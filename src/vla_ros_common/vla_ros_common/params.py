"""Declare a node's parameters from a frozen ``vla_core.config.Config`` dataclass.

Each field becomes a parameter with its description, range (enforced by rclpy on every set),
choices and read-only flag; nested configs become dotted names (``pid.kp``). The values are
validated by the dataclass itself, so a node sees one frozen, valid config object, and a bad value
is refused with a message that names the parameter:

    self._cfg = declare_config(self, ControllerConfig)
    self._cfg.value.rate_hz
    self._cfg.on_change(self._apply)          # runtime changes of non-read-only parameters

A parameter given to a node (parameter file, override) that it never declares is an error too
(:func:`check_undeclared`): a misspelled name would otherwise be ignored without a word.
"""

from __future__ import annotations

from collections.abc import Callable
import difflib
import threading
from typing import Any, Generic, TypeVar

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from vla_core.config import (
    Config,
    ConfigError,
    ParamSpec,
    config_from_flat,
    config_to_flat,
    iter_params,
)

__all__ = ['NodeConfig', 'ParameterError', 'check_undeclared', 'declare_config']

C = TypeVar('C', bound=Config)

_SCALAR_TYPES = {
    bool: Parameter.Type.BOOL,
    int: Parameter.Type.INTEGER,
    float: Parameter.Type.DOUBLE,
    str: Parameter.Type.STRING,
}
_ARRAY_TYPES = {
    bool: Parameter.Type.BOOL_ARRAY,
    int: Parameter.Type.INTEGER_ARRAY,
    float: Parameter.Type.DOUBLE_ARRAY,
    str: Parameter.Type.STRING_ARRAY,
}


class ParameterError(ConfigError):
    """A node's parameter is missing or invalid; the message names the node and the parameter."""


def _ros_type(spec: ParamSpec) -> Parameter.Type:
    if spec.type is tuple:
        assert spec.element_type is not None
        return _ARRAY_TYPES[spec.element_type]
    return _SCALAR_TYPES[spec.type]


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(
        name=spec.name,
        type=_ros_type(spec).value,
        description=spec.description,
        read_only=spec.read_only,
    )
    if spec.choices is not None:
        descriptor.additional_constraints = f'one of {list(spec.choices)}'
    element = spec.element_type if spec.type is tuple else spec.type
    if spec.range is not None and element is float:
        lo, hi = spec.range
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)
        ]
    elif spec.range is not None and element is int:
        lo, hi = spec.range
        descriptor.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
    return descriptor


def _widen_integer_override(node: Node, spec: ParamSpec) -> None:
    """Accept ``kp: 10`` for a float parameter, as a person writing YAML expects.

    rclpy would refuse the INTEGER override of a DOUBLE parameter; overrides are only reachable
    through the node's (stable since Foxy) ``_parameter_overrides`` mapping.
    """
    overrides = getattr(node, '_parameter_overrides', None)
    if not isinstance(overrides, dict) or spec.name not in overrides:
        return
    given = overrides[spec.name]
    element = spec.element_type if spec.type is tuple else spec.type
    if element is not float:
        return
    if given.type_ == Parameter.Type.INTEGER:
        overrides[spec.name] = Parameter(spec.name, Parameter.Type.DOUBLE, float(given.value))
    elif given.type_ == Parameter.Type.INTEGER_ARRAY:
        values = [float(v) for v in given.value]
        overrides[spec.name] = Parameter(spec.name, Parameter.Type.DOUBLE_ARRAY, values)


def _to_python(value: Any) -> Any:
    # rclpy returns arrays as array.array or lists; configs hold tuples.
    if isinstance(value, (list, tuple)) or hasattr(value, 'tolist'):
        return tuple(value.tolist() if hasattr(value, 'tolist') else value)
    return value


class NodeConfig(Generic[C]):
    """The node's current config; replaced atomically when parameters change at run time."""

    def __init__(self, node: Node, cls: type[C], prefix: str) -> None:
        self._node = node
        self._cls = cls
        self._prefix = prefix
        self._lock = threading.Lock()
        self._listeners: list[Callable[[C], None]] = []
        self._specs = list(iter_params(cls))
        flat: dict[str, Any] = {}
        for spec in self._specs:
            flat[spec.name] = self._declare(spec)
        self._value: C = self._build(flat)
        node.add_on_set_parameters_callback(self._on_set)

    @property
    def value(self) -> C:
        return self._value

    def on_change(self, callback: Callable[[C], None]) -> None:
        """Call ``callback(new_config)`` after every accepted run-time change."""
        self._listeners.append(callback)

    def _fail(self, name: str, reason: str) -> ParameterError:
        return ParameterError(
            f'{self._prefix}{name}', f"{reason} (node '{self._node.get_fully_qualified_name()}')"
        )

    def _declare(self, spec: ParamSpec) -> Any:
        name = self._prefix + spec.name
        _widen_integer_override(self._node, spec)
        descriptor = _descriptor(spec)
        descriptor.name = name
        try:
            if spec.required:
                param = self._node.declare_parameter(name, _ros_type(spec), descriptor)
            else:
                default = list(spec.default) if spec.type is tuple else spec.default
                if spec.type is tuple and not default:
                    # rclpy cannot infer the type of an empty list: declare typed, then set it.
                    param = self._node.declare_parameter(name, _ros_type(spec), descriptor)
                    if param.type_ == Parameter.Type.NOT_SET:
                        return ()
                else:
                    param = self._node.declare_parameter(name, default, descriptor)
            return _to_python(param.value)
        except ParameterUninitializedException:
            raise self._fail(
                spec.name, f'is required but was not set ({spec.description})'
            ) from None
        except InvalidParameterTypeException as err:
            raise self._fail(spec.name, f'has the wrong type: {err}') from None
        except InvalidParameterValueException as err:
            overrides = getattr(self._node, '_parameter_overrides', {})
            given = overrides[name].value if name in overrides else None
            if spec.range is not None and given is not None:
                lo, hi = spec.range
                reason = f'{given!r} is outside the allowed range [{lo}, {hi}]'
            else:
                reason = f'was rejected: {err}'
            raise self._fail(spec.name, reason) from None

    def _build(self, flat: dict[str, Any]) -> C:
        missing = [s.name for s in self._specs if s.required and flat.get(s.name) is None]
        if missing:
            spec = next(s for s in self._specs if s.name == missing[0])
            raise self._fail(spec.name, f'is required but was not set ({spec.description})')
        try:
            return config_from_flat(self._cls, flat)
        except ConfigError as err:
            raise self._fail(err.field, err.reason) from None

    def _on_set(self, params: list[Parameter]) -> SetParametersResult:
        ours = {p.name[len(self._prefix) :]: p for p in params if p.name.startswith(self._prefix)}
        known = {s.name for s in self._specs}
        changes = {k: _to_python(p.value) for k, p in ours.items() if k in known}
        if not changes:
            return SetParametersResult(successful=True)
        with self._lock:
            flat = config_to_flat(self._value)
            flat.update(changes)
            try:
                new = config_from_flat(self._cls, flat)
            except ConfigError as err:
                return SetParametersResult(successful=False, reason=str(err))
            self._value = new
        for callback in self._listeners:
            callback(new)
        return SetParametersResult(successful=True)


def declare_config(node: Node, cls: type[C], prefix: str = '') -> NodeConfig[C]:
    """Declare every field of ``cls`` on ``node`` (names prefixed by ``prefix``, e.g. ``'pid.'``).

    Raises ParameterError, naming the parameter and the node, for a missing required parameter or
    an invalid value; ``vla_ros_common.node_main`` turns it into a one-line error and exit code 2.
    """
    return NodeConfig(node, cls, prefix)


# Declared by rclpy when the publisher or subscription it configures is created.
_QOS_OVERRIDES = 'qos_overrides.'


def check_undeclared(node: Node, *, entities_created: bool = True) -> None:
    """Raise ParameterError naming a parameter given to ``node`` that it does not declare.

    Call once the node has declared everything (after construction, and after configure for a
    lifecycle node); ``entities_created=False`` (an unconfigured lifecycle node) skips the
    ``qos_overrides.*`` parameters of entities not created yet. rclpy's own parameters
    (``use_sim_time``, ...) are declared by every node, so they pass.
    """
    given = getattr(node, '_parameter_overrides', None) or {}
    unknown = sorted(
        name
        for name in given
        if not node.has_parameter(name)
        and (entities_created or not name.startswith(_QOS_OVERRIDES))
    )
    if not unknown:
        return
    name = unknown[0]
    declared = list(node.get_parameters_by_prefix(''))
    close = difflib.get_close_matches(name, declared, n=1)
    reason = f"is not a parameter of node '{node.get_fully_qualified_name()}'"
    if close:
        reason += f"; did you mean '{close[0]}'?"
    if len(unknown) > 1:
        reason += f' (nor are {unknown[1:]})'
    raise ParameterError(name, reason)

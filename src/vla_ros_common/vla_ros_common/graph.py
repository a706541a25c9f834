"""One description of a graph, two ways to start it.

A graph YAML (``config/graphs/*.yaml``) lists the nodes with their package, executable (for
``ros2 run``/``ros2 launch``), node class (for the embedded runner), parameters, remappings,
namespace and process group. ``launch/*.launch.py`` and ``vla_ros_common.runner`` both read it
through :func:`load_graph`, so the two run modes can never drift apart.

    name: sim
    namespace: ''                  # default namespace of every node
    parameters: [common.yaml]      # applied to every node (files relative to the config dir)
    nodes:
      - name: static_tf
        package: vla_ros_common
        executable: static_tf_publisher
        plugin: vla_ros_common.static_tf_publisher:StaticTfPublisher
        parameters: [extrinsics.yaml, {publish_rate: 10.0}]
        remappings: {joint_states: /robot/joint_states}
        process: sensors           # embedded multi-process mode: one process per group
        lifecycle: false           # true: configured + activated on start
        enabled: true              # false: kept in the file, not started

Parameter files are standard ROS 2 params YAML (``node_name: {ros__parameters: ...}`` or
``/**: {ros__parameters: ...}``); inline dicts apply to that node only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
import importlib
import os
from pathlib import Path
import re
from typing import Any

import yaml

__all__ = ['GraphError', 'GraphSpec', 'NodeSpec', 'load_graph', 'resolve_plugin', 'with_views']

_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')
_NAMESPACE = re.compile(r'^(/?[A-Za-z][A-Za-z0-9_]*)*/?$|^$')
_NODE_KEYS = {
    'name',
    'package',
    'executable',
    'plugin',
    'parameters',
    'remappings',
    'namespace',
    'process',
    'lifecycle',
    'enabled',
    'arguments',
}
_GRAPH_KEYS = {'name', 'namespace', 'parameters', 'nodes', 'description'}


class GraphError(ValueError):
    """The graph file is wrong; the message names the file and the entry."""


@dataclass(frozen=True)
class NodeSpec:
    name: str
    package: str
    executable: str
    plugin: str  # 'module.path:ClassName'
    namespace: str = ''
    param_files: tuple[Path, ...] = ()  # absolute paths
    inline_params: Mapping[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    process: str = 'main'
    lifecycle: bool = False
    arguments: tuple[str, ...] = ()

    @property
    def fully_qualified_name(self) -> str:
        ns = self.namespace.rstrip('/')
        return f'{ns}/{self.name}' if ns else f'/{self.name}'

    def ros_arguments(self) -> list[str]:
        """The ``--ros-args`` that give this node its name, namespace, params and remaps.

        Exactly what launch_ros passes to a process, so both run modes configure a node alike.
        """
        args = ['--ros-args', '-r', f'__node:={self.name}']
        if self.namespace:
            args += ['-r', f'__ns:={self.namespace}']
        for path in self.param_files:
            args += ['--params-file', str(path)]
        for src, dst in self.remappings:
            args += ['-r', f'{src}:={dst}']
        return args


@dataclass(frozen=True)
class GraphSpec:
    name: str
    path: Path
    config_dir: Path
    nodes: tuple[NodeSpec, ...]
    description: str = ''

    @property
    def processes(self) -> tuple[str, ...]:
        """Process groups in order of first appearance."""
        return tuple(dict.fromkeys(n.process for n in self.nodes))

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(name)


def _err(path: Path, where: str, message: str) -> GraphError:
    return GraphError(f'{path}: {where}: {message}')


def _params(
    path: Path, where: str, config_dir: Path, value: Any
) -> tuple[list[Path], dict[str, Any]]:
    if value is None:
        return [], {}
    if not isinstance(value, list):
        raise _err(path, where, 'parameters must be a list of files and/or mappings')
    files: list[Path] = []
    inline: dict[str, Any] = {}
    for item in value:
        if isinstance(item, str):
            file = Path(os.path.abspath(config_dir / item))  # keep install-tree symlinks
            if not file.is_file():
                raise _err(path, where, f"parameter file '{item}' not found in {config_dir}")
            files.append(file)
        elif isinstance(item, Mapping):
            inline.update(item)
        else:
            raise _err(path, where, f'parameters entry {item!r} is neither a file nor a mapping')
    return files, inline


def load_graph(path: str | Path, config_dir: str | Path | None = None) -> GraphSpec:
    """Parse and validate a graph file. ``config_dir`` defaults to the file's parent's parent
    (``config/graphs/x.yaml`` -> ``config/``), which holds in the source tree and when installed.
    """
    path = Path(os.path.abspath(path))
    config_dir = Path(os.path.abspath(config_dir)) if config_dir else path.parent.parent
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise GraphError(f'graph file not found: {path}') from None
    except yaml.YAMLError as err:
        raise GraphError(f'{path}: not valid YAML: {err}') from None
    if not isinstance(data, Mapping) or not isinstance(data.get('nodes'), list):
        raise _err(path, 'top level', "expected a mapping with a 'nodes' list")
    unknown = set(data) - _GRAPH_KEYS
    if unknown:
        raise _err(path, 'top level', f'unknown keys {sorted(unknown)}')
    default_ns = str(data.get('namespace') or '')
    shared_files, shared_inline = _params(path, 'parameters', config_dir, data.get('parameters'))
    nodes: list[NodeSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(data['nodes']):
        where = f'nodes[{index}]'
        if not isinstance(entry, Mapping):
            raise _err(path, where, 'each node must be a mapping')
        unknown = set(entry) - _NODE_KEYS
        if unknown:
            raise _err(path, where, f'unknown keys {sorted(unknown)}; known: {sorted(_NODE_KEYS)}')
        for key in ('name', 'package', 'executable', 'plugin'):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise _err(path, where, f"'{key}' is required")
        name = entry['name']
        where = f"node '{name}'"
        if not _NAME.match(name):
            raise _err(path, where, 'node names are letters, digits and _ (not starting with one)')
        if ':' not in entry['plugin']:
            raise _err(path, where, "plugin must be 'module.path:ClassName'")
        if not entry.get('enabled', True):
            continue
        namespace = str(entry.get('namespace', default_ns) or '')
        if not _NAMESPACE.match(namespace):
            raise _err(path, where, f"bad namespace '{namespace}'")
        fqn = f'{namespace.rstrip("/")}/{name}'
        if fqn in seen:
            raise _err(path, where, f'duplicate node {fqn}')
        seen.add(fqn)
        files, inline = _params(path, where, config_dir, entry.get('parameters'))
        remaps = entry.get('remappings') or {}
        if not isinstance(remaps, Mapping):
            raise _err(path, where, 'remappings must be a mapping from: to')
        nodes.append(
            NodeSpec(
                name=name,
                package=entry['package'],
                executable=entry['executable'],
                plugin=entry['plugin'],
                namespace=namespace,
                param_files=tuple(shared_files + files),
                inline_params={**shared_inline, **inline},
                remappings=tuple((str(k), str(v)) for k, v in remaps.items()),
                process=str(entry.get('process', 'main')),
                lifecycle=bool(entry.get('lifecycle', False)),
                arguments=tuple(str(a) for a in entry.get('arguments') or ()),
            )
        )
    if not nodes:
        raise _err(path, 'nodes', 'no enabled nodes')
    return GraphSpec(
        name=str(data.get('name') or path.stem),
        path=path,
        config_dir=config_dir,
        nodes=tuple(nodes),
        description=str(data.get('description') or ''),
    )


# config/graphs/view.yaml: the nodes the views add (rviz:=true / view:=true, --rviz / --view).
VIEW_GRAPH = 'view.yaml'


def with_views(graph: GraphSpec, names: Sequence[str]) -> GraphSpec:
    """``graph`` plus the named nodes of ``graphs/view.yaml`` in its config directory
    (``viz_markers``: rviz's markers, ``web_view``: the browser view); one the graph already has
    is not added again."""
    have = {spec.name for spec in graph.nodes}
    names = [name for name in names if name not in have]
    if not names:
        return graph
    views = load_graph(graph.config_dir / 'graphs' / VIEW_GRAPH, graph.config_dir)
    try:
        extra = tuple(views.node(name) for name in names)
    except KeyError as err:
        raise GraphError(f'{views.path}: no view node {err}') from None
    return replace(graph, nodes=graph.nodes + extra)


def resolve_plugin(plugin: str) -> type:
    """Import ``'module.path:ClassName'``, with an error that says what was missing."""
    module_name, _, class_name = plugin.partition(':')
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise GraphError(f"cannot import node module '{module_name}': {err}") from None
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise GraphError(f"module '{module_name}' has no node class '{class_name}'") from None

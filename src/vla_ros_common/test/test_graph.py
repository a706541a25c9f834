from pathlib import Path

import pytest

from vla_ros_common.graph import GraphError, load_graph, resolve_plugin

NODE = (
    '  - {name: %s, package: vla_ros_common, executable: graph_monitor,\n'
    '     plugin: "vla_ros_common.graph_monitor:GraphMonitor"%s}\n'
)


def _write(tmp_path: Path, body: str) -> Path:
    (tmp_path / 'graphs').mkdir(exist_ok=True)
    (tmp_path / 'p.yaml').write_text('/**:\n  ros__parameters: {period_s: 1.0}\n')
    path = tmp_path / 'graphs' / 'g.yaml'
    path.write_text(body)
    return path


def test_full_entry(tmp_path):
    extra = (
        ', namespace: /robot, parameters: [p.yaml, {period_s: 3.0}], remappings: {a: b}, process: x'
    )
    path = _write(tmp_path, 'parameters: [p.yaml]\nnodes:\n' + NODE % ('mon', extra))
    graph = load_graph(path)
    spec = graph.node('mon')
    assert graph.config_dir == tmp_path
    assert spec.fully_qualified_name == '/robot/mon'
    assert spec.param_files == ((tmp_path / 'p.yaml'),) * 2
    assert spec.inline_params == {'period_s': 3.0}
    assert spec.ros_arguments() == [
        '--ros-args', '-r', '__node:=mon', '-r', '__ns:=/robot',
        '--params-file', str(tmp_path / 'p.yaml'),
        '--params-file', str(tmp_path / 'p.yaml'),
        '-r', 'a:=b',
    ]  # fmt: skip
    assert graph.processes == ('x',)
    assert resolve_plugin(spec.plugin).__name__ == 'GraphMonitor'


@pytest.mark.parametrize(
    ('body', 'match'),
    [
        ('nodes: []\n', 'no enabled nodes'),
        ('nodes:\n' + NODE % ('a', ', params: []'), r"unknown keys \['params'\]"),
        ('nodes:\n' + NODE % ('a', ', parameters: [missing.yaml]'), "'missing.yaml' not found"),
        ('nodes:\n' + NODE % ('a', '') + NODE % ('a', ''), 'duplicate node /a'),
        ('nodes:\n' + NODE % ('9a', ''), 'node names'),
        ('nodes:\n  - {name: a, package: p, executable: e}\n', "'plugin' is required"),
        ('nodes: [\n', 'not valid YAML'),
    ],
)
def test_errors_name_the_file_and_entry(tmp_path, body, match):
    with pytest.raises(GraphError, match=match) as info:
        load_graph(_write(tmp_path, body))
    assert 'g.yaml' in str(info.value)


def test_disabled_nodes_are_skipped(tmp_path):
    body = 'nodes:\n' + NODE % ('a', '') + NODE % ('b', ', enabled: false')
    assert [n.name for n in load_graph(_write(tmp_path, body)).nodes] == ['a']


def test_unresolvable_plugins_say_what_is_missing():
    with pytest.raises(GraphError, match="cannot import node module 'no_such_mod'"):
        resolve_plugin('no_such_mod:X')
    with pytest.raises(GraphError, match="has no node class 'Nope'"):
        resolve_plugin('vla_ros_common.graph:Nope')


def test_missing_graph_file():
    with pytest.raises(GraphError, match='graph file not found'):
        load_graph('/nonexistent/graph.yaml')

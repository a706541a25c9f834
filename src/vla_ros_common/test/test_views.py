"""The view nodes a graph gains from rviz:=true / view:=true (launch), --rviz / --view (runner)."""

from __future__ import annotations

from pathlib import Path
import sys

import pytest

from vla_ros_common.graph import GraphError, load_graph, with_views
from vla_ros_common.launch_graph import launch_views
from vla_ros_common.runner import main

CONFIG = Path(__file__).resolve().parents[3] / 'config'
DEMO = CONFIG / 'graphs' / 'expert.yaml'


def test_views_add_the_nodes_of_view_yaml_once():
    demo = load_graph(DEMO)
    both = with_views(demo, ['viz_markers', 'web_view'])
    added = [spec for spec in both.nodes if spec not in demo.nodes]
    assert [(s.name, s.plugin, s.process) for s in added] == [
        ('viz_markers', 'vla_viz.marker_node:MarkerNode', 'view'),
        ('web_view', 'vla_viz.web_view_node:WebViewNode', 'view'),
    ]
    assert all(s.param_files == (CONFIG / 'viz.yaml',) for s in added)
    assert with_views(both, ['viz_markers']).nodes == both.nodes
    assert with_views(demo, []) is demo
    with pytest.raises(GraphError, match="no view node 'rviz2'"):
        with_views(demo, ['rviz2'])


@pytest.mark.parametrize(
    ('rviz', 'view', 'nodes'),
    [('false', 'false', []), ('true', 'false', ['viz_markers']), ('False', '1', ['web_view']),
     ('true', 'true', ['viz_markers', 'web_view'])],
)  # fmt: skip
def test_launch_arguments_choose_the_views(rviz, view, nodes):
    assert launch_views(rviz, view) == nodes


def test_a_launch_argument_that_is_not_a_boolean_is_refused():
    with pytest.raises(ValueError, match="rviz:='yes please'"):
        launch_views('yes please', 'false')


def test_runner_lists_the_view_nodes(capsys):
    assert main([str(DEMO), '--list', '--rviz']) == 0
    out = capsys.readouterr().out
    assert 'viz_markers' in out and 'web_view' not in out
    assert 'rviz itself needs a real ROS 2 install' in out


def test_runner_view_without_rerun_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'rerun', None)  # as if not installed: import fails
    assert main([str(DEMO), '--view', '--list']) == 2
    assert "needs rerun-sdk: pip install 'rerun-sdk>=0.41'" in capsys.readouterr().err

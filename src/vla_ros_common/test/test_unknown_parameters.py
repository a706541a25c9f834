"""A parameter the node does not declare (a typo in a parameter file) stops the node with one line
naming it, started either way: the embedded runner or the node's own main (``ros2 run``)."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

import pytest

GRAPH = """nodes:
  - {name: monitor, package: vla_ros_common, executable: graph_monitor,
     plugin: "vla_ros_common.graph_monitor:GraphMonitor", parameters: [monitor.yaml]}
"""


def _config(tmp_path: Path, params: str) -> Path:
    (tmp_path / 'graphs').mkdir()
    (tmp_path / 'monitor.yaml').write_text(f'monitor:\n  ros__parameters:\n{params}')
    graph = tmp_path / 'graphs' / 'g.yaml'
    graph.write_text(GRAPH)
    return graph


def _run(*args: str) -> subprocess.CompletedProcess:
    # A node that (wrongly) starts anyway runs on: --duration or the timeout ends it.
    return subprocess.run([sys.executable, '-m', *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize('how', ['runner', 'node main'])
def test_a_misspelled_parameter_stops_the_node_naming_it(tmp_path, how):
    graph = _config(tmp_path, '    period_ss: 2.0\n    print_report: false\n')
    if how == 'runner':
        proc = _run('vla_ros_common.runner', str(graph), '--duration', '5')
    else:
        proc = _run(
            'vla_ros_common.graph_monitor', '--ros-args', '-r', '__node:=monitor',
            '--params-file', str(tmp_path / 'monitor.yaml'),
        )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if 'period_ss' in line]
    assert len(errors) == 1, proc.stdout + proc.stderr
    assert "did you mean 'period_s'" in errors[0] and '/monitor' in errors[0]
    assert 'Traceback' not in proc.stderr


def test_declared_and_rclpy_parameters_are_accepted(tmp_path):
    graph = _config(tmp_path, '    period_s: 2.0\n    use_sim_time: false\n')
    proc = _run('vla_ros_common.runner', str(graph), '--duration', '1')
    assert proc.returncode == 0, proc.stdout + proc.stderr

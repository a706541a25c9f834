"""The embedded runner: start a graph YAML's nodes composed on executors, no launch needed.

    vla run config/graphs/deploy.yaml                 # one process
    vla run config/graphs/deploy.yaml --processes     # one per group
    vla run config/graphs/deploy.yaml --duration 10   # stop after 10 s
    vla run config/graphs/deploy.yaml --view          # + the browser view

Nodes get exactly the ``--ros-args`` launch_ros would give them (name, namespace, params files,
remappings), plus the inline parameters, so a graph behaves the same under ``ros2 launch``.
Stops on Ctrl-C/SIGTERM or after ``--duration``; in multi-process mode a group that dies stops
the others and the runner exits non-zero.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from vla_core.config import ConfigError
from vla_ros_common.graph import (
    GraphError,
    GraphSpec,
    NodeSpec,
    load_graph,
    resolve_plugin,
    with_views,
)
from vla_ros_common.node_main import StopSignal, spin_nodes, start_node

__all__ = ['create_node', 'main', 'run_group']


def _log(graph: GraphSpec, group: str | None, message: str) -> None:
    tag = f'{graph.name}:{group}' if group else graph.name
    print(f'[vla run {tag}] {message}', flush=True)


def create_node(spec: NodeSpec) -> Node:
    """Instantiate the node class of ``spec`` configured as launch_ros would configure it, and
    start it (:func:`~vla_ros_common.node_main.start_node`: activated, undeclared parameters
    refused)."""
    cls = resolve_plugin(spec.plugin)
    overrides = [Parameter(name, value=value) for name, value in spec.inline_params.items()]
    node = cls(
        cli_args=[*spec.arguments, *spec.ros_arguments()],
        use_global_arguments=False,
        parameter_overrides=overrides,
    )
    return start_node(node)


def _describe(node: Node) -> str:
    pubs = sorted({p.topic_name for p in node.publishers} - {'/rosout', '/parameter_events'})
    subs = sorted({s.topic_name for s in node.subscriptions} - {'/parameter_events'})
    return (
        f'{node.get_fully_qualified_name():<24} pub {", ".join(pubs) or "-"}'
        f' | sub {", ".join(subs) or "-"}'
    )


def run_group(graph: GraphSpec, group: str | None, duration: float | None, threads: int) -> int:
    """Run the nodes of ``group`` (all nodes when None) in this process."""
    specs = [n for n in graph.nodes if group is None or n.process == group]
    if not specs:
        _log(graph, group, f"no nodes in process group '{group}'")
        return 2
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = StopSignal()
    stop.install()
    nodes: list[Node] = []
    try:
        for spec in specs:
            try:
                nodes.append(create_node(spec))
            except ConfigError as err:
                _log(
                    graph, group, f"node '{spec.fully_qualified_name}': configuration error: {err}"
                )
                return 2
            except (GraphError, RuntimeError) as err:
                _log(graph, group, f"node '{spec.fully_qualified_name}': {err}")
                return 1
        _log(
            graph,
            group,
            f'running {len(nodes)} node(s) in pid {os.getpid()}'
            f' (ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")}):',
        )
        for node in nodes:
            print(f'    {_describe(node)}', flush=True)
        started = time.monotonic()
        spin_nodes(nodes, stop, duration=duration, threads=threads)
        nodes = []  # destroyed by spin_nodes
        _log(graph, group, f'stopped after {time.monotonic() - started:.1f} s ({stop.reason})')
        return 1 if stop.failed else 0
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()


def run_processes(
    graph: GraphSpec, duration: float | None, threads: int, views: Sequence[str] = ()
) -> int:
    """One child process per group; a child that fails stops the rest."""
    stop = StopSignal()
    stop.install()
    children: dict[str, subprocess.Popen] = {}
    base = [
        sys.executable,
        '-m',
        'vla_ros_common.runner',
        str(graph.path),
        '--config-dir',
        str(graph.config_dir),
        '--threads',
        str(threads),
        *(f'--{_VIEW_FLAGS[name]}' for name in views),
    ]
    for group in graph.processes:
        children[group] = subprocess.Popen([*base, '--group', group])
    _log(
        graph,
        None,
        f'started {len(children)} processes: '
        + ', '.join(f'{g} (pid {p.pid})' for g, p in children.items()),
    )
    deadline = None if duration is None else time.monotonic() + duration
    failed: list[str] = []
    while not stop.event.is_set():
        for group, proc in children.items():
            if proc.poll() is not None and proc.returncode != 0:
                failed.append(f'{group} exited with code {proc.returncode}')
        if failed or all(p.poll() is not None for p in children.values()):
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
        stop.wait(0.1)
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for group, proc in children.items():
        try:
            proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            failed.append(f'{group} did not stop within 10 s and was killed')
    for reason in failed:
        _log(graph, None, f'error: {reason}')
    return 1 if failed else 0


# The runner's view options and the view nodes they add (config/graphs/view.yaml).
_VIEW_FLAGS = {'web_view': 'view', 'viz_markers': 'rviz'}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='vla run', description=__doc__.splitlines()[0])
    parser.add_argument('graph', type=Path, help='graph YAML (config/graphs/*.yaml)')
    parser.add_argument(
        '--config-dir',
        type=Path,
        help="where parameter files are (default: the graph file's parent's parent)",
    )
    parser.add_argument('--duration', type=float, help='stop after this many seconds')
    parser.add_argument('--processes', action='store_true', help='one process per group')
    parser.add_argument('--group', help='run only this process group (used by --processes)')
    parser.add_argument(
        '--threads', type=int, default=1,
        help='executor threads per process (1: single-threaded, the low-latency default)',
    )  # fmt: skip
    parser.add_argument('--list', action='store_true', help='print the graph and exit')
    parser.add_argument(
        '--view', action='store_true',
        help='add the browser view (vla_viz web_view, needs rerun-sdk; it logs the URL to open)',
    )  # fmt: skip
    parser.add_argument(
        '--rviz', action='store_true',
        help='add the rviz markers (viz/markers); rviz itself needs a real ROS 2 install: run '
        'rviz2 -d config/rviz/vla.rviz there, on this ROS_DOMAIN_ID',
    )  # fmt: skip
    args = parser.parse_args(argv)
    views = [name for name, flag in _VIEW_FLAGS.items() if getattr(args, flag)]
    if args.view:
        try:
            import rerun  # noqa: F401  (the browser view's optional dependency)
        except ImportError:
            print("[vla_run] --view needs rerun-sdk: pip install 'rerun-sdk>=0.41'",
                  file=sys.stderr)  # fmt: skip
            return 2
    try:
        graph = with_views(load_graph(args.graph, args.config_dir), views)
    except GraphError as err:
        print(f'[vla run] {err}', file=sys.stderr)
        return 2
    if args.rviz and args.group is None:
        _log(graph, None, 'markers on /viz/markers; rviz itself needs a real ROS 2 install: '
             f'rviz2 -d {graph.config_dir / "rviz" / "vla.rviz"} (ROS_DOMAIN_ID '
             f'{os.environ.get("ROS_DOMAIN_ID", "0")})')  # fmt: skip
    if args.list:
        for spec in graph.nodes:
            print(
                f'{spec.process:<10} {spec.fully_qualified_name:<24} {spec.package} '
                f'{spec.executable} ({spec.plugin})'
            )
        return 0
    if args.processes and args.group is None and len(graph.processes) > 1:
        return run_processes(graph, args.duration, args.threads, views)
    return run_group(graph, args.group, args.duration, args.threads)


if __name__ == '__main__':
    sys.exit(main())

"""Closed-loop evaluation through the ROS graph as deployed: the sim node, the policy node and the
controller node, each in its own process (the embedded runner), talking over DDS.

    python -m vla_sim.graph_eval --artifact out/exports/sim_flow_scene --episodes 20
    python -m vla_sim.graph_eval --graph config/graphs/expert.yaml --episodes 10 --clock realtime
    python -m vla_sim.graph_eval --artifact ... --compare out/eval/sim_flow_scene/results.json

It runs the same (task, seed) pairs as ``vla eval --seed S --episodes N``
(:func:`vla_sim.tasks.episode_schedule`), prints the same table (success per task with a Wilson
95 % interval, failure modes) and writes ``results.json`` with every (task, seed) episode and its
latency breakdown: the observation's age when inference started, the inference time, and the
chunk's age when the controller spliced it in. ``--compare`` pairs the episodes with an in-process
``results.json`` by (task, seed) and runs a sign test.

Clocks: ``realtime`` is the truth (the sim paced by the wall clock; inference and transport
latency are real, so the figure depends on the machine's load). ``lockstep`` is deterministic:
the sim steps only when the controller's command for the tick has arrived and, at each camera
frame, the policy's chunk for it; the chunk takes effect ``--chunk-delay`` of simulated time after
its frame (at least one control period). ``--inference-delay`` slows every inference down to that
long (wall time, the policy node's option), for latency robustness in real time.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
import contextlib
from dataclasses import dataclass
import json
import math
import os
from pathlib import Path
import random
import signal
import subprocess
import sys
import time

import numpy as np
import yaml

from vla_sim.outcomes import EpisodeOutcome, write_report
from vla_sim.tasks import TASKS

__all__ = ['GraphEpisode', 'GraphRun', 'evaluate_graph', 'main', 'paired_comparison']

SIM = 'vla_sim.sim_node:SimNode'
POLICY = 'vla_policy.policy_node:PolicyNode'
CONTROLLER = 'vla_control.controller_node:ControllerNode'


@dataclass(frozen=True)
class GraphEpisode(EpisodeOutcome):
    """An episode through the graph, with where its chunks' time went (means over its chunks)."""

    observation_age_ms: float  # node clock at inference start - observation stamp
    inference_ms: float
    chunk_age_ms: float  # control time at splice - observation stamp
    chunk_age_max_ms: float


@dataclass(frozen=True)
class GraphRun:
    """What to run: the graph, its episodes, its clock and the latencies injected."""

    graph: Path
    tasks: tuple[str, ...]
    episodes: int
    seed: int
    clock: str = 'lockstep'  # lockstep | realtime
    artifact: str | None = None  # the policy node's export (None: the graph's own)
    chunk_delay: float = 0.0  # [s] controller: a chunk takes effect this long after its stamp
    inference_delay: float = 0.0  # [s] policy node: every inference takes at least this long
    time_limit_s: float | None = None  # episode time limit (None: the task's)
    config_dir: Path | None = None
    timeout: float = 120.0  # [s] wall time without a finished episode before giving up


def _node(graph: dict, plugin: str) -> dict | None:
    return next((n for n in graph['nodes'] if n.get('plugin') == plugin), None)


def _override(node: dict, values: dict) -> None:
    node['parameters'] = [*(node.get('parameters') or []), values]


def derived_graph(run: GraphRun, out: Path) -> Path:
    """The graph file with the evaluation's parameters added to its nodes (written to ``out``)."""
    graph = yaml.safe_load(run.graph.read_text())
    sim, controller = _node(graph, SIM), _node(graph, CONTROLLER)
    if sim is None or controller is None:
        raise ValueError(f'{run.graph}: needs a sim node ({SIM}) and a controller ({CONTROLLER})')
    policy = _node(graph, POLICY)
    lockstep = run.clock == 'lockstep'
    reference = (controller.get('remappings') or {}).get('control/reference', 'control/reference')
    _override(sim, {
        'task_name': run.tasks[0], 'task_cycle': list(run.tasks), 'seed': run.seed,
        'seed_schedule': 'per_task', 'episodes_per_task': run.episodes, 'auto_reset': True,
        'episode_log': str(out / 'episodes.jsonl'), 'reset_controller': 'control/reset',
        'lockstep': lockstep, 'real_time_factor': 1.0, 'await_graph': True,
        # (The sim's own expert needs no wait: it publishes its chunk before the tick.)
        'policy_chunks': reference if policy is not None else '',
    })  # fmt: skip
    if run.time_limit_s is not None:
        _override(sim, {'task.time_limit_s': run.time_limit_s})
    _override(controller, {
        'tick_source': 'joint_states' if lockstep else 'timer',
        'chunk_delay': run.chunk_delay, 'timing_log': str(out / 'controller_timing.jsonl'),
    })  # fmt: skip
    if policy is not None:
        values = {'timing_log': str(out / 'policy_timing.jsonl')}
        values['inference_delay'] = run.inference_delay
        if run.artifact:
            values['artifact'] = str(Path(run.artifact).resolve())
        _override(policy, values)
    path = out / f'{run.graph.stem}.eval.yaml'
    path.write_text(yaml.safe_dump(graph, sort_keys=False))
    return path


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    out = []
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):  # a line being written
            out.append(json.loads(line))
    return out


@contextlib.contextmanager
def _own_ros_domain() -> Iterator[dict[str, str]]:
    """An environment with a ROS domain of its own, discovery on this host only: an evaluation
    must neither drive nor listen to another graph (a robot's) on the default domain."""
    env = dict(os.environ)
    if env.get('ROS_DISTRO') == 'humble':
        env['ROS_LOCALHOST_ONLY'] = '1'
    else:
        env.pop('ROS_LOCALHOST_ONLY', None)  # deprecated since Jazzy
        env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    try:
        from domain_coordinator import domain_id
    except ImportError:
        env['ROS_DOMAIN_ID'] = str(random.randint(101, 200))
        yield env
        return
    with domain_id(selector=lambda: random.randint(101, 200)) as reserved:
        env['ROS_DOMAIN_ID'] = str(reserved)
        yield env


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_graph(run: GraphRun, out: Path, progress: bool = True) -> list[dict]:
    """Start the graph, wait for every scheduled episode, stop it; the episode records."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    for name in ('episodes.jsonl', 'policy_timing.jsonl', 'controller_timing.jsonl'):
        (out / name).unlink(missing_ok=True)
    graph = derived_graph(run, out)
    config_dir = run.config_dir or run.graph.resolve().parent.parent
    command = [sys.executable, '-m', 'vla_ros_common.runner', str(graph), '--config-dir',
               str(config_dir), '--processes']  # fmt: skip
    total = run.episodes * len(run.tasks)
    log = (out / 'graph.log').open('w')
    bar = tqdm(total=total, desc=f'graph episodes ({run.clock})', disable=not progress)
    records: list[dict] = []
    with _own_ros_domain() as env:  # reserved until the graph has stopped
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        last_progress = time.monotonic()
        try:
            while len(records) < total:
                if proc.poll() is not None:
                    raise RuntimeError(f'the graph exited (code {proc.returncode}); see {log.name}')
                if time.monotonic() - last_progress > run.timeout:
                    raise RuntimeError(f'no episode finished for {run.timeout:g} s; see {log.name}')
                time.sleep(0.2)
                now = _read_jsonl(out / 'episodes.jsonl')
                if len(now) > len(records):
                    bar.update(len(now) - len(records))
                    records, last_progress = now, time.monotonic()
                    ok = sum(r['success'] for r in records)
                    bar.set_postfix(success=f'{ok}/{len(records)}')
        finally:
            bar.close()
            _stop(proc)
            log.close()
    return records[:total]


def _mean_ms(values: list[float | None]) -> float:
    known = [v for v in values if v is not None]
    return 1e3 * float(np.mean(known)) if known else math.nan


def episodes_with_latency(records: list[dict], out: Path) -> list[GraphEpisode]:
    """Join the nodes' timing logs to the episodes by stamp."""
    policy = _read_jsonl(out / 'policy_timing.jsonl')
    controller = _read_jsonl(out / 'controller_timing.jsonl')
    fields = EpisodeOutcome.__dataclass_fields__
    episodes = []
    for r in records:
        start, end = r['start_stamp'], r['end_stamp']
        p = [x for x in policy if start <= x['stamp'] < end]
        c = [x['chunk_age'] for x in controller if start <= x['chunk_stamp'] < end]
        base = {k: r[k] for k in fields}
        base['chunks'] = len(p) if policy else len(c)
        base['mean_latency_ms'] = _mean_ms([x['inference'] for x in p])
        episodes.append(GraphEpisode(
            **base,
            observation_age_ms=_mean_ms([x['observation_age'] for x in p]),
            inference_ms=base['mean_latency_ms'],
            chunk_age_ms=_mean_ms(c),
            chunk_age_max_ms=1e3 * max(c) if c else math.nan,
        ))  # fmt: skip
    return episodes


def paired_comparison(graph: Sequence[EpisodeOutcome], in_process: list[dict]) -> dict:
    """Success on the (task, seed) pairs both ran: both, only in-process, only through the graph,
    and the sign test's p-value."""
    from vla_core.stats import sign_test

    reference = {(e['task'], e['seed']): bool(e['success']) for e in in_process}
    pairs = [
        (reference[(o.task, o.seed)], o.success) for o in graph if (o.task, o.seed) in reference
    ]
    only_in_process = sum(a and not b for a, b in pairs)
    only_graph = sum(b and not a for a, b in pairs)
    return {
        'pairs': len(pairs),
        'in_process_success': sum(a for a, _ in pairs),
        'graph_success': sum(b for _, b in pairs),
        'both': sum(a and b for a, b in pairs),
        'only_in_process': only_in_process,
        'only_graph': only_graph,
        'sign_test_p': sign_test(only_in_process, only_graph),
    }


def evaluate_graph(
    run: GraphRun, out: Path, *, compare: Path | None = None, progress: bool = True
) -> list[GraphEpisode]:
    """Run the graph, report like the in-process evaluation, return the episodes."""
    wall = time.monotonic()
    records = run_graph(run, out, progress)
    wall = time.monotonic() - wall
    episodes = episodes_with_latency(records, out)
    settings = {
        'graph': str(run.graph), 'clock': run.clock, 'seed': run.seed,
        'episodes_per_task': run.episodes, 'chunk_delay_s': run.chunk_delay,
        'inference_delay_s': run.inference_delay, 'time_limit_s': run.time_limit_s,
        'wall_time_s': round(wall, 1),
        'real_time_factor': round(sum(e.sim_time for e in episodes) / wall, 2),
    }  # fmt: skip
    latency = {
        key: {
            'mean': float(np.nanmean(values)) if np.isfinite(values).any() else None,
            'p95': float(np.nanpercentile(values, 95)) if np.isfinite(values).any() else None,
        }
        for key in ('observation_age_ms', 'inference_ms', 'chunk_age_ms')
        for values in [np.array([getattr(e, key) for e in episodes], dtype=float)]
    }
    extra: dict = {'latency_ms': latency}
    if compare is not None:
        extra['paired'] = paired_comparison(episodes, json.loads(compare.read_text())['episodes'])
    write_report(episodes, list(run.tasks), out, run.artifact or str(run.graph), settings, extra)
    parts = [f'{k.removesuffix("_ms").replace("_", " ")} {v["mean"]:.1f} ms (p95 {v["p95"]:.1f})'
             for k, v in latency.items() if v['mean'] is not None]  # fmt: skip
    print('through the graph, per chunk: ' + ', '.join(parts))
    print(f'{len(episodes)} episodes in {wall:.0f} s wall ({settings["real_time_factor"]}x real '
          f'time, {run.clock})')  # fmt: skip
    if 'paired' in extra:
        p = extra['paired']
        print(f'paired with {compare}: {p["pairs"]} pairs, in-process {p["in_process_success"]}, '
              f'graph {p["graph_success"]}; only in-process {p["only_in_process"]}, only graph '
              f'{p["only_graph"]}; sign test p = {p["sign_test_p"]:.3f}')  # fmt: skip
    return episodes


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='graph_eval', description=__doc__.split('\n')[0])
    p.add_argument('--graph', type=Path, default=Path('config/graphs/deploy.yaml'))
    p.add_argument('--artifact', help="the policy node's export dir (default: the graph's)")
    p.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    p.add_argument('--episodes', type=int, default=20, help='seeded episodes per task')
    p.add_argument('--seed', type=int, default=100_000, help='first seed (keep off training seeds)')
    p.add_argument('--clock', choices=('lockstep', 'realtime'), default='lockstep')
    p.add_argument(
        '--chunk-delay',
        type=float,
        default=0.0,
        help='a chunk takes effect this long after its frame [s] (controller)',
    )
    p.add_argument(
        '--inference-delay',
        type=float,
        default=0.0,
        help='every inference takes at least this long [s] (policy node)',
    )
    p.add_argument('--time-limit', type=float, help='episode time limit [s] (task default)')
    p.add_argument('--config-dir', type=Path, help="parameter files (default: the graph's)")
    p.add_argument('--timeout', type=float, default=120.0,
                   help='give up after this long without a finished episode [s]')  # fmt: skip
    p.add_argument('--compare', type=Path, help='in-process results.json to pair episodes with')
    p.add_argument('--out', type=Path, default=Path('out/graph_eval'))
    p.add_argument('--no-progress', action='store_true')
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error('--episodes must be at least 1')
    if not args.graph.is_file():
        print(f'error: graph file not found: {args.graph}', file=sys.stderr)
        return 2
    if args.compare is not None and not args.compare.is_file():
        print(f'error: --compare: no such file {args.compare}', file=sys.stderr)
        return 2
    run = GraphRun(
        graph=args.graph, tasks=tuple(args.tasks), episodes=args.episodes, seed=args.seed,
        clock=args.clock, artifact=args.artifact, chunk_delay=args.chunk_delay,
        inference_delay=args.inference_delay, time_limit_s=args.time_limit,
        config_dir=args.config_dir, timeout=args.timeout,
    )  # fmt: skip
    try:
        evaluate_graph(run, args.out, compare=args.compare, progress=not args.no_progress)
    except (ValueError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'results: {args.out / "results.json"}, plot: {args.out / "success.png"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""The graph evaluation end to end: the sim, controller (and policy) nodes in their own processes,
in lockstep. The expert's episodes repeat exactly; a tiny exported policy's chunks take effect
exactly the injected delay after their frame; episodes are the in-process evaluation's (task,
seed) pairs and are paired with its results."""

from __future__ import annotations

from dataclasses import asdict
import json
import math
from pathlib import Path

import pytest
import yaml

from vla_learning.testing import tiny_export
from vla_sim.graph_eval import GraphRun, evaluate_graph
from vla_sim.sim import MujocoSim

ROOT = Path(__file__).resolve().parents[1]
GRAPHS = ROOT / 'config' / 'graphs'


def _comparable(episode) -> dict:
    """Everything but wall-clock figures (inference time) and NaN (no policy: no latency)."""
    record = asdict(episode)
    for key in ('mean_latency_ms', 'inference_ms'):
        record.pop(key)
    return {k: v for k, v in record.items() if not (isinstance(v, float) and math.isnan(v))}


def test_the_expert_graph_in_lockstep_repeats_exactly(tmp_path) -> None:
    run = GraphRun(
        graph=GRAPHS / 'expert.yaml', tasks=('push_red', 'push_blue'), episodes=1,
        seed=100_000, clock='lockstep', timeout=300.0,
    )  # fmt: skip
    first = evaluate_graph(run, tmp_path / 'first', progress=False)
    again = evaluate_graph(run, tmp_path / 'again', progress=False)
    assert [(e.task, e.seed) for e in first] == [('push_red', 100_000), ('push_blue', 100_000)]
    assert all(e.success for e in first)  # the expert pushes the block in through the controller
    assert [_comparable(e) for e in first] == [_comparable(e) for e in again]
    # The expert's chunk is published before its tick's joint state: it acts one tick later.
    for e in first:
        assert e.chunk_age_ms == pytest.approx(10.0) and e.chunk_age_max_ms == pytest.approx(10.0)


def _tiny_sim_export(out: Path) -> Path:
    """An untrained flow policy on the sim arm's joints that holds it where it is: its chunks
    stay inside the joint limits (the controller refuses any beyond them), it solves nothing."""
    return tiny_export(out, joint_names=MujocoSim().joint_names, horizon=8, hold_still=True)


def test_a_policy_through_the_graph_with_an_injected_delay(tmp_path) -> None:
    graph = yaml.safe_load((GRAPHS / 'deploy.yaml').read_text())
    policy = next(n for n in graph['nodes'] if n['name'] == 'policy')
    policy['parameters'].append({'instruction_encoder': 'hashed', 'num_threads': 1})
    (tmp_path / 'deploy.yaml').write_text(yaml.safe_dump(graph))
    in_process = tmp_path / 'in_process.json'  # what an in-process evaluation wrote
    in_process.write_text(json.dumps({'episodes': [
        {'task': 'push_green', 'seed': 100_000, 'success': True},
        {'task': 'push_green', 'seed': 100_001, 'success': True},
    ]}))  # fmt: skip
    run = GraphRun(
        graph=tmp_path / 'deploy.yaml', tasks=('push_green',), episodes=2, seed=100_000,
        artifact=str(_tiny_sim_export(tmp_path / 'export')), chunk_delay=0.05,
        time_limit_s=1.0, config_dir=ROOT / 'config', timeout=300.0,
    )  # fmt: skip
    out = tmp_path / 'eval'
    episodes = evaluate_graph(run, out, compare=in_process, progress=False)
    pairs = [('push_green', 100_000), ('push_green', 100_001)]
    assert [(e.task, e.seed) for e in episodes] == pairs
    for e in episodes:
        assert not e.success and e.sim_time == pytest.approx(1.0)
        assert e.chunks == 10  # a frame at 0, 0.1, ... 0.9 s, each answered before the sim moved on
        assert e.observation_age_ms == pytest.approx(0.0, abs=1e-6)  # lockstep: the sim waits
        # The injected delay, exactly (stamps are floats: to a nanosecond).
        assert e.chunk_age_ms == pytest.approx(50.0) and e.chunk_age_max_ms == pytest.approx(50.0)
        assert e.inference_ms > 0.0
    results = json.loads((out / 'results.json').read_text())
    assert results['settings']['clock'] == 'lockstep'
    assert results['paired'] == {
        'pairs': 2, 'in_process_success': 2, 'graph_success': 0, 'both': 0,
        'only_in_process': 2, 'only_graph': 0, 'sign_test_p': 0.5,
    }  # fmt: skip
    assert [e['seed'] for e in results['episodes']] == [100_000, 100_001]

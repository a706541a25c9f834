"""Fault injection into the running demo and deploy graphs (config/graphs/*.yaml), every group in
its own process started by the embedded runner, and the contract of each fault (docs/faults.md):
refused, counted, diagnosed, stopped at the first control tick past its timeout (asserted on
message stamps and ticks), and recovered when the killed group is started again.

The faults and their checks live in fault_cases.py, shared with bench/bench_faults.py. Each graph
starts once for all of its cases (class-scoped: the two graphs never run at the same time).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fault_cases import DEMO_CASES, DEPLOY_CASES
from fault_graphs import Outcome, Rig, deploy_overrides, make_tiny_export
from fault_user_errors import CLI_CASES
import pytest


def _check(outcome: Outcome, rig: Rig | None = None) -> None:
    logs = ''
    if not outcome.ok and rig is not None:
        logs = '\n'.join(f'--- {g}\n{rig.graph.log(g)}' for g in rig.graph.groups)
    assert outcome.ok, f'{outcome.fault}: {outcome.observed} [{outcome.figure}]\n{logs}'


@pytest.fixture(scope='class')
def demo(tmp_path_factory: pytest.TempPathFactory):
    rig = Rig.open('expert.yaml', tmp_path_factory.mktemp('demo'))
    yield rig
    rig.close()


@pytest.fixture(scope='class')
def deploy(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp('deploy')
    rig = Rig.open('deploy.yaml', tmp, deploy_overrides(make_tiny_export(tmp / 'export')))
    yield rig
    rig.close()


def _name(case: Callable) -> str:
    return case.__name__


class TestDemoGraph:
    """The sim with its scripted expert, the controller, the graph monitor."""

    @pytest.mark.parametrize('case', DEMO_CASES, ids=_name)
    def test_fault(self, demo: Rig, case: Callable[[Rig], Outcome]) -> None:
        _check(case(demo), demo)


class TestDeployGraph:
    """The sim, the policy node on a tiny exported model made here, the controller, the monitor."""

    @pytest.mark.parametrize('case', DEPLOY_CASES, ids=_name)
    def test_fault(self, deploy: Rig, case: Callable[[Rig], Outcome]) -> None:
        _check(case(deploy), deploy)


@pytest.mark.parametrize('case', CLI_CASES, ids=_name)
def test_user_error(tmp_path: Path, case: Callable[[Path], Outcome]) -> None:
    _check(case(tmp_path))

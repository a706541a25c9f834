"""The fault table: every fault of docs/faults.md injected into the running demo and deploy graphs
(and the command-line tools), with what was expected, what was observed and a figure.

The injections and their checks are test/fault_cases.py, the ones test/test_faults.py asserts;
this prints them as a table, one row per fault, and exits 1 if a row fails. Runs in a ROS domain
of its own, loopback only; takes a few minutes.

    .venv/bin/python bench/bench_faults.py [--only kill_sim,empty_image]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import random
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'test'))
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(201, 230)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

from fault_cases import DEMO_CASES, DEPLOY_CASES  # noqa: E402
from fault_graphs import Outcome, Rig, deploy_overrides, make_tiny_export  # noqa: E402
from fault_user_errors import CLI_CASES  # noqa: E402


def _row(cells: list[str]) -> str:
    return '| ' + ' | '.join(c.replace('|', '/') for c in cells) + ' |'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', default='', help='comma-separated case names')
    args = parser.parse_args()
    only = {name for name in args.only.split(',') if name}

    def chosen(cases: tuple) -> list:
        return [case for case in cases if not only or case.__name__ in only]

    load = os.getloadavg()
    print(f'load average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (2 cores)')
    outcomes: list[Outcome] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix='bench_faults_') as tmp_dir:
        tmp = Path(tmp_dir)
        plans = [
            ('expert.yaml', None, chosen(DEMO_CASES)),
            ('deploy.yaml', 'export', chosen(DEPLOY_CASES)),
        ]
        for graph, export, cases in plans:
            if not cases:
                continue
            work = tmp / graph.split('.')[0]
            work.mkdir()
            overrides = deploy_overrides(make_tiny_export(work / export)) if export else None
            rig = Rig.open(graph, work, overrides)
            try:
                for case in cases:
                    outcomes.append(case(rig))
                    print(f'  {"ok  " if outcomes[-1].ok else "FAIL"} {outcomes[-1].fault}')
            finally:
                rig.close()
        for case in chosen(CLI_CASES):
            outcomes.append(case(tmp))
            print(f'  {"ok  " if outcomes[-1].ok else "FAIL"} {outcomes[-1].fault}')
    print()
    print(_row(['fault', 'expected', 'observed', 'figure', 'pass']))
    print(_row(['---'] * 5))
    for o in outcomes:
        print(_row([o.fault, o.expected, o.observed, o.figure, 'yes' if o.ok else 'NO']))
    passed = sum(o.ok for o in outcomes)
    load = os.getloadavg()
    print(
        f'\n{passed}/{len(outcomes)} rows pass in {time.monotonic() - started:.0f} s; '
        f'load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}'
    )
    return 0 if passed == len(outcomes) else 1


if __name__ == '__main__':
    sys.exit(main())

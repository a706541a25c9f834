"""User errors in the tools and nodes, each run as a user would run it: one line naming the
problem, exit code 2. Shared by test/test_faults.py and bench/bench_faults.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import subprocess
import sys

from fault_graphs import CONFIG, ROOT, Checks, Outcome


def _one_line(c: Checks, args: list[str], named: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, '-m', *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    c(proc.returncode == 2, f'{args[0]} exited {proc.returncode}')
    c(len(lines) == 1 and named in lines[0], f'{args[0]}: {proc.stderr[-300:]!r}')
    return lines[0] if lines else ''


def parameter_typo(tmp: Path) -> Outcome:
    c = Checks()
    graph = tmp / 'typo.yaml'
    graph.write_text(
        'nodes:\n  - {name: controller, package: vla_control, executable: controller_node,\n'
        '     plugin: "vla_control.controller_node:ControllerNode",\n'
        '     parameters: [controller.yaml, {loop.rate_hzz: 200.0}]}\n'
    )
    proc = subprocess.run(
        [sys.executable, '-m', 'vla_ros_common.runner', str(graph), '--config-dir', str(CONFIG),
         '--duration', '30'], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if 'rate_hzz' in line]
    c(proc.returncode == 2, f'exit code {proc.returncode}')
    c(len(lines) == 1 and "did you mean 'loop.rate_hz'" in lines[0], proc.stdout[-300:])
    return c.outcome(
        'parameter typo loop.rate_hzz', 'the node stops, one line naming it, exit code 2',
        lines[0].split('error: ')[-1] if lines else '-', f'exit code {proc.returncode}',
    )  # fmt: skip


def cli_user_errors(tmp: Path) -> Outcome:
    c = Checks()
    bad = tmp / 'corrupt.pt'
    bad.write_bytes(b'not a checkpoint')
    tiny = str(ROOT / 'src' / 'vla_learning' / 'config' / 'tiny_test.yaml')
    lines = [
        _one_line(c, ['vla_sim.evaluation.policy', '--artifact', str(tmp / 'missing')],
                  'missing', tmp),
        _one_line(c, ['vla_learning.export', '--checkpoint', str(bad), '--output',
                      str(tmp / 'x'), '--observations', str(bad)], 'corrupt.pt', tmp),
        _one_line(c, ['vla_learning.train', '--config', tiny, '--set', 'train.stepz=3'],
                  'train.stepz', tmp),
    ]  # fmt: skip
    return c.outcome(
        'missing artifact, corrupt checkpoint, config typo (evaluate, export, train)',
        'one line naming the file or parameter, exit code 2 (--debug: traceback)',
        ' | '.join(line[:50] for line in lines), '3 of 3 one line',
    )  # fmt: skip


def train_into_an_earlier_run(tmp: Path) -> Outcome:
    c = Checks()
    run = tmp / 'run'
    run.mkdir()
    (run / 'last.pt').write_bytes(b'an earlier run')
    tiny = str(ROOT / 'src' / 'vla_learning' / 'config' / 'tiny_test.yaml')
    args = ['vla_learning.train', '--config', tiny, '--set', f'train.output_dir={run}']
    line = _one_line(c, args, '--overwrite', tmp)
    c((run / 'last.pt').read_bytes() == b'an earlier run', 'last.pt replaced')
    return c.outcome(
        'training into an earlier run', 'refused unless --resume or --overwrite; nothing replaced',
        line[:70], 'last.pt untouched' if not c.failed else '-',
    )  # fmt: skip


CLI_CASES: tuple[Callable[[Path], Outcome], ...] = (
    parameter_typo,
    cli_user_errors,
    train_into_an_earlier_run,
)

"""``vla <command> [args...]``: the suite's offline tools behind one command.

Each command is the ``main`` of the module that owns the tool, imported only when that command
runs (``vla --help`` imports none of them). ``vla <command> --help`` shows its options.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import sys

from vla_core.cli import load_entry_point

__all__ = ['COMMANDS', 'main']


@dataclass(frozen=True)
class Command:
    target: str  # 'module:function', called with the remaining arguments
    summary: str  # one line for `vla --help`
    group: str


COMMANDS: dict[str, Command] = {
    'demos': Command(
        'vla_sim.demos:main', 'expert demonstrations in the simulator, written as a dataset', 'data'
    ),
    'dataset': Command(
        'vla_data.dataset.build:main',
        'episode bags -> training dataset aligned on stamps (optionally LeRobot v3)',
        'data',
    ),
    'recover': Command(
        'vla_data.recover:main', 'make the episodes a killed recorder left readable', 'data'
    ),
    'train': Command('vla_learning.train:main', 'train a policy from a YAML config', 'learning'),
    'export': Command(
        'vla_learning.export.__main__:main',
        'checkpoint -> ONNX, refused unless it matches PyTorch',
        'learning',
    ),
    'engine': Command(
        'vla_policy.backends.tensorrt_backend:main',
        'build (or verify) the TensorRT engine of an export',
        'learning',
    ),
    'benchmark': Command(
        'vla_learning.benchmark:main',
        'inference latency of a checkpoint and its export',
        'learning',
    ),
    'train-residual': Command(
        'vla_learning.train_residual:main',
        "the controller's learned residual, from its tracking logs",
        'learning',
    ),
    'eval': Command(
        'vla_sim.evaluation.policy:main',
        'closed-loop success of an export in the simulator (Wilson intervals, videos)',
        'evaluation',
    ),
    'eval-expert': Command(
        'vla_sim.evaluation.expert:main',
        "the scripted expert's success, nominal and perturbed",
        'evaluation',
    ),
    'dagger': Command(
        'vla_dagger.dagger_sim:main',
        'DAgger rollouts in the simulator: the policy drives, the expert labels',
        'evaluation',
    ),
    'run': Command(
        'vla_ros_common.runner:main',
        'run a graph YAML (config/graphs/) without a ROS install: nodes in-process',
        'graph',
    ),
    'state-oracle': Command(
        'vla_experiments.state_oracle:main',
        'success with perfect perception (privileged sim state)',
        'experiments, not product',
    ),
    'input-ablation': Command(
        'vla_experiments.input_ablation:main',
        'which inputs a trained policy uses',
        'experiments, not product',
    ),
}


def usage() -> str:
    lines = [
        'usage: vla <command> [args...]    (vla <command> --help: its options)',
        '',
        "The VLA suite's offline tools. The robot graph itself runs with",
        '`ros2 launch vla_bringup robot.launch.py` or `vla run config/graphs/robot.yaml`.',
    ]
    for group in dict.fromkeys(c.group for c in COMMANDS.values()):
        lines += ['', f'{group}:']
        lines += [f'  {n:<16}{c.summary}' for n, c in COMMANDS.items() if c.group == group]
    return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ('-h', '--help', 'help'):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    command = COMMANDS.get(name)
    if command is None:
        print(f'vla: no command {name!r}; `vla --help` lists them', file=sys.stderr)
        return 2
    return int(load_entry_point(command.target)(rest) or 0)


if __name__ == '__main__':
    sys.exit(main())

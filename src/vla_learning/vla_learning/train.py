"""Training CLI.

vla-train --config src/vla_learning/config/synthetic_flow.yaml [--set train.steps=100 ...]
vla-train --config ... --resume runs/flow/last.pt       # or --resume auto
vla-train --config ... --overwrite        # replace an earlier run's checkpoints in output_dir
torchrun --nproc_per_node=4 -m vla_learning.train --config ...   # DDP on 4 GPUs
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
from typing import Any

import yaml

from vla_core.cli import cli_main

__all__ = ['main']


def _parse_override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition('=')
    if not sep:
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, got {text!r}')
    return key.strip(), yaml.safe_load(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='vla train', description=__doc__.split('\n')[0])
    p.add_argument('--config', required=True, type=Path, help='experiment YAML')
    p.add_argument(
        '--set', dest='overrides', action='append', default=[], type=_parse_override,
        metavar='KEY=VALUE', help='override a dotted config field (YAML value), repeatable',
    )  # fmt: skip
    p.add_argument('--resume', default=None, help="checkpoint to resume, or 'auto' (last.pt)")
    p.add_argument(
        '--overwrite', action='store_true',
        help='start afresh in an output_dir that holds an earlier run, removing its checkpoints',
    )  # fmt: skip
    return p


@cli_main('vla train')
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from vla_learning.training.configuration_train import load_experiment
    from vla_learning.training.distributed import shutdown_distributed
    from vla_learning.training.trainer import Trainer

    cfg = load_experiment(args.config, dict(args.overrides))
    resume = args.resume
    if resume == 'auto':
        candidate = Path(cfg.train.output_dir) / 'last.pt'
        resume = str(candidate) if candidate.is_file() else None
    try:
        trainer = Trainer(cfg)
        history = trainer.fit(resume=resume, overwrite=args.overwrite)
    finally:
        shutdown_distributed()
    if trainer.dist.is_main and history['val_loss']:
        print(
            f'done: step {trainer.step}, val_loss {history["val_loss"][0]:.4f} -> '
            f'{history["val_loss"][-1]:.4f}, val_action_mse {history["val_action_mse"][0]:.4f} -> '
            f'{history["val_action_mse"][-1]:.4f}; outputs in {trainer.out}'
        )
    return 0


if __name__ == '__main__':
    sys.exit(main())

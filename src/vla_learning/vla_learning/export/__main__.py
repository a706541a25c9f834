"""Export CLI: checkpoint -> ONNX + policy_spec.json, gated by parity with PyTorch.

    vla-export --checkpoint runs/flow/last.pt --output exports/flow
    python -m vla_learning.export --checkpoint ... --output ... --observations obs.npz --atol 1e-3

Writes ``model.onnx``, ``policy_spec.json``, ``parity.json`` and ``observations.npz`` (for INT8
calibration and on-device checks). If parity fails, the model is left as ``model.onnx.rejected``
with no spec, so no backend will load it, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
from pathlib import Path
import sys

from vla_core.cli import cli_main

__all__ = ['main']


def build_parser() -> argparse.ArgumentParser:
    from vla_learning.export.onnx_export import DEFAULT_OPSET
    from vla_learning.export.parity import DEFAULT_ATOL, DEFAULT_MIN_COSINE

    p = argparse.ArgumentParser(prog='vla export', description=__doc__.split('\n')[0])
    p.add_argument('--checkpoint', required=True, type=Path)
    p.add_argument('--output', required=True, type=Path, help='export directory')
    p.add_argument(
        '--observations', type=Path, default=None,
        help='recorded observations .npz (default: observations.npz beside the checkpoint)',
    )  # fmt: skip
    p.add_argument('--atol', type=float, default=DEFAULT_ATOL, help='max abs error [rad]')
    p.add_argument('--min-cosine', type=float, default=DEFAULT_MIN_COSINE)
    p.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    p.add_argument('--seed', type=int, default=0, help='noise seed of the parity check')
    p.add_argument('--threads', type=int, default=2)
    return p


@cli_main('vla export')
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from vla_learning.data.dataset import RecordedObservations
    from vla_learning.export.onnx_export import export_onnx
    from vla_learning.export.parity import check_parity
    from vla_learning.training.checkpoint import load_policy

    torch.set_num_threads(args.threads)
    obs_path = args.observations or args.checkpoint.parent / 'observations.npz'
    if not obs_path.is_file():
        raise FileNotFoundError(errno.ENOENT, 'no recorded observations (--observations)', obs_path)
    observations = RecordedObservations.load(obs_path)
    policy = load_policy(args.checkpoint)
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    for stale in ('model.onnx', 'policy_spec.json', 'model.onnx.rejected'):
        (out / stale).unlink(missing_ok=True)
    candidate = out / 'model.onnx.candidate'
    print(f'exporting {policy.config.type} policy from {args.checkpoint} ...')
    spec = export_onnx(policy, candidate, opset=args.opset)
    report = check_parity(
        policy, candidate, observations, atol=args.atol, min_cosine=args.min_cosine,
        seed=args.seed, num_threads=args.threads,
    )  # fmt: skip
    print(report.summary())
    (out / 'parity.json').write_text(json.dumps(report.to_dict(), indent=2))
    if not report.passed:
        os.replace(candidate, out / 'model.onnx.rejected')
        return 2
    os.replace(candidate, out / 'model.onnx')
    spec = type(spec)(**{**spec.__dict__, 'model_file': 'model.onnx'})
    spec.save(out)
    observations.save(out / 'observations.npz')
    print(f'wrote {out / "model.onnx"} (sha256 {spec.model_sha256[:12]}...), policy_spec.json')
    return 0


if __name__ == '__main__':
    sys.exit(main())

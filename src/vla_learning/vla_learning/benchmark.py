"""Inference latency per chunk, batch 1: PyTorch vs ONNX Runtime on the same exported policy.

vla benchmark --checkpoint runs/flow/last.pt --export-dir exports/flow --threads 2
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import json
from pathlib import Path
import statistics
import sys
import time

from vla_core.cli import cli_main

__all__ = ['main', 'time_call']


def time_call(fn: Callable[[], object], iters: int, warmup: int = 5) -> dict[str, float]:
    """Median / p90 / min wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {
        'median_ms': statistics.median(times),
        'p90_ms': times[int(0.9 * (len(times) - 1))],
        'min_ms': times[0],
    }


@cli_main('vla benchmark')
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='vla benchmark', description=__doc__.split('\n')[0])
    p.add_argument('--checkpoint', required=True, type=Path)
    p.add_argument('--export-dir', required=True, type=Path)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--iters', type=int, default=50)
    p.add_argument('--language', action='store_true', help='also time MiniLM (cold and cached)')
    p.add_argument('--json', type=Path, default=None, help='write the results here')
    args = p.parse_args(argv)

    import onnxruntime as ort
    import torch

    from vla_learning.data.dataset import RecordedObservations
    from vla_learning.export.parity import parity_feeds
    from vla_learning.spec import PolicySpec
    from vla_learning.training.checkpoint import load_policy

    torch.set_num_threads(args.threads)
    spec = PolicySpec.load(args.export_dir)
    obs = RecordedObservations.load(args.export_dir / 'observations.npz')
    feeds = parity_feeds(obs, spec.inputs, spec.horizon, spec.action_dim)
    feeds = {k: v[:1] for k, v in feeds.items()}
    policy = load_policy(args.checkpoint)
    tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}

    def run_torch() -> None:
        with torch.inference_mode():
            policy.predict_chunk(
                tensors['images'], tensors['state'], tensors['lang_emb'], tensors.get('noise')
            )

    def run_vision() -> None:
        assert policy.encoder is not None
        with torch.inference_mode():
            policy.encoder.vision.backbone_features(tensors['images'])

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(args.export_dir / spec.model_file), options, providers=['CPUExecutionProvider']
    )
    results: dict[str, object] = {
        'policy_type': spec.policy_type,
        'image_size': spec.image_size,
        'num_cameras': spec.num_cameras,
        'horizon': spec.horizon,
        'threads': args.threads,
        'torch_full_chunk': time_call(run_torch, args.iters),
        'onnxruntime_full_chunk': time_call(lambda: session.run(None, feeds), args.iters),
    }
    if policy.encoder is not None:  # a policy without the trunk runs no backbone
        results['torch_vision_backbone_all_cameras'] = time_call(run_vision, args.iters)
    if args.language:
        from vla_learning.language import MiniLMInstructionEncoder

        enc = MiniLMInstructionEncoder()
        enc.encode('warm up the tokenizer')
        texts = iter(f'reach target number {i}' for i in range(10**6))
        results['minilm_new_instruction'] = time_call(lambda: enc.encode(next(texts)), 20, 2)
        results['minilm_cached_instruction'] = time_call(lambda: enc.encode('reach'), 100)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())

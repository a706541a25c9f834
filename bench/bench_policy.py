"""Camera-to-chunk latency of the compact VLA: PyTorch eager vs ONNX Runtime.

    . tools/env.sh && python bench/bench_policy.py [--threads 2] [--iters 200]

The shipped sim policies, 2 cameras at 96x96, are built, exported to ONNX and timed through each
inference backend from raw camera frames (224x224 and 128x128 RGB, resized as the policy node
does) to the time-stamped ActionChunk: src/vla_learning/config/sim_flow.yaml (EfficientNet-Lite0
ImageNet backbone, MiniLM instruction embedding, transformer trunk, flow-matching expert with 10
Euler steps) and sim_flow_scene.yaml (the scene localizer and an MLP flow expert, 10 steps).
Weights other than the pretrained backbone are untrained: latency does not depend on them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import tempfile
import time

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


CONFIGS = ('sim_flow', 'sim_flow_scene')


def _export(out: Path, name: str) -> None:
    import torch
    import yaml

    from vla_learning.data.synthetic import SyntheticConfig, make_synthetic_datasets
    from vla_learning.export.onnx_export import export_onnx
    from vla_learning.policies.configuration_policy import PolicyConfig
    from vla_learning.policies.factory import make_policy
    from vla_learning.policies.scene_localizer import SCENE_DIM
    from vla_learning.training.checkpoint import save_checkpoint

    experiment = yaml.safe_load((ROOT / f'src/vla_learning/config/{name}.yaml').read_text())
    train, _ = make_synthetic_datasets(
        SyntheticConfig(num_train=64, num_val=8, num_cameras=2, image_size=96, dof=7,
                        horizon=16, dt=0.1, language='hashed')
    )  # fmt: skip
    from vla_core.config import config_from_dict

    # The scene localizer is sized by the scene state the training data records (object xy,
    # goal xy); the deployed graph never reads that state.
    features = train.features.replace(env_state_dim=SCENE_DIM)
    config = config_from_dict(PolicyConfig, experiment['policy']).replace(features=features)
    torch.manual_seed(0)
    policy = make_policy(config, train.norm_stats())
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / 'policy.pt', policy, step=0)
    export_onnx(policy, out / 'model.onnx').save(out)


def _time(backend, frames: list[np.ndarray], iters: int) -> np.ndarray:
    from vla_learning.preprocess import resize_square
    from vla_policy.backends.base import Observation

    spec = backend.spec
    state = np.zeros(spec.state_dim, np.float32)
    times = []
    for i in range(iters):
        t0 = time.perf_counter()
        images = np.stack([resize_square(f, spec.image_size) for f in frames])
        backend.infer(Observation(stamp=float(i), images=images, state=state, instruction='x'))
        times.append(time.perf_counter() - t0)
    return np.array(times) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--iters', type=int, default=200)
    args = parser.parse_args()
    from vla_learning.language import HashedInstructionEncoder
    from vla_policy.backends import backend_config, make_backend

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (224, 224, 3), np.uint8),
              rng.integers(0, 255, (128, 128, 3), np.uint8)]  # fmt: skip
    for name in CONFIGS:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            print(f'building and exporting {name}.yaml ...', flush=True)
            _export(out, name)
            results = {}
            for kind, artifact in (('torch', out / 'policy.pt'), ('onnxruntime', out)):
                config = backend_config(kind, num_threads=args.threads, warmup_iterations=5)
                backend = make_backend(
                    kind, config=config, instruction_encoder=HashedInstructionEncoder()
                )
                backend.load(artifact)
                backend.warm_up()
                results[kind] = _time(backend, frames, args.iters)
        print(f'camera-to-chunk latency, {name}.yaml (flow, 10 steps), 2 cameras at 96x96, '
              f'{args.threads} threads, {args.iters} chunks:')  # fmt: skip
        for kind, ms in results.items():
            p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
            print(f'  {kind:<12} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms')
        speedup = np.percentile(results['torch'], 50) / np.percentile(results['onnxruntime'], 50)
        print(f'  ONNX Runtime is {speedup:.1f}x faster than eager PyTorch at p50 '
              f'(goals: p99 <= 50 ms, >= 3x)')  # fmt: skip
    return 0


if __name__ == '__main__':
    sys.exit(main())

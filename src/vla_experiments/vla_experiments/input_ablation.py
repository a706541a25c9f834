"""Which inputs does a trained policy use? Held-out error with each input shuffled.

    vla input-ablation --checkpoint out/runs/sim_flow/last.pt \
        --dataset out/dataset_sim --episodes 9

On the last ``--episodes`` episodes of a dataset (the ones training held out), the RMS joint
error of the predicted chunk against the recorded one: as is, with the images of one frame
given to another (shuffled across frames), with the instructions shuffled, and for a policy
that holds the current joints. An input whose shuffling leaves the error unchanged is ignored.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import sys

import numpy as np
import torch

from vla_core.cli import cli_main

__all__ = ['input_ablation', 'main']


def input_ablation(
    checkpoint: str,
    dataset: str,
    episodes: int = 9,
    stride: int = 3,
    seed: int = 0,
    instruction_encoder: str = 'minilm',
) -> dict[str, float]:
    """RMS error [joint units] of the predicted chunks: ``as_is``, ``images_shuffled``,
    ``instruction_shuffled``, ``hold_still``; every ``stride``-th frame of the last ``episodes``."""
    from vla_data.dataset import EpisodeDataset
    from vla_data.dataset.format import read_episodes
    from vla_learning.language import make_instruction_encoder
    from vla_learning.preprocess import resize_square
    from vla_learning.training.checkpoint import load_policy

    policy = load_policy(checkpoint).eval()
    f = policy.config.features
    held_out = [e.episode_index for e in read_episodes(dataset)][-episodes:]
    data = EpisodeDataset(dataset, horizon=f.horizon, episodes=held_out)
    encoder = make_instruction_encoder(instruction_encoder)
    images, state, actions, lang = [], [], [], []
    for i in range(0, len(data), stride):
        s = data[i]
        images.append(
            np.stack([resize_square(s['images'][c], f.image_size) for c in data.camera_names])
        )
        state.append(s['state'])
        actions.append(s['action'])
        lang.append(encoder.encode_many([s['instruction']])[0])
    x = torch.from_numpy(np.stack(images)).permute(0, 1, 4, 2, 3).float() / 255.0
    q = torch.from_numpy(np.stack(state)).float()
    target = torch.from_numpy(np.stack(actions)).float()
    emb = torch.from_numpy(np.stack(lang)).float()
    perm = torch.randperm(len(q), generator=torch.Generator().manual_seed(seed))

    def rms(pred: torch.Tensor) -> float:
        return float((pred - target).pow(2).mean().sqrt())

    def run(images_: torch.Tensor, lang_: torch.Tensor) -> float:
        noise = policy.sample_noise(len(q), torch.Generator().manual_seed(seed))
        with torch.no_grad():
            return rms(policy.predict_chunk(images_, q, lang_, noise))

    return {
        'as_is': run(x, emb),
        'images_shuffled': run(x[perm], emb),
        'instruction_shuffled': run(x, emb[perm]),
        'hold_still': rms(q[:, None, :].expand_as(target)),
        'frames': float(len(q)),
    }


@cli_main('vla input-ablation')
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='vla input-ablation', description=__doc__.split('\n')[0])
    p.add_argument('--checkpoint', required=True)
    p.add_argument('--dataset', required=True)
    p.add_argument('--episodes', type=int, default=9, help='last N episodes (held out)')
    p.add_argument('--stride', type=int, default=3, help='every Nth frame')
    p.add_argument('--instruction-encoder', default='minilm', choices=('minilm', 'hashed'))
    args = p.parse_args(argv)
    result = input_ablation(
        args.checkpoint, args.dataset, args.episodes, args.stride,
        instruction_encoder=args.instruction_encoder,
    )  # fmt: skip
    frames = int(result.pop('frames'))
    print(f'RMS chunk error on {frames} held-out frames (joint units):')
    for name, value in result.items():
        print(f'  {name:<22} {value:.4f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""torchrun/DDP plumbing: single-process by default, DDP when launched with WORLD_SIZE > 1."""

from __future__ import annotations

from dataclasses import dataclass
import os

import torch

__all__ = ['DistContext', 'init_distributed', 'shutdown_distributed']


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = 'auto') -> DistContext:
    """Read torchrun's environment; start a process group (NCCL on GPUs, gloo on CPUs)."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    use_cuda = device == 'cuda' or (device == 'auto' and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError('device=cuda asked for, but torch sees no CUDA device')
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device('cuda', local_rank)
    else:
        dev = torch.device('cpu')
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend='nccl' if use_cuda else 'gloo')
    return DistContext(rank, world_size, local_rank, dev)


def shutdown_distributed() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()

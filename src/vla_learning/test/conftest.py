"""Fixtures of the vla_learning tests: tiny models and data, one CPU thread."""

from __future__ import annotations

import pytest
import torch

from vla_learning.data.dataset import ChunkDataset
from vla_learning.data.synthetic import SyntheticConfig, make_synthetic_datasets


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # Two OpenMP threads on two shared cores spin-wait each other into seconds per op.
    torch.set_num_threads(1)


@pytest.fixture(scope='session')
def tiny_data() -> tuple[ChunkDataset, ChunkDataset]:
    cfg = SyntheticConfig(
        num_train=48, num_val=8, image_size=32, horizon=4, language='hashed', num_cameras=2
    )
    return make_synthetic_datasets(cfg)

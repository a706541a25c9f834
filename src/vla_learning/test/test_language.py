"""Instruction embeddings: cached per string; the real MiniLM loads offline."""

from __future__ import annotations

import numpy as np
import pytest

from vla_learning.language import HashedInstructionEncoder


def test_encoder_caches_each_instruction_once() -> None:
    enc = HashedInstructionEncoder(cache_size=2)
    a = enc('pick the red cube')
    assert enc('pick the red cube') is a and enc.misses == 1
    assert a.shape == (384,) and not a.flags.writeable
    enc('b')
    enc('c')  # evicts the least recently used
    enc('pick the red cube')
    assert enc.misses == 4


@pytest.mark.slow
def test_minilm_offline() -> None:
    from vla_learning.language import MiniLMInstructionEncoder

    enc = MiniLMInstructionEncoder()
    red, red2, blue = enc.encode_many(['reach the red square', 'touch the red block', 'wave'])
    assert red.shape == (384,)
    np.testing.assert_allclose(np.linalg.norm(red), 1.0, rtol=1e-5)
    assert red @ red2 > red @ blue

